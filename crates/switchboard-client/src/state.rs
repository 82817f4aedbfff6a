//! The connection's observable state.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the client's connection stands, observed through [`Client::state`] or the
/// `tokio::sync::watch` channel of [`Client::states`].
///
/// The life of a client: `Connecting` → `Ready` ⇄ `Reconnecting { .. }` → `Closed { .. }`.
/// `Closed` is final.
///
/// [`Client::state`]: crate::Client::state
/// [`Client::states`]: crate::Client::states
///
/// ```
/// use switchboard_client::{CloseReason, State};
/// assert!(State::Ready.is_ready());
/// let closed = State::Closed { reason: CloseReason::Requested };
/// assert!(closed.is_closed() && !closed.is_ready());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// The first connection attempt and its handshake are under way.
    Connecting,
    /// Identified: requests, events and subscriptions flow.
    Ready,
    /// The connection was lost (or an attempt failed); the client waits out its backoff delay
    /// and tries again. `attempt` counts the attempts since the last `Ready` (1 for the first).
    Reconnecting {
        /// The attempt about to be made, from 1.
        attempt: u32,
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
    /// use switchboard_client::State;
    /// assert!(!State::Reconnecting { attempt: 2 }.is_closed());
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed { .. })
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connecting => f.write_str("connecting"),
            Self::Ready => f.write_str("ready"),
            Self::Reconnecting { attempt } => write!(f, "reconnecting (attempt {attempt})"),
            Self::Closed { reason } => write!(f, "closed: {reason}"),
        }
    }
}

/// Why a client stopped (the reason of [`State::Closed`]).
///
/// ```
/// use switchboard_client::CloseReason;
/// let r = CloseReason::Server { code: 4503, reason: "kicked".into() };
/// assert_eq!(r.to_string(), "the server closed the connection with 4503 (kicked)");
/// assert_eq!(r.close_code(), Some(4503));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The application called [`Client::close`](crate::Client::close), or dropped every handle.
    Requested,
    /// The server closed with a code that asks clients not to reconnect (4500–4999, 1000,
    /// 1009…).
    Server {
        /// The WebSocket close code (from `~bye` when the server sent one).
        code: u16,
        /// The close reason, for people.
        reason: String,
    },
    /// The server refused the `~hello`: `NOT_AUTHORIZED`, `NOT_FOUND` (unknown namespace),
    /// `LIMIT`…
    Refused {
        /// The `~err` code.
        code: String,
        /// The `~err` message.
        message: String,
    },
    /// The reconnection policy's `max_attempts` consecutive attempts failed.
    GaveUp {
        /// How many attempts were made since the last `Ready`.
        attempts: u32,
        /// What went wrong with the last one.
        last_error: String,
    },
}

impl CloseReason {
    /// The WebSocket close code, when the server closed.
    ///
    /// ```
    /// use switchboard_client::CloseReason;
    /// assert_eq!(CloseReason::Requested.close_code(), None);
    /// ```
    #[must_use]
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Self::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Requested => f.write_str("closed by the application"),
            Self::Server { code, reason } if reason.is_empty() => {
                write!(f, "the server closed the connection with {code}")
            }
            Self::Server { code, reason } => {
                write!(f, "the server closed the connection with {code} ({reason})")
            }
            Self::Refused { code, message } => write!(f, "identification refused: {code}: {message}"),
            Self::GaveUp { attempts, last_error } => {
                write!(f, "gave up after {attempts} attempts (last: {last_error})")
            }
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
