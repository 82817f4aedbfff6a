//! [`Presence`] on Redis: per key a sorted set `:z` (conn → join number), a hash `:i`
//! (conn → info), a hash `:w` (conn → owner) and a counter `:n`, all under the hash tag
//! `{P:p:KEY}`. Entries of dead owners are dropped when listed (see `core` for liveness).

use std::sync::Arc;

use bytes::Bytes;
use redis::Value;
use switchboard_core::{BackendError, BackendFuture, Presence, PresenceEntry};

use crate::core::{Core, member};
use crate::scripts;

pub(crate) struct RedisPresence {
    core: Arc<Core>,
}

impl RedisPresence {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

pub(crate) fn keys(core: &Core, key: &str) -> [String; 4] {
    let base = core.keys.presence(key);
    [format!("{base}:z"), format!("{base}:i"), format!("{base}:w"), format!("{base}:n")]
}

/// The join script, without the gate or the local copy (used by the rewrite too).
pub(crate) async fn write_join(core: &Core, key: &str, conn: &str, info: &[u8]) -> Result<(), BackendError> {
    let owner = core.owner();
    let mut call = scripts::PRESENCE_JOIN.prepare_invoke();
    call.key(&keys(core, key)[..]).arg(conn).arg(info).arg(&*owner);
    // Listed in the owner's set and written in one round trip (the set first on one Redis,
    // where both go down one connection in this order).
    let member = member('p', key, conn);
    let (listed, written) = tokio::join!(core.add_owned(&owner, &member), core.invoke::<i64>(&call));
    listed?;
    written?;
    Ok(())
}

impl Presence for RedisPresence {
    fn join(&self, key: &str, conn: &str, info: Bytes) -> BackendFuture<'_, ()> {
        let (key, conn) = (key.to_owned(), conn.to_owned());
        Box::pin(async move {
            let core = &*self.core;
            let _gate = core.write_gate().await;
            write_join(core, &key, &conn, &info).await?;
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
            call.key(&keys(core, &key)[..]).arg(&conn);
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
            let keys = keys(core, &key);
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

/// `[a, b, owner, a, b, owner…]` as triples (the owner as text; not UTF-8: empty, never dead).
pub(crate) fn triples(flat: Vec<Value>) -> Vec<(Vec<u8>, Vec<u8>, String)> {
    let mut it = flat.into_iter().map(bytes_of);
    let mut out = Vec::new();
    while let (Some(a), Some(b), Some(o)) = (it.next(), it.next(), it.next()) {
        out.push((a, b, String::from_utf8(o).unwrap_or_default()));
    }
    out
}

fn bytes_of(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

/// `[a, b, a, b…]` of bulk strings as pairs.
pub(crate) fn pairs(flat: Vec<Value>) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
    let mut it = flat.into_iter().map(bytes_of);
    std::iter::from_fn(move || Some((it.next()?, it.next()?)))
}

pub(crate) fn text(bytes: Vec<u8>) -> Result<String, BackendError> {
    String::from_utf8(bytes)
        .map_err(|_| BackendError::Unavailable("redis: a stored id is not UTF-8".to_owned()))
}
