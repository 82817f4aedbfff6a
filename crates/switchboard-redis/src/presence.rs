//! [`Presence`] on Redis: per key a sorted set `:z` (conn → join number), a hash `:i`
//! (conn → info), a hash `:w` (conn → owner) and a counter `:n`, all under the hash tag
//! `{P:p:KEY}`. Entries of dead owners are dropped when listed (see `core` for liveness).

use std::sync::Arc;

use bytes::Bytes;
use redis::Value;
use switchboard_core::{BackendError, BackendFuture, Presence, PresenceEntry};

use crate::core::{Core, member, text, triples};
use crate::scripts;

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

    fn leave(&self, key: &str, conn: &str) -> BackendFuture<'_, ()> {
        let (key, conn) = (key.to_owned(), conn.to_owned());
        Box::pin(async move {
            let core = &*self.core;
            let _gate = core.write_gate().await;
            core.forget_presence(&key, &conn);
            let mut call = scripts::PRESENCE_LEAVE.prepare_invoke();
            call.key(&core.keys.presence_keys(&key)[..]).arg(&conn);
            let prev: Option<String> = core.invoke(&call).await?;
            if let Some(prev) = prev {
                core.remove_owned(&prev, &member('p', &key, &conn)).await?;
            }
            Ok(())
        })
    }

    fn list(&self, key: &str) -> BackendFuture<'_, Vec<PresenceEntry>> {
        let key = key.to_owned();
        Box::pin(async move {
            let core = &*self.core;
            let keys = core.keys.presence_keys(&key);
            let mut call = scripts::PRESENCE_LIST.prepare_invoke();
            call.key(&keys[..]);
            let flat: Vec<Value> = core.invoke(&call).await?;
            let entries = triples(flat);
            let dead = core.dead_among(entries.iter().map(|(_, _, o)| o.as_str()), false).await?;
            if dead.is_empty() {
                return entries.into_iter().map(|(conn, info, _)| entry(conn, info)).collect();
            }
            let mut prune = scripts::PRESENCE_PRUNE.prepare_invoke();
            prune.key(&keys[..]);
            let mut live = Vec::with_capacity(entries.len());
            for (conn, info, owner) in entries {
                if dead.contains(&owner) {
                    prune.arg(conn).arg(owner);
                } else {
                    live.push(entry(conn, info)?);
                }
            }
            let _: i64 = core.invoke(&prune).await?;
            Ok(live)
        })
    }
}

fn entry(conn: Vec<u8>, info: Vec<u8>) -> Result<PresenceEntry, BackendError> {
    Ok(PresenceEntry { conn: text(conn)?, info: Bytes::from(info) })
}
