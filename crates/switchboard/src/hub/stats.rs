//! Statistics: this node's counters, and the whole cluster's (what `~info` and
//! [`Hub::cluster_stats`](crate::Hub::cluster_stats)(crate::Hub::cluster_stats) report).
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
use switchboard_protocol::RawPayload;

use super::core::Core;
use super::link::NodeMsg;
use crate::error::HubError;

/// The presence key under which every running node is listed (not a valid topic name).
pub(crate) const NODES: &str = "~nodes";

/// How long the asking node waits for the others' statistics.
pub(crate) const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

/// The statistics of one node: its id, its uptime and its [`Stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeStats {
    /// The node id (the prefix of its connection ids).
    pub node: String,
    /// Milliseconds since the node started.
    pub uptime_ms: u64,
    /// Its counters.
    #[serde(flatten)]
    pub stats: Stats,
    /// How it sees its cluster.
    #[serde(default)]
    pub health: NodeHealth,
}

/// How a node sees its cluster ([`Hub::health`](crate::Hub::health)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeHealth {
    /// Its broker connection is up (on a single node with the in-memory broker, always).
    pub broker_up: bool,
    /// Times its broker connection was lost since start.
    pub broker_outages: u64,
    /// Dead nodes it cleaned up after since start.
    pub nodes_cleaned: u64,
    /// Publications it missed and filled from history since start.
    pub missed_filled: u64,
    /// Times it told a topic's subscribers that publications were missed (closed with 4000).
    pub missed_signalled: u64,
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

/// The statistics of the cluster ([`Hub::cluster_stats`](crate::Hub::cluster_stats)).
///
/// In `totals`, additive counters are sums over the nodes that answered; `users` and `topics`
/// count distinct names (a user connected to two nodes counts once).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClusterStats {
    /// The cluster's totals (`uptime` unused).
    #[serde(flatten)]
    pub totals: Stats,
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

/// This node's counters now.
pub(crate) fn stats_now(core: &Core) -> Stats {
    let c = &core.counters;
    Stats {
        connections: core.registry.len(),
        users: core.registry.users_len(),
        topics: core.topics.len(),
        messages_in: c.sum(|c| &c.messages_in),
        messages_out: c.sum(|c| &c.messages_out),
        bytes_in: c.sum(|c| &c.bytes_in),
        bytes_out: c.sum(|c| &c.bytes_out),
        slow_consumers: c.sum(|c| &c.slow_consumers),
        connections_total: c.sum(|c| &c.connections_total),
        uptime: core.clock.uptime(),
    }
}

/// How this node sees its cluster now.
pub(crate) fn health_now(core: &Core) -> NodeHealth {
    let h = &core.health;
    NodeHealth {
        broker_up: !h.broker_down.load(Ordering::Relaxed),
        broker_outages: h.broker_outages.load(Ordering::Relaxed),
        nodes_cleaned: h.nodes_cleaned.load(Ordering::Relaxed),
        missed_filled: h.missed_filled.load(Ordering::Relaxed),
        missed_signalled: h.missed_signalled.load(Ordering::Relaxed),
    }
}

/// This node's report.
pub(crate) fn node_report(core: &Core) -> NodeReport {
    NodeReport {
        stats: NodeStats {
            node: core.node.to_string(),
            uptime_ms: core.now_ms(),
            stats: stats_now(core),
            health: health_now(core),
        },
        topics: core.topics.names().into_iter().map(|(t, n)| (t.to_string(), n)).collect(),
        users: core.registry.users().into_iter().map(|(u, n)| (u.to_string(), n)).collect(),
    }
}

/// Statistics of the whole cluster (see [`Hub::cluster_stats`](crate::Hub::cluster_stats)(crate::Hub::cluster_stats)).
pub(crate) async fn cluster_stats(core: &Core) -> Result<ClusterStats, HubError> {
    let listed = core.backends.presence.list(NODES).await.map_err(|e| HubError::Backend(e.to_string()))?;
    let others: Vec<String> = listed.into_iter().map(|e| e.conn).filter(|n| n != &*core.node).collect();
    let answers = join_all(others.iter().map(|node| ask_stats(core, node))).await;
    let mut reports = vec![node_report(core)];
    let mut unreachable = Vec::new();
    for (node, answer) in others.into_iter().zip(answers) {
        match answer {
            Some(report) => reports.push(report),
            None => unreachable.push(node),
        }
    }
    Ok(sum(reports, unreachable))
}

async fn ask_stats(core: &Core, node: &str) -> Option<NodeReport> {
    let make = |from: String, req: u64| NodeMsg::Stats { from, req };
    match core.link.ask(node, make, GATHER_TIMEOUT).await {
        Ok(payload) => payload.decode().ok(),
        Err(e) => {
            tracing::debug!(node, error = %e, "a node did not report its statistics");
            None
        }
    }
}

/// The answer to a statistics query from another node.
pub(crate) fn report_payload(core: &Core) -> Option<RawPayload> {
    RawPayload::json(&node_report(core)).ok()
}

fn sum(reports: Vec<NodeReport>, unreachable: Vec<String>) -> ClusterStats {
    let mut topics: BTreeMap<String, usize> = BTreeMap::new();
    let mut users: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = ClusterStats { unreachable, ..ClusterStats::default() };
    for r in reports {
        let (s, t) = (&r.stats.stats, &mut out.totals);
        t.connections += s.connections;
        t.messages_in += s.messages_in;
        t.messages_out += s.messages_out;
        t.bytes_in += s.bytes_in;
        t.bytes_out += s.bytes_out;
        t.slow_consumers += s.slow_consumers;
        t.connections_total += s.connections_total;
        for (t, n) in r.topics {
            *topics.entry(t).or_default() += n;
        }
        for (u, n) in r.users {
            *users.entry(u).or_default() += n;
        }
        out.nodes.push(r.stats);
    }
    out.totals.topics = topics.len();
    out.totals.users = users.len();
    out.topic_subscribers = topics.into_iter().collect();
    out.user_connections = users.into_iter().collect();
    out
}

/// Counters of one node ([`Hub::stats`](crate::Hub::stats)); also the totals of [`ClusterStats`](crate::ClusterStats).
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

/// Sizes of the hub's registries ([`Hub::registry_sizes`](crate::Hub::registry_sizes)).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, topics: &[(&str, usize)], users: &[(&str, usize)]) -> NodeReport {
        NodeReport {
            stats: NodeStats {
                node: node.into(),
                uptime_ms: 0,
                stats: Stats {
                    connections: users.iter().map(|u| u.1).sum(),
                    users: users.len(),
                    topics: topics.len(),
                    messages_in: 10,
                    ..Stats::default()
                },
                health: NodeHealth::default(),
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
        assert_eq!(s.totals.connections, 4);
        assert_eq!(s.totals.users, 2);
        assert_eq!(s.totals.topics, 2);
        assert_eq!(s.totals.messages_in, 20);
        assert_eq!(s.topic_subscribers, vec![("news".into(), 1), ("room".into(), 3)]);
        assert_eq!(s.user_connections, vec![("ada".into(), 3), ("bob".into(), 1)]);
        assert_eq!(s.nodes.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.unreachable, ["c"]);
    }
}
