//! [`Presence`] on Redis: per key a sorted set `:z` (conn → join number), a hash `:i`
//! (conn → info), a hash `:w` (conn → owner) and a counter `:n`, all under the hash tag
//! `{P:p:KEY}`. Entries of dead owners are dropped when listed (see `core` for liveness).
//! Each entry is also listed in its node's set `{P:N:NODE}:p` (the node named by its connection
//! id), where [`Presence::evict_node`] finds them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use redis::Value;
use switchboard_core::{BackendError, BackendFuture, Presence, PresenceEntry};

use crate::core::{Core, member, parse_member, partial, read_failure, text, triples};
use crate::scripts;

/// How many of a node's entries `evict_node` takes at a time.
const EVICT_BATCH: usize = 500;

pub(crate) struct RedisPresence {
    core: Arc<Core>,
}

impl RedisPresence {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

impl Presence for RedisPresence {
    fn join(&self, key: &str, conn: &str, info: Bytes) -> BackendFuture<'_, ()> {
        let (key, conn) = (key.to_owned(), conn.to_owned());
        Box::pin(async move {
            let core = &*self.core;
            let _gate = core.write_gate().await;
            core.write_join(&key, &conn, &info).await?;
            core.remember_presence(&key, &conn, info);
            Ok(())
        })
    }

    fn leave(&self, key: &str, conn: &str) -> BackendFuture<'_, bool> {
        let (key, conn) = (key.to_owned(), conn.to_owned());
        Box::pin(async move {
            let core = &*self.core;
            let _gate = core.write_gate().await;
            core.forget_presence(&key, &conn);
            let mut call = scripts::PRESENCE_LEAVE.prepare_invoke();
            call.key(&core.keys.presence_keys(&key)[..]).arg(&conn);
            let prev: Option<String> = core.invoke(&call).await?;
            let Some(prev) = prev else { return Ok(false) };
            let mut listed = vec![(core.keys.owned(&prev), member('p', &key, &conn))];
            listed.extend(core.presence_index(&key, &conn));
            // Removed already: a member left behind names no entry (harmless), not an error.
            if let Err(e) = core.unlist(listed).await {
                tracing::debug!(error = %e, "could not unlist a presence entry");
            }
            Ok(true)
        })
    }

    fn list(&self, key: &str) -> BackendFuture<'_, Vec<PresenceEntry>> {
        let key = key.to_owned();
        Box::pin(async move { self.list_live(&key).await.map_err(read_failure) })
    }

    fn evict_node(&self, node: &str) -> BackendFuture<'_, Vec<(String, PresenceEntry)>> {
        let node = node.to_owned();
        Box::pin(async move {
            let core = &*self.core;
            let index = core.keys.node_index(&node, 'p');
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
                let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
                for m in &members {
                    if let Some(('p', key, conn)) = parse_member(m) {
                        by_key.entry(key).or_default().push(conn);
                    }
                }
                // One script per presence key (each on its slot), all at once.
                let calls = by_key.into_iter().map(|(key, conns)| async move {
                    let mut call = scripts::PRESENCE_EVICT.prepare_invoke();
                    call.key(&core.keys.presence_keys(key)[..]);
                    for conn in &conns {
                        call.arg(*conn);
                    }
                    (key, core.invoke::<Vec<Value>>(&call).await)
                });
                let mut unlisted: Vec<(String, String)> =
                    members.iter().map(|m| (index.clone(), m.clone())).collect();
                let mut failed = None;
                for (key, removed) in futures_util::future::join_all(calls).await {
                    let removed = match removed {
                        Ok(removed) => removed,
                        Err(e) => {
                            // Its members stay listed: a later call finds them.
                            unlisted.retain(|(_, m)| parse_member(m).is_none_or(|(_, k, _)| k != key));
                            failed.get_or_insert(e);
                            continue;
                        }
                    };
                    for (conn, info, owner) in triples(removed) {
                        let Ok(conn) = String::from_utf8(conn) else { continue };
                        if !owner.is_empty() {
                            unlisted.push((core.keys.owned(&owner), member('p', key, &conn)));
                        }
                        if *owner == *me {
                            core.forget_presence(key, &conn);
                        }
                        evicted.push((key.to_owned(), PresenceEntry { conn, info: Bytes::from(info) }));
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

impl RedisPresence {
    async fn list_live(&self, key: &str) -> Result<Vec<PresenceEntry>, BackendError> {
        let core = &*self.core;
        let keys = core.keys.presence_keys(key);
        let live =
            core.live_entries(&scripts::PRESENCE_LIST, &scripts::PRESENCE_PRUNE, &keys, 'p', key).await?;
        live.into_iter().map(|(conn, info)| entry(conn, info)).collect()
    }
}

fn entry(conn: Vec<u8>, info: Vec<u8>) -> Result<PresenceEntry, BackendError> {
    Ok(PresenceEntry { conn: text(conn)?, info: Bytes::from(info) })
}
