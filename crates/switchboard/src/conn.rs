//! A connection's shared state and its public handle, [`Conn`].

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use serde::Serialize;
use switchboard_protocol::{
    CloseCode, ErrorBody, Format, Id, MessageType, Payload as RawPayload, Topic, encode, wire,
};
use tokio::sync::oneshot;

use crate::queue::{Cork, Queue, Refused};
use crate::{Config, Error, UpgradeRequest};

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
    /// Bytes already framed: the rest of a write another task began (see `write_direct`).
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

    /// Corks this thread while the connection's task handles what it read (see [`Cork`]):
    /// replies to itself wake nobody, other connections are woken when the cork drops.
    pub(crate) fn cork(&self) -> Cork {
        Cork::new(Some(&self.0.queue))
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

/// A per-connection inbound filter (see [`Conn::add_filter`]).
pub(crate) type ConnFilter = Arc<dyn Fn(&MessageType, &RawPayload) -> Result<(), Error> + Send + Sync>;

/// A rarely used part of a connection, allocated at its first use: until then it costs the
/// connection 16 bytes, not its size (a `Mutex<HashMap>` is 56).
pub(crate) struct Lazy<T>(OnceLock<Box<T>>);

impl<T> Default for Lazy<T> {
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<T: Default> std::ops::Deref for Lazy<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.get_or_init(Box::default)
    }
}

/// The connection's own inbound filters ([`Conn::add_filter`]): read for every handled message,
/// allocated only by the first filter added.
#[derive(Default)]
pub(crate) struct Filters(Lazy<RwLock<Vec<ConnFilter>>>);

/// What [`Filters::read`] reads when no filter was ever added.
static NO_FILTERS: RwLock<Vec<ConnFilter>> = RwLock::new(Vec::new());

impl Filters {
    /// Whether a filter was ever added (a lock-free look).
    pub(crate) fn any(&self) -> bool {
        self.0.0.get().is_some()
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Vec<ConnFilter>> {
        self.0.0.get().map_or(&NO_FILTERS, |filters| filters).read()
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

/// State shared between a connection's task and everyone who sends to it.
pub(crate) struct ConnShared {
    /// Cluster-unique id, sent to the client in the welcome.
    pub(crate) id: Arc<str>,
    pub(crate) format: Format,
    pub(crate) config: Arc<Config>,
    pub(crate) upgrade: Arc<UpgradeRequest>,
    /// The writer's queue, bounded in bytes (`Config::max_queue_bytes`).
    queue: Queue<Out>,
    /// Set once a close was requested; nothing is queued after.
    closing: AtomicBool,
    /// Set once the connection was told to stop at once (it may already be closing).
    killed: AtomicBool,
    pub(crate) kill_reason: Lazy<Mutex<Option<(CloseCode, String)>>>,
    /// Milliseconds (server clock) of the last frame received, for the heartbeat sweep.
    pub(crate) last_seen: AtomicU64,
    /// When the credentials expire (server clock, ms; 0: never). A refresh moves it.
    pub(crate) expires_at: AtomicU64,
    /// Next id of a request we send (our id space).
    next_id: AtomicU64,
    pub(crate) pending: Lazy<Mutex<HashMap<u64, Pending>>>,
    pub(crate) identity: RwLock<Option<Identified>>,
    /// Whether a `~hello` is being handled.
    pub(crate) identifying: AtomicBool,
    pub(crate) filters: Filters,
    pub(crate) topics: Mutex<Vec<Topic>>,
    /// Held by whoever writes to the socket: the connection's task while it is polled, or a
    /// writer pass (see `direct`).
    pub(crate) writing: AtomicBool,
    /// The transport holds bytes not yet written: a writer pass must not write before them.
    pub(crate) buffered: AtomicBool,
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
            writing: AtomicBool::new(false),
            buffered: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill_reason: Lazy::default(),
            last_seen: AtomicU64::new(now_ms),
            expires_at: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            pending: Lazy::default(),
            identity: RwLock::new(None),
            identifying: AtomicBool::new(false),
            filters: Filters::default(),
            topics: Mutex::new(Vec::new()),
        });
        let rx = Receiver(shared.clone());
        (shared, rx)
    }

