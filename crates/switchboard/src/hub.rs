//! The hub: the registry of connections and users, and the handle the application uses to
//! reach them from anywhere.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use switchboard_core::{Backends, ConnRef, NodeId};
use switchboard_protocol::{CloseCode, Payload as RawPayload, Topic};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::NodeMsg;
use crate::conn::ConnShared;
use crate::fanout::Topics;
use crate::frame::SharedFrame;
use crate::housekeeping::Timers;
use crate::topic::{Pattern, TopicSettings};
use crate::{Config, Conn, Error, RequestError};

type Shard<V> = RwLock<HashMap<Arc<str>, V>>;

/// A map from ids to values, split into shards so that unrelated keys do not contend.
pub(crate) struct Sharded<V> {
    shards: Box<[Shard<V>]>,
    hasher: RandomState,
}

impl<V> Sharded<V> {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    pub(crate) fn shard(&self, key: &str) -> &Shard<V> {
        &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()]
    }

    pub(crate) fn shards(&self) -> &[Shard<V>] {
        &self.shards
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

/// Counters for `~info` and metrics, kept per thread: every connection task counts each read
/// and write, and one shared set would be one cache line bounced between all cores. A thread
/// adds to its own shard ([`Counters::here`]); readers add the shards up ([`Counters::sum`]).
/// Nothing is per connection, so a closed connection's counts stay.
pub(crate) struct Counters {
    shards: Box<[CounterShard]>,
}

/// One thread's counters, alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct CounterShard {
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
    pub(crate) connections_total: AtomicU64,
}

/// The shard of the calling thread, in any [`Counters`]: threads are numbered as they first
/// count, so the runtime's workers (the threads that count) get distinct shards.
fn counter_slot() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|s| *s)
}

impl Default for Counters {
    fn default() -> Self {
        let n = std::thread::available_parallelism().map_or(8, |n| n.get() * 2).clamp(4, 64);
        Self { shards: (0..n).map(|_| CounterShard::default()).collect() }
    }
}

impl Counters {
    /// The calling thread's shard, to add to.
    pub(crate) fn here(&self) -> &CounterShard {
        &self.shards[counter_slot() % self.shards.len()]
    }

    /// One counter added up over the shards.
    pub(crate) fn sum(&self, field: impl Fn(&CounterShard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| field(s).load(Ordering::Relaxed)).fold(0, u64::wrapping_add)
    }
}

pub(crate) struct HubInner {
    /// This hub, for tasks it spawns.
    pub(crate) me: std::sync::Weak<HubInner>,
    /// This server's id in the cluster; prefixes every connection id.
    pub(crate) node: NodeId,
    pub(crate) config: Arc<Config>,
    pub(crate) backends: Backends,
    /// Local connections by id.
    pub(crate) conns: Sharded<Arc<ConnShared>>,
    /// Local connections by user.
    pub(crate) users: Sharded<Vec<Arc<ConnShared>>>,
    pub(crate) topics: Topics,
    /// Topic settings by pattern, from every namespace (first match wins), for server publishes.
    pub(crate) topic_settings: Vec<(Pattern, TopicSettings)>,
    pub(crate) timers: Timers,
    pub(crate) started: tokio::time::Instant,
    pub(crate) next_conn: AtomicU64,
    pub(crate) stats: Counters,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) dm_audit: Option<crate::presence::DmAudit>,
    /// Called after each request a handler answered (metrics).
    pub(crate) request_done: Option<crate::session::RequestHook>,
    /// Requests this node relayed to other nodes, waiting for their replies.
    pub(crate) relayed: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<Result<RawPayload, RequestError>>>>,
}

impl HubInner {
    /// This node's counters now.
    pub(crate) fn stats_now(&self) -> Stats {
        let s = &self.stats;
        Stats {
            connections: self.conns.len(),
            users: self.users.len(),
            topics: self.topics.len(),
            messages_in: s.sum(|c| &c.messages_in),
            messages_out: s.sum(|c| &c.messages_out),
            bytes_in: s.sum(|c| &c.bytes_in),
            bytes_out: s.sum(|c| &c.bytes_out),
            slow_consumers: s.sum(|c| &c.slow_consumers),
            connections_total: s.sum(|c| &c.connections_total),
            uptime: self.started.elapsed(),
        }
    }

