//! The event log: a durable, partitioned log of lifecycle events (who connected, subscribed,
//! left…) that the application's backend learns from, at least once, in order per key.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::{BackendError, BackendFuture, NodeId};

/// An event as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Unique in the log, increasing within its partition.
    pub id: String,
    /// The key it was appended under (a user, a topic, a connection).
    pub key: String,
    /// Its number in the key's sequence, from 1.
    pub seq: u64,
    /// What was appended.
    pub data: Bytes,
}

/// A durable, partitioned log of events.
///
/// **Guarantees**: `append` is durable when it returns (as durable as the backend: memory is lost
/// with the process, Redis with its persistence settings) and numbers the event in its key's
/// sequence (1, 2, …, one sequence per key, across nodes; a key's sequence may start again at 1
/// once all its events were committed and it stayed quiet, so a consumer orders a key's events
/// by `seq` within what it reads, and deduplicates by `id`). Every key maps to one of
/// [`partitions`](EventLog::partitions) partitions; within a partition, events are read in append
/// order, so events of one key are read in their sequence's order. A partition is consumed by one
/// holder of its lease at a time ([`lease`](EventLog::lease)): it reads what follows the
/// partition's committed position and [`commit`](EventLog::commit)s what it delivered; a holder
/// that dies stops renewing its lease and the next one resumes from the committed position —
/// events read but not committed are read again (at least once). Committed events may be dropped.
pub trait EventLog: Send + Sync + 'static {
    /// How many partitions the log has (fixed for its lifetime).
    fn partitions(&self) -> usize;
    /// Appends `event` under `key`; returns it as logged.
    fn append(&self, key: &str, event: Bytes) -> BackendFuture<'_, LoggedEvent>;
    /// Takes (or renews) the lease of `partition` for `holder` for `ttl`; `false` if another
    /// holder's lease runs.
    fn lease(&self, partition: usize, holder: &NodeId, ttl: Duration) -> BackendFuture<'_, bool>;
    /// Up to `max` events of `partition` after its committed position, oldest first (none:
    /// nothing new).
    fn read(&self, partition: usize, max: usize) -> BackendFuture<'_, Vec<LoggedEvent>>;
    /// Moves `partition`'s committed position to `through` (an id read from it): everything up
    /// to it was delivered.
    fn commit(&self, partition: usize, through: &str) -> BackendFuture<'_, ()>;
}

/// An in-memory event log: durable only as long as the process lives (documented as such: a
/// single server loses the events not yet delivered when it crashes).
pub struct MemoryEventLog {
    parts: Box<[Mutex<Partition>]>,
    /// Events kept not committed, at most (then `append` answers [`BackendError::Limit`]).
    capacity: usize,
    hasher: RandomState,
    /// Per key, the last sequence number given and how many of its events are not committed.
    seqs: Mutex<HashMap<Box<str>, KeySeq>>,
}

#[derive(Clone, Copy, Default)]
struct KeySeq {
    last: u64,
    pending: usize,
}

#[derive(Default)]
struct Partition {
    /// Events after the committed position, oldest first.
    events: VecDeque<LoggedEvent>,
    /// The next id's number.
    next: u64,
    /// Ids up to this one (excluded) were committed.
    committed: u64,
    lease: Option<(NodeId, Instant)>,
}

impl MemoryEventLog {
    /// Partitions of a new log.
    pub const PARTITIONS: usize = 8;
    /// Key sequences kept before those of quiet keys (all committed) are forgotten and start
    /// again (see the contract).
    const KEYS_KEPT: usize = 65_536;

    /// Events not delivered yet that a new log keeps, at most.
    pub const CAPACITY: usize = 1_000_000;

    /// An empty log of [`Self::PARTITIONS`] partitions that keeps up to [`Self::CAPACITY`]
    /// events not delivered yet.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(Self::CAPACITY)
    }

    /// An empty log that keeps up to `capacity` events not delivered yet: past it, `append`
    /// answers [`BackendError::Limit`] (the event is refused, not dropped later).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            parts: (0..Self::PARTITIONS).map(|_| Mutex::new(Partition::default())).collect(),
            hasher: RandomState::new(),
            seqs: Mutex::new(HashMap::new()),
        }
    }

    /// Events appended and not committed yet (for leak tests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.lock().events.len()).sum()
    }

    /// Whether every event was committed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MemoryEventLog {
    fn default() -> Self {
        Self::new()
    }
}

/// An id of partition `p`, number `n`: comparable as text within a partition (fixed width).
fn id_of(p: usize, n: u64) -> String {
    format!("{p}-{n:016x}")
}

fn number_of(id: &str) -> Option<u64> {
    u64::from_str_radix(id.rsplit_once('-')?.1, 16).ok()
}

impl EventLog for MemoryEventLog {
    fn partitions(&self) -> usize {
        self.parts.len()
    }

    fn append(&self, key: &str, event: Bytes) -> BackendFuture<'_, LoggedEvent> {
        let p = (self.hasher.hash_one(key) as usize) % self.parts.len();
        // The key's sequence is taken under the partition's lock: its events enter the
        // partition in their sequence's order.
        let mut part = self.parts[p].lock();
        if part.events.len() >= self.capacity.div_ceil(self.parts.len()) {
            return Box::pin(std::future::ready(Err(BackendError::Limit)));
        }
        let seq = {
            let mut seqs = self.seqs.lock();
            if seqs.len() >= Self::KEYS_KEPT && !seqs.contains_key(key) {
                seqs.retain(|_, k| k.pending > 0);
            }
            let seq = seqs.entry(Box::from(key)).or_default();
            seq.last += 1;
            seq.pending += 1;
            seq.last
        };
        let logged = LoggedEvent { id: id_of(p, part.next), key: key.to_owned(), seq, data: event };
        part.next += 1;
        part.events.push_back(logged.clone());
        Box::pin(std::future::ready(Ok(logged)))
    }

    fn lease(&self, partition: usize, holder: &NodeId, ttl: Duration) -> BackendFuture<'_, bool> {
        let now = Instant::now();
        let granted = match self.parts.get(partition) {
            None => false,
            Some(part) => {
                let mut part = part.lock();
                let free = part.lease.as_ref().is_none_or(|(h, until)| h == holder || *until <= now);
                if free {
                    part.lease = Some((holder.clone(), now + ttl));
                }
                free
            }
        };
        Box::pin(std::future::ready(Ok(granted)))
    }

    fn read(&self, partition: usize, max: usize) -> BackendFuture<'_, Vec<LoggedEvent>> {
        let events = self
            .parts
            .get(partition)
            .map(|part| part.lock().events.iter().take(max).cloned().collect())
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(events)))
    }

    fn commit(&self, partition: usize, through: &str) -> BackendFuture<'_, ()> {
        if let (Some(part), Some(n)) = (self.parts.get(partition), number_of(through)) {
            let mut part = part.lock();
            let mut seqs = self.seqs.lock();
            while part.events.front().is_some_and(|e| number_of(&e.id).is_some_and(|m| m <= n)) {
                let event = part.events.pop_front().expect("checked");
                if let Some(seq) = seqs.get_mut(event.key.as_str()) {
                    seq.pending = seq.pending.saturating_sub(1);
                }
            }
            drop(seqs);
            part.committed = part.committed.max(n + 1);
            if part.events.is_empty() {
                part.events = VecDeque::new();
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