    /// Queues encoded bytes. Past the queue limit the connection is closed with 4002.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), SendError> {
        self.enqueue(frame.len(), |items| items.push_back(Out::Frame(frame)))
    }

    /// Queues messages shared with other connections (`len`: their bytes), in one item.
    pub(crate) fn push_shared(self: &Arc<Self>, frames: &Arc<[Bytes]>, len: usize) -> Result<(), SendError> {
        if len == 0 {
            return Ok(());
        }
        self.enqueue_for_pass(len, |items| items.push_back(Out::Frames(frames.clone())))
    }

    /// Queues several encoded messages at once (one lock; a fan-out's batch).
    pub(crate) fn push_many(
        self: &Arc<Self>,
        frames: impl Iterator<Item = Bytes> + Clone,
    ) -> Result<(), SendError> {
        let len = frames.clone().map(|f| f.len()).sum();
        if len == 0 {
            return Ok(());
        }
        self.enqueue_for_pass(len, |items| items.extend(frames.map(Out::Frame)))
    }

    /// Queues what `put` adds (`len` bytes) unless the connection is closing; past the queue
    /// limit the connection is closed with 4002.
    fn enqueue(&self, len: usize, put: impl FnOnce(&mut VecDeque<Out>)) -> Result<(), SendError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        self.sent(self.queue.send_with(len, self.config.max_queue_bytes, put))
    }

    /// [`ConnShared::enqueue`] for a fan-out: inside a cork, a connection whose socket writer
    /// passes may write is left to one instead of having its task woken (see `direct`).
    fn enqueue_for_pass(
        self: &Arc<Self>,
        len: usize,
        put: impl FnOnce(&mut VecDeque<Out>),
    ) -> Result<(), SendError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        match self.queue.send_taking(len, self.config.max_queue_bytes, put, true) {
            Ok(Some(waker)) => {
                crate::direct::defer(self, waker);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => self.sent(Err(e)),
        }
    }

    /// Writes the queue to the socket for the connection's task, whose waker this is (a writer
    /// pass, see `direct`), when it holds only data frames and nobody else writes the socket;
    /// else, and with whatever the socket did not take, the task is woken to do it. Returns the
    /// messages and bytes written, for the counters.
    pub(crate) fn write_direct(&self, waker: std::task::Waker) -> (u64, u64) {
        if self.writing.swap(true, Ordering::Acquire) {
            waker.wake();
            return (0, 0);
        }
        let (mut messages, mut bytes) = (0u64, 0usize);
        let mut rest = None;
        if !self.buffered.load(Ordering::Acquire) {
            let binary = self.format.is_binary();
            let mut frames = crate::ws::PassFrames::new();
            let mut frame = |payload: &Bytes| {
                messages += 1;
                bytes += payload.len();
                frames.push(binary, payload);
            };
            let drained = self.queue.drain_for_pass(
                |item| match item {
                    Out::Frame(payload) => crate::ws::PassFrames::takes(payload.len()),
                    Out::Frames(payloads) => payloads.iter().all(|p| crate::ws::PassFrames::takes(p.len())),
                    _ => false,
                },
                |item| match item {
                    Out::Frame(payload) => frame(&payload),
                    Out::Frames(payloads) => payloads.iter().for_each(&mut frame),
                    _ => unreachable!("taken only if all are data frames"),
                },
            );
            if let Some(socket) = drained {
                let framed = frames.bytes();
                let sent = crate::direct::send_now(&socket, framed);
                if sent < framed.len() {
                    let raw = Bytes::copy_from_slice(&framed[sent..]);
                    let len = raw.len();
                    rest = Some((Out::Raw(raw), len));
                }
            }
        }
        self.writing.store(false, Ordering::Release);
        if let Some(waker) = self.queue.finish_pass(bytes, rest, waker) {
            waker.wake();
        }
        (messages, bytes as u64)
    }

    /// Lets writer passes write to the connection's socket (see `direct`).
    pub(crate) fn share_socket(&self, socket: Arc<tokio::net::TcpStream>) {
        self.queue.set_socket(socket);
    }

    fn sent(&self, sent: Result<(), Refused>) -> Result<(), SendError> {
        match sent {
            Ok(()) => Ok(()),
            Err(Refused::Closed) => Err(SendError::Closed),
            Err(Refused::Full(queued)) => {
                tracing::warn!(conn = %self.id, queued, "slow consumer: outbound queue overflowed");
                self.kill(CloseCode::SLOW_CONSUMER, "slow consumer: outbound queue overflowed");
                Err(SendError::SlowConsumer)
            }
        }
    }

    pub(crate) fn push_message(
        &self,
        kind: &str,
        payload: &RawPayload,
        id: Option<Id>,
    ) -> Result<(), SendError> {
        let frame = encode(self.format, kind, payload, id).map_err(|e| SendError::Encode(e.to_string()))?;
        self.push(frame)
    }

    pub(crate) fn reply(&self, id: Id, result: Result<RawPayload, Error>) {
        let _ = match result {
            Ok(payload) => self.push_message(wire::types::OK, &payload, Some(id)),
            Err(e) => self.push_error(&e, Some(id)),
        };
    }

    pub(crate) fn push_error(&self, e: &Error, id: Option<Id>) -> Result<(), SendError> {
        match RawPayload::encode(self.format, &e.to_body()) {
            Ok(body) => self.push_message(wire::types::ERR, &body, id),
            Err(e) => Err(SendError::Encode(e.to_string())),
        }
    }

    /// Tells the connection's task that the server is shutting down (see [`Out::Shutdown`]).
    pub(crate) fn shut_down(&self) {
        let _ = self.queue.send(Out::Shutdown);
    }

    /// Lets go of the queue's buffer if nothing came from other tasks since the last call
    /// (housekeeping, once per sweep).
    pub(crate) fn trim_queue(&self) {
        self.queue.trim();
    }

    pub(crate) fn ping(&self) {
        if !self.closing.load(Ordering::Acquire) {
            let _ = self.queue.send(Out::Ping);
        }
    }

    /// Queues a close after what is already queued. The first close wins.
    pub(crate) fn close(&self, code: CloseCode, reason: &str, bye: bool) {
        self.close_with(code, reason, bye, None);
    }

    fn close_with(&self, code: CloseCode, reason: &str, bye: bool, jump: Option<String>) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            let _ = self.queue.send(Out::Close { code, reason: reason.to_owned(), bye, jump });
        }
    }

    /// Closes at once, skipping the queue (the writer may be stuck on a full socket). Works on
    /// a connection that is already closing too: its queued close may be stuck behind a backlog.
    pub(crate) fn kill(&self, code: CloseCode, reason: &str) {
        self.closing.store(true, Ordering::Release);
        if !self.killed.swap(true, Ordering::AcqRel) {
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

#[cfg(test)]
impl ConnShared {
    /// A JSON connection registered in `hub`, with no task: a test reads what is sent to it
    /// through the receiver.
    pub(crate) fn registered(hub: &crate::hub::HubInner) -> (Arc<Self>, Receiver) {
        let (conn, rx) =
            Self::new(hub.new_conn_id(), Format::Json, hub.config.clone(), Arc::default(), hub.now_ms());
        hub.conns.shard(&conn.id).write().insert(conn.id.clone(), conn.clone());
        (conn, rx)
    }
}

/// Why a message could not be queued for a connection.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed or closing.
    #[error("connection closed")]
    Closed,
    /// The connection's queue overflowed: it is being closed with 4002.
    #[error("slow consumer")]
    SlowConsumer,
    /// The payload could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Why a request to a client failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The client answered with an error.
    #[error("{0}")]
    Remote(ErrorBody),
    /// The client did not answer in time.
    #[error("timed out")]
    Timeout,
    /// The connection closed before the answer.
    #[error("disconnected")]
    Disconnected,
    /// No such connection.
    #[error("no such connection")]
    NotFound,
    /// The request could not reach the connection's node.
    #[error("backend: {0}")]
    Backend(String),
}

/// A handle to one connection: cheap to clone, usable from any task.
///
/// As an extractor it is the connection the message came from.
///
/// ```
/// use switchboard::{Conn, Error};
/// async fn greet(conn: Conn) -> Result<String, Error> {
///     conn.send("hint", &"you were greeted").map_err(|_| Error::failed())?;
///     let answer: String = conn.request("confirm", &()).await?.decode()?;
///     Ok(format!("{} said {answer}", conn.id()))
/// }
/// ```
#[derive(Clone)]
pub struct Conn(pub(crate) Arc<ConnShared>);

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("id", &self.0.id).finish_non_exhaustive()
    }
}

