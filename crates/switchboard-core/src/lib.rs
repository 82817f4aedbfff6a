//! # switchboard-core
//!
//! The backend contracts that let several Switchboard servers behave as one, and their in-memory
//! defaults. The framework (`switchboard`) talks to these traits only; `switchboard-redis`
//! implements them on Redis. None of them sees a socket, a handler or a protocol message: values
//! cross them as opaque [`bytes::Bytes`] that the framework encodes.
//!
//! | contract | what it does | in-memory default |
//! |---|---|---|
//! | [`Broker`] | carries topic publications and node-to-node messages between nodes; which nodes are alive | [`MemoryBroker`] (one process; nodes attached to the same bus see each other) |
//! | [`History`] | assigns sequence numbers and keeps recent publications per topic | [`MemoryHistory`] |
//! | [`Presence`] | who is in a topic, and the directory | [`MemoryPresence`] |
//! | [`Users`] | users → connections across nodes, with the per-user cap | [`MemoryUsers`] |
//! | [`EventLog`] | lifecycle events for the application's backend, durable until delivered, in order per key | [`MemoryEventLog`] (lost with the process) |
//! | [`RateLimiter`] | token buckets by key (per-user rate limits) across nodes | [`MemoryRateLimiter`] |
//!
//! [`conformance`] holds one shared test suite that every implementation must pass.
//!
//! ```
//! use switchboard_core::{Backends, History, HistoryOptions};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let backends = Backends::memory();
//! let topic = "chat/lobby";
//! let opts = HistoryOptions { size: 10, ttl: None };
//! let a = backends.history.append(topic, "hi".into(), opts, None).await.unwrap();
//! assert_eq!(a.position.seq, 1);
//! # });
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

mod broker;
pub mod conformance;
mod events;
mod few;
mod history;
mod limits;
mod presence;
mod users;

pub use broker::{Beat, Broker, BrokerSink, MemoryBroker};
pub use events::{EventLog, LoggedEvent, MemoryEventLog};
pub use history::{Appended, History, HistoryOptions, MemoryHistory, Position, Recovery, StoredPublication};
pub use limits::{Grant, MemoryRateLimiter, Rate, RateLimiter, TokenBucket};
pub use presence::{MemoryPresence, Presence, PresenceEntry};
pub use users::{CapPolicy, ConnRef, Evicted, MemoryUsers, Registration, Unregistered, Users};

/// The future every backend method returns.
pub type BackendFuture<'a, T> = BoxFuture<'a, Result<T, BackendError>>;

/// A node's id: unique per running server process.
pub type NodeId = Arc<str>;

/// A backend could not do what was asked (for example Redis is unreachable). The framework
/// reports it to whoever asked (a publisher gets an error reply), never drops it silently.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend is unreachable or failed.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The per-user connection cap refused a new connection (policy `refuse_new`).
    #[error("too many connections for this user")]
    Limit,
    /// A message addressed to one node found no such node in the cluster.
    #[error("no such node")]
    NoSuchNode,
    /// The request reached the backend (or may have) but its answer did not come back: it may
    /// or may not have been applied. A caller that must not apply something twice retries with
    /// the same idempotency key ([`History::append`]).
    #[error("backend outcome unknown: {0}")]
    Indeterminate(String),
}

/// The node a connection id belongs to: connection ids are `NODE.N` (the part before the last
/// `.`). Backends that must find a node's entries ([`Presence::evict_node`]) rely on it.
///
/// ```
/// assert_eq!(switchboard_core::node_of("3f9a0c1d.2a"), Some("3f9a0c1d"));
/// assert_eq!(switchboard_core::node_of("no-dot"), None);
/// ```
#[must_use]
pub fn node_of(conn: &str) -> Option<&str> {
    conn.rsplit_once('.').map(|(node, _)| node)
}

/// The backends a server runs on.
#[derive(Clone)]
pub struct Backends {
    /// Carries publications and node messages between nodes.
    pub broker: Arc<dyn Broker>,
    /// Sequence numbers and recent publications per topic.
    pub history: Arc<dyn History>,
    /// Topic presence and the directory.
    pub presence: Arc<dyn Presence>,
    /// Users → connections, cluster-wide.
    pub users: Arc<dyn Users>,
    /// Lifecycle events for the application's backend, durable until delivered.
    pub events: Arc<dyn EventLog>,
    /// Token buckets shared by the nodes (per-user rate limits).
    pub limiter: Arc<dyn RateLimiter>,
}

impl Backends {
    /// Everything in memory, for one process.
    #[must_use]
    pub fn memory() -> Self {
        Self {
            broker: Arc::new(MemoryBroker::new()),
            history: Arc::new(MemoryHistory::new()),
            presence: Arc::new(MemoryPresence::new()),
            users: Arc::new(MemoryUsers::new()),
            events: Arc::new(MemoryEventLog::new()),
            limiter: Arc::new(MemoryRateLimiter::new()),
        }
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Backends")
    }
}

/// Helper for implementations: an opaque value with an optional expiry.
pub(crate) fn expired(at: Option<std::time::Instant>, now: std::time::Instant) -> bool {
    at.is_some_and(|at| at <= now)
}

/// Helper for implementations: `now + ttl`.
pub(crate) fn deadline(ttl: Option<Duration>) -> Option<std::time::Instant> {
    ttl.map(|ttl| std::time::Instant::now() + ttl)
}

#[allow(dead_code)]
fn _assert_object_safe(
    _: &dyn Broker,
    _: &dyn History,
    _: &dyn Presence,
    _: &dyn Users,
    _: &dyn EventLog,
    _: &dyn RateLimiter,
    _: Bytes,
) {
}
