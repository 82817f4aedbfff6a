//! What a node watches in its cluster, in two tasks: its own liveness and the other nodes'
//! (declaring the dead ones dead and cleaning up after them, once), and its topics' positions
//! (`topics::positions`).
//!
//! A node beats every fifth of [`Config::node_timeout`](crate::Config::node_timeout) with a
//! liveness of four fifths of it, and looks for dead nodes as often: a node that stops is
//! declared dead within the timeout. The survivor that claims a dead node's cleanup evicts its
//! connections from presence and from the user registry and announces their leaves (`~presence`
//! leaves, `~peer` offline) — one survivor, once. A node that was only slow and learns that it
//! was cleaned up after closes its connections with 4000: they reconnect and register again.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use switchboard_core::{Beat, NodeId, Position};
use switchboard_protocol::CloseCode;

use super::core::{Core, HistorySpan};
use super::lifecycle;
use super::presence::announce_evicted;
use super::stats::NODES;
use super::topics::positions;

/// The liveness task; ends when the server shuts down or is dropped.
pub(crate) async fn liveness(core: Weak<Core>) {
    let Some((every, shutdown)) =
        core.upgrade().map(|c| (c.config.node_timeout / 5, c.running.shutdown.clone()))
    else {
        return;
    };
    let every = every.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let Some(core) = core.upgrade() else { return };
        beat(&core, every).await;
        match core.backends.broker.dead_nodes().await {
            Ok(dead) => {
                for node in dead.iter().filter(|n| **n != core.node) {
                    clean_up_after(&core, node).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "the list of dead nodes could not be read"),
        }
    }
}

/// Renews this node's liveness; acts on a lapse.
async fn beat(core: &Core, every: Duration) {
    let ttl = core.config.node_timeout.saturating_sub(every).max(every);
    match core.backends.broker.beat(&core.node, ttl).await {
        Ok(Beat::Alive) => {}
        Ok(Beat::Lapsed { cleaned: true }) => {
            tracing::error!(
                node = %core.node,
                "this node was declared dead by the others (it was silent too long): closing its \\
                 connections with 4000 so that they register again"
            );
            // Their disconnects were announced by the survivor that cleaned up.
            lifecycle::forget_announced(core);
            core.registry.for_each(|conn| {
                conn.close(CloseCode::RECONNECT, "the server rejoins its cluster: reconnect", true);
            });
            rejoin(core).await;
        }
        Ok(Beat::Lapsed { cleaned: false }) => {
            tracing::warn!(node = %core.node, "this node's liveness had lapsed (the broker lost it): renewed");
            rejoin(core).await;
        }
        Err(e) => tracing::warn!(error = %e, "this node's liveness could not be renewed"),
    }
}

/// Lists this node among the running ones again.
async fn rejoin(core: &Core) {
    let listed = core.backends.presence.join(NODES, &core.node, bytes::Bytes::from_static(b"{}")).await;
    if let Err(e) = listed {
        tracing::warn!(error = %e, "this node could not list itself among the running ones");
    }
}

