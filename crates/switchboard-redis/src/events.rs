//! [`EventLog`] on Redis: a fixed number of partitions ([`RedisOptions::event_partitions`]),
//! each a Redis Stream holding exactly the events not committed yet, with all of its keys under
//! one hash tag `{P:ev:N}` (so that every script touches one slot, on a Redis Cluster as on one
//! Redis):
//!
//! | key | what |
//! |---|---|
//! | `{P:ev:N}:s` | the stream: one entry per event not committed yet (fields `k` key, `q` its number in the key's sequence, `d` data), oldest first |
//! | `{P:ev:N}:q:KEY` | `KEY`'s counter (the last number given) |
//! | `{P:ev:N}:l` | who holds the partition's lease (expires after its ttl) |
//!
//! - **Partitions.** A key's partition is the FNV-1a (64-bit) hash of its UTF-8 bytes modulo
//!   the number of partitions: the same on every node, in every process. Changing
//!   [`RedisOptions::event_partitions`] on a running cluster reorders nothing already delivered,
//!   but moves keys to other partitions: events of one key could then be delivered out of
//!   order (the old partition's and the new one's are read independently) and its numbering
//!   starts again at 1. Only change it with the log drained (every node stopped gracefully, or
//!   the streams empty).
//! - **`append`** is one script: it refuses the event with [`BackendError::Limit`] when the
//!   partition already holds [`RedisOptions::event_log_max`] events not committed (nothing
//!   undelivered is ever trimmed), increments the key's counter and `XADD`s the event. The
//!   event's id is `N-<stream id>` (for example `3-1767225600123-0`): unique across partitions,
//!   and increasing within its partition when compared as numbers (`ms`, then `seq`); compare
//!   ids for equality only.
//! - **Numbering.** A key's counter has no expiry while the key has events not committed; when
//!   its last event (the one carrying the counter's value) is committed, the counter gets an
//!   expiry of [`RedisOptions::event_key_idle`] (24 h), which the key's next append takes off
//!   again. So a key's numbering starts again at 1 exactly when it had no append for
//!   `event_key_idle` after all its events were committed, and Redis keeps counters only for keys
//!   with events not committed or committed within that time.
//! - **`lease`** is one script: take the lease if nobody holds it, renew it if `holder` does
//!   (`SET … PX ttl`).
//! - **`read`** is `XRANGE - + COUNT max`: the stream holds exactly the events not committed, so
//!   its head is the partition's committed position.
//! - **`commit`** is one script: it trims the stream of every entry up to the given id
//!   (`XTRIM MINID`, exact) and gives the counters of the keys whose last event was trimmed
//!   their expiry (above).
//!
//! **Why no consumer group.** The lease already makes one node at a time the consumer of a
//! partition. A consumer group would add a second record of who read what (a pending list per
//! consumer) that must agree with the lease: successive holders would have to share one
//! consumer name and re-read its pending entries with `XREADGROUP … 0` before new ones with
//! `>`, which amounts to "read from the committed position" — what a stream trimmed at each
//! commit gives directly. Without a group, `read` is a pure read: the framework may read a
//! batch again (to let it grow, or to see whether anything is left at shutdown) without a write
//! on every poll (`XREADGROUP` writes the pending list, which is replicated and logged to the
//! AOF), and there is no group to lose and create again after a Redis restart or flush
//! (`NOGROUP`). What a holder read and did not commit is still in the stream, so the next
//! holder reads it again; what was committed is gone, so nobody reads it again. A holder that
//! lost its lease and commits late commits only what it delivered.
//!
//! **Durability** is Redis's. Without persistence, a Redis restart empties the log (the events
//! not delivered yet are lost, and numbering starts again at 1). With `appendonly yes` the log
//! survives a restart (with `appendfsync everysec`, the default, the appends of the last second
//! before a crash of Redis itself may be lost; `appendfsync always` loses none). Replication is
//! asynchronous: a failover may lose the last appends. Redis must not evict these keys
//! (`maxmemory-policy noeviction`, or a `volatile-*` policy: the streams have no expiry).
//! Requires Redis ≥ 6.2 (`XTRIM MINID`).
//!
//! **Failures** follow the crate's rule: `append`, `lease` and `commit` are `Unavailable` when
//! the command could not have run, `Indeterminate` when it may have; `read` is `Unavailable`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::Value;
use switchboard_core::{BackendError, BackendFuture, EventLog, LoggedEvent, NodeId};

