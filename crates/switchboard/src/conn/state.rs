//! A connection's state, shared between its task and everyone who sends to it.
//!
//! What writes to the queue is in `send.rs`; this file holds the state and what reads or
//! changes it without queuing.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use switchboard_protocol::{CloseCode, ErrorBody, Format, Id, MessageType, RawPayload, Topic};
use tokio::sync::oneshot;

use crate::base::lazy::Lazy;
use crate::base::ordered::{self, rank};
use crate::base::throttle::{Kind, Throttles};
use crate::config::Config;
use crate::error::Error;
use crate::io::tcp::SharedSocket;
use crate::io::upgrade::UpgradeRequest;
use crate::outbound::queue::Queue;

/// Something for a connection's writer.
#[derive(Debug)]
pub(crate) enum Out {
    /// An encoded message.
    Frame(Bytes),
    /// Messages fanned out together to every subscriber of a topic (a held burst), shared: one
    /// reference taken per connection, not one per message, and the writer copies them
    /// without taking any (a publication's count is otherwise a cache line every core's
    /// writer and the publisher's thread take turns with, once per subscriber and message).
    Frames(Arc<[Bytes]>),
    /// A WebSocket ping.
    Ping,
    /// Bytes already framed: the rest of a write a writer pass began (see `pass.rs`).
    Raw(Bytes),
    /// Send `~bye` (when `bye`, with `jump` if any), then close with this code.
    Close { code: CloseCode, reason: String, bye: bool, jump: Option<String> },
    /// The server is shutting down: stop reading, close once running handlers are done. (Sent
    /// to every connection once, instead of each task waiting on the shutdown token: that wait
    /// took the token's lock twice on every wake-up of every connection.)
    Shutdown,
}

/// The connection task's end of its queue; dropping it closes the queue (later sends fail, as
/// with a channel whose receiver is gone).
pub(crate) struct Receiver(Arc<ConnShared>);

impl Receiver {
    /// Moves up to `limit` queued items into `buf`, waiting for one; cancel-safe. (Not an
    /// `async fn`: its future would hold its arguments twice, in every connection's task.)
    pub(crate) fn recv_many<'a>(
        &'a mut self,
        buf: &'a mut VecDeque<Out>,
        limit: usize,
    ) -> impl Future<Output = usize> + Send + 'a {
        self.0.queue.recv_many(buf, limit)
    }

    /// The task wrote `bytes` of the `n` items it took from the queue into `buf`, now empty.
    pub(crate) fn written(&self, bytes: usize, buf: VecDeque<Out>, n: usize) {
        self.0.queue.written(bytes, buf, n);
    }

    /// The next queued item, if any.
    #[cfg(test)]
    pub(crate) fn try_recv(&mut self) -> Option<Out> {
        self.0.queue.try_recv()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.0.queue.close();
    }
}

/// A per-connection inbound filter (see [`Conn::add_filter`](crate::Conn::add_filter)).
pub(crate) type ConnFilter = Arc<dyn Fn(&MessageType, &RawPayload) -> Result<(), Error> + Send + Sync>;

/// The connection's own inbound filters ([`Conn::add_filter`](crate::Conn::add_filter)): read for
/// every handled message, allocated only by the first filter added.
#[derive(Default)]
pub(crate) struct Filters(Lazy<RwLock<Vec<ConnFilter>>>);

/// What [`Filters::read`] reads when no filter was ever added.
static NO_FILTERS: RwLock<Vec<ConnFilter>> = RwLock::new(Vec::new());

