//! The broker: what travels between nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;

use crate::few::OneOrMany;
use crate::{BackendFuture, NodeId};

/// Receives what other nodes send. The framework implements it; a broker calls it from its own
/// task, in the order the messages were published.
///
/// A broker keeps the sink until [`Broker::detach`]; the sink should hold only a weak reference
/// to whatever owns the broker, so that no cycle keeps a stopped server alive.
pub trait BrokerSink: Send + Sync + 'static {
    /// A publication on a topic this node subscribed to, published by another node.
    fn publication(&self, topic: &str, publication: Bytes);
    /// A message addressed to this node (or to every node).
    fn node_message(&self, message: Bytes);
    /// The broker's connection was lost: nothing is received until [`BrokerSink::reconnected`].
    fn disconnected(&self) {}
    /// The broker's connection was lost and is back: publications and messages sent meanwhile
    /// may have been missed (the framework checks its topics' positions).
    fn reconnected(&self) {}
}

/// What [`Broker::beat`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// The node's liveness was current: it is now renewed.
    Alive,
    /// The node's liveness had lapsed: other nodes may have declared it dead. With `cleaned`,
    /// one of them claimed its cleanup (its presence and user entries are gone, and their leaves
    /// were announced): the node must not go on as if nothing happened. The node is alive again
    /// from this beat on.
    Lapsed {
        /// Another node claimed the cleanup after this node.
        cleaned: bool,
    },
}

/// Carries topic publications and node-to-node messages between the nodes of a cluster.
///
/// **Guarantees**: at-most-once delivery; per publisher and topic, messages arrive in the order
/// they were published. A node never receives its own publications or broadcasts back. Gaps are
/// detected by the framework through [`crate::History`] sequence numbers, not by the broker.
/// `publish` and `send` return an error when the message cannot leave this node, so that the
/// caller can report it (never a silent loss).
///
/// **Liveness**: a node that [`beat`](Broker::beat)s is alive until its last beat's `ttl` runs
/// out; then it appears in [`dead_nodes`](Broker::dead_nodes) (on every node's broker) until a
/// node that [`claim_dead`](Broker::claim_dead)ed it calls [`forget_dead`](Broker::forget_dead).
/// At most one node holds a claim at a time; a claim runs out after its lease (so a claimer that
/// dies is replaced). A node that never beats (and is attached) is alive until it detaches.
pub trait Broker: Send + Sync + 'static {
    /// Joins the cluster as `node`; messages for this node go to `sink`.
    fn attach(&self, node: NodeId, sink: Arc<dyn BrokerSink>) -> BackendFuture<'_, ()>;
    /// Leaves the cluster.
    fn detach(&self, node: &NodeId) -> BackendFuture<'_, ()>;
    /// Starts receiving publications of `topic` (the node has its first local subscriber).
    fn subscribe(&self, node: &NodeId, topic: &str) -> BackendFuture<'_, ()>;
    /// Stops receiving publications of `topic` (the node's last local subscriber left).
    fn unsubscribe(&self, node: &NodeId, topic: &str) -> BackendFuture<'_, ()>;
    /// Sends a publication to every other node subscribed to `topic`.
    fn publish(&self, from: &NodeId, topic: &str, publication: Bytes) -> BackendFuture<'_, ()>;
    /// Sends a message to one node (`Some`) or every other node (`None`). A message for one node
    /// that is not in the cluster fails with [`BackendError::NoSuchNode`](crate::BackendError).
    fn send(&self, from: &NodeId, to: Option<&NodeId>, message: Bytes) -> BackendFuture<'_, ()>;
    /// Renews `node`'s liveness for `ttl` (see the trait's documentation).
    fn beat(&self, node: &NodeId, ttl: Duration) -> BackendFuture<'_, Beat>;
    /// The nodes whose liveness ran out and whose cleanup is not finished.
    fn dead_nodes(&self) -> BackendFuture<'_, Vec<NodeId>>;
    /// Claims the cleanup of `dead` for `lease` (renews it if `by` holds it already); `false` if
    /// another node holds it, or `dead` is not dead.
    fn claim_dead(&self, dead: &NodeId, by: &NodeId, lease: Duration) -> BackendFuture<'_, bool>;
    /// The cleanup of `dead` is finished: it leaves [`dead_nodes`](Broker::dead_nodes); a late
    /// beat of it answers [`Beat::Lapsed`] with `cleaned`.
    fn forget_dead(&self, dead: &NodeId) -> BackendFuture<'_, ()>;
}

/// An in-process broker. A single server attached to it has no peers, so nothing leaves the
/// process; several servers attached to one `MemoryBroker` (a clone) form a cluster inside one
/// process, which is how the framework's multi-node logic is tested without Redis.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<RwLock<Bus>>,
}

#[derive(Default)]
struct Bus {
    nodes: HashMap<NodeId, Arc<dyn BrokerSink>>,
    /// Topic → the nodes subscribed to it: a short list, usually of one node, kept without an
    /// allocation of its own.
    topics: HashMap<Box<str>, Nodes>,
    /// Nodes that beat: until when they are alive.
    alive_until: HashMap<NodeId, Instant>,
    /// Nodes whose liveness ran out, with their cleanup's claim (claimer, until), if any.
    dead: HashMap<NodeId, Option<(NodeId, Instant)>>,
    /// Nodes whose cleanup finished (a late beat learns it).
    cleaned: std::collections::HashSet<NodeId>,
}

