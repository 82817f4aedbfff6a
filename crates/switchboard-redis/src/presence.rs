//! [`Presence`] on Redis: per key a sorted set `:z` (conn → join number), a hash `:i`
//! (conn → info), a hash `:w` (conn → owner) and a counter `:n`.

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

fn keys(core: &Core, key: &str) -> [String; 4] {
    let base = core.keys.presence(key);
    [format!("{base}:z"), format!("{base}:i"), format!("{base}:w"), format!("{base}:n")]
}

/// The join script, without the gate or the local copy (used by the rewrite too).
pub(crate) async fn write_join(core: &Core, key: &str, conn: &str, info: &[u8]) -> Result<(), BackendError> {
    let mut call = scripts::PRESENCE_JOIN.prepare_invoke();
    call.key(&keys(core, key)[..])
        .key(format!("{}{}", core.keys.owned_prefix(), core.owner))
        .arg(conn)
        .arg(info)
        .arg(&core.owner)
        .arg(member('p', key, conn))
        .arg(core.keys.owned_prefix());
    let mut c = core.conn.clone();
    let _: i64 = core.run(call.invoke_async(&mut c)).await?;
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
            call.key(&keys(core, &key)[..])
                .arg(&conn)
                .arg(member('p', &key, &conn))
                .arg(core.keys.owned_prefix());
            let mut c = core.conn.clone();
            let _: i64 = core.run(call.invoke_async(&mut c)).await?;
            Ok(())
        })
    }

    fn list(&self, key: &str) -> BackendFuture<'_, Vec<PresenceEntry>> {
        let key = key.to_owned();
        Box::pin(async move {
            let core = &*self.core;
            let mut call = scripts::PRESENCE_LIST.prepare_invoke();
            call.key(&keys(core, &key)[..])
                .arg(core.keys.alive_prefix())
                .arg(core.keys.owned_prefix())
                .arg(member('p', &key, ""))
                .arg(&core.owner);
            let mut c = core.conn.clone();
            let flat: Vec<Value> = core.run(call.invoke_async(&mut c)).await?;
            pairs(flat)
                .map(|(conn, info)| Ok(PresenceEntry { conn: text(conn)?, info: Bytes::from(info) }))
                .collect()
        })
    }
}

/// `[a, b, a, b…]` of bulk strings as pairs.
pub(crate) fn pairs(flat: Vec<Value>) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
    let mut it = flat.into_iter().map(|v| match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        _ => Vec::new(),
    });
    std::iter::from_fn(move || Some((it.next()?, it.next()?)))
}

pub(crate) fn text(bytes: Vec<u8>) -> Result<String, BackendError> {
    String::from_utf8(bytes)
        .map_err(|_| BackendError::Unavailable("redis: a stored id is not UTF-8".to_owned()))
}
