//! [`Broker`] on Redis pub/sub (one Redis) or sharded pub/sub (Redis Cluster).
//!
//! Channels: `{prefix}:t:{topic}` per topic (subscribed while some attached node has a local
//! subscriber), `{prefix}:n:{node}` per attached node, `{prefix}:b` for broadcasts. A message is
//! `[u16 sender length][sender node id][body]`, so that a node never hears itself.
//!
//! One Redis: one task owns the pub/sub connection: it reads messages and calls the sinks in
//! arrival order, pings the connection, and on loss reconnects (with backoff) and subscribes
//! again to every channel in `State::routes`, the set of channels the nodes want.
//!
//! Redis Cluster: `SSUBSCRIBE`/`SPUBLISH`, so that a channel lives on the master of its slot and a
//! publication crosses only that master. The subscriptions go through one RESP3 cluster
//! connection whose pushes arrive on one channel, read by one task in arrival order. The client
//! library resubscribes a node's channels when it reconnects to it; on top of that a maintenance
//! task compares the channels wanted with the ones Redis confirmed (`ssubscribe`/`sunsubscribe`
//! pushes) and subscribes again what is missing — a subscription that failed, or that a master
//! dropped because its slot moved — and, once per heartbeat interval, subscribes again to every
//! wanted channel (idempotent; it repairs losses nobody reported) and pings every master.
//!
//! Publishing: on one Redis a writer task sends what publishers queued as one pipeline per
//! round trip (`write`); on a cluster each publication is a request on the cluster connection,
//! which pipelines concurrent requests to each master.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::PushKind;
use redis::aio::PubSubSink;
use redis::cluster_async::ClusterConnection;
use switchboard_core::{BackendError, BackendFuture, Beat, Broker, BrokerSink, NodeId};

use crate::conn::Target;
use crate::core::{Core, Keys, NodeState, read_failure, unavailable};
use crate::{ConnectError, scripts};

/// How long a cleaned-up node's tombstone lives (a later beat learns it was cleaned up), and
/// how long a beat's verdict is kept for the retry of a beat whose answer was lost.
const TOMBSTONE: Duration = Duration::from_secs(600);

pub(crate) struct RedisBroker {
    shared: Arc<Shared>,
    core: Arc<Core>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// One Redis: publications and node messages for the writer task. Cluster: `None`, each
    /// is its own request (see `write`).
    outgoing: Option<tokio::sync::mpsc::UnboundedSender<Outgoing>>,
    /// The nodes this process beats for.
    beats: Mutex<HashMap<NodeId, Beats>>,
}

/// What this process knows of its beats for one node.
#[derive(Default)]
struct Beats {
    /// A beat was answered (later ones are not first beats).
    answered: bool,
    /// The token of the last beat whose answer was lost (it may have run: the next beat asks
    /// for its verdict too).
    lost: Option<String>,
}

