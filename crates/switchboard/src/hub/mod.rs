//! The hub: this node's connections, users and topics, and what ties it to the other nodes of
//! a cluster; [`Hub`] is the handle the application uses to reach them from anywhere.
//!
//! Order inside (each file uses only those before it): `hooks` · `events` (lifecycle events'
//! state) · `registry` · `timers` · `link` (messages to other nodes) ·
//! `topics::{settings, record, sequencer, table}` ← `core` (the state, one owner per piece) ←
//! `lifecycle` (emitting and delivering lifecycle events) ← `acked` ←
//! `topics::{deliver, publish, subscribe}` ←
//! `presence` ← `membership` ← `stats` ← `inbound` (what other nodes say) ← `sweeper` ·
//! `watch` (liveness of the nodes, positions of the topics) ← this file, the facade. Knows nothing of namespaces, handlers or sessions.

pub(crate) mod acked;
pub(crate) mod core;
pub(crate) mod events;
pub(crate) mod hooks;
pub(crate) mod inbound;
pub(crate) mod lifecycle;
pub(crate) mod link;
pub(crate) mod membership;
pub(crate) mod presence;
pub(crate) mod registry;
pub(crate) mod stats;
pub(crate) mod sweeper;
pub(crate) mod timers;
pub(crate) mod topics;
pub(crate) mod watch;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use switchboard_core::ConnRef;
use switchboard_protocol::{CloseCode, RawPayload, Topic, wire};

use self::acked::send_acked;
use self::core::{Core, HistorySpan, Parts};
use self::inbound::{NodeSink, broadcast_local};
use self::link::{ConnOp, NodeMsg};
use self::registry::Registry;
use self::stats::{ClusterStats, NODES, NodeHealth, RegistrySizes, Stats};
use self::topics::history::{self, HistoryQuery};
use self::topics::publish::{Publication, PublishOptions, publish};
use crate::conn::Conn;
use crate::error::{BuildError, HubError, RequestError};
use crate::outbound::frame::SharedFrame;

fn frame<T: Serialize + ?Sized>(kind: &str, payload: &T) -> Result<SharedFrame, HubError> {
    let payload = RawPayload::json(payload).map_err(|e| HubError::Encode(e.to_string()))?;
    Ok(SharedFrame::new(kind, payload))
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
    core: Arc<Core>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("node", &self.core.node).finish_non_exhaustive()
    }
}

impl Hub {
    /// Starts a hub: joins the cluster (the broker, the list of nodes) and starts the sweeper.
    pub(crate) async fn start(parts: Parts) -> Result<Self, BuildError> {
        let core = Core::new(parts);
        core.backends
            .broker
            .attach(core.node.clone(), Arc::new(NodeSink(Arc::downgrade(&core))))
            .await
            .map_err(|e| BuildError::Backend(e.to_string()))?;
        core.backends
            .presence
            .join(NODES, &core.node, bytes::Bytes::from_static(b"{}"))
            .await
            .map_err(|e| BuildError::Backend(e.to_string()))?;
        tokio::spawn(sweeper::run(Arc::downgrade(&core)));
        tokio::spawn(watch::liveness(Arc::downgrade(&core)));
        tokio::spawn(watch::positions(Arc::downgrade(&core)));
        lifecycle::start(&core);
        Ok(Self { core })
    }

    /// Leaves the cluster (after every connection closed).
    pub(crate) async fn stop(&self) {
        let core = &self.core;
        lifecycle::stop(core).await;
        let _ = core.backends.presence.leave(NODES, &core.node).await;
        let _ = core.backends.broker.detach(&core.node).await;
    }

