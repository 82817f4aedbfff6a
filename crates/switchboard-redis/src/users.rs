//! [`Users`] on Redis: per user a sorted set `:z` (conn → registration number), a hash `:h`
//! (conn → owner `\n` node) and a counter `:n`. The cap is applied inside one script.

use std::sync::Arc;

use redis::Value;
use switchboard_core::{BackendError, BackendFuture, CapPolicy, ConnRef, NodeId, Registration, Users};

use crate::core::{Core, member};
use crate::presence::{pairs, text};
use crate::scripts;

pub(crate) struct RedisUsers {
    core: Arc<Core>,
}

impl RedisUsers {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

fn keys(core: &Core, user: &str) -> [String; 3] {
    let base = core.keys.user(user);
    [format!("{base}:z"), format!("{base}:h"), format!("{base}:n")]
}

/// The register script, without the gate or the local copy (used by the rewrite too).
pub(crate) async fn write_register(
    core: &Core,
    user: &str,
    conn: &str,
    node: &str,
    cap: Option<(usize, CapPolicy)>,
) -> Result<Registration, BackendError> {
    let (limit, policy) = match cap {
        Some((n, CapPolicy::RefuseNew)) => (n.max(1), "r"),
        Some((n, _)) => (n.max(1), "e"),
        None => (0, "e"),
    };
    let mut call = scripts::USERS_REGISTER.prepare_invoke();
    call.key(&keys(core, user)[..])
        .key(format!("{}{}", core.keys.owned_prefix(), core.owner))
        .arg(conn)
        .arg(node)
        .arg(&core.owner)
        .arg(limit)
        .arg(policy)
        .arg(core.keys.alive_prefix())
        .arg(core.keys.owned_prefix())
        .arg(member('u', user, ""));
    let mut c = core.conn.clone();
    let mut reply: Vec<Value> = core.run(call.invoke_async(&mut c)).await?;
    if reply.is_empty() {
        return Err(BackendError::Unavailable("redis: empty answer from the register script".to_owned()));
    }
    let status = reply.remove(0);
    if matches!(&status, Value::BulkString(s) if s == b"limit") {
        return Err(BackendError::Limit);
    }
    let evicted = pairs(reply)
        .map(|(conn, node)| Ok(ConnRef { conn: text(conn)?.into(), node: text(node)?.into() }))
        .collect::<Result<Vec<_>, BackendError>>()?;
    Ok(Registration { evicted })
}

impl Users for RedisUsers {
    fn register(
        &self,
        user: &str,
        conn: ConnRef,
        cap: Option<(usize, CapPolicy)>,
    ) -> BackendFuture<'_, Registration> {
        let user = user.to_owned();
        Box::pin(async move {
            let core = &*self.core;
            let _gate = core.write_gate().await;
            let registration = write_register(core, &user, &conn.conn, &conn.node, cap).await?;
            for gone in &registration.evicted {
                core.forget_user(&user, &gone.conn);
            }
            core.remember_user(&user, &conn.conn, NodeId::clone(&conn.node));
            Ok(registration)
        })
    }

    fn unregister(&self, user: &str, conn: &str) -> BackendFuture<'_, ()> {
        let (user, conn) = (user.to_owned(), conn.to_owned());
        Box::pin(async move {
            let core = &*self.core;
            let _gate = core.write_gate().await;
            core.forget_user(&user, &conn);
            let mut call = scripts::USERS_UNREGISTER.prepare_invoke();
            call.key(&keys(core, &user)[..])
                .arg(&conn)
                .arg(core.keys.owned_prefix())
                .arg(member('u', &user, &conn));
            let mut c = core.conn.clone();
            let _: i64 = core.run(call.invoke_async(&mut c)).await?;
            Ok(())
        })
    }

    fn connections(&self, user: &str) -> BackendFuture<'_, Vec<ConnRef>> {
        let user = user.to_owned();
        Box::pin(async move {
            let core = &*self.core;
            let mut call = scripts::USERS_LIST.prepare_invoke();
            call.key(&keys(core, &user)[..])
                .arg(core.keys.alive_prefix())
                .arg(core.keys.owned_prefix())
                .arg(member('u', &user, ""))
                .arg(&core.owner);
            let mut c = core.conn.clone();
            let flat: Vec<Value> = core.run(call.invoke_async(&mut c)).await?;
            pairs(flat)
                .map(|(conn, node)| Ok(ConnRef { conn: text(conn)?.into(), node: text(node)?.into() }))
                .collect()
        })
    }
}