/// One message for the writer: channel, framed payload, and where its receiver count goes.
struct Outgoing {
    channel: Vec<u8>,
    payload: Bytes,
    done: tokio::sync::oneshot::Sender<Result<i64, BackendError>>,
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How subscriptions reach Redis.
#[allow(clippy::large_enum_variant)] // One per process (a TLS-capable client is large): no matter.
enum Mode {
    /// A dedicated pub/sub connection (`SUBSCRIBE`), driven by `drive`.
    Single(redis::Client),
    /// A RESP3 cluster connection (`SSUBSCRIBE`); pushes are read by `drive_cluster`.
    Cluster(ClusterConnection),
}

struct Shared {
    mode: Mode,
    keys: Keys,
    timeout: Duration,
    connect_timeout: Duration,
    ping_every: Duration,
    state: Mutex<State>,
    /// Serializes SUBSCRIBE/UNSUBSCRIBE traffic (and the resubscription after a reconnect), so
    /// that the subscriptions in Redis follow the order of the calls.
    commands: tokio::sync::Mutex<()>,
    /// Whether the pub/sub connection is up.
    up: tokio::sync::watch::Sender<bool>,
    /// Wakes the cluster maintenance task (a subscription was lost).
    kick: tokio::sync::Notify,
    /// Cluster: how many times subscriptions were lost (a connection to a master dropped, or a
    /// master dropped a wanted channel); the maintenance task tells the sinks once it subscribed
    /// again to every wanted channel after the last loss.
    losses: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The current pub/sub connection (`None` while reconnecting).
    sink: Option<PubSubSink>,
    nodes: HashMap<NodeId, Arc<dyn BrokerSink>>,
    /// Topic → attached nodes with local subscribers.
    topics: HashMap<Arc<str>, HashSet<NodeId>>,
    /// The channels wanted, and what arrives on each.
    routes: HashMap<Vec<u8>, Route>,
    /// Cluster: the channels Redis confirmed a subscription to (and did not drop since).
    confirmed: HashSet<Vec<u8>>,
}

#[derive(Clone)]
enum Route {
    Topic(Arc<str>),
    Node(NodeId),
    Broadcast,
}

fn down() -> BackendError {
    BackendError::Unavailable("redis: the pub/sub connection is down".to_owned())
}

fn frame(from: &str, body: &[u8]) -> Bytes {
    let from = &from.as_bytes()[..from.len().min(usize::from(u16::MAX))];
    let mut b = BytesMut::with_capacity(2 + from.len() + body.len());
    b.put_u16(u16::try_from(from.len()).unwrap_or(u16::MAX));
    b.extend_from_slice(from);
    b.extend_from_slice(body);
    b.freeze()
}

fn unframe(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = usize::from(u16::from_be_bytes(payload.get(..2)?.try_into().ok()?));
    let from = payload.get(2..2 + len)?;
    Some((from, &payload[2 + len..]))
}

impl RedisBroker {
    pub(crate) async fn start(target: &Target, core: Arc<Core>) -> Result<Self, ConnectError> {
        let (up, mut watch) = tokio::sync::watch::channel(false);
        let options = &core.options;
        let (mode, pushes) = match target {
            Target::Single(client) => (Mode::Single(client.clone()), None),
            Target::Cluster(seeds) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let client = Target::cluster_client(seeds, options, Some(tx))?;
                let conn = tokio::time::timeout(options.connect_timeout * 2, client.get_async_connection())
                    .await
                    .map_err(|_| ConnectError::Unreachable("timed out".to_owned()))?
                    .map_err(|e| ConnectError::Unreachable(e.to_string()))?;
                (Mode::Cluster(conn), Some(rx))
            }
        };
        let shared = Arc::new(Shared {
            mode,
            keys: core.keys.clone(),
            timeout: options.timeout,
            connect_timeout: options.connect_timeout,
            ping_every: options.heartbeat,
            state: Mutex::new(State::default()),
            commands: tokio::sync::Mutex::new(()),
            up,
            kick: tokio::sync::Notify::new(),
            losses: AtomicU64::new(0),
        });
        let tasks = match pushes {
            None => vec![tokio::spawn(drive(shared.clone()))],
            Some(pushes) => {
                shared.up.send_replace(true);
                vec![
                    tokio::spawn(drive_cluster(Arc::downgrade(&shared), pushes)),
                    tokio::spawn(maintain_cluster(Arc::downgrade(&shared))),
                ]
            }
        };
        let mut tasks = tasks;
        let outgoing = if target.is_cluster() {
            None
        } else {
            let (outgoing, queue) = tokio::sync::mpsc::unbounded_channel();
            tasks.push(tokio::spawn(write(core.clone(), queue)));
            Some(outgoing)
        };
        let broker = Self { shared, core, tasks, outgoing, beats: Mutex::new(HashMap::new()) };
        let wait = tokio::time::timeout(broker.shared.connect_timeout * 2, watch.wait_for(|up| *up)).await;
        match wait {
            Ok(Ok(_)) => Ok(broker),
            _ => Err(ConnectError::Unreachable("the pub/sub connection did not come up".to_owned())),
        }
    }