    /// The hub's state, for the layers above.
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// This server's node id.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.core.node
    }

    /// A local connection by id.
    #[must_use]
    pub fn conn(&self, id: &str) -> Option<Conn> {
        self.core.local(id).map(Conn)
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
        if let Some(c) = self.core.local(conn) {
            return Ok(usize::from(c.push_frame(&frame).is_ok()));
        }
        match Registry::node_of(conn) {
            Some(node) if node != &*self.core.node => {
                let msg =
                    NodeMsg::ToConn { conn: conn.to_owned(), kind: kind.to_owned(), payload: frame.payload };
                match self.core.link.send(Some(node), &msg).await {
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
        let core = &self.core;
        let users = &core.backends.users;
        let remote = match users.remote_count_now(user, &core.node) {
            Some(remote) => remote,
            None => self.user_connections(user).await?.iter().filter(|c| c.node != core.node).count(),
        };
        // Under the shard's read lock: pushing only queues, no clone of the list.
        let mut reached = core.registry.count_user_conns(user, |c| c.push_frame(frame).is_ok());
        if remote > 0 {
            let msg = NodeMsg::ToUser {
                user: user.to_owned(),
                kind: frame.kind.clone(),
                payload: frame.payload.clone(),
            };
            core.link.send(None, &msg).await?;
            reached += remote;
        }
        Ok(reached)
    }

    /// Sends the event `[kind, payload]` to every identified connection on every node, except
    /// `except` (a connection id). Returns how many connections it reached, on this node and on
    /// every other running node that answered within two seconds (a node that did not is
    /// counted as 0; it still delivers).
    ///
    /// # Errors
    /// [`HubError`] when encoding fails or the list of nodes cannot be read.
    pub async fn broadcast<T: Serialize + ?Sized>(
        &self,
        kind: &str,
        payload: &T,
        except: Option<&str>,
    ) -> Result<usize, HubError> {
        let frame = frame(kind, payload)?;
        let core = &self.core;
        let reached = broadcast_local(&core.registry, &frame, except);
        let listed =
            core.backends.presence.list(NODES).await.map_err(|e| HubError::Backend(e.to_string()))?;
        let others = listed.into_iter().map(|e| e.conn).filter(|n| **n != *core.node);
        let asks = others.map(|node| {
            let (kind, payload) = (kind.to_owned(), frame.payload.clone());
            let except = except.map(str::to_owned);
            async move {
                let make = |from: String, req: u64| NodeMsg::Broadcast {
                    kind,
                    payload,
                    except,
                    ask: Some((from, req)),
                };
                match core.link.ask(&node, make, stats::GATHER_TIMEOUT).await {
                    Ok(reached) => reached.decode::<usize>().unwrap_or(0),
                    Err(e) => {
                        tracing::debug!(node, error = %e, "a node did not report its broadcast");
                        0
                    }
                }
            }
        });
        Ok(reached + futures_util::future::join_all(asks).await.into_iter().sum::<usize>())
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
        if let Some(c) = self.core.local(conn) {
            return Conn(c).request(kind, payload).timeout(timeout).await;
        }
        let Some(node) = Registry::node_of(conn).filter(|n| *n != &*self.core.node) else {
            return Err(RequestError::NotFound);
        };
        let payload = RawPayload::json(payload).map_err(|e| RequestError::Backend(e.to_string()))?;
        self.core.link.relay_request(node, conn, kind, payload, timeout).await
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
        let local = self.core.registry.user_conns(user);
        for c in &local {
            c.close(code, reason, true);
        }
        let remote = all.iter().filter(|c| c.node != self.core.node).count();
        if remote > 0 {
            let msg = NodeMsg::CloseUser { user: user.to_owned(), code: code.0, reason: reason.to_owned() };
            self.core.link.send(None, &msg).await?;
        }
        Ok(local.len() + remote)
    }

    /// A user's connections across the cluster, oldest first (read-only view of the registry).
    ///
    /// # Errors
    /// [`HubError::Backend`] when the registry fails.
    pub async fn user_connections(&self, user: &str) -> Result<Vec<ConnRef>, HubError> {
        self.core.backends.users.connections(user).await.map_err(|e| HubError::Backend(e.to_string()))
    }

    /// The users with a connection on this node, and how many each has.
    #[must_use]
    pub fn local_users(&self) -> Vec<(Arc<str>, usize)> {
        self.core.registry.users()
    }

    /// How many connections this node holds.
    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.core.registry.len()
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
        let options = PublishOptions { event: event.map(str::to_owned), key: None };
        self.publish_with(topic, data, options).await
    }

    /// [`Hub::publish`] with options: an event name, and an idempotency key that makes a retry
    /// safe (a publication whose key the topic's kept history has already seen is not published
    /// again; the answer is the first one's sequence number).
    ///
    /// ```no_run
    /// # async fn demo(hub: switchboard::Hub) -> Result<(), switchboard::HubError> {
    /// use switchboard::PublishOptions;
    /// let options = PublishOptions::new().event("order").key("order-7731");
    /// let seq = hub.publish_with("orders/eu", &serde_json::json!({"id": 7731}), options.clone()).await?;
    /// // A retry after a lost answer: not published twice.
    /// assert_eq!(hub.publish_with("orders/eu", &serde_json::json!({"id": 7731}), options).await?, seq);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Hub::publish`]; [`HubError::Invalid`] for a key over 64 bytes or an invalid event name.
    pub async fn publish_with<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
        options: PublishOptions,
    ) -> Result<u64, HubError> {
        let topic = Topic::new(topic).map_err(|e| HubError::Topic(e.to_string()))?;
        options.check()?;
        let data = RawPayload::json(data).map_err(|e| HubError::Encode(e.to_string()))?;
        let PublishOptions { event, key } = options;
        let publication = Publication { event, data, from: None, skip: None, key: key.as_deref() };
        publish(&self.core, &topic, publication).await
    }

    /// Reads a topic's retained publications without subscribing (oldest first), as `~history`
    /// does, without permission checks.
    ///
    /// ```no_run
    /// # async fn demo(hub: switchboard::Hub) -> Result<(), switchboard::HubError> {
    /// let recent = hub.history("chat/lobby", switchboard::HistoryQuery::new().limit(20)).await?;
    /// for p in &recent.publications {
    ///     println!("{} {:?}", p.seq, p.data);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`HubError::Topic`] for an invalid name, [`HubError::NoHistory`] where the topic keeps no
    /// history, [`HubError::Invalid`] for a limit of 0, [`HubError::Backend`].
    pub async fn history(&self, topic: &str, query: HistoryQuery) -> Result<wire::HistoryReply, HubError> {
        let topic = Topic::new(topic).map_err(|e| HubError::Topic(e.to_string()))?;
        history::read(&self.core, &topic, query).await
    }

    /// Puts a connection, on any node, into a topic (a group), without permission checks.
    ///
    /// # Errors
    /// [`HubError::NotFound`] when no node has the connection, [`HubError::Topic`] for an
    /// invalid name, [`HubError::Backend`] when a backend or the connection's node fails.
    pub async fn join(&self, conn: &str, topic: &str) -> Result<(), HubError> {
        let topic = Topic::new(topic).map_err(|e| HubError::Topic(e.to_string()))?;
        let Some(local) = self.core.local(conn) else {
            let op = ConnOp::Join { topic: topic.to_string() };
            return self.on_remote(conn, op).await.map(|_| ());
        };
        membership::join(&self.core, &local, &topic, None, None)
            .await
            .map(|_| ())
            .map_err(|e| HubError::Backend(e.message().to_owned()))
    }

    /// Takes a connection, on any node, out of a topic; whether it was in.
    ///
    /// # Errors
    /// [`HubError::NotFound`] when no node has the connection, [`HubError::Backend`] when its
    /// node does not answer.
    pub async fn leave(&self, conn: &str, topic: &str) -> Result<bool, HubError> {
        let Some(local) = self.core.local(conn) else {
            let was = self.on_remote(conn, ConnOp::Leave { topic: topic.to_owned() }).await?;
            return Ok(was.decode::<bool>().unwrap_or(false));
        };
        membership::leave(&self.core, &local, topic)
            .await
            .map_err(|e| HubError::Backend(e.message().to_owned()))
    }

    /// Asks the node of `conn` (another one) to do `op` with it.
    async fn on_remote(&self, conn: &str, op: ConnOp) -> Result<RawPayload, HubError> {
        let node = Registry::node_of(conn).filter(|n| *n != &*self.core.node).ok_or(HubError::NotFound)?;
        self.core.link.on_conn(node, conn, op).await.map_err(|e| match e {
            RequestError::NotFound => HubError::NotFound,
            RequestError::Remote(body) => HubError::Backend(body.message),
            e => HubError::Backend(e.to_string()),
        })
    }

    /// Counters of this node, for metrics ([`Hub::cluster_stats`] adds up every node).
    #[must_use]
    pub fn stats(&self) -> Stats {
        stats::stats_now(&self.core)
    }

    /// How this node sees its cluster: its broker connection, the dead nodes it cleaned up
    /// after, the publications it missed (filled from history, or signalled). For metrics.
    ///
    /// ```
    /// # fn demo(hub: switchboard::Hub) {
    /// let health = hub.health();
    /// println!("broker up: {}, outages: {}", health.broker_up, health.broker_outages);
    /// # }
    /// ```
    #[must_use]
    pub fn health(&self) -> NodeHealth {
        stats::health_now(&self.core)
    }

    /// Counts of this node's lifecycle events: emitted, appended to the log, delivered, retried,
    /// refused by the sink, lost (all zero when no lifecycle events are configured).
    ///
    /// ```
    /// # fn demo(hub: switchboard::Hub) {
    /// let events = hub.event_stats();
    /// println!("delivered {} (retried {} times)", events.delivered, events.retries);
    /// # }
    /// ```
    #[must_use]
    pub fn event_stats(&self) -> events::EventStats {
        self.core.events.as_ref().map(events::Events::stats).unwrap_or_default()
    }

    /// How long a gap each topic class's history can bridge (its size over the highest
    /// publication rate among the class's topics this node has subscribers of), measured by the
    /// position checks. An outage longer than that loses publications for good (signalled).
    ///
    /// ```
    /// # fn demo(hub: switchboard::Hub) {
    /// for span in hub.history_spans() {
    ///     println!("{}: {:.0} s of history", span.pattern, span.seconds);
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn history_spans(&self) -> Vec<HistorySpan> {
        self.core.health.spans.lock().clone()
    }

    /// Who is present in a topic (where presence is on), across the cluster.
    ///
    /// # Errors
    /// [`HubError::Backend`] when the presence backend fails.
    pub async fn presence(&self, topic: &str) -> Result<Vec<switchboard_protocol::wire::Peer>, HubError> {
        presence::list(&self.core, topic).await.map_err(|e| HubError::Backend(e.message().to_owned()))
    }

    /// The directory: available connections with an alias, across the cluster.
    ///
    /// # Errors
    /// [`HubError::Backend`] when the presence backend fails.
    pub async fn directory(&self) -> Result<Vec<switchboard_protocol::wire::Peer>, HubError> {
        self.presence(presence::DIRECTORY).await
    }

    /// Sizes of the internal registries (connections, users, topics with local subscribers,
    /// pending timers): what a leak test checks goes back to zero.
    #[must_use]
    pub fn registry_sizes(&self) -> RegistrySizes {
        let core = &self.core;
        RegistrySizes {
            connections: core.registry.len(),
            users: core.registry.users_len(),
            topics: core.topics.len(),
            timers: core.timers.len(),
        }
    }

    /// Sends `[kind, payload, id]` to a connection, on any node, as an acknowledged delivery:
    /// resent with the same id every [`Config::ack_timeout`](crate::Config::ack_timeout), at most [`Config::max_resends`](crate::Config::max_resends)
    /// times, until the client answers `~ok`. The connection's own node keeps the delivery.
    ///
    /// ```
    /// # async fn demo(hub: switchboard::Hub, conn: &str) -> Result<(), switchboard::HubError> {
    /// hub.send_acked(conn, "invoice", &serde_json::json!({"id": 7})).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`HubError::NotFound`] when no node has the connection (asked of its node, as on one
    /// node); [`HubError::Encode`]; [`HubError::Backend`].
    pub async fn send_acked<T: Serialize + ?Sized>(
        &self,
        conn: &str,
        kind: &str,
        payload: &T,
    ) -> Result<(), HubError> {
        if let Some(c) = self.core.local(conn) {
            let payload =
                RawPayload::encode(c.format, payload).map_err(|e| HubError::Encode(e.to_string()))?;
            send_acked(&self.core, &c, kind, &payload);
            return Ok(());
        }
        let payload = RawPayload::json(payload).map_err(|e| HubError::Encode(e.to_string()))?;
        self.on_remote(conn, ConnOp::Acked { kind: kind.to_owned(), payload }).await.map(|_| ())
    }

    /// Statistics of the whole cluster: this node's and every other running node's, added up.
    ///
    /// On a single node this costs no backend call beyond listing the nodes. Nodes that do not
    /// answer within two seconds are named in [`ClusterStats::unreachable`].
    ///
    /// ```
    /// # async fn demo(hub: switchboard::Hub) -> Result<(), switchboard::HubError> {
    /// let stats = hub.cluster_stats().await?;
    /// println!("{} connections on {} nodes", stats.totals.connections, stats.nodes.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`HubError::Backend`] when the list of nodes cannot be read.
    pub async fn cluster_stats(&self) -> Result<ClusterStats, HubError> {
        stats::cluster_stats(&self.core).await
    }
}
