//! The hub's state: one owner per piece, and nothing that acts on it (the modules above do).
//!
//! | piece | owner | what it holds |
//! |---|---|---|
//! | connections, users | [`Registry`] | this node's connections by id and by user |
//! | topics | [`Topics`] | this node's subscribers per topic, sequencers, held fan-outs |
//! | topic settings | [`SettingsTable`] | the patterns of every namespace, for server publishes |
//! | deadlines | [`Timers`] | identification, acknowledgement and expiry deadlines |
//! | the cluster | [`Link`] | node messages and replies awaited from other nodes |
//! | counters | [`Counters`] | per-thread traffic counters |
//! | lifecycle | [`Lifecycle`] | the shutdown signal and the tasks to wait for |
//!
//! Fields are visible to the hub's own modules only; the layers above use the methods.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Weak};

use switchboard_core::{Backends, NodeId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hooks::DmAudit;
use super::link::Link;
use super::registry::Registry;
use super::timers::Timers;
use super::topics::settings::SettingsTable;
use super::topics::table::Topics;
use crate::base::clock::Clock;
use crate::base::counters::Counters;
use crate::config::Config;
use crate::conn::ConnShared;

/// How this node sees its cluster, for `~info` and metrics.
#[derive(Default)]
pub(crate) struct Health {
    /// The broker's connection is down (between `disconnected` and `reconnected`).
    pub(crate) broker_down: AtomicBool,
    /// Times the broker's connection was lost.
    pub(crate) broker_outages: AtomicU64,
    /// Dead nodes this node cleaned up after.
    pub(crate) nodes_cleaned: AtomicU64,
    /// Publications this node missed and filled from history.
    pub(crate) missed_filled: AtomicU64,
    /// Times this node told a topic's subscribers that publications were missed (closed 4000).
    pub(crate) missed_signalled: AtomicU64,
    /// Per topic class (pattern): how long a gap its history can bridge, from the position
    /// checks (`watch::positions`).
    pub(crate) spans: parking_lot::Mutex<Vec<HistorySpan>>,
}

/// How long a gap a topic class's history can bridge ([`Hub::history_spans`](crate::Hub::history_spans)).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct HistorySpan {
    /// The topic pattern (the class), as declared.
    pub pattern: String,
    /// Publications its topics keep.
    pub size: usize,
    /// The highest publication rate among its topics this node has subscribers of, per second,
    /// over the last position-check period.
    pub publications_per_second: f64,
    /// `size / publications_per_second`: the shortest time its topics' histories cover, in
    /// seconds (infinite while nothing is published).
    pub seconds: f64,
}

/// The shutdown signal and the tasks a shutdown waits for.
pub(crate) struct Lifecycle {
    /// Cancelled when the server shuts down.
    pub(crate) shutdown: CancellationToken,
    /// Connection and handshake tasks, waited for at shutdown.
    pub(crate) tracker: TaskTracker,
}

/// See the module's documentation.
pub(crate) struct Core {
    /// This core, for tasks it spawns (a gap check).
    pub(super) me: Weak<Core>,
    /// This server's id in the cluster; prefixes every connection id.
    pub(super) node: NodeId,
    pub(super) config: Arc<Config>,
    pub(super) backends: Backends,
    pub(super) registry: Registry,
    pub(super) topics: Topics,
    pub(super) settings: SettingsTable,
    pub(super) timers: Timers,
    pub(super) link: Link,
    pub(super) clock: Clock,
    pub(super) counters: Arc<Counters>,
    pub(super) lifecycle: Lifecycle,
    pub(super) dm_audit: Option<DmAudit>,
    /// Notified when the broker's connection was lost and is back (`watch::positions`).
    pub(super) outage: Arc<tokio::sync::Notify>,
    pub(super) health: Health,
}

/// What a core is made of (see [`Core::new`]).
pub(crate) struct Parts {
    pub(crate) config: Arc<Config>,
    pub(crate) backends: Backends,
    pub(crate) settings: SettingsTable,
    pub(crate) dm_audit: Option<DmAudit>,
}

impl Core {
    pub(crate) fn new(parts: Parts) -> Arc<Self> {
        let node: NodeId = format!("{:08x}", rand::random::<u32>()).into();
        Arc::new_cyclic(|me| Core {
            me: me.clone(),
            link: Link::new(node.clone(), parts.backends.broker.clone()),
            registry: Registry::new(node.clone()),
            node,
            config: parts.config,
            backends: parts.backends,
            topics: Topics::new(),
            settings: parts.settings,
            timers: Timers::default(),
            clock: Clock::start(),
            counters: Arc::new(Counters::default()),
            lifecycle: Lifecycle { shutdown: CancellationToken::new(), tracker: TaskTracker::new() },
            dm_audit: parts.dm_audit,
            outage: Arc::new(tokio::sync::Notify::new()),
            health: Health::default(),
        })
    }

    /// This core, shared (`None` once it is dropped).
    pub(super) fn myself(&self) -> Option<Arc<Core>> {
        self.me.upgrade()
    }

    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Milliseconds since the server started: the coarse clock of liveness checks.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn timers(&self) -> &Timers {
        &self.timers
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// A local connection by id.
    pub(crate) fn local(&self, conn: &str) -> Option<Arc<ConnShared>> {
        self.registry.get(conn)
    }
}

#[cfg(test)]
impl Core {
    /// A core on in-memory backends, not started (no sweeper, not in a cluster).
    pub(crate) fn for_tests(config: Config) -> Arc<Self> {
        Self::new(Parts {
            config: Arc::new(config),
            backends: Backends::memory(),
            settings: SettingsTable::default(),
            dm_audit: None,
        })
    }

    /// A JSON connection registered here, with no task: a test reads what is sent to it
    /// through the receiver.
    pub(crate) fn test_conn(&self) -> (Arc<ConnShared>, crate::conn::Receiver) {
        let (conn, rx) = ConnShared::new(
            self.registry.new_conn_id(),
            switchboard_protocol::Format::Json,
            self.config.clone(),
            Arc::default(),
            self.now_ms(),
        );
        self.registry.insert(&conn);
        (conn, rx)
    }
}
