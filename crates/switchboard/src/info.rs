//! Statistics of the whole cluster: what `~info` and [`Hub::cluster_stats`] report.
//!
//! Every node is present under the presence key [`NODES`] (so a node that dies leaves the list
//! with its other presence entries). The node that is asked sends `stats` to each other node,
//! waits up to [`GATHER_TIMEOUT`] for their answers, and adds them up; nodes that did not answer
//! in time are listed as `unreachable`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use switchboard_protocol::Payload as RawPayload;

use crate::HubError;
use crate::cluster::NodeMsg;
use crate::hub::{Hub, HubInner};

/// The presence key under which every running node is listed (not a valid topic name).
pub(crate) const NODES: &str = "~nodes";

/// How long the asking node waits for the others' statistics.
pub(crate) const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

/// The statistics of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeStats {
    /// The node id (the prefix of its connection ids).
    pub node: String,
    /// Milliseconds since the node started.
    pub uptime_ms: u64,
    /// Connections open on the node now.
    pub connections: usize,
    /// Users with a connection on the node now.
    pub users: usize,
    /// Topics with a subscriber on the node now.
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
}

/// What a node answers to a statistics query: its counters and its topics and users by name,
/// so that the asking node can count distinct topics and users across the cluster.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct NodeReport {
    pub(crate) stats: NodeStats,
    /// Topic → local subscribers.
    pub(crate) topics: Vec<(String, usize)>,
    /// User → local connections.
    pub(crate) users: Vec<(String, usize)>,
}

/// The statistics of the cluster ([`Hub::cluster_stats`]).
///
/// Additive counters are sums over the nodes that answered; `users` and `topics` count distinct
/// names (a user connected to two nodes counts once).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Connections open now.
    pub connections: usize,
    /// Distinct users with a connection now.
    pub users: usize,
    /// Distinct topics with a subscriber now.
    pub topics: usize,
    /// Messages received since each node started.
    pub messages_in: u64,
    /// Messages sent since each node started.
    pub messages_out: u64,
    /// Bytes received since each node started.
    pub bytes_in: u64,
    /// Bytes sent since each node started.
    pub bytes_out: u64,
    /// Slow-consumer closes since each node started.
    pub slow_consumers: u64,
    /// Connections accepted since each node started.
    pub connections_total: u64,
    /// Every node that answered, this one first.
    pub nodes: Vec<NodeStats>,
    /// Nodes that are listed as running but did not answer in time.
    pub unreachable: Vec<String>,
    /// Topic → subscribers on all nodes, sorted by topic.
    #[serde(skip)]
    pub topic_subscribers: Vec<(String, usize)>,
    /// User → connections on all nodes, sorted by user.
    #[serde(skip)]
    pub user_connections: Vec<(String, usize)>,
}

impl HubInner {
    /// This node's report.
    pub(crate) fn node_report(&self) -> NodeReport {
        let s = &self.stats;
        NodeReport {
            stats: NodeStats {
                node: self.node.to_string(),
                uptime_ms: self.now_ms(),
                connections: self.conns.len(),
                users: self.users.len(),
                topics: self.topics.len(),
                messages_in: s.messages_in.load(Ordering::Relaxed),
                messages_out: s.messages_out.load(Ordering::Relaxed),
                bytes_in: s.bytes_in.load(Ordering::Relaxed),
                bytes_out: s.bytes_out.load(Ordering::Relaxed),
                slow_consumers: s.slow_consumers.load(Ordering::Relaxed),
                connections_total: s.connections_total.load(Ordering::Relaxed),
            },
            topics: self.topics.names().into_iter().map(|(t, n)| (t.to_string(), n)).collect(),
            users: self
                .users
                .shards()
                .iter()
                .flat_map(|s| s.read().iter().map(|(u, c)| (u.to_string(), c.len())).collect::<Vec<_>>())
                .collect(),
        }
    }
}