impl Conn {
    /// The connection id (unique in the cluster).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The connection's codec.
    #[must_use]
    pub fn format(&self) -> Format {
        self.0.format
    }

    /// The user, once identified (and if the namespace has users).
    #[must_use]
    pub fn user(&self) -> Option<Arc<str>> {
        self.0.user()
    }

    /// The namespace, once identified.
    #[must_use]
    pub fn namespace(&self) -> Option<Arc<str>> {
        self.0.identity.read().as_ref().map(|i| i.ns_name.clone())
    }

    /// The public alias, if any.
    #[must_use]
    pub fn alias(&self) -> Option<Arc<str>> {
        self.0.identity.read().as_ref().and_then(|i| i.alias.clone())
    }

    /// Whether the connection is identified.
    #[must_use]
    pub fn is_identified(&self) -> bool {
        self.0.identity.read().is_some()
    }

    /// Whether the connection is closed or closing.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.0.is_closing()
    }

    /// What the HTTP upgrade request said (headers, cookies, remote address).
    #[must_use]
    pub fn upgrade_request(&self) -> &Arc<UpgradeRequest> {
        &self.0.upgrade
    }

    /// The session data the identify hook attached, if it is a `T`.
    #[must_use]
    pub fn session<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let session = self.0.identity.read().as_ref()?.session.clone()?;
        session.downcast::<T>().ok()
    }

    /// The topics the connection is subscribed to.
    #[must_use]
    pub fn topics(&self) -> Vec<Topic> {
        self.0.topics.lock().clone()
    }

    /// Sends the event `[kind, payload]`.
    ///
    /// # Errors
    /// [`SendError`] when the connection is closed, overflowing, or the payload does not encode.
    pub fn send<T: Serialize + ?Sized>(&self, kind: &str, payload: &T) -> Result<(), SendError> {
        let payload =
            RawPayload::encode(self.0.format, payload).map_err(|e| SendError::Encode(e.to_string()))?;
        self.0.push_message(kind, &payload, None)
    }

    /// Sends the request `[kind, payload, id]` and waits for the client's reply (default timeout:
    /// [`Config::request_timeout`]; change it with [`Request::timeout`]).
    pub fn request<T: Serialize + ?Sized>(&self, kind: &str, payload: &T) -> Request {
        let payload = RawPayload::encode(self.0.format, payload);
        Request {
            conn: self.0.clone(),
            kind: kind.to_owned(),
            payload,
            timeout: self.0.config.request_timeout,
        }
    }

    /// Sends a `~challenge` during identification and waits for the answer. A client that gives
    /// up (`~err`) refuses identification; one that does not answer is closed with 4504 when the
    /// identification timeout expires.
    ///
    /// # Errors
    /// `NOT_AUTHORIZED` when the client gives up or does not answer in time.
    pub async fn challenge<T: Serialize + ?Sized>(&self, quest: &T) -> Result<RawPayload, Error> {
        // No deadline of its own: the identification deadline closes the connection with 4504
        // while this waits (this bound is only a backstop, well past it).
        self.request(wire::types::CHALLENGE, quest)
            .timeout(self.0.config.identify_timeout * 2 + Duration::from_secs(1))
            .await
            .map_err(|_| Error::not_authorized("challenge failed"))
    }

    /// Closes the connection with `code` after what is queued, sending `~bye` first.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.0.close(code, reason, true);
    }

    /// Asks the client to reconnect to another server: sends `~bye` with `jump: url`, then
    /// closes with 4000 (a client reconnects there, with backoff).
    pub fn redirect(&self, url: &str, reason: &str) {
        self.0.close_with(CloseCode::RECONNECT, reason, true, Some(url.to_owned()));
    }

    /// Adds an inbound filter to this connection only: it sees each application message's type
    /// and payload before the namespace's filters, and may refuse it.
    pub fn add_filter(
        &self,
        filter: impl Fn(&MessageType, &RawPayload) -> Result<(), Error> + Send + Sync + 'static,
    ) {
        self.0.filters.write().push(Arc::new(filter));
    }
}

