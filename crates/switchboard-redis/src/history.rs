//! [`History`] on Redis: per topic a hash `:m` (`e` epoch, `s` last sequence number), a stream
//! `:s` whose entry ids are `SEQ-1` (fields `d` data, `x` expiry in ms since the epoch, 0: none,
//! `k` idempotency key if any), and a hash `:k` of idempotency keys (key → seq).
//! Every operation is one script, so sequence numbers are consecutive across nodes, and a lost
//! hash (Redis restarted, flushed, or the topic was idle too long) starts a new epoch. An
//! `append` whose answer was lost is `Indeterminate` (see the crate's "Failures"): retried with
//! its idempotency key, it is applied once.

use std::sync::Arc;

use bytes::Bytes;
use redis::Value;
use switchboard_core::{
    Appended, BackendError, BackendFuture, History, HistoryOptions, Position, Recovery, StoredPublication,
};

use crate::core::{Core, read_failure};
use crate::scripts;

pub(crate) struct RedisHistory {
    core: Arc<Core>,
}

impl RedisHistory {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// `:m` epoch and last seq, `:s` the kept publications, `:k` idempotency keys.
    fn keys(&self, topic: &str) -> [String; 3] {
        let base = self.core.keys.history(topic);
        [format!("{base}:m"), format!("{base}:s"), format!("{base}:k")]
    }

    fn idle_ms(&self) -> u64 {
        u64::try_from(self.core.options.stream_idle.as_millis()).unwrap_or(u64::MAX).max(1)
    }
}

fn candidate() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn bad(what: &str) -> BackendError {
    BackendError::Unavailable(format!("redis: unexpected answer from the history script ({what})"))
}

fn as_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn as_u64(v: Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(i).ok(),
        other => std::str::from_utf8(&as_bytes(other)?).ok()?.parse().ok(),
    }
}

/// `{epoch, seq, …}` → the position and the rest.
fn position(reply: Vec<Value>) -> Result<(Position, std::vec::IntoIter<Value>), BackendError> {
    let mut it = reply.into_iter();
    let epoch = it.next().and_then(as_bytes).ok_or_else(|| bad("epoch"))?;
    let epoch = String::from_utf8(epoch).map_err(|_| bad("epoch"))?;
    let seq = it.next().and_then(as_u64).ok_or_else(|| bad("seq"))?;
    Ok((Position { epoch: epoch.into(), seq }, it))
}

impl History for RedisHistory {
    fn append(
        &self,
        topic: &str,
        data: Bytes,
        options: HistoryOptions,
        key: Option<&str>,
    ) -> BackendFuture<'_, Appended> {
        let keys = self.keys(topic);
        let key = key.unwrap_or_default().to_owned();
        Box::pin(async move {
            let ttl = options.ttl.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1));
            let mut call = scripts::HISTORY_APPEND.prepare_invoke();
            call.key(&keys[..])
                .arg(&data[..])
                .arg(options.size)
                .arg(ttl)
                .arg(self.idle_ms())
                .arg(candidate())
                .arg(&key);
            let mut c = self.core.conn.clone();
            let reply: Vec<Value> = self.core.run(call.invoke_async(&mut c)).await?;
            let (position, mut rest) = position(reply)?;
            let duplicate = rest.next().and_then(as_u64).ok_or_else(|| bad("duplicate"))? == 1;
            Ok(Appended { position, duplicate })
        })
    }

    fn position(&self, topic: &str) -> BackendFuture<'_, Position> {
        let [m, s, _] = self.keys(topic);
        let keys = [m, s];
        Box::pin(async move {
            let mut call = scripts::HISTORY_POSITION.prepare_invoke();
            call.key(&keys[..]).arg(self.idle_ms()).arg(candidate());
            let mut c = self.core.conn.clone();
            let reply: Vec<Value> = self.core.run(call.invoke_async(&mut c)).await.map_err(read_failure)?;
            Ok(position(reply)?.0)
        })
    }

    fn recover(&self, topic: &str, since: &Position) -> BackendFuture<'_, Recovery> {
        let [m, s, _] = self.keys(topic);
        let keys = [m, s];
        let since = since.clone();
        Box::pin(async move {
            let mut call = scripts::HISTORY_RECOVER.prepare_invoke();
            call.key(&keys[..]).arg(&*since.epoch).arg(since.seq).arg(self.idle_ms()).arg(candidate());
            let mut c = self.core.conn.clone();
            let reply: Vec<Value> = self.core.run(call.invoke_async(&mut c)).await.map_err(read_failure)?;
            let (position, mut rest) = position(reply)?;
            let complete = rest.next().and_then(as_u64).ok_or_else(|| bad("complete"))? == 1;
            let mut publications = Vec::with_capacity(rest.len() / 2);
            while let Some(seq) = rest.next() {
                let seq = as_u64(seq).ok_or_else(|| bad("stored seq"))?;
                let data = rest.next().and_then(as_bytes).ok_or_else(|| bad("stored data"))?;
                publications.push(StoredPublication { seq, data: Bytes::from(data) });
            }
            Ok(Recovery { position, publications, complete })
        })
    }
}