    /// This hub, shared (`None` once it is dropped).
    pub(crate) fn myself(&self) -> Option<Arc<HubInner>> {
        self.me.upgrade()
    }

    /// Milliseconds since the server started: the coarse clock of liveness checks.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn new_conn_id(&self) -> Arc<str> {
        let n = self.next_conn.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n:x}", self.node).into()
    }

    pub(crate) fn local(&self, conn: &str) -> Option<Arc<ConnShared>> {
        self.conns.shard(conn).read().get(conn).cloned()
    }

    /// The node a connection id belongs to.
    pub(crate) fn node_of(conn: &str) -> Option<&str> {
        conn.rsplit_once('.').map(|(node, _)| node)
    }

    pub(crate) fn settings_for(&self, topic: &str) -> TopicSettings {
        self.topic_settings
            .iter()
            .find(|(p, _)| p.matches(topic).is_some())
            .map(|(_, s)| *s)
            .unwrap_or_default()
    }

    pub(crate) fn local_user_conns(&self, user: &str) -> Vec<Arc<ConnShared>> {
        self.users.shard(user).read().get(user).cloned().unwrap_or_default()
    }

    pub(crate) fn add_local_user(&self, user: &Arc<str>, conn: &Arc<ConnShared>) {
        self.users.shard(user).write().entry(user.clone()).or_default().push(conn.clone());
    }

    pub(crate) fn remove_local_user(&self, user: &str, conn: &str) {
        let mut shard = self.users.shard(user).write();
        if let Some(list) = shard.get_mut(user) {
            list.retain(|c| &*c.id != conn);
            if list.is_empty() {
                shard.remove(user);
            }
        }
    }

    /// Sends a frame to every local connection passing `keep`; returns how many were reached.
    pub(crate) fn deliver_local(&self, frame: &SharedFrame, keep: impl Fn(&ConnShared) -> bool) -> usize {
        let mut reached = 0;
        for shard in self.conns.shards() {
            let conns: Vec<_> = shard.read().values().filter(|c| keep(c)).cloned().collect();
            for conn in conns {
                if frame.push_to(&conn).is_ok() {
                    reached += 1;
                }
            }
        }
        reached
    }

    /// Sends a message to other nodes; a failure is returned to the caller, never dropped.
    pub(crate) async fn to_nodes(&self, to: Option<&str>, msg: &NodeMsg) -> Result<(), HubError> {
        let bytes = msg.encode();
        let to: Option<NodeId> = to.map(Arc::from);
        self.backends.broker.send(&self.node, to.as_ref(), bytes).await.map_err(|e| match e {
            switchboard_core::BackendError::NoSuchNode => HubError::NotFound,
            e => HubError::Backend(e.to_string()),
        })
    }

    pub(crate) async fn close_conns(&self, conns: &[ConnRef], code: CloseCode, reason: &str) {
        for c in conns {
            if c.node == self.node {
                if let Some(conn) = self.local(&c.conn) {
                    conn.close(code, reason, true);
                }
            } else {
                let msg =
                    NodeMsg::CloseConn { conn: c.conn.to_string(), code: code.0, reason: reason.to_owned() };
                if let Err(e) = self.to_nodes(Some(&c.node), &msg).await {
                    tracing::warn!(error = %e, conn = %c.conn, "could not reach the node of a connection to close");
                }
            }
        }
    }
}

/// Why a hub operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The payload could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// A backend (broker, history, presence, users) failed: the operation did not happen or
    /// did not reach every node.
    #[error("backend: {0}")]
    Backend(String),
    /// The topic name is not valid.
    #[error("invalid topic: {0}")]
    Topic(String),
    /// No such connection.
    #[error("no such connection")]
    NotFound,
}

impl From<HubError> for Error {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Encode(_) => Error::bad_request("the payload cannot be encoded"),
            HubError::Backend(_) => Error::unavailable("the operation could not be completed"),
            HubError::Topic(m) => Error::bad_request(m),
            HubError::NotFound => Error::not_found("no such connection"),
        }
    }
}

