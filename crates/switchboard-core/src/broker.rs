//! The broker: what travels between nodes.

use std::collections::HashMap;
use std::sync::Arc;

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
}

/// Carries topic publications and node-to-node messages between the nodes of a cluster.
///
/// **Guarantees**: at-most-once delivery; per publisher and topic, messages arrive in the order
/// they were published. A node never receives its own publications or broadcasts back. Gaps are
/// detected by the framework through [`crate::History`] sequence numbers, not by the broker.
/// `publish` and `send` return an error when the message cannot leave this node, so that the
/// caller can report it (never a silent loss).
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
                .filter(|(n, _)| *n != from && to.is_none_or(|to| *n == to))
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
}