    /// SUBSCRIBE or UNSUBSCRIBE (SSUBSCRIBE or SUNSUBSCRIBE on a cluster) on the current
    /// connection (call with `commands` held).
    async fn command(&self, subscribe: bool, channels: Vec<Vec<u8>>) -> Result<(), BackendError> {
        if channels.is_empty() {
            return Ok(());
        }
        if let Mode::Cluster(conn) = &self.shared.mode {
            return cluster_command(&self.shared, conn, subscribe, &channels).await;
        }
        let sink = self.shared.state.lock().sink.clone();
        let Some(mut sink) = sink else {
            // Down: a wanted channel is subscribed on reconnection, an unwanted one is gone anyway.
            return if subscribe { Err(down()) } else { Ok(()) };
        };
        let call = async {
            if subscribe { sink.subscribe(&channels).await } else { sink.unsubscribe(&channels).await }
        };
        match tokio::time::timeout(self.shared.timeout, call).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(BackendError::Unavailable("redis: pub/sub command timed out".to_owned())),
        }
    }

    /// PUBLISH through the writer task (one Redis), or SPUBLISH on the cluster connection; the
    /// number of receivers.
    async fn publish_raw(&self, channel: Vec<u8>, payload: Bytes) -> Result<i64, BackendError> {
        let Some(outgoing) = &self.outgoing else {
            let mut cmd = redis::cmd("SPUBLISH");
            cmd.arg(channel).arg(&payload[..]);
            return self.core.query(&cmd).await;
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        outgoing
            .send(Outgoing { channel, payload, done })
            .map_err(|_| BackendError::Unavailable("redis: the broker is stopped".to_owned()))?;
        answer
            .await
            .unwrap_or_else(|_| Err(BackendError::Unavailable("redis: the broker is stopped".to_owned())))
    }
}

/// At most this many messages go into one batch.
const BATCH: usize = 512;