use crate::core::{Core, read_failure};
use crate::scripts;

pub(crate) struct RedisEventLog {
    core: Arc<Core>,
    partitions: usize,
}

/// The partition of `key` among `partitions`: FNV-1a (64-bit) of its bytes, the same in every
/// process.
pub(crate) fn partition_of(key: &str, partitions: usize) -> usize {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = key.bytes().fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    // The remainder is below `partitions`, a usize.
    (hash % partitions.max(1) as u64) as usize
}

/// A stream id `ms-seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StreamId {
    ms: u64,
    seq: u64,
}

impl StreamId {
    fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-')?;
        Some(Self { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }

    /// The smallest id after this one.
    fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self { ms: self.ms.saturating_add(1), seq: 0 },
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An event's id: its partition and its stream id.
fn event_id(partition: usize, stream_id: &str) -> String {
    format!("{partition}-{stream_id}")
}

/// The partition and stream id of an event id (`None`: not one of ours).
fn parse_event_id(id: &str) -> Option<(usize, StreamId)> {
    let (partition, stream_id) = id.split_once('-')?;
    Some((partition.parse().ok()?, StreamId::parse(stream_id)?))
}

fn bad(what: &str) -> BackendError {
    BackendError::Unavailable(format!("redis: unexpected answer from the event log ({what})"))
}

fn bytes_of(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// One `XRANGE` entry as a logged event. Fields missing or not UTF-8 are left empty (the
/// framework skips what it cannot read, and commits past it).
fn logged(partition: usize, entry: Value) -> Result<LoggedEvent, BackendError> {
    let Value::Array(mut parts) = entry else { return Err(bad("stream entry")) };
    if parts.len() != 2 {
        return Err(bad("stream entry"));
    }
    let fields = parts.pop().unwrap_or(Value::Nil);
    let id =
        parts.pop().and_then(bytes_of).and_then(|b| String::from_utf8(b).ok()).ok_or_else(|| bad("id"))?;
    let pairs: Vec<(Value, Value)> = match fields {
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
        Value::Map(map) => map,
        _ => return Err(bad("stream entry fields")),
    };
    let mut event =
        LoggedEvent { id: event_id(partition, &id), key: String::new(), seq: 0, data: Bytes::new() };
    for (name, value) in pairs {
        let (Some(name), Some(value)) = (bytes_of(name), bytes_of(value)) else { continue };
        match &name[..] {
            b"k" => event.key = String::from_utf8(value).unwrap_or_default(),
            b"q" => event.seq = std::str::from_utf8(&value).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
            b"d" => event.data = Bytes::from(value),
            _ => {}
        }
    }
    Ok(event)
}

impl RedisEventLog {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        let partitions = core.options.event_partitions.max(1);
        Self { core, partitions }
    }

    fn stream(&self, partition: usize) -> String {
        format!("{}:s", self.core.keys.events(partition))
    }

    fn lease_key(&self, partition: usize) -> String {
        format!("{}:l", self.core.keys.events(partition))
    }

    /// The prefix of a partition's counters (`{P:ev:N}:q:`).
    fn counters(&self, partition: usize) -> String {
        format!("{}:q:", self.core.keys.events(partition))
    }
}

impl EventLog for RedisEventLog {
    fn partitions(&self) -> usize {
        self.partitions
    }

    fn append(&self, key: &str, event: Bytes) -> BackendFuture<'_, LoggedEvent> {
        let partition = partition_of(key, self.partitions);
        let key = key.to_owned();
        Box::pin(async move {
            let keys = [self.stream(partition), format!("{}{key}", self.counters(partition))];
            let mut call = scripts::EVENTS_APPEND.prepare_invoke();
            call.key(&keys[..]).arg(&key).arg(&event[..]).arg(self.core.options.event_log_max);
            let reply: Value = self.core.invoke(&call).await?;
            let Value::Array(reply) = reply else {
                return match reply {
                    Value::Nil => Err(BackendError::Limit),
                    _ => Err(bad("append")),
                };
            };
            let mut it = reply.into_iter();
            let id = it.next().and_then(bytes_of).and_then(|b| String::from_utf8(b).ok());
            let seq = match it.next() {
                Some(Value::Int(i)) => u64::try_from(i).ok(),
                _ => None,
            };
            let (Some(id), Some(seq)) = (id, seq) else { return Err(bad("append")) };
            Ok(LoggedEvent { id: event_id(partition, &id), key, seq, data: event })
        })
    }

    fn lease(&self, partition: usize, holder: &NodeId, ttl: Duration) -> BackendFuture<'_, bool> {
        let holder = holder.clone();
        Box::pin(async move {
            if partition >= self.partitions {
                return Ok(false);
            }
            let mut call = scripts::EVENTS_LEASE.prepare_invoke();
            call.key(self.lease_key(partition)).arg(&*holder).arg(millis(ttl));
            let granted: i64 = self.core.invoke(&call).await?;
            Ok(granted == 1)
        })
    }

