//! [`Broker`] on Redis pub/sub.
//!
//! Channels: `{prefix}:t:{topic}` per topic (subscribed while some attached node has a local
//! subscriber), `{prefix}:n:{node}` per attached node, `{prefix}:b` for broadcasts. A message is
//! `[u16 sender length][sender node id][body]`, so that a node never hears itself.
//!
//! One task owns the pub/sub connection: it reads messages and calls the sinks in arrival order,
//! pings the connection, and on loss reconnects (with backoff) and subscribes again to every
//! channel in `State::routes`, the set of channels the nodes want. Publishing uses the shared
//! multiplexed command connection, so concurrent publishers are pipelined.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::PubSubSink;
use switchboard_core::{BackendError, BackendFuture, Broker, BrokerSink, NodeId};

use crate::ConnectError;
use crate::core::{Core, Keys, unavailable};

pub(crate) struct RedisBroker {
    shared: Arc<Shared>,
    core: Arc<Core>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

struct Shared {
    client: redis::Client,
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
    pub(crate) async fn start(client: redis::Client, core: Arc<Core>) -> Result<Self, ConnectError> {
        let (up, mut watch) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            client,
            keys: core.keys.clone(),
            timeout: core.options.timeout,
            connect_timeout: core.options.connect_timeout,
            ping_every: core.options.heartbeat,
            state: Mutex::new(State::default()),
            commands: tokio::sync::Mutex::new(()),
            up,
        });
        let driver = tokio::spawn(drive(shared.clone()));
        let broker = Self { shared, core, driver };
        let wait = tokio::time::timeout(broker.shared.connect_timeout * 2, watch.wait_for(|up| *up)).await;
        match wait {
            Ok(Ok(_)) => Ok(broker),
            _ => Err(ConnectError::Unreachable("the pub/sub connection did not come up".to_owned())),
        }
    }

    /// SUBSCRIBE or UNSUBSCRIBE on the current connection (call with `commands` held).
    async fn command(&self, subscribe: bool, channels: Vec<Vec<u8>>) -> Result<(), BackendError> {
        if channels.is_empty() {
            return Ok(());
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

    async fn publish_raw(&self, channel: Vec<u8>, payload: Bytes) -> Result<i64, BackendError> {
        let mut conn = self.core.conn.clone();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(&payload[..]);
        self.core.run(cmd.query_async(&mut conn)).await
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
            self.command(false, gone).await
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
    loop {
        let pubsub =
            match tokio::time::timeout(shared.connect_timeout, shared.client.get_async_pubsub()).await {
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
        let (dead_tx, mut dead) = tokio::sync::oneshot::channel::<()>();
        let watchdog = tokio::spawn(watchdog(sink, shared.ping_every, shared.timeout, dead_tx));
        loop {
            tokio::select! {
                biased;
                msg = stream.next() => match msg {
                    Some(msg) => dispatch(&shared, &msg),
                    None => break,
                },
                _ = &mut dead => break,
            }
        }
        watchdog.abort();
        shared.state.lock().sink = None;
        shared.up.send_replace(false);
        tracing::warn!("redis pub/sub: connection lost; reconnecting");
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

fn dispatch(shared: &Shared, msg: &redis::Msg) {
    let Ok(channel) = msg.get_channel::<Vec<u8>>() else { return };
    let Some((from, body)) = unframe(msg.get_payload_bytes()) else {
        tracing::warn!("redis pub/sub: a message without a sender");
        return;
    };
    let not_from = |n: &NodeId| n.as_bytes() != from;
    let (sinks, topic): (Vec<Arc<dyn BrokerSink>>, Option<Arc<str>>) = {
        let st = shared.state.lock();
        match st.routes.get(&channel) {
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