/// One Redis: the writer drains the queue into one pipeline per batch, sends it, answers every
/// caller, and takes the next batch. Under load batches grow by themselves (what queued during
/// one round trip is the next batch); a lone publisher pays one round trip per message, as it
/// awaits it. A caller's messages keep their order: it has one in flight at a time, and batches
/// go one after the other. Compared with one request per message on the multiplexed connection
/// (which pipelines concurrent requests too), `tests/throughput.rs` measured about the same with
/// 1 and 4 publishers and more with 16 (≈ 220 k/s against 130–210 k/s), on a noisy machine.
///
/// Not on a cluster: a pipeline must stay in one hash slot there, so publishers on different
/// topics gain nothing from batching, and a batch waiting for its slowest master measured about
/// half the throughput with 4 publishers; the cluster connection already pipelines concurrent
/// requests to each master.
async fn write(core: Arc<Core>, mut queue: tokio::sync::mpsc::UnboundedReceiver<Outgoing>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for out in &batch {
            pipe.cmd("PUBLISH").arg(&out.channel).arg(&out.payload[..]);
        }
        let mut conn = core.conn.clone();
        let result: Result<Vec<i64>, BackendError> = core.run(pipe.query_async(&mut conn)).await;
        match result {
            Ok(counts) if counts.len() == batch.len() => {
                for (out, count) in batch.drain(..).zip(counts) {
                    let _ = out.done.send(Ok(count));
                }
            }
            Ok(_) => {
                for out in batch.drain(..) {
                    let _ = out.done.send(Err(BackendError::Unavailable(
                        "redis: unexpected answer to a publish pipeline".to_owned(),
                    )));
                }
            }
            Err(e) => {
                for out in batch.drain(..) {
                    let _ = out.done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// SSUBSCRIBE / SUNSUBSCRIBE, one command per channel (channels of different slots may live on
/// different masters), all at once, so that a master that is down costs one timeout, not one per
/// channel. Every channel is tried; the first error is returned. A wanted channel that failed
/// stays wanted: the maintenance task subscribes to it later.
async fn cluster_command(
    shared: &Shared,
    conn: &ClusterConnection,
    subscribe: bool,
    channels: &[Vec<u8>],
) -> Result<(), BackendError> {
    let calls = channels.iter().map(|channel| {
        let mut conn = conn.clone();
        async move {
            let call = async {
                if subscribe { conn.ssubscribe(channel).await } else { conn.sunsubscribe(channel).await }
            };
            let result = match tokio::time::timeout(shared.timeout, call).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(unavailable(&e)),
                Err(_) => Err(BackendError::Unavailable("redis: pub/sub command timed out".to_owned())),
            };
            (channel, result)
        }
    });
    let mut first_error = Ok(());
    for (channel, result) in futures_util::future::join_all(calls).await {
        match result {
            Ok(()) => {
                let mut st = shared.state.lock();
                if subscribe {
                    st.confirmed.insert(channel.clone());
                } else {
                    st.confirmed.remove(channel);
                }
            }
            Err(e) => {
                if first_error.is_ok() {
                    first_error = Err(e);
                }
            }
        }
    }
    first_error
}

/// Cluster: reads the pushes (messages and subscription changes) in arrival order.
async fn drive_cluster(
    weak: std::sync::Weak<Shared>,
    mut pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
) {
    while let Some(push) = pushes.recv().await {
        let Some(shared) = weak.upgrade() else { return };
        let mut data = push.data.iter();
        let channel = match data.next() {
            Some(redis::Value::BulkString(c)) => Some(c.as_slice()),
            _ => None,
        };
        match (push.kind, channel) {
            (PushKind::SMessage, Some(channel)) => {
                if let Some(redis::Value::BulkString(payload)) = data.next() {
                    dispatch(&shared, channel, payload);
                }
            }
            (PushKind::SSubscribe, Some(channel)) => {
                shared.state.lock().confirmed.insert(channel.to_vec());
            }
            (PushKind::SUnsubscribe, Some(channel)) => {
                let wanted = {
                    let mut st = shared.state.lock();
                    st.confirmed.remove(channel);
                    st.routes.contains_key(channel)
                };
                if wanted {
                    // A master dropped it (its slot moved): subscribe again where it lives now.
                    tracing::debug!("redis sharded pub/sub: a wanted channel was unsubscribed by the server");
                    shared.losses.fetch_add(1, Ordering::AcqRel);
                    shared.kick.notify_one();
                }
            }
            (PushKind::Disconnection, _) => {
                // The client library resubscribes that node's channels when it reconnects; which
                // channels lived there is not told, so check them all once it is back.
                tracing::warn!("redis sharded pub/sub: a connection to a cluster node was lost");
                shared.state.lock().confirmed.clear();
                shared.losses.fetch_add(1, Ordering::AcqRel);
                disconnected(&shared);
                shared.kick.notify_one();
            }
            _ => {}
        }
    }
}

/// Cluster: subscribes again to wanted channels Redis did not confirm (and, once per heartbeat
/// interval, to every wanted channel), unsubscribes confirmed channels nobody wants, and pings
/// every master.
async fn maintain_cluster(weak: std::sync::Weak<Shared>) {
    let Some((every, ping_every)) =
        weak.upgrade().map(|s| (s.ping_every.min(Duration::from_secs(1)), s.ping_every))
    else {
        return;
    };
    let mut last_ping = tokio::time::Instant::now();
    // The losses repaired (and told to the sinks) so far.
    let mut repaired = 0;
    loop {
        {
            let Some(shared) = weak.upgrade() else { return };
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shared.kick.notified() => {
                    // Let the client reconnect and learn the new slot owners first.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let Some(shared) = weak.upgrade() else { return };
        let Mode::Cluster(conn) = &shared.mode else { return };
        // Once per heartbeat interval: ping, and subscribe again to every wanted channel, not only
        // to those not confirmed. The confirmations can be wrong: the client library may replace
        // a node's connection (and lose its subscriptions) without telling, which the tests saw
        // after another master restarted. SSUBSCRIBE of a subscribed channel changes nothing.
        let full = last_ping.elapsed() >= ping_every;
        if full {
            last_ping = tokio::time::Instant::now();
            let mut c = conn.clone();
            let ping = redis::cmd("PING");
            let pong = tokio::time::timeout(shared.timeout, ping.query_async::<redis::Value>(&mut c)).await;
            if !matches!(pong, Ok(Ok(_))) {
                tracing::warn!("redis sharded pub/sub: ping failed");
            }
        }
        let _commands = shared.commands.lock().await;
        // Read before the wanted channels: a loss after this is repaired by the next round.
        let losses = shared.losses.load(Ordering::Acquire);
        let (missing, extra) = {
            let st = shared.state.lock();
            let missing: Vec<Vec<u8>> =
                st.routes.keys().filter(|c| full || !st.confirmed.contains(*c)).cloned().collect();
            let extra: Vec<Vec<u8>> =
                st.confirmed.iter().filter(|c| !st.routes.contains_key(*c)).cloned().collect();
            (missing, extra)
        };
        let mut whole = true;
        if !missing.is_empty() {
            match cluster_command(&shared, conn, true, &missing).await {
                Ok(()) => {
                    tracing::debug!(channels = missing.len(), "redis sharded pub/sub: subscribed again")
                }
                Err(e) => {
                    whole = false;
                    tracing::debug!(error = %e, "redis sharded pub/sub: subscribing again failed");
                }
            }
        }
        if whole && losses > repaired {
            repaired = losses;
            tracing::info!("redis sharded pub/sub: every channel is subscribed again");
            reconnected(&shared);
        }
        if !extra.is_empty() {
            let _ = cluster_command(&shared, conn, false, &extra).await;
        }
    }
}

impl Broker for RedisBroker {
    fn attach(&self, node: NodeId, sink: Arc<dyn BrokerSink>) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let _commands = self.shared.commands.lock().await;
            let keys = &self.shared.keys;
            let new = {
                let mut st = self.shared.state.lock();
                st.nodes.insert(node.clone(), sink);
                let mut new = Vec::new();
                let mine = keys.node_channel(&node);
                if st.routes.insert(mine.clone(), Route::Node(node.clone())).is_none() {
                    new.push(mine);
                }
                let all = keys.broadcast_channel();
                if !st.routes.contains_key(&all) {
                    st.routes.insert(all.clone(), Route::Broadcast);
                    new.push(all);
                }
                new
            };
            let result = self.command(true, new).await;
            if result.is_err() {
                let mut st = self.shared.state.lock();
                st.nodes.remove(&node);
                st.routes.remove(&keys.node_channel(&node));
                if st.nodes.is_empty() {
                    st.routes.remove(&keys.broadcast_channel());
                }
            }
            result
        })
    }

    fn detach(&self, node: &NodeId) -> BackendFuture<'_, ()> {
        let node = node.clone();
        Box::pin(async move {
            let _commands = self.shared.commands.lock().await;
            let keys = &self.shared.keys;
            let gone = {
                let mut st = self.shared.state.lock();
                st.nodes.remove(&node);
                let mut gone = vec![keys.node_channel(&node)];
                st.routes.remove(&gone[0]);
                let mut empty = Vec::new();
                st.topics.retain(|topic, nodes| {
                    nodes.remove(&node);
                    if nodes.is_empty() {
                        empty.push(keys.topic_channel(topic));
                    }
                    !nodes.is_empty()
                });
                for channel in empty {
                    st.routes.remove(&channel);
                    gone.push(channel);
                }
                if st.nodes.is_empty() {
                    let all = keys.broadcast_channel();
                    st.routes.remove(&all);
                    gone.push(all);
                }
                gone
            };
            let unsubscribed = self.command(false, gone).await;
            // A node that beat and detaches while alive never turns dead.
            let beat = self.beats.lock().remove(&node).is_some();
            if beat {
                let core = &*self.core;
                let mut call = scripts::NODE_DETACH.prepare_invoke();
                call.key(&core.keys.node_keys(&node)[..3]);
                if core.invoke::<i64>(&call).await? == 1 {
                    let _: i64 = core.query(redis::cmd("SREM").arg(core.keys.nodes()).arg(&*node)).await?;
                }
            }
            unsubscribed
        })
    }

    fn subscribe(&self, node: &NodeId, topic: &str) -> BackendFuture<'_, ()> {
        let (node, topic) = (node.clone(), Arc::<str>::from(topic));
        Box::pin(async move {
            let _commands = self.shared.commands.lock().await;
            let channel = self.shared.keys.topic_channel(&topic);
            let first = {
                let mut st = self.shared.state.lock();
                let nodes = st.topics.entry(topic.clone()).or_default();
                let first = nodes.is_empty();
                nodes.insert(node);
                if first {
                    st.routes.insert(channel.clone(), Route::Topic(topic));
                }
                first
            };
            // On failure the channel stays wanted: the next (re)connection subscribes to it.
            if first { self.command(true, vec![channel]).await } else { Ok(()) }
        })
    }

    fn unsubscribe(&self, node: &NodeId, topic: &str) -> BackendFuture<'_, ()> {
        let (node, topic) = (node.clone(), topic.to_owned());
        Box::pin(async move {
            let _commands = self.shared.commands.lock().await;
            let channel = self.shared.keys.topic_channel(&topic);
            let last = {
                let mut st = self.shared.state.lock();
                let last = match st.topics.get_mut(topic.as_str()) {
                    Some(nodes) => {
                        nodes.remove(&node);
                        nodes.is_empty()
                    }
                    None => false,
                };
                if last {
                    st.topics.remove(topic.as_str());
                    st.routes.remove(&channel);
                }
                last
            };
            if last { self.command(false, vec![channel]).await } else { Ok(()) }
        })
    }

    fn publish(&self, from: &NodeId, topic: &str, publication: Bytes) -> BackendFuture<'_, ()> {
        let channel = self.shared.keys.topic_channel(topic);
        let payload = frame(from, &publication);
        Box::pin(async move {
            self.publish_raw(channel, payload).await?;
            Ok(())
        })
    }

    fn send(&self, from: &NodeId, to: Option<&NodeId>, message: Bytes) -> BackendFuture<'_, ()> {
        let keys = &self.shared.keys;
        let (channel, addressed) = match to {
            Some(to) if to == from => return Box::pin(std::future::ready(Err(BackendError::NoSuchNode))),
            Some(to) => (keys.node_channel(to), true),
            None => (keys.broadcast_channel(), false),
        };
        let payload = frame(from, &message);
        Box::pin(async move {
            let receivers = self.publish_raw(channel, payload).await?;
            if addressed && receivers == 0 {
                return Err(BackendError::NoSuchNode);
            }
            Ok(())
        })
    }

    fn beat(&self, node: &NodeId, ttl: Duration) -> BackendFuture<'_, Beat> {
        let node = node.clone();
        Box::pin(async move {
            let core = &*self.core;
            let (first, lost) = match self.beats.lock().get(&node) {
                None => (true, None),
                Some(b) => (!b.answered, b.lost.clone()),
            };
            let token = format!("{:016x}", rand::random::<u64>());
            let mut call = scripts::NODE_BEAT.prepare_invoke();
            call.key(&core.keys.node_keys(&node)[..])
                .key(core.keys.node_verdict(&node))
                .arg(millis(ttl))
                .arg(u8::from(first))
                .arg(&token)
                .arg(lost.as_deref().unwrap_or(""))
                .arg(millis(TOMBSTONE));
            let verdict = core.invoke::<i64>(&call).await;
            {
                let mut beats = self.beats.lock();
                let b = beats.entry(node.clone()).or_default();
                match &verdict {
                    Ok(_) => *b = Beats { answered: true, lost: None },
                    // It may have run: the next beat asks for this one's verdict too.
                    Err(BackendError::Indeterminate(_)) => b.lost = Some(token),
                    // It did not run: a beat lost before it still may have.
                    Err(_) => {}
                }
            }
            let beat = match verdict? {
                0 => Beat::Alive,
                1 => Beat::Lapsed { cleaned: false },
                _ => Beat::Lapsed { cleaned: true },
            };
            // Listed where survivors look for dead nodes, at every beat: the set may have lost
            // it (a cleanup finishing as it came back, or the set's master restarted).
            let listed = core.query::<i64>(redis::cmd("SADD").arg(core.keys.nodes()).arg(&*node)).await;
            if let Err(e) = listed {
                tracing::warn!(error = %e, node = %node, "could not list the node among the known nodes");
            }
            if beat == (Beat::Lapsed { cleaned: true }) {
                let forgotten = core.forget_node(&node).await;
                tracing::warn!(node = %node, entries = forgotten, "this node was declared dead and cleaned up by another node");
            }
            Ok(beat)
        })
    }

    fn dead_nodes(&self) -> BackendFuture<'_, Vec<NodeId>> {
        Box::pin(async move {
            let core = &*self.core;
            let nodes: Vec<String> =
                core.query(redis::cmd("SMEMBERS").arg(core.keys.nodes())).await.map_err(read_failure)?;
            let states = futures_util::future::join_all(nodes.iter().map(|n| core.node_state(n))).await;
            let mut dead = Vec::new();
            let mut stale = Vec::new();
            for (node, state) in nodes.into_iter().zip(states) {
                match state? {
                    NodeState::Lapsed | NodeState::Claimed => dead.push(NodeId::from(node)),
                    NodeState::Alive => {}
                    // Forgotten (or its keys were lost, or it detached) but still listed: it
                    // lists itself again at its next beat.
                    NodeState::Unknown | NodeState::Cleaned => stale.push(node),
                }
            }
            if !stale.is_empty() {
                let _: Result<i64, _> =
                    core.query(redis::cmd("SREM").arg(core.keys.nodes()).arg(stale)).await;
            }
            Ok(dead)
        })
    }

    fn claim_dead(&self, dead: &NodeId, by: &NodeId, lease: Duration) -> BackendFuture<'_, bool> {
        let (dead, by) = (dead.clone(), by.clone());
        Box::pin(async move {
            let core = &*self.core;
            let mut call = scripts::NODE_CLAIM.prepare_invoke();
            call.key(&core.keys.node_keys(&dead)[..3]).arg(&*by).arg(millis(lease));
            Ok(core.invoke::<i64>(&call).await? == 1)
        })
    }

    fn forget_dead(&self, dead: &NodeId) -> BackendFuture<'_, ()> {
        let dead = dead.clone();
        Box::pin(async move {
            let core = &*self.core;
            let mut call = scripts::NODE_FORGET.prepare_invoke();
            call.key(&core.keys.node_keys(&dead)[..]).arg(millis(TOMBSTONE));
            if core.invoke::<i64>(&call).await? == 1 {
                let _: i64 = core.query(redis::cmd("SREM").arg(core.keys.nodes()).arg(&*dead)).await?;
            }
            Ok(())
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Tells every attached node that the pub/sub connection is lost: nothing arrives until
/// [`reconnected`].
fn disconnected(shared: &Shared) {
    let sinks: Vec<Arc<dyn BrokerSink>> = shared.state.lock().nodes.values().cloned().collect();
    for sink in sinks {
        sink.disconnected();
    }
}

/// Tells every attached node that the pub/sub connection was lost and is back (its channels
/// are subscribed again).
fn reconnected(shared: &Shared) {
    let sinks: Vec<Arc<dyn BrokerSink>> = shared.state.lock().nodes.values().cloned().collect();
    for sink in sinks {
        sink.reconnected();
    }
}

/// The pub/sub task: connect, subscribe to the wanted channels, read until the connection dies,
/// and again.
async fn drive(shared: Arc<Shared>) {
    const MIN_BACKOFF: Duration = Duration::from_millis(50);
    const MAX_BACKOFF: Duration = Duration::from_secs(1);
    let mut backoff = MIN_BACKOFF;
    let retry = |backoff: &mut Duration| {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        tokio::time::sleep(wait)
    };
    let Mode::Single(client) = &shared.mode else { return };
    let mut connected_before = false;
    loop {
        let pubsub = match tokio::time::timeout(shared.connect_timeout, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "redis pub/sub: cannot connect");
                retry(&mut backoff).await;
                continue;
            }
            Err(_) => {
                tracing::debug!("redis pub/sub: connecting timed out");
                retry(&mut backoff).await;
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        {
            let _commands = shared.commands.lock().await;
            let channels: Vec<Vec<u8>> = shared.state.lock().routes.keys().cloned().collect();
            if !channels.is_empty() {
                let subscribed = tokio::time::timeout(shared.timeout, sink.subscribe(&channels)).await;
                if !matches!(subscribed, Ok(Ok(()))) {
                    tracing::warn!("redis pub/sub: resubscribing failed; reconnecting");
                    retry(&mut backoff).await;
                    continue;
                }
            }
            shared.state.lock().sink = Some(sink.clone());
            tracing::debug!(channels = channels.len(), "redis pub/sub: connected and subscribed");
        }
        backoff = MIN_BACKOFF;
        shared.up.send_replace(true);
        if connected_before {
            reconnected(&shared);
        }
        connected_before = true;
        let (dead_tx, mut dead) = tokio::sync::oneshot::channel::<()>();
        let watchdog = tokio::spawn(watchdog(sink, shared.ping_every, shared.timeout, dead_tx));
        loop {
            tokio::select! {
                biased;
                msg = stream.next() => match msg {
                    Some(msg) => {
                        if let Ok(channel) = msg.get_channel::<Vec<u8>>() {
                            dispatch(&shared, &channel, msg.get_payload_bytes());
                        }
                    }
                    None => break,
                },
                _ = &mut dead => break,
            }
        }
        watchdog.abort();
        shared.state.lock().sink = None;
        shared.up.send_replace(false);
        tracing::warn!("redis pub/sub: connection lost; reconnecting");
        disconnected(&shared);
    }
}

/// Pings the pub/sub connection; reports (by dropping `dead`) when it does not answer.
async fn watchdog(
    mut sink: PubSubSink,
    every: Duration,
    timeout: Duration,
    dead: tokio::sync::oneshot::Sender<()>,
) {
    loop {
        tokio::time::sleep(every).await;
        let pong = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
        if !matches!(pong, Ok(Ok(_))) {
            tracing::warn!("redis pub/sub: ping failed");
            drop(dead);
            return;
        }
    }
}

fn dispatch(shared: &Shared, channel: &[u8], payload: &[u8]) {
    let Some((from, body)) = unframe(payload) else {
        tracing::warn!("redis pub/sub: a message without a sender");
        return;
    };
    let not_from = |n: &NodeId| n.as_bytes() != from;
    let (sinks, topic): (Vec<Arc<dyn BrokerSink>>, Option<Arc<str>>) = {
        let st = shared.state.lock();
        match st.routes.get(channel) {
            None => return,
            Some(Route::Topic(topic)) => (
                st.topics
                    .get(topic)
                    .into_iter()
                    .flatten()
                    .filter(|n| not_from(n))
                    .filter_map(|n| st.nodes.get(n).cloned())
                    .collect(),
                Some(topic.clone()),
            ),
            Some(Route::Node(node)) => {
                (st.nodes.get(node).filter(|_| not_from(node)).cloned().into_iter().collect(), None)
            }
            Some(Route::Broadcast) => {
                (st.nodes.iter().filter(|(n, _)| not_from(n)).map(|(_, s)| s.clone()).collect(), None)
            }
        }
    };
    if sinks.is_empty() {
        return;
    }
    let body = Bytes::copy_from_slice(body);
    for sink in sinks {
        match &topic {
            Some(topic) => sink.publication(topic, body.clone()),
            None => sink.node_message(body.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_sender() {
        let f = frame("node-a", b"body");
        assert_eq!(unframe(&f), Some((&b"node-a"[..], &b"body"[..])));
        assert_eq!(unframe(&frame("", b"")), Some((&b""[..], &b""[..])));
        assert_eq!(unframe(b"\x00"), None);
        assert_eq!(unframe(b"\x00\x05abc"), None, "a sender longer than the message");
    }
}