impl Hub {
    /// Statistics of the whole cluster: this node's and every other running node's, added up.
    ///
    /// On a single node this costs no backend call beyond listing the nodes. Nodes that do not
    /// answer within two seconds are named in [`ClusterStats::unreachable`].
    ///
    /// ```
    /// # async fn demo(hub: switchboard::Hub) -> Result<(), switchboard::HubError> {
    /// let stats = hub.cluster_stats().await?;
    /// println!("{} connections on {} nodes", stats.connections, stats.nodes.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`HubError::Backend`] when the list of nodes cannot be read.
    pub async fn cluster_stats(&self) -> Result<ClusterStats, HubError> {
        let hub = &self.inner;
        let listed = hub.backends.presence.list(NODES).await.map_err(|e| HubError::Backend(e.to_string()))?;
        let others: Vec<String> = listed.into_iter().map(|e| e.conn).filter(|n| n != &*hub.node).collect();
        let answers = join_all(others.iter().map(|node| ask_stats(hub, node))).await;
        let mut reports = vec![hub.node_report()];
        let mut unreachable = Vec::new();
        for (node, answer) in others.into_iter().zip(answers) {
            match answer {
                Some(report) => reports.push(report),
                None => unreachable.push(node),
            }
        }
        Ok(sum(reports, unreachable))
    }
}

async fn ask_stats(hub: &HubInner, node: &str) -> Option<NodeReport> {
    let make = |from: String, req: u64| NodeMsg::Stats { from, req };
    match crate::cluster::ask_node(hub, node, make, GATHER_TIMEOUT).await {
        Ok(payload) => payload.decode().ok(),
        Err(e) => {
            tracing::debug!(node, error = %e, "a node did not report its statistics");
            None
        }
    }
}

/// The answer to a statistics query from another node.
pub(crate) fn report_payload(hub: &HubInner) -> Option<RawPayload> {
    RawPayload::json(&hub.node_report()).ok()
}

fn sum(reports: Vec<NodeReport>, unreachable: Vec<String>) -> ClusterStats {
    let mut topics: BTreeMap<String, usize> = BTreeMap::new();
    let mut users: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = ClusterStats { unreachable, ..ClusterStats::default() };
    for r in reports {
        let s = &r.stats;
        out.connections += s.connections;
        out.messages_in += s.messages_in;
        out.messages_out += s.messages_out;
        out.bytes_in += s.bytes_in;
        out.bytes_out += s.bytes_out;
        out.slow_consumers += s.slow_consumers;
        out.connections_total += s.connections_total;
        for (t, n) in r.topics {
            *topics.entry(t).or_default() += n;
        }
        for (u, n) in r.users {
            *users.entry(u).or_default() += n;
        }
        out.nodes.push(r.stats);
    }
    out.topics = topics.len();
    out.users = users.len();
    out.topic_subscribers = topics.into_iter().collect();
    out.user_connections = users.into_iter().collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, topics: &[(&str, usize)], users: &[(&str, usize)]) -> NodeReport {
        NodeReport {
            stats: NodeStats {
                node: node.into(),
                connections: users.iter().map(|u| u.1).sum(),
                users: users.len(),
                topics: topics.len(),
                messages_in: 10,
                ..NodeStats::default()
            },
            topics: topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
            users: users.iter().map(|(u, n)| ((*u).to_owned(), *n)).collect(),
        }
    }

    #[test]
    fn counts_distinct_users_and_topics_and_adds_counters() {
        let a = report("a", &[("room", 2), ("news", 1)], &[("ada", 2), ("bob", 1)]);
        let b = report("b", &[("room", 1)], &[("ada", 1)]);
        let s = sum(vec![a, b], vec!["c".into()]);
        assert_eq!(s.connections, 4);
        assert_eq!(s.users, 2);
        assert_eq!(s.topics, 2);
        assert_eq!(s.messages_in, 20);
        assert_eq!(s.topic_subscribers, vec![("news".into(), 1), ("room".into(), 3)]);
        assert_eq!(s.user_connections, vec![("ada".into(), 3), ("bob".into(), 1)]);
        assert_eq!(s.nodes.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.unreachable, ["c"]);
    }
}
