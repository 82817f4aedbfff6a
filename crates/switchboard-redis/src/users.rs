//! [`Users`] on Redis: per user a sorted set `:z` (conn → registration number), a hash `:h`
//! (conn → owner `\n` node) and a counter `:n`, all under the hash tag `{P:u:USER}`. The cap is
//! applied inside one script on that slot (see `core` for how dead owners are told to it).
//! Each registration is also listed in its node's set `{P:N:NODE}:u`, where
//! [`Users::evict_node`] finds them.

use std::collections::HashSet;
use std::sync::Arc;

use redis::{FromRedisValue, Value};
use switchboard_core::{
    BackendError, BackendFuture, CapPolicy, ConnRef, Evicted, NodeId, Registration, Unregistered, Users,
};

use crate::core::{Core, member, pairs, parse_member, partial, read_failure, text};
use crate::scripts;

/// How many of a node's registrations `evict_node` takes at a time.
const EVICT_BATCH: usize = 500;

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

    fn unregister(&self, user: &str, conn: &str) -> BackendFuture<'_, Unregistered> {
        let (user, conn) = (user.to_owned(), conn.to_owned());
        Box::pin(async move {
            let core = &*self.core;
            let _gate = core.write_gate().await;
            core.forget_user(&user, &conn);
            let mut call = scripts::USERS_UNREGISTER.prepare_invoke();
            call.key(&core.keys.user_keys(&user)[..]).arg(&conn);
            let reply: (Option<String>, Option<String>, usize) = core.invoke(&call).await?;
            let (prev, node, remaining) = reply;
            let mut out = Unregistered::default();
            out.remaining = remaining;
            if let (Some(prev), Some(node)) = (prev, node) {
                out.removed = true;
                let mut listed = vec![core.user_index(&user, &conn, &node)];
                if !prev.is_empty() {
                    listed.push((core.keys.owned(&prev), member('u', &user, &conn)));
                }
                // Removed already: a member left behind names no entry (harmless), not an error.
                if let Err(e) = core.unlist(listed).await {
                    tracing::debug!(error = %e, "could not unlist a registration");
                }
            }
            Ok(out)
        })
    }

    fn connections(&self, user: &str) -> BackendFuture<'_, Vec<ConnRef>> {
        let user = user.to_owned();
        Box::pin(async move { self.live(&user).await.map_err(read_failure) })
    }

    fn evict_node(&self, node: &str) -> BackendFuture<'_, Vec<Evicted>> {
        let node = node.to_owned();
        Box::pin(async move {
            let core = &*self.core;
            let index = core.keys.node_index(&node, 'u');
            let me = core.owner();
            let mut evicted = Vec::new();
            loop {
                let members: Vec<String> =
                    match core.query(redis::cmd("SRANDMEMBER").arg(&index).arg(EVICT_BATCH)).await {
                        Ok(members) => members,
                        Err(e) => return partial(evicted, e),
                    };
                if members.is_empty() {
                    return Ok(evicted);
                }
                let users: HashSet<&str> = members
                    .iter()
                    .filter_map(|m| match parse_member(m) {
                        Some(('u', user, _)) => Some(user),
                        _ => None,
                    })
                    .collect();
                // One script per user (each on its slot), all at once; each removes every
                // connection of the node, not only those listed.
                let calls = users.into_iter().map(|user| {
                    let node = &node;
                    async move {
                        let mut call = scripts::USERS_EVICT.prepare_invoke();
                        call.key(&core.keys.user_keys(user)[..]).arg(node);
                        (user, core.invoke::<Vec<Value>>(&call).await)
                    }
                });
                let mut unlisted: Vec<(String, String)> =
                    members.iter().map(|m| (index.clone(), m.clone())).collect();
                let mut failed = None;
                for (user, reply) in futures_util::future::join_all(calls).await {
                    let reply = match reply {
                        Ok(reply) => reply,
                        Err(e) => {
                            // Its members stay listed: a later call finds them.
                            unlisted.retain(|(_, m)| parse_member(m).is_none_or(|(_, u, _)| u != user));
                            failed.get_or_insert(e);
                            continue;
                        }
                    };
                    let mut reply = reply.into_iter();
                    let remaining = reply.next().and_then(|v| usize::from_redis_value(v).ok()).unwrap_or(0);
                    let mut conns: Vec<NodeId> = Vec::new();
                    for (conn, owner) in pairs(reply.collect()) {
                        let Ok(conn) = String::from_utf8(conn) else { continue };
                        let owner = String::from_utf8(owner).unwrap_or_default();
                        unlisted.push(core.user_index(user, &conn, &node));
                        if !owner.is_empty() {
                            unlisted.push((core.keys.owned(&owner), member('u', user, &conn)));
                        }
                        if *owner == *me {
                            core.forget_user(user, &conn);
                        }
                        conns.push(conn.into());
                    }
                    if !conns.is_empty() {
                        evicted.push(Evicted::new(user, conns, remaining));
                    }
                }
                if let Err(e) = core.unlist(unlisted).await {
                    return partial(evicted, e);
                }
                if let Some(e) = failed {
                    return partial(evicted, e);
                }
            }
        })
    }
}

impl RedisUsers {
    async fn live(&self, user: &str) -> Result<Vec<ConnRef>, BackendError> {
        let core = &*self.core;
        let keys = core.keys.user_keys(user);
        let live = core.live_entries(&scripts::USERS_LIST, &scripts::USERS_PRUNE, &keys, 'u', user).await?;
        live.into_iter()
            .map(|(conn, node)| Ok(ConnRef { conn: text(conn)?.into(), node: text(node)?.into() }))
            .collect()
    }
}
