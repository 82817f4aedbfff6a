//! The connection's observable state, and the counters of a client's life.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{CloseReason, ConnectionError};

/// Where the client's connection stands, observed through [`Client::state`] or the
/// `tokio::sync::watch` channel of [`Client::states`].
///
/// The life of a client: `Connecting` → `Ready` ⇄ `Reconnecting { .. }` → `Closed { .. }`.
/// `Closed` is final. The state carries the last error: the one being retried while
/// `Reconnecting`, the one that stopped the client in `Closed` ([`State::last_error`]).
///
/// [`Client::state`]: crate::Client::state
/// [`Client::states`]: crate::Client::states
///
/// ```
/// use switchboard_client::{CloseReason, ConnectionError, State};
/// assert!(State::Ready.is_ready());
/// let closed = State::Closed { reason: CloseReason::Failed(ConnectionError::Http { status: 404 }) };
/// assert!(closed.is_closed() && !closed.is_ready());
/// assert_eq!(closed.last_error(), Some(&ConnectionError::Http { status: 404 }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// The first connection attempt and its handshake are under way.
    Connecting,
    /// Identified: requests, events and subscriptions flow.
    Ready,
    /// The connection was lost (or an attempt failed) for a reason that retrying may fix; the
    /// client waits out its backoff delay and tries again. `attempt` counts the attempts since
    /// the last `Ready` (1 for the first).
    Reconnecting {
        /// The attempt about to be made, from 1.
        attempt: u32,
        /// Why the last connection ended, or the last attempt failed.
        last_error: ConnectionError,
    },
    /// The client stopped for good; `reason` says why.
    Closed {
        /// Why the client stopped.
        reason: CloseReason,
    },
}

impl State {
    /// Whether the state is [`State::Ready`].
    ///
    /// ```
    /// use switchboard_client::State;
    /// assert!(!State::Connecting.is_ready());
    /// ```
    #[must_use]
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }

    /// Whether the state is [`State::Closed`].
    ///
    /// ```
    /// use switchboard_client::{ConnectionError, State};
    /// let state = State::Reconnecting { attempt: 2, last_error: ConnectionError::Http { status: 503 } };
    /// assert!(!state.is_closed());
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed { .. })
    }

    /// The last error: the one being retried (`Reconnecting`) or the one that stopped the
    /// client (`Closed`); `None` while connecting for the first time, when ready, and after
    /// [`Client::close`](crate::Client::close).
    ///
    /// ```
    /// use switchboard_client::{ConnectionError, State};
    /// let state = State::Reconnecting { attempt: 1, last_error: ConnectionError::Http { status: 503 } };
    /// let text = state.last_error().unwrap().to_string();
    /// assert_eq!(text, "the server answered the WebSocket upgrade with HTTP 503");
    /// assert!(State::Ready.last_error().is_none());
    /// ```
    #[must_use]
    pub fn last_error(&self) -> Option<&ConnectionError> {
        match self {
            Self::Reconnecting { last_error, .. } => Some(last_error),
            Self::Closed { reason } => reason.error(),
            Self::Connecting | Self::Ready => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connecting => f.write_str("connecting"),
            Self::Ready => f.write_str("ready"),
            Self::Reconnecting { attempt, last_error } => {
                write!(f, "reconnecting (attempt {attempt}, after: {last_error})")
            }
            Self::Closed { reason } => write!(f, "closed: {reason}"),
        }
    }
}

/// Counters of a client's life ([`Client::stats`](crate::Client::stats)).
///
/// ```
/// let stats = switchboard_client::Stats::default();
/// assert_eq!(stats.connections, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Successful handshakes (1 + the reconnections).
    pub connections: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Deliveries dropped as duplicates: an acknowledged delivery resent with an id already
    /// seen, or a publication whose `seq` was already delivered.
    pub duplicates_dropped: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) duplicates_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            connections: self.connections.load(Ordering::Relaxed),
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            duplicates_dropped: self.duplicates_dropped.load(Ordering::Relaxed),
        }
    }
}
