//! History: sequence numbers and recent publications per topic.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::{BackendFuture, deadline, expired};

/// How much history a topic keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryOptions {
    /// How many publications to keep (0: none, only sequence numbers).
    pub size: usize,
    /// How long to keep each publication (`None`: until pushed out by `size`).
    pub ttl: Option<Duration>,
}

/// A position in a topic's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// Changes whenever the topic's history is lost (restart, eviction).
    pub epoch: Arc<str>,
    /// The sequence number of the last publication (0 before the first).
    pub seq: u64,
}

/// One kept publication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPublication {
    /// Its sequence number.
    pub seq: u64,
    /// The framework's encoding of it.
    pub data: Bytes,
}

/// What [`History::append`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The publication's position: the new one, or, for a duplicate, the first one's.
    pub position: Position,
    /// The key was already seen within the kept history: nothing was appended.
    pub duplicate: bool,
}

/// The answer to a recovery request.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The topic's current position.
    pub position: Position,
    /// The publications after the requested position, in order.
    pub publications: Vec<StoredPublication>,
    /// Whether `publications` fills the whole gap (same epoch, nothing pushed out).
    pub complete: bool,
}

/// Assigns sequence numbers and keeps recent publications per topic.
///
/// **Guarantees**: within an epoch, `append` returns consecutive sequence numbers starting at 1;
/// an `append` with a `key` that a publication still kept in the topic's history was appended
/// with appends nothing and returns that publication's position (`duplicate: true`), checked and
/// applied atomically (two nodes appending the same key at once append it once); `recover`
/// returns publications in sequence order and says `complete: false` when the epoch differs or
/// when some publication after `since` is no longer kept.
pub trait History: Send + Sync + 'static {
    /// Records a publication and returns its position; with `key`, only if no publication kept
    /// in the topic's history has that key (a topic that keeps no history keeps no keys).
    fn append(
        &self,
        topic: &str,
        data: Bytes,
        options: HistoryOptions,
        key: Option<&str>,
    ) -> BackendFuture<'_, Appended>;
    /// The topic's current position (creating its stream if needed).
    fn position(&self, topic: &str) -> BackendFuture<'_, Position>;
    /// The publications after `since`.
    fn recover(&self, topic: &str, since: &Position) -> BackendFuture<'_, Recovery>;
}

/// In-memory history, sharded by topic. A stream that has neither been published to nor read
/// for [`MemoryHistory::IDLE`] is dropped (its epoch changes if it comes back), so that topics
/// used once do not accumulate forever.
///
/// A topic nobody has published to has no stream at all: its position is `(epoch, 0)` with an
/// epoch derived from the topic's name and a generation counter, and its first publication
/// creates the stream with that same epoch. Subscribing to a topic therefore costs nothing here
/// until it is used. Dropping a stream bumps the generation of the topic's slot (one of
/// [`MemoryHistory::SLOTS`] per shard, chosen by the name's hash), so that a topic whose stream
/// was dropped never reads an epoch it had before.
pub struct MemoryHistory {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    operations: AtomicU64,
}

#[derive(Default)]
struct Shard {
    streams: HashMap<Box<str>, Stream>,
    /// Bumped when a stream of the slot is dropped (see [`MemoryHistory`]).
    generations: Vec<u64>,
}

struct Stream {
    epoch: Arc<str>,
    seq: u64,
    items: VecDeque<Item>,
    touched: Instant,
}

/// A kept publication.
struct Item {
    seq: u64,
    data: Bytes,
    expires: Option<Instant>,
    /// Its idempotency key, if it had one.
    key: Option<Box<str>>,
}

impl Stream {
    fn position(&self) -> Position {
        Position { epoch: self.epoch.clone(), seq: self.seq }
    }

    fn trim(&mut self, now: Instant) {
        while self.items.front().is_some_and(|item| expired(item.expires, now)) {
            self.items.pop_front();
        }
    }
}

impl Default for MemoryHistory {
    fn default() -> Self {
        Self::new()
    }
}

