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
/// `recover` returns publications in sequence order and says `complete: false` when the epoch
/// differs or when some publication after `since` is no longer kept.
pub trait History: Send + Sync + 'static {
    /// Records a publication and returns its position.
    fn append(&self, topic: &str, data: Bytes, options: HistoryOptions) -> BackendFuture<'_, Position>;
    /// The topic's current position (creating its stream if needed).
    fn position(&self, topic: &str) -> BackendFuture<'_, Position>;
    /// The publications after `since`.
    fn recover(&self, topic: &str, since: &Position) -> BackendFuture<'_, Recovery>;
}

/// In-memory history, sharded by topic. A stream that has neither been published to nor read
/// for [`MemoryHistory::IDLE`] is dropped (its epoch changes if it comes back), so that topics
/// used once do not accumulate forever.
pub struct MemoryHistory {
    shards: Box<[Mutex<HashMap<String, Stream>>]>,
    hasher: RandomState,
    operations: AtomicU64,
}

struct Stream {
    epoch: Arc<str>,
    seq: u64,
    items: VecDeque<(u64, Bytes, Option<Instant>)>,
    touched: Instant,
}

impl Stream {
    fn new() -> Self {
        let epoch: u64 = rand::random();
        Self {
            epoch: format!("{epoch:016x}").into(),
            seq: 0,
            items: VecDeque::new(),
            touched: Instant::now(),
        }
    }

    fn position(&self) -> Position {
        Position { epoch: self.epoch.clone(), seq: self.seq }
    }

    fn trim(&mut self, now: Instant) {
        while self.items.front().is_some_and(|(_, _, at)| expired(*at, now)) {
            self.items.pop_front();
        }
    }
}

impl Default for MemoryHistory {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryHistory {
    /// How long an untouched stream is kept.
    pub const IDLE: Duration = Duration::from_secs(600);
    const SHARDS: usize = 32;

    /// Empty history.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shards: (0..Self::SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            operations: AtomicU64::new(0),
        }
    }

    fn with_stream<T>(&self, topic: &str, f: impl FnOnce(&mut Stream) -> T) -> T {
        let n = self.operations.fetch_add(1, Ordering::Relaxed);
        let index = (self.hasher.hash_one(topic) as usize) % self.shards.len();
        let mut shard = self.shards[index].lock();
        if n.is_multiple_of(4096) {
            let now = Instant::now();
            shard.retain(|_, s| now.duration_since(s.touched) < Self::IDLE);
        }
        if !shard.contains_key(topic) {
            shard.insert(topic.to_owned(), Stream::new());
        }
        let stream = shard.get_mut(topic).expect("inserted above");
        stream.touched = Instant::now();
        f(stream)
    }

    /// How many topic streams are kept (for leak tests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no stream is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl History for MemoryHistory {
    fn append(&self, topic: &str, data: Bytes, options: HistoryOptions) -> BackendFuture<'_, Position> {
        let position = self.with_stream(topic, |s| {
            s.seq += 1;
            if options.size > 0 {
                s.items.push_back((s.seq, data, deadline(options.ttl)));
                while s.items.len() > options.size {
                    s.items.pop_front();
                }
            }
            s.position()
        });
        Box::pin(std::future::ready(Ok(position)))
    }

    fn position(&self, topic: &str) -> BackendFuture<'_, Position> {
        let position = self.with_stream(topic, |s| s.position());
        Box::pin(std::future::ready(Ok(position)))
    }

    fn recover(&self, topic: &str, since: &Position) -> BackendFuture<'_, Recovery> {
        let recovery = self.with_stream(topic, |s| {
            s.trim(Instant::now());
            let position = s.position();
            if s.epoch != since.epoch || since.seq > s.seq {
                return Recovery { position, publications: Vec::new(), complete: false };
            }
            let publications: Vec<_> = s
                .items
                .iter()
                .filter(|(seq, _, _)| *seq > since.seq)
                .map(|(seq, data, _)| StoredPublication { seq: *seq, data: data.clone() })
                .collect();
            let missing = s.seq - since.seq;
            let complete = publications.len() as u64 == missing;
            Recovery { position, publications, complete }
        });
        Box::pin(std::future::ready(Ok(recovery)))
    }
}
