//! [`Users`] on Redis: per user a sorted set `:z` (conn → registration number), a hash `:h`
//! (conn → owner `\n` node) and a counter `:n`, all under the hash tag `{P:u:USER}`. The cap is
//! applied inside one script on that slot (see `core` for how dead owners are told to it).

use std::collections::HashSet;
use std::sync::Arc;

use redis::Value;
use switchboard_core::{BackendError, BackendFuture, CapPolicy, ConnRef, NodeId, Registration, Users};

use crate::core::{Core, member};
use crate::presence::{pairs, text, triples};
use crate::scripts;

pub(crate) struct RedisUsers {
    core: Arc<Core>,
}

impl RedisUsers {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

pub(crate) fn keys(core: &Core, user: &str) -> [String; 3] {
    let base = core.keys.user(user);
    [format!("{base}:z"), format!("{base}:h"), format!("{base}:n")]
}

/// The register script, without the gate or the local copy (used by the rewrite too).
///
/// With a cap, the owners of the user's entries are checked first (fresh), and the script is
/// told which are dead; owners it was not told about count as alive.
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
    let keys = keys(core, user);
    let dead = if cap.is_some() {
        let values: Vec<Vec<u8>> = core.query(redis::cmd("HVALS").arg(&keys[1])).await?;
        let owners: Vec<&str> = values
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok()?.split_once('\n').map(|(o, _)| o))
            .collect();
        core.dead_among(owners, true).await?
    } else {
        HashSet::new()
    };
    let owner = core.owner();
    let mut call = scripts::USERS_REGISTER.prepare_invoke();
    call.key(&keys[..]).arg(conn).arg(node).arg(&*owner).arg(limit).arg(policy);
    for o in &dead {
        call.arg(o);
    }
    // Listed in the owner's set and written in one round trip (see `presence::write_join`).
    let listed = member('u', user, conn);
    let (added, reply) = tokio::join!(core.add_owned(&owner, &listed), core.invoke::<Vec<Value>>(&call));
    let mut reply = reply?;
    added?;
    if reply.is_empty() {
        return Err(BackendError::Unavailable("redis: empty answer from the register script".to_owned()));
    }
    let status = reply.remove(0);
    if matches!(&status, Value::BulkString(s) if s == b"limit") {
        // Not registered: unlist it again (harmless if this fails: a member without an entry).
        let _ = core.remove_owned(&owner, &listed).await;
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
            call.key(&keys(core, &user)[..]).arg(&conn);
            let prev: Option<String> = core.invoke(&call).await?;
            if let Some(prev) = prev {
                core.remove_owned(&prev, &member('u', &user, &conn)).await?;
            }
            Ok(())
        })
    }

    fn connections(&self, user: &str) -> BackendFuture<'_, Vec<ConnRef>> {
        let user = user.to_owned();
        Box::pin(async move {
            let core = &*self.core;
            let keys = keys(core, &user);
            let mut call = scripts::USERS_LIST.prepare_invoke();
            call.key(&keys[..]);
            let flat: Vec<Value> = core.invoke(&call).await?;
            let entries = triples(flat);
            let dead = core.dead_among(entries.iter().map(|(_, _, o)| o.as_str()), false).await?;
            let mut prune = scripts::USERS_PRUNE.prepare_invoke();
            prune.key(&keys[..]);
            let mut live = Vec::with_capacity(entries.len());
            for (conn, node, owner) in entries {
                if dead.contains(&owner) {
                    prune.arg(conn).arg(owner);
                } else {
                    live.push(ConnRef { conn: text(conn)?.into(), node: text(node)?.into() });
                }
            }
            if !dead.is_empty() {
                let _: i64 = core.invoke(&prune).await?;
            }
            Ok(live)
        })
    }
}
