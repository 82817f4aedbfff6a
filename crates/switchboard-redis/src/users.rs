//! [`Users`] on Redis: per user a sorted set `:z` (conn → registration number), a hash `:h`
//! (conn → owner `\n` node) and a counter `:n`, all under the hash tag `{P:u:USER}`. The cap is
//! applied inside one script on that slot (see `core` for how dead owners are told to it).

use std::sync::Arc;

use redis::Value;
use switchboard_core::{BackendFuture, CapPolicy, ConnRef, NodeId, Registration, Users};

use crate::core::{Core, member, text, triples};
use crate::scripts;

pub(crate) struct RedisUsers {
    core: Arc<Core>,
}

impl RedisUsers {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
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
            let registration = core.write_register(&user, &conn.conn, &conn.node, cap).await?;
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
            call.key(&core.keys.user_keys(&user)[..]).arg(&conn);
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
            let keys = core.keys.user_keys(&user);
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