/// Cleans up after a dead node, if this node gets the claim: its connections leave presence
/// (announced) and the user registry.
async fn clean_up_after(core: &Core, dead: &NodeId) {
    let broker = &core.backends.broker;
    let lease = core.config.node_timeout * 2;
    match broker.claim_dead(dead, &core.node, lease).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::debug!(error = %e, node = %dead, "the cleanup of a dead node could not be claimed");
            return;
        }
    }
    tracing::warn!(node = %dead, "node declared dead (silent for {:?}): cleaning up after it", core.config.node_timeout);
    // A backend may evict in rounds (it answers what one round removed, and nothing once all is
    // gone); the claim is renewed between rounds, and given up if the node came back (its
    // new entries must not be removed).
    let (mut entries, mut conns) = (0, 0);
    loop {
        let evicted = match core.backends.presence.evict_node(dead).await {
            Ok(evicted) => evicted,
            Err(e) => {
                tracing::warn!(error = %e, node = %dead, "a dead node's presence could not be cleaned up (retried)");
                return;
            }
        };
        if evicted.is_empty() {
            break;
        }
        entries += evicted.len();
        // Its connections (listed for their lifecycle events) get their disconnects; the rest
        // are presence leaves.
        let (conns, left): (Vec<_>, Vec<_>) =
            evicted.into_iter().partition(|(key, _)| key.starts_with(lifecycle::CONNS));
        announce_evicted(core, left).await;
        lifecycle::dead_conns(core, conns.into_iter().map(|(_, entry)| entry).collect()).await;
        if !still_claimed(core, dead, lease).await {
            return;
        }
    }
    loop {
        let users = match core.backends.users.evict_node(dead).await {
            Ok(users) => users,
            Err(e) => {
                tracing::warn!(error = %e, node = %dead, "a dead node's users could not be cleaned up (retried)");
                return;
            }
        };
        if users.is_empty() {
            break;
        }
        conns += users.iter().map(|u| u.conns.len()).sum::<usize>();
        lifecycle::dead_users(core, users).await;
        if !still_claimed(core, dead, lease).await {
            return;
        }
    }
    if let Err(e) = broker.forget_dead(dead).await {
        tracing::warn!(error = %e, node = %dead, "a dead node's cleanup could not be recorded (retried)");
        return;
    }
    core.health.nodes_cleaned.fetch_add(1, Ordering::Relaxed);
    tracing::info!(node = %dead, entries, conns, "cleaned up after a dead node");
}

/// Renews this node's claim on a dead node's cleanup between rounds; `false` if it was lost
/// (the node came back, or another took over after this one stalled).
async fn still_claimed(core: &Core, dead: &NodeId, lease: Duration) -> bool {
    match core.backends.broker.claim_dead(dead, &core.node, lease).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::info!(node = %dead, "the cleanup of a dead node stopped: its claim was lost");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, node = %dead, "the cleanup of a dead node stopped (retried)");
            false
        }
    }
}

/// The position-check task (see `topics::positions`): every
/// [`Config::position_check`](crate::Config::position_check), and at once after a broker outage.
pub(crate) async fn positions(core: Weak<Core>) {
    let Some((every, shutdown)) =
        core.upgrade().map(|c| (c.config.position_check, c.running.shutdown.clone()))
    else {
        return;
    };
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each topic's last position read, and when.
    let mut last: HashMap<Arc<str>, (Position, Instant)> = HashMap::new();
    // Topics whose check after an outage has not read their position yet.
    let mut unsettled = HashSet::new();
    loop {
        let outage = {
            let Some(c) = core.upgrade() else { return };
            let outage = Arc::clone(&c.outage);
            drop(c);
            tokio::select! {
                _ = tick.tick() => false,
                () = outage.notified() => true,
                () = shutdown.cancelled() => return,
            }
        };
        let Some(core) = core.upgrade() else { return };
        let read = positions::check_all(&core, outage, &mut unsettled, &last).await;
        measure_spans(&core, &mut last, read);
    }
}

/// Updates the history span of every topic class from two successive position reads.
fn measure_spans(
    core: &Core,
    last: &mut HashMap<Arc<str>, (Position, Instant)>,
    read: Vec<(Arc<str>, Position)>,
) {
    let now = Instant::now();
    let mut classes: HashMap<String, (usize, f64)> = HashMap::new();
    let mut seen = HashMap::with_capacity(read.len());
    for (topic, position) in read {
        if let Some((before, at)) = last.get(&topic)
            && before.epoch == position.epoch
            && let Some((pattern, settings)) = core.settings.class_of(&topic)
            && settings.history.size > 0
        {
            let secs = now.duration_since(*at).as_secs_f64().max(0.001);
            let rate = position.seq.saturating_sub(before.seq) as f64 / secs;
            let class = classes.entry(pattern).or_insert((settings.history.size, 0.0));
            class.1 = class.1.max(rate);
        }
        seen.insert(topic, (position, now));
    }
    *last = seen;
    let mut spans: Vec<HistorySpan> = classes
        .into_iter()
        .map(|(pattern, (size, rate))| HistorySpan {
            pattern,
            size,
            publications_per_second: rate,
            seconds: if rate > 0.0 { size as f64 / rate } else { f64::INFINITY },
        })
        .collect();
    spans.sort_by(|a, b| a.pattern.cmp(&b.pattern));
    *core.health.spans.lock() = spans;
}