/// A cheap, cloneable handle to the server, usable anywhere in the application: send to
/// connections, users or everyone, make requests to clients, publish, kick, read the registry.
///
/// Everything it does holds across the nodes of a cluster (the backends carry it).
///
/// ```no_run
/// # async fn demo(hub: switchboard::Hub) -> Result<(), switchboard::HubError> {
/// let reached = hub.send_to_user("ada", "notice", &"you have mail").await?;
/// hub.broadcast("tick", &42, None).await?;
/// let seq = hub.publish("chat/lobby", Some("news"), &"hello").await?;
/// hub.disconnect_user("mallory", switchboard::CloseCode::KICKED, "banned").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("node", &self.inner.node).finish_non_exhaustive()
    }
}

fn frame<T: Serialize + ?Sized>(kind: &str, payload: &T) -> Result<SharedFrame, HubError> {
    let payload = RawPayload::json(payload).map_err(|e| HubError::Encode(e.to_string()))?;
    Ok(SharedFrame::new(kind, payload))
}

impl Hub {
    /// This server's node id.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// A local connection by id.
    #[must_use]
    pub fn conn(&self, id: &str) -> Option<Conn> {
        self.inner.local(id).map(Conn)
    }

    /// Sends the event `[kind, payload]` to one connection, wherever it is. Returns 1 if it was
    /// queued (locally) or handed to its node, 0 if no such connection is known.
    ///
    /// # Errors
    /// [`HubError`] when encoding or the broker fails.
    pub async fn send_to_conn<T: Serialize + ?Sized>(
        &self,
        conn: &str,
        kind: &str,
        payload: &T,
    ) -> Result<usize, HubError> {
        let frame = frame(kind, payload)?;
        if let Some(c) = self.inner.local(conn) {
            return Ok(usize::from(frame.push_to(&c).is_ok()));
        }
        match HubInner::node_of(conn) {
            Some(node) if node != &*self.inner.node => {
                let msg =
                    NodeMsg::ToConn { conn: conn.to_owned(), kind: kind.to_owned(), payload: frame.payload };
                match self.inner.to_nodes(Some(node), &msg).await {
                    Ok(()) => Ok(1),
                    Err(HubError::NotFound) => Ok(0),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(0),
        }
    }

    /// Sends the event `[kind, payload]` to every connection of `user`, on every node.
    /// Returns how many connections it reached.
    ///
    /// # Errors
    /// [`HubError`] when encoding or a backend fails.
    pub async fn send_to_user<T: Serialize + ?Sized>(
        &self,
        user: &str,
        kind: &str,
        payload: &T,
    ) -> Result<usize, HubError> {
        let frame = frame(kind, payload)?;
        self.send_frame_to_user(user, &frame).await
    }

    pub(crate) async fn send_frame_to_user(
        &self,
        user: &str,
        frame: &SharedFrame,
    ) -> Result<usize, HubError> {
        // How many are elsewhere; from an in-memory registry at once (no future, no list).
        let users = &self.inner.backends.users;
        let remote = match users.remote_count_now(user, &self.inner.node) {
            Some(remote) => remote,
            None => self.user_connections(user).await?.iter().filter(|c| c.node != self.inner.node).count(),
        };
        // Under the shard's read lock: pushing only queues, no clone of the list.
        let mut reached = self
            .inner
            .users
            .shard(user)
            .read()
            .get(user)
            .map_or(0, |local| local.iter().filter(|c| frame.push_to(c).is_ok()).count());
        if remote > 0 {
            let msg = NodeMsg::ToUser {
                user: user.to_owned(),
                kind: frame.kind.clone(),
                payload: frame.payload.clone(),
            };
            self.inner.to_nodes(None, &msg).await?;
            reached += remote;
        }
        Ok(reached)
    }

    /// Sends the event `[kind, payload]` to every identified connection on every node, except
    /// `except` (a connection id). Returns how many local connections it reached.
    ///
    /// # Errors
    /// [`HubError`] when encoding or the broker fails.
    pub async fn broadcast<T: Serialize + ?Sized>(
        &self,
        kind: &str,
        payload: &T,
        except: Option<&str>,
    ) -> Result<usize, HubError> {
        let frame = frame(kind, payload)?;
        let reached =
            self.inner.deliver_local(&frame, |c| except != Some(&*c.id) && c.identity.read().is_some());
        let msg = NodeMsg::Broadcast {
            kind: kind.to_owned(),
            payload: frame.payload.clone(),
            except: except.map(str::to_owned),
        };
        self.inner.to_nodes(None, &msg).await?;
        Ok(reached)
    }

    /// Sends the request `[kind, payload, id]` to a connection and waits for its answer.
    ///
    /// # Errors
    /// [`RequestError`]: the client's error, a timeout, a disconnection, or no such connection.
    pub async fn request<T: Serialize + ?Sized>(
        &self,
        conn: &str,
        kind: &str,
        payload: &T,
        timeout: Duration,
    ) -> Result<RawPayload, RequestError> {
        if let Some(c) = self.inner.local(conn) {
            return Conn(c).request(kind, payload).timeout(timeout).await;
        }
        let Some(node) = HubInner::node_of(conn).filter(|n| *n != &*self.inner.node) else {
            return Err(RequestError::NotFound);
        };
        let payload = RawPayload::json(payload).map_err(|e| RequestError::Backend(e.to_string()))?;
        crate::cluster::relay_request(&self.inner, node, conn, kind, payload, timeout).await
    }

    /// Closes every connection of `user`, on every node, with `code` (e.g. 4503, kicked).
    /// Returns how many connections were closed.
    ///
    /// # Errors
    /// [`HubError::Backend`] when the registry or the broker fails.
    pub async fn disconnect_user(
        &self,
        user: &str,
        code: CloseCode,
        reason: &str,
    ) -> Result<usize, HubError> {
        let all = self.user_connections(user).await?;
        let local = self.inner.local_user_conns(user);
        for c in &local {
            c.close(code, reason, true);
        }
        let remote = all.iter().filter(|c| c.node != self.inner.node).count();
        if remote > 0 {
            let msg = NodeMsg::CloseUser { user: user.to_owned(), code: code.0, reason: reason.to_owned() };
            self.inner.to_nodes(None, &msg).await?;
        }
        Ok(local.len() + remote)
    }

    /// A user's connections across the cluster, oldest first (read-only view of the registry).
    ///
    /// # Errors
    /// [`HubError::Backend`] when the registry fails.
    pub async fn user_connections(&self, user: &str) -> Result<Vec<ConnRef>, HubError> {
        self.inner.backends.users.connections(user).await.map_err(|e| HubError::Backend(e.to_string()))
    }

    /// The users with a connection on this node, and how many each has.
    #[must_use]
    pub fn local_users(&self) -> Vec<(Arc<str>, usize)> {
        self.inner
            .users
            .shards()
            .iter()
            .flat_map(|s| s.read().iter().map(|(u, c)| (u.clone(), c.len())).collect::<Vec<_>>())
            .collect()
    }

    /// How many connections this node holds.
    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.inner.conns.len()
    }

    /// Publishes to a topic (server-side: no permission check) and returns its sequence number.
    ///
    /// # Errors
    /// [`HubError`] when the topic is invalid, the payload does not encode, or a backend fails
    /// (the publication then did not happen).
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        event: Option<&str>,
        data: &T,
    ) -> Result<u64, HubError> {
        let topic = Topic::new(topic).map_err(|e| HubError::Topic(e.to_string()))?;
        let data = RawPayload::json(data).map_err(|e| HubError::Encode(e.to_string()))?;
        crate::fanout::publish(&self.inner, &topic, event.map(str::to_owned), data, None, None).await
    }