    fn read(&self, partition: usize, max: usize) -> BackendFuture<'_, Vec<LoggedEvent>> {
        Box::pin(async move {
            if partition >= self.partitions || max == 0 {
                return Ok(Vec::new());
            }
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(self.stream(partition)).arg("-").arg("+").arg("COUNT").arg(max);
            let entries: Value = self.core.query(&cmd).await.map_err(read_failure)?;
            let entries = match entries {
                Value::Array(entries) => entries,
                Value::Nil => Vec::new(),
                _ => return Err(bad("read")),
            };
            entries.into_iter().map(|e| logged(partition, e)).collect()
        })
    }

    fn commit(&self, partition: usize, through: &str) -> BackendFuture<'_, ()> {
        let through = parse_event_id(through);
        Box::pin(async move {
            // An id that is not of this partition names nothing here (as in the memory log).
            let Some((_, through)) = through.filter(|(p, _)| *p == partition && partition < self.partitions)
            else {
                return Ok(());
            };
            let mut call = scripts::EVENTS_COMMIT.prepare_invoke();
            call.key(self.stream(partition))
                .arg(through.to_string())
                .arg(through.next().to_string())
                .arg(self.counters(partition))
                .arg(millis(self.core.options.event_key_idle));
            let _trimmed: i64 = self.core.invoke(&call).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        // The same everywhere: fixed values of FNV-1a 64.
        assert_eq!(partition_of("", 16), (0xcbf2_9ce4_8422_2325_u64 % 16) as usize);
        assert_eq!(partition_of("a", 1 << 20), (0xaf63_dc4c_8601_ec8c_u64 % (1 << 20)) as usize);
        assert_eq!(partition_of("user:ada", 1), 0);
        assert_eq!(partition_of("user:ada", 0), 0, "no partitions is one");
        let mut seen = [0usize; 16];
        for i in 0..1600 {
            seen[partition_of(&format!("user:{i}"), 16)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }

    #[test]
    fn ids() {
        assert_eq!(event_id(3, "1767225600123-0"), "3-1767225600123-0");
        let (p, id) = parse_event_id("3-1767225600123-7").unwrap();
        assert_eq!((p, id), (3, StreamId { ms: 1_767_225_600_123, seq: 7 }));
        assert_eq!(id.next().to_string(), "1767225600123-8");
        assert_eq!(StreamId { ms: 5, seq: u64::MAX }.next(), StreamId { ms: 6, seq: 0 });
        for bad in ["", "3", "3-", "3-12", "x-1-2", "3-1-x", "-1-2", "3-0000019b7a2c1f7b"] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn entries() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = Value::Array(vec![
            bulk("5-1"),
            Value::Array(vec![bulk("k"), bulk("user:ada"), bulk("q"), bulk("7"), bulk("d"), bulk("{}")]),
        ]);
        let e = logged(2, entry).unwrap();
        assert_eq!(
            e,
            LoggedEvent { id: "2-5-1".into(), key: "user:ada".into(), seq: 7, data: Bytes::from("{}") }
        );
        // Fields missing: read as empty (skipped by the framework, then committed past).
        let e = logged(2, Value::Array(vec![bulk("5-2"), Value::Array(vec![])])).unwrap();
        assert_eq!((e.id.as_str(), e.key.as_str(), e.seq, e.data.len()), ("2-5-2", "", 0, 0));
        assert!(logged(2, bulk("x")).is_err());
    }
}