/// A request to a client in preparation; `.await` it.
#[must_use = "a request does nothing until awaited"]
pub struct Request {
    conn: Arc<ConnShared>,
    kind: String,
    payload: Result<RawPayload, switchboard_protocol::EncodeError>,
    timeout: Duration,
}

impl Request {
    /// How long to wait for the answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl IntoFuture for Request {
    type Output = Result<RawPayload, RequestError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let payload = self.payload.map_err(|e| RequestError::Backend(e.to_string()))?;
            let conn = self.conn;
            let id = conn.next_id();
            let (tx, rx) = oneshot::channel();
            conn.pending.lock().insert(id.get(), Pending::Request(tx));
            let _guard = PendingGuard { conn: &conn, id };
            conn.push_message(&self.kind, &payload, Some(id)).map_err(|_| RequestError::Disconnected)?;
            match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(Ok(payload))) => Ok(payload),
                Ok(Ok(Err(body))) => Err(RequestError::Remote(body)),
                Ok(Err(_)) => Err(RequestError::Disconnected),
                Err(_) => Err(RequestError::Timeout),
            }
        })
    }
}

/// Removes a request's pending entry however the wait ends (reply, timeout, cancellation).
struct PendingGuard<'a> {
    conn: &'a ConnShared,
    id: Id,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut pending = self.conn.pending.lock();
        if matches!(pending.get(&self.id.get()), Some(Pending::Request(_))) {
            pending.remove(&self.id.get());
        }
    }
}
