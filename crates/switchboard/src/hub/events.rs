//! This node's lifecycle events as state ([`Events`]: which, the hook, the sink, counts), and
//! what the application implements and reads: [`EventSink`], [`Event`], [`Delivery`],
//! [`EventStats`]. What emits and delivers them is `lifecycle`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::hooks::{Lifecycle, LifecycleEvent, LifecycleHook};

/// A lifecycle event as a sink receives it: the event, numbered.
///
/// Serialized (as the standalone server's webhook sends it) as one JSON object:
/// `{"id": "…", "seq": 3, "key": "user:ada", "ts": 1767225600000, "node": "5f2a…", "type":
/// "connect", "conn": "…", "user": "ada", "ns": "main"}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Unique: the backend deduplicates by it (at least once means a retry may repeat an event).
    pub id: String,
    /// Its number in its key's sequence (from 1, one after the other as the log received them).
    pub seq: u64,
    /// What events are ordered by: `user:U`, `conn:C` (a connection without a user) or `topic:T`.
    pub key: String,
    /// When it happened: milliseconds since the Unix epoch, by the clock of the node that saw it.
    pub ts: u64,
    /// The node that saw it (for a dead node's connections: the survivor that cleaned up).
    pub node: String,
    /// What happened.
    #[serde(flatten)]
    pub event: LifecycleEvent,
}

/// Why a batch was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryError {
    /// A transient failure (the backend is down, slow, answered 5xx, 408 or 429): the batch is
    /// delivered again after a backoff, and the events behind it wait.
    Retry(String),
    /// The backend refused the batch for good (a 4xx): it is dropped, counted and logged.
    Reject(String),
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry(why) => write!(f, "not delivered, retried: {why}"),
            Self::Reject(why) => write!(f, "refused, dropped: {why}"),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// Where lifecycle events go: the application's backend (the standalone server's webhook), a
/// queue, a log. See [`Server::deliver_events`](crate::Server::deliver_events).
///
/// `deliver` is called with one batch at a time per partition of the event log, in order; it
/// answers `Ok` once the batch is safely delivered (it is then committed and never delivered
/// again, unless this node dies before the commit: at least once).
///
/// ```
/// use switchboard::{DeliveryError, Event, EventSink};
/// use futures_util::future::BoxFuture;
///
/// struct Print;
/// impl EventSink for Print {
///     fn deliver<'a>(&'a self, batch: &'a [Event]) -> BoxFuture<'a, Result<(), DeliveryError>> {
///         Box::pin(async move {
///             for e in batch {
///                 println!("{} #{} {:?}", e.key, e.seq, e.event);
///             }
///             Ok(())
///         })
///     }
/// }
/// ```
pub trait EventSink: Send + Sync + 'static {
    /// Delivers `batch` (events of one partition, oldest first).
    fn deliver<'a>(
        &'a self,
        batch: &'a [Event],
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;
}

/// How events are delivered to an [`EventSink`]: batches, retries, leases.
///
/// ```
/// use std::time::Duration;
/// use switchboard::Delivery;
/// let delivery = Delivery::new().max_batch(50).max_wait(Duration::from_millis(10));
/// ```
#[derive(Clone, Debug)]
pub struct Delivery {
    pub(crate) max_batch: usize,
    pub(crate) max_wait: Duration,
    pub(crate) poll: Duration,
    pub(crate) retry_min: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) lease: Duration,
    pub(crate) drain: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Self::new()
    }
}

impl Delivery {
    /// Batches of up to 100 events gathered for up to 20 ms; remote appends looked for every
    /// 100 ms; retries from 100 ms to 5 s; partition leases of 5 s; 5 s to deliver what is left
    /// at shutdown.
    #[must_use]
    pub fn new() -> Self {
        Self {
            max_batch: 100,
            max_wait: Duration::from_millis(20),
            poll: Duration::from_millis(100),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            lease: Duration::from_secs(5),
            drain: Duration::from_secs(5),
        }
    }

