//! Statistics of the whole cluster: what `~info` and [`Hub::cluster_stats`] report.
//!
//! Every node is present under the presence key [`NODES`] (so a node that dies leaves the list
//! with its other presence entries). The node that is asked sends `stats` to each other node,
//! waits up to [`GATHER_TIMEOUT`] for their answers, and adds them up; nodes that did not answer
//! in time are listed as `unreachable`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use switchboard_protocol::Payload as RawPayload;

use crate::cluster::NodeMsg;
use crate::hub::{Hub, HubInner};
use crate::{HubError, Stats};

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

impl HubInner {
    /// This node's report.
    pub(crate) fn node_report(&self) -> NodeReport {
        NodeReport {
            stats: NodeStats {
                node: self.node.to_string(),
                uptime_ms: self.now_ms(),
                stats: self.stats_now(),
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
    /// println!("{} connections on {} nodes", stats.totals.connections, stats.nodes.len());
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
