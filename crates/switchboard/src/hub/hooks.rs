//! The hooks the application gives the hub.

use std::sync::Arc;

use switchboard_protocol::{RawPayload, wire};

/// A direct message that was delivered, for the application's audit hook
/// ([`Server::on_direct_message`](crate::Server::on_direct_message)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DirectMessageEvent {
    /// The sender.
    pub from: wire::DmSender,
    /// The recipient's connection.
    pub to_conn: String,
    /// The recipient's user.
    pub to_user: Option<String>,
    /// What was sent.
    pub data: RawPayload,
}

/// The direct-message audit hook.
pub(crate) type DmAudit = Arc<dyn Fn(&DirectMessageEvent) + Send + Sync>;

/// What happened to a connection, a topic or a user: the lifecycle events an application's
/// backend learns, at least once and in order per user (see [`Lifecycle`]). Serialized as a JSON
/// object with `"type"` (`connect`, `disconnect`, …) and the fields below.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LifecycleEvent {
    /// A connection identified (its welcome follows).
    Connect {
        /// The connection.
        conn: String,
        /// Its user (`None` in anonymous namespaces).
        user: Option<String>,
        /// Its namespace.
        ns: String,
    },
    /// An identified connection closed: with the close code and reason it was given (1006 and
    /// the reason when it was lost, or its server died).
    Disconnect {
        /// The connection.
        conn: String,
        /// Its user.
        user: Option<String>,
        /// Its namespace.
        ns: String,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// A connection subscribed to a topic (or was put into it by the server).
    Subscribe {
        /// The connection.
        conn: String,
        /// Its user.
        user: Option<String>,
        /// The topic.
        topic: String,
    },
    /// A connection left a topic (not sent for a connection that closes: `disconnect` says it).
    Unsubscribe {
        /// The connection.
        conn: String,
        /// Its user.
        user: Option<String>,
        /// The topic.
        topic: String,
    },
    /// A topic got its first subscriber, on any node.
    Occupied {
        /// The topic.
        topic: String,
    },
    /// A topic lost its last subscriber, on every node.
    Vacated {
        /// The topic.
        topic: String,
    },
    /// A connection changed its alias or availability (`~status`).
    Status {
        /// The connection.
        conn: String,
        /// Its user.
        user: Option<String>,
        /// Its alias now.
        alias: Option<String>,
        /// Its availability now.
        available: bool,
    },
    /// A user's first connection, on any node.
    UserOnline {
        /// The user.
        user: String,
    },
    /// A user's last connection closed, on every node.
    UserOffline {
        /// The user.
        user: String,
    },
}

impl LifecycleEvent {
    /// Its kind.
    #[must_use]
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Connect { .. } => EventKind::Connect,
            Self::Disconnect { .. } => EventKind::Disconnect,
            Self::Subscribe { .. } => EventKind::Subscribe,
            Self::Unsubscribe { .. } => EventKind::Unsubscribe,
            Self::Occupied { .. } => EventKind::Occupied,
            Self::Vacated { .. } => EventKind::Vacated,
            Self::Status { .. } => EventKind::Status,
            Self::UserOnline { .. } => EventKind::UserOnline,
            Self::UserOffline { .. } => EventKind::UserOffline,
        }
    }

    /// The key events are numbered and ordered by: `user:U` for a user's events, `conn:C` for
    /// those of a connection without a user, `topic:T` for a topic's occupancy.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::Connect { conn, user, .. }
            | Self::Disconnect { conn, user, .. }
            | Self::Subscribe { conn, user, .. }
            | Self::Unsubscribe { conn, user, .. }
            | Self::Status { conn, user, .. } => match user {
                Some(user) => format!("user:{user}"),
                None => format!("conn:{conn}"),
            },
            Self::UserOnline { user } | Self::UserOffline { user } => format!("user:{user}"),
            Self::Occupied { topic } | Self::Vacated { topic } => format!("topic:{topic}"),
        }
    }
}

/// The kinds of [`LifecycleEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// [`LifecycleEvent::Connect`].
    Connect,
    /// [`LifecycleEvent::Disconnect`].
    Disconnect,
    /// [`LifecycleEvent::Subscribe`].
    Subscribe,
    /// [`LifecycleEvent::Unsubscribe`].
    Unsubscribe,
    /// [`LifecycleEvent::Occupied`].
    Occupied,
    /// [`LifecycleEvent::Vacated`].
    Vacated,
    /// [`LifecycleEvent::Status`].
    Status,
    /// [`LifecycleEvent::UserOnline`].
    UserOnline,
    /// [`LifecycleEvent::UserOffline`].
    UserOffline,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 9] = [
        Self::Connect,
        Self::Disconnect,
        Self::Subscribe,
        Self::Unsubscribe,
        Self::Occupied,
        Self::Vacated,
        Self::Status,
        Self::UserOnline,
        Self::UserOffline,
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Which lifecycle events a server writes to its backends' event log
/// ([`Server::lifecycle`](crate::Server::lifecycle)): the kinds, for which namespaces, for which
/// topics (subscribe, unsubscribe, occupied, vacated).
///
/// ```
/// use switchboard::{EventKind, Lifecycle};
/// let events = Lifecycle::new()
///     .kinds([EventKind::Connect, EventKind::Disconnect, EventKind::UserOnline, EventKind::UserOffline])
///     .namespaces(["main"]);
/// let rooms = Lifecycle::all().topics(["chat/{room}"]);
/// ```
#[derive(Clone, Debug)]
pub struct Lifecycle {
    kinds: u16,
    namespaces: Vec<String>,
    topics: Vec<super::topics::settings::Pattern>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::all()
    }
}

impl Lifecycle {
    /// No event yet: add kinds with [`Lifecycle::kinds`].
    #[must_use]
    pub fn new() -> Self {
        Self { kinds: 0, namespaces: Vec::new(), topics: Vec::new() }
    }

    /// Every kind, every namespace, every topic.
    #[must_use]
    pub fn all() -> Self {
        Self::new().kinds(EventKind::ALL)
    }

    /// Adds these kinds.
    #[must_use]
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = EventKind>) -> Self {
        for kind in kinds {
            self.kinds |= kind.bit();
        }
        self
    }

    /// Only connections of these namespaces (default: all).
    #[must_use]
    pub fn namespaces(mut self, namespaces: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.namespaces.extend(namespaces.into_iter().map(Into::into));
        self
    }

    /// Topic events only for topics matching these patterns (`chat/{room}`; default: all).
    #[must_use]
    pub fn topics(mut self, patterns: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.topics.extend(patterns.into_iter().map(|p| super::topics::settings::Pattern::new(p.as_ref())));
        self
    }

    /// Whether events of `kind` are written.
    pub(crate) fn wants(&self, kind: EventKind) -> bool {
        self.kinds & kind.bit() != 0
    }

    /// Whether connections of namespace `ns` have events.
    pub(crate) fn covers_ns(&self, ns: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == ns)
    }

    /// Whether `topic` has topic events.
    pub(crate) fn covers_topic(&self, topic: &str) -> bool {
        self.topics.is_empty() || self.topics.iter().any(|p| p.matches(topic).is_some())
    }
}

/// The application's hook for every lifecycle event this node emits
/// ([`Server::on_lifecycle`](crate::Server::on_lifecycle)).
pub(crate) type LifecycleHook = Arc<dyn Fn(&LifecycleEvent) + Send + Sync>;