    /// Events per batch, at most (at least 1).
    #[must_use]
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// How long a batch waits for more events before it leaves (0: at once).
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// How often the log is read for events other nodes appended (this node's own appends
    /// wake its delivery at once).
    #[must_use]
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(1));
        self
    }

    /// The backoff between attempts at a batch: doubling from `min` to `max`, with jitter.
    #[must_use]
    pub fn retry(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min.max(Duration::from_millis(1));
        self.retry_max = max.max(self.retry_min);
        self
    }

    /// How long a partition stays with the node delivering it once that node stops renewing
    /// (dies): the delay before a survivor delivers its backlog.
    #[must_use]
    pub fn lease(mut self, ttl: Duration) -> Self {
        self.lease = ttl.max(Duration::from_millis(30));
        self
    }

    /// How long a shutdown waits for the events not yet delivered.
    #[must_use]
    pub fn drain(mut self, limit: Duration) -> Self {
        self.drain = limit;
        self
    }
}

/// Counts of the lifecycle events of this node ([`Hub::event_stats`](crate::Hub::event_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct EventStats {
    /// Events this node emitted.
    pub emitted: u64,
    /// Events appended to the log (for delivery).
    pub appended: u64,
    /// Appends that failed (the action was refused, or the append was retried).
    pub append_failures: u64,
    /// Events given up after the action had happened (the log stayed unavailable until this
    /// node stopped): logged at error.
    pub lost: u64,
    /// Events this node delivered to the sink.
    pub delivered: u64,
    /// Failed delivery attempts that were retried.
    pub retries: u64,
    /// Events the sink refused for good (dropped).
    pub rejected: u64,
}

#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) emitted: AtomicU64,
    pub(crate) appended: AtomicU64,
    pub(crate) append_failures: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

/// This node's lifecycle events: which, where to, and counts.
pub(crate) struct Events {
    pub(crate) filter: Lifecycle,
    pub(crate) hook: Option<LifecycleHook>,
    /// Where events are delivered; `None`: to the hook only (nothing is written to the log).
    pub(crate) sink: Option<(Arc<dyn EventSink>, Delivery)>,
    /// Woken when this node appended (its delivery reads at once).
    pub(crate) appended: Arc<tokio::sync::Notify>,
    /// Cancelled when the hub stops: delivery drains what is left…
    pub(crate) stop: CancellationToken,
    /// …until this is cancelled too: then it ends.
    pub(crate) gone: CancellationToken,
    /// When a warning about the log or the sink was last written (ms, the core's clock): one
    /// per 10 s.
    pub(crate) warned: AtomicU64,
    /// The partitions this node holds the lease of (a shutdown waits for those only).
    pub(crate) held: parking_lot::Mutex<std::collections::BTreeSet<usize>>,
    pub(crate) counts: Counts,
}

/// What [`Events`] is made of.
pub(crate) struct EventParts {
    pub(crate) filter: Lifecycle,
    pub(crate) hook: Option<LifecycleHook>,
    pub(crate) sink: Option<(Arc<dyn EventSink>, Delivery)>,
}

impl Events {
    pub(crate) fn new(parts: EventParts) -> Self {
        Self {
            filter: parts.filter,
            hook: parts.hook,
            sink: parts.sink,
            appended: Arc::new(tokio::sync::Notify::new()),
            stop: CancellationToken::new(),
            gone: CancellationToken::new(),
            warned: AtomicU64::new(0),
            held: parking_lot::Mutex::default(),
            counts: Counts::default(),
        }
    }

    /// Whether a warning may be logged now (one per 10 s: an outage is not a log flood).
    pub(crate) fn may_warn(&self, now_ms: u64) -> bool {
        let now = now_ms.max(1);
        let last = self.warned.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= 10_000)
            && self.warned.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// Whether events are written to the log for a sink.
    pub(crate) fn durable(&self) -> bool {
        self.sink.is_some()
    }

    pub(crate) fn stats(&self) -> EventStats {
        let c = &self.counts;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        EventStats {
            emitted: get(&c.emitted),
            appended: get(&c.appended),
            append_failures: get(&c.append_failures),
            lost: get(&c.lost),
            delivered: get(&c.delivered),
            retries: get(&c.retries),
            rejected: get(&c.rejected),
        }
    }
}