impl Bus {
    /// Moves the nodes whose liveness ran out to `dead` (messages for them fail as for a node
    /// that is gone; a late beat brings them back).
    fn expire(&mut self, now: Instant) {
        let lapsed: Vec<NodeId> =
            self.alive_until.iter().filter(|(_, until)| **until <= now).map(|(n, _)| n.clone()).collect();
        for node in lapsed {
            self.alive_until.remove(&node);
            self.dead.insert(node, None);
        }
    }
}

/// The nodes subscribed to a topic (never empty in [`Bus::topics`]).
type Nodes = OneOrMany<NodeId>;

impl MemoryBroker {
    /// An empty bus.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

fn ready<T: Send + 'static>(v: T) -> BackendFuture<'static, T> {
    Box::pin(std::future::ready(Ok(v)))
}

impl Broker for MemoryBroker {
    fn attach(&self, node: NodeId, sink: Arc<dyn BrokerSink>) -> BackendFuture<'_, ()> {
        self.inner.write().nodes.insert(node, sink);
        ready(())
    }

    fn detach(&self, node: &NodeId) -> BackendFuture<'_, ()> {
        let mut bus = self.inner.write();
        bus.nodes.remove(node);
        bus.alive_until.remove(node);
        bus.topics.retain(|_, nodes| !nodes.remove(node));
        ready(())
    }

    fn subscribe(&self, node: &NodeId, topic: &str) -> BackendFuture<'_, ()> {
        let mut bus = self.inner.write();
        match bus.topics.get_mut(topic) {
            Some(nodes) => nodes.add(node),
            None => {
                bus.topics.insert(Box::from(topic), Nodes::One(node.clone()));
            }
        }
        ready(())
    }

    fn unsubscribe(&self, node: &NodeId, topic: &str) -> BackendFuture<'_, ()> {
        let mut bus = self.inner.write();
        if bus.topics.get_mut(topic).is_some_and(|nodes| nodes.remove(node)) {
            bus.topics.remove(topic);
        }
        ready(())
    }

    fn publish(&self, from: &NodeId, topic: &str, publication: Bytes) -> BackendFuture<'_, ()> {
        let sinks: Vec<_> = {
            let bus = self.inner.read();
            bus.topics
                .get(topic)
                .map_or(&[][..], Nodes::as_slice)
                .iter()
                .filter(|n| *n != from)
                .filter_map(|n| bus.nodes.get(n).cloned())
                .collect()
        };
        for sink in sinks {
            sink.publication(topic, publication.clone());
        }
        ready(())
    }

    fn send(&self, from: &NodeId, to: Option<&NodeId>, message: Bytes) -> BackendFuture<'_, ()> {
        let sinks: Vec<_> = {
            let bus = self.inner.read();
            bus.nodes
                .iter()
                .filter(|(n, _)| *n != from && to.is_none_or(|to| *n == to) && !bus.dead.contains_key(*n))
                .map(|(_, s)| s.clone())
                .collect()
        };
        if to.is_some() && sinks.is_empty() {
            return Box::pin(std::future::ready(Err(crate::BackendError::NoSuchNode)));
        }
        for sink in sinks {
            sink.node_message(message.clone());
        }
        ready(())
    }

    fn beat(&self, node: &NodeId, ttl: Duration) -> BackendFuture<'_, Beat> {
        let now = Instant::now();
        let mut bus = self.inner.write();
        bus.expire(now);
        let beat = if bus.cleaned.remove(node) {
            Beat::Lapsed { cleaned: true }
        } else if let Some(claim) = bus.dead.remove(node) {
            Beat::Lapsed { cleaned: claim.is_some() }
        } else {
            Beat::Alive
        };
        bus.alive_until.insert(node.clone(), now + ttl);
        ready(beat)
    }

    fn dead_nodes(&self) -> BackendFuture<'_, Vec<NodeId>> {
        let mut bus = self.inner.write();
        bus.expire(Instant::now());
        ready(bus.dead.keys().cloned().collect())
    }

    fn claim_dead(&self, dead: &NodeId, by: &NodeId, lease: Duration) -> BackendFuture<'_, bool> {
        let now = Instant::now();
        let mut bus = self.inner.write();
        bus.expire(now);
        let Some(claim) = bus.dead.get_mut(dead) else { return ready(false) };
        let free = match claim {
            None => true,
            Some((holder, until)) => holder == by || *until <= now,
        };
        if free {
            *claim = Some((by.clone(), now + lease));
        }
        ready(free)
    }

    fn forget_dead(&self, dead: &NodeId) -> BackendFuture<'_, ()> {
        let mut bus = self.inner.write();
        if bus.dead.remove(dead).is_some() {
            if bus.cleaned.len() >= 10_000 {
                // Only late beats need this; a bound keeps it from growing forever.
                bus.cleaned.clear();
            }
            bus.cleaned.insert(dead.clone());
        }
        ready(())
    }
}