impl Filters {
    /// Whether a filter was ever added (a lock-free look).
    pub(crate) fn any(&self) -> bool {
        self.0.get().is_some()
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Vec<ConnFilter>> {
        self.0.get().map_or(&NO_FILTERS, |filters| filters).read()
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Vec<ConnFilter>> {
        self.0.write()
    }
}

/// What the connection is, once identified.
pub(crate) struct Identified {
    /// Index of the namespace in the server.
    pub(crate) ns: usize,
    pub(crate) ns_name: Arc<str>,
    pub(crate) user: Option<Arc<str>>,
    pub(crate) alias: Option<Arc<str>>,
    pub(crate) available: bool,
    pub(crate) public: RawPayload,
    pub(crate) session: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) meta: Option<RawPayload>,
}

/// Replies the connection owes us.
pub(crate) enum Pending {
    /// A request we sent; the reply goes to the waiting task.
    Request(oneshot::Sender<Result<RawPayload, ErrorBody>>),
    /// An acknowledged delivery: the frame to resend and how often it was resent.
    Ack { frame: Bytes, resends: u32 },
}

/// Replies the connection owes us and acknowledgements it owes us, by id.
pub(crate) type PendingMap = ordered::Mutex<HashMap<u64, Pending>, { rank::CONN_PENDING }>;

/// State shared between a connection's task and everyone who sends to it.
pub(crate) struct ConnShared {
    /// Cluster-unique id, sent to the client in the welcome.
    pub(crate) id: Arc<str>,
    pub(crate) format: Format,
    pub(crate) config: Arc<Config>,
    pub(crate) upgrade: Arc<UpgradeRequest>,
    /// The writer's queue, bounded in bytes (`Config::max_queue_bytes`); its attachment is the
    /// socket, when writer passes may write it (see `pass.rs`).
    pub(super) queue: Queue<Out, Arc<SharedSocket>>,
    /// Set once a close was requested; nothing is queued after.
    pub(super) closing: AtomicBool,
    /// Set once the connection was told to stop at once (it may already be closing).
    killed: AtomicBool,
    pub(crate) kill_reason: Lazy<Mutex<Option<(CloseCode, String)>>>,
    /// Milliseconds (server clock) of the last frame received, for the heartbeat sweep.
    pub(crate) last_seen: AtomicU64,
    /// When the credentials expire (server clock, ms; 0: never). A refresh moves it.
    pub(crate) expires_at: AtomicU64,
    /// Next id of a request we send (our id space).
    next_id: AtomicU64,
    pub(crate) pending: Lazy<PendingMap>,
    pub(crate) identity: RwLock<Option<Identified>>,
    /// Whether a `~hello` is being handled.
    pub(crate) identifying: AtomicBool,
    /// Whether its `connect` lifecycle event was written (and its `disconnect` is owed).
    pub(crate) announced: AtomicBool,
    pub(crate) filters: Filters,
    pub(crate) topics: Mutex<Vec<Topic>>,
    /// Its repeated warnings' gates (`base::throttle`), allocated by its first warning.
    pub(crate) warnings: Lazy<Throttles>,
    /// Where it stands with its rate limits (`session::limits`).
    pub(crate) rates: RateState,
}

/// A connection's standing with its rate limits, read and written by its own task only (atomics
/// so that a handler future of the task may too; never contended).
#[derive(Default)]
pub(crate) struct RateState {
    /// Messages refused in a row.
    pub(crate) refused: AtomicU32,
    /// When the last id-less `RATE_LIMITED` error was pushed (server clock, ms; 0: never).
    pub(crate) error_at: AtomicU64,
    /// Reading waits for a message held until its user's tokens come from the backend.
    pub(crate) held: AtomicBool,
}

impl ConnShared {
    pub(crate) fn new(
        id: Arc<str>,
        format: Format,
        config: Arc<Config>,
        upgrade: Arc<UpgradeRequest>,
        now_ms: u64,
    ) -> (Arc<Self>, Receiver) {
        let shared = Arc::new(Self {
            id,
            format,
            config,
            upgrade,
            queue: Queue::new(),
            closing: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill_reason: Lazy::default(),
            last_seen: AtomicU64::new(now_ms),
            expires_at: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            pending: Lazy::default(),
            identity: RwLock::new(None),
            identifying: AtomicBool::new(false),
            announced: AtomicBool::new(false),
            filters: Filters::default(),
            topics: Mutex::new(Vec::new()),
            warnings: Lazy::default(),
            rates: RateState::default(),
        });
        let rx = Receiver(shared.clone());
        (shared, rx)
    }

    /// Lets go of the queue's buffer if nothing came from other tasks since the last call
    /// (the sweeper, once per sweep).
    pub(crate) fn trim_queue(&self) {
        self.queue.trim();
    }

    /// Closes at once, skipping the queue (the writer may be stuck on a full socket). Works on
    /// a connection that is already closing too: its queued close may be stuck behind a backlog.
    /// The first kill of a slow consumer is logged (at most once per second in the process).
    pub(crate) fn kill(&self, code: CloseCode, reason: &str) {
        self.closing.store(true, Ordering::Release);
        if !self.killed.swap(true, Ordering::AcqRel) {
            if code == CloseCode::SLOW_CONSUMER
                && let Some(suppressed) = self.warnings.allow(Kind::SlowConsumer)
            {
                tracing::warn!(conn = %self.id, reason, suppressed, "slow consumer: closed with 4002");
            } else {
                tracing::debug!(conn = %self.id, code = code.0, reason, "closed at once");
            }
            *self.kill_reason.lock() = Some((code, reason.to_owned()));
            // Wakes the task whether it waits for its queue or is stuck writing.
            self.queue.interrupt();
        }
    }

    /// Resolves once [`ConnShared::kill`] was called (for a task blocked writing).
    pub(crate) async fn killed(&self) {
        self.queue.interrupted().await;
    }

    /// Whether [`ConnShared::kill`] was called.
    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub(crate) fn next_id(&self) -> Id {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        Id::new(n).unwrap_or(Id::new(1).expect("1 is a valid id"))
    }

    /// Resolves a reply from the client; `false` if nothing waited for it.
    pub(crate) fn resolve(&self, id: Id, result: Result<RawPayload, ErrorBody>) -> bool {
        match self.pending.lock().remove(&id.get()) {
            Some(Pending::Request(tx)) => {
                let _ = tx.send(result);
                true
            }
            Some(Pending::Ack { .. }) => true,
            None => false,
        }
    }

    pub(crate) fn user(&self) -> Option<Arc<str>> {
        self.identity.read().as_ref().and_then(|i| i.user.clone())
    }
}