    /// Puts a local connection into a topic (a group), without permission checks.
    ///
    /// # Errors
    /// [`HubError`] when the connection is unknown, the topic invalid or a backend fails.
    pub async fn join(&self, conn: &str, topic: &str) -> Result<(), HubError> {
        let topic = Topic::new(topic).map_err(|e| HubError::Topic(e.to_string()))?;
        let conn = self.inner.local(conn).ok_or(HubError::NotFound)?;
        crate::fanout::subscribe(&self.inner, &conn, &topic, None, None)
            .await
            .map(|_| ())
            .map_err(|e| HubError::Backend(e.message().to_owned()))
    }

    /// Takes a local connection out of a topic.
    ///
    /// # Errors
    /// [`HubError::NotFound`] when the connection is unknown.
    pub async fn leave(&self, conn: &str, topic: &str) -> Result<bool, HubError> {
        let conn = self.inner.local(conn).ok_or(HubError::NotFound)?;
        Ok(crate::fanout::unsubscribe(&self.inner, &conn, topic).await)
    }

    /// Counters of this node, for metrics ([`Hub::cluster_stats`] adds up every node).
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.inner.stats_now()
    }

    /// Who is present in a topic (where presence is on), across the cluster.
    ///
    /// # Errors
    /// [`HubError::Backend`] when the presence backend fails.
    pub async fn presence(&self, topic: &str) -> Result<Vec<switchboard_protocol::wire::Peer>, HubError> {
        crate::presence::list(&self.inner, topic).await.map_err(|e| HubError::Backend(e.message().to_owned()))
    }

    /// The directory: available connections with an alias, across the cluster.
    ///
    /// # Errors
    /// [`HubError::Backend`] when the presence backend fails.
    pub async fn directory(&self) -> Result<Vec<switchboard_protocol::wire::Peer>, HubError> {
        self.presence(crate::presence::DIRECTORY).await
    }

    /// Sizes of the internal registries (connections, users, topics with local subscribers,
    /// pending timers): what a leak test checks goes back to zero.
    #[must_use]
    pub fn registry_sizes(&self) -> RegistrySizes {
        RegistrySizes {
            connections: self.inner.conns.len(),
            users: self.inner.users.len(),
            topics: self.inner.topics.len(),
            timers: self.inner.timers.len(),
        }
    }

    /// Sends `[kind, payload, id]` to a connection, on any node, as an acknowledged delivery:
    /// resent with the same id every [`Config::ack_timeout`], at most [`Config::max_resends`]
    /// times, until the client answers `~ok`. The connection's own node keeps the delivery.
    ///
    /// ```
    /// # async fn demo(hub: switchboard::Hub, conn: &str) -> Result<(), switchboard::HubError> {
    /// hub.send_acked(conn, "invoice", &serde_json::json!({"id": 7})).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`HubError::NotFound`] when no node has the connection (for one on another node: when
    /// that node is gone; a connection that just closed there is not reported);
    /// [`HubError::Encode`]; [`HubError::Backend`].
    pub async fn send_acked<T: Serialize + ?Sized>(
        &self,
        conn: &str,
        kind: &str,
        payload: &T,
    ) -> Result<(), HubError> {
        if let Some(c) = self.inner.local(conn) {
            let payload =
                RawPayload::encode(c.format, payload).map_err(|e| HubError::Encode(e.to_string()))?;
            crate::housekeeping::send_acked(&self.inner, &c, kind, &payload);
            return Ok(());
        }
        match HubInner::node_of(conn) {
            Some(node) if node != &*self.inner.node => {
                let payload = RawPayload::json(payload).map_err(|e| HubError::Encode(e.to_string()))?;
                let msg = NodeMsg::ToConnAcked { conn: conn.to_owned(), kind: kind.to_owned(), payload };
                self.inner.to_nodes(Some(node), &msg).await
            }
            _ => Err(HubError::NotFound),
        }
    }
}

/// Counters of one node ([`Hub::stats`]); also the totals of [`ClusterStats`](crate::ClusterStats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Connections open now.
    pub connections: usize,
    /// Users with a connection now.
    pub users: usize,
    /// Topics with a local subscriber now.
    pub topics: usize,
    /// Messages received since start.
    pub messages_in: u64,
    /// Messages sent since start.
    pub messages_out: u64,
    /// Bytes of messages received since start.
    pub bytes_in: u64,
    /// Bytes of messages sent since start.
    pub bytes_out: u64,
    /// Connections closed as slow consumers (4002) since start.
    pub slow_consumers: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Time since start.
    #[serde(skip)]
    pub uptime: Duration,
}

/// Sizes of the hub's registries ([`Hub::registry_sizes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RegistrySizes {
    /// Local connections.
    pub connections: usize,
    /// Users with a local connection.
    pub users: usize,
    /// Topics with a local subscriber.
    pub topics: usize,
    /// Pending identification deadlines and acknowledgement resends.
    pub timers: usize,
}