/// A topic's shard, with what is needed of it.
struct Located<'a> {
    shard: parking_lot::MutexGuard<'a, Shard>,
    /// The topic's slot in the shard's generations.
    slot: usize,
    /// The topic's hash (for its epoch).
    hash: u64,
}

impl MemoryHistory {
    /// How long an untouched stream is kept.
    pub const IDLE: Duration = Duration::from_secs(600);
    const SHARDS: usize = 32;
    /// Generation counters per shard (see [`MemoryHistory`]).
    pub const SLOTS: usize = 128;

    /// Empty history.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shards: (0..Self::SHARDS)
                .map(|_| Mutex::new(Shard { streams: HashMap::new(), generations: vec![0; Self::SLOTS] }))
                .collect(),
            hasher: RandomState::new(),
            operations: AtomicU64::new(0),
        }
    }

    /// Locks the topic's shard, first dropping the shard's idle streams now and then.
    fn locate(&self, topic: &str) -> Located<'_> {
        let n = self.operations.fetch_add(1, Ordering::Relaxed);
        let hash = self.hasher.hash_one(topic);
        let mut shard = self.shards[(hash as usize) % self.shards.len()].lock();
        if n.is_multiple_of(4096) {
            self.sweep(&mut shard, Instant::now());
        }
        Located { shard, slot: self.slot(hash), hash }
    }

    /// Drops the shard's streams untouched for [`Self::IDLE`], bumping their slots' generations.
    fn sweep(&self, shard: &mut Shard, now: Instant) {
        let mut dropped = Vec::new();
        shard.streams.retain(|t, s| {
            let keep = now.duration_since(s.touched) < Self::IDLE;
            if !keep {
                dropped.push(self.slot(self.hasher.hash_one(&**t)));
            }
            keep
        });
        for slot in dropped {
            shard.generations[slot] += 1;
        }
    }

    fn slot(&self, hash: u64) -> usize {
        ((hash >> 32) as usize) % Self::SLOTS
    }

    /// The epoch a topic without a stream has now.
    fn epoch(&self, at: &Located<'_>) -> Arc<str> {
        let epoch = self.hasher.hash_one((at.hash, at.shard.generations[at.slot]));
        format!("{epoch:016x}").into()
    }

    /// The topic's stream, created if needed.
    fn with_stream<T>(&self, topic: &str, f: impl FnOnce(&mut Stream) -> T) -> T {
        let mut at = self.locate(topic);
        if !at.shard.streams.contains_key(topic) {
            let stream =
                Stream { epoch: self.epoch(&at), seq: 0, items: VecDeque::new(), touched: Instant::now() };
            at.shard.streams.insert(topic.into(), stream);
        }
        let stream = at.shard.streams.get_mut(topic).expect("inserted above");
        stream.touched = Instant::now();
        f(stream)
    }

    /// The topic's stream if it has one, else its position (epoch, 0).
    fn with_existing<T>(&self, topic: &str, f: impl FnOnce(&mut Stream) -> T) -> Result<T, Position> {
        let mut at = self.locate(topic);
        match at.shard.streams.get_mut(topic) {
            Some(stream) => {
                stream.touched = Instant::now();
                Ok(f(stream))
            }
            None => Err(Position { epoch: self.epoch(&at), seq: 0 }),
        }
    }

    /// How many topic streams are kept (for leak tests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().streams.len()).sum()
    }

    /// Whether no stream is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl History for MemoryHistory {
    fn append(
        &self,
        topic: &str,
        data: Bytes,
        options: HistoryOptions,
        key: Option<&str>,
    ) -> BackendFuture<'_, Appended> {
        let appended = self.with_stream(topic, |s| {
            if let Some(key) = key {
                s.trim(Instant::now());
                // Linear: keyed publications only, and at most `size` kept.
                if let Some(first) = s.items.iter().find(|i| i.key.as_deref() == Some(key)) {
                    let position = Position { epoch: s.epoch.clone(), seq: first.seq };
                    return Appended { position, duplicate: true };
                }
            }
            s.seq += 1;
            if options.size > 0 {
                let expires = deadline(options.ttl);
                s.items.push_back(Item { seq: s.seq, data, expires, key: key.map(Box::from) });
                while s.items.len() > options.size {
                    s.items.pop_front();
                }
            }
            Appended { position: s.position(), duplicate: false }
        });
        Box::pin(std::future::ready(Ok(appended)))
    }

    fn position(&self, topic: &str) -> BackendFuture<'_, Position> {
        let position = self.with_existing(topic, |s| s.position()).unwrap_or_else(|p| p);
        Box::pin(std::future::ready(Ok(position)))
    }

    fn recover(&self, topic: &str, since: &Position) -> BackendFuture<'_, Recovery> {
        let recovery = self.with_existing(topic, |s| {
            s.trim(Instant::now());
            let position = s.position();
            if s.epoch != since.epoch || since.seq > s.seq {
                return Recovery { position, publications: Vec::new(), complete: false };
            }
            let publications: Vec<_> = s
                .items
                .iter()
                .filter(|item| item.seq > since.seq)
                .map(|item| StoredPublication { seq: item.seq, data: item.data.clone() })
                .collect();
            let missing = s.seq - since.seq;
            let complete = publications.len() as u64 == missing;
            Recovery { position, publications, complete }
        });
        let recovery = recovery.unwrap_or_else(|position| {
            // Nothing published (in this generation): nothing to miss, if it is the same epoch.
            let complete = since.epoch == position.epoch && since.seq == 0;
            Recovery { position, publications: Vec::new(), complete }
        });
        Box::pin(std::future::ready(Ok(recovery)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn position(h: &MemoryHistory, topic: &str) -> Position {
        h.position(topic).await.unwrap()
    }

    #[tokio::test]
    async fn a_topic_without_publications_has_no_stream_and_a_stable_epoch() {
        let h = MemoryHistory::new();
        let p = position(&h, "t").await;
        assert_eq!(p.seq, 0);
        assert!(h.is_empty(), "reading a position creates nothing");
        assert_eq!(position(&h, "t").await, p, "the same epoch every time");
        assert_ne!(position(&h, "u").await.epoch, p.epoch, "another topic, another epoch");
        let r = h.recover("t", &p).await.unwrap();
        assert!(r.complete && r.publications.is_empty(), "nothing published: nothing missed");
        let r = h.recover("t", &Position { epoch: "other".into(), seq: 0 }).await.unwrap();
        assert!(!r.complete, "an unknown epoch is not recoverable");
        assert!(h.is_empty());
        let first = h
            .append("t", Bytes::from("x"), HistoryOptions { size: 1, ttl: None }, None)
            .await
            .unwrap()
            .position;
        assert_eq!(
            first,
            Position { epoch: p.epoch.clone(), seq: 1 },
            "the first publication keeps the epoch"
        );
        assert_eq!(h.len(), 1);
        let r = h.recover("t", &p).await.unwrap();
        assert!(r.complete);
        assert_eq!(r.publications.len(), 1);
    }

    #[tokio::test]
    async fn a_dropped_stream_never_comes_back_with_its_epoch() {
        let h = MemoryHistory::new();
        let before = h.append("t", Bytes::from("x"), HistoryOptions::default(), None).await.unwrap().position;
        for shard in &h.shards {
            h.sweep(&mut shard.lock(), Instant::now() + MemoryHistory::IDLE);
        }
        assert!(h.is_empty(), "the idle stream was dropped");
        let after = position(&h, "t").await;
        assert_eq!(after.seq, 0);
        assert_ne!(after.epoch, before.epoch, "a new epoch after the drop");
        let r = h.recover("t", &Position { epoch: before.epoch.clone(), seq: 0 }).await.unwrap();
        assert!(!r.complete, "what was published before the drop is lost, and said so");
        let again = h.append("t", Bytes::from("y"), HistoryOptions::default(), None).await.unwrap().position;
        assert_eq!(again, Position { epoch: after.epoch, seq: 1 });
    }
}
