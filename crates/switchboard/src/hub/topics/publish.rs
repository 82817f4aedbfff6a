//! Publishing: a publication is numbered by history, passes the topic's sequencer to this
//! node's subscribers, and goes to the other nodes; what comes from other nodes passes the same
//! sequencer; a gap it reports is filled from history or signalled.
//!
//! Between nodes, publications of several publishers can arrive out of `seq` order (each got its
//! number from history, then published on its own), and a node can miss some (its broker
//! connection was down). Every publication therefore passes the topic's
//! [`Sequencer`](super::sequencer::Sequencer) before reaching local subscribers: it releases them
//! in `seq` order, holds a publication that comes early, and when the missing one has not come
//! within [`GAP_WAIT`] reads it from history. A gap that history cannot fill closes the topic's
//! subscribers with 4000 (reconnect) where the topic keeps history, so that their recovery says
//! `recovered: false`; elsewhere the jump in `seq` is all that shows.

use std::sync::Arc;

use bytes::Bytes;
use switchboard_core::Position;
use switchboard_protocol::{CloseCode, Payload as RawPayload, Topic, wire};

use super::deliver::deliver;
use super::record::{Record, Skip, decode_publication, encode_publication};
use super::sequencer::{Released, Sequencer};
use super::table::TopicState;
use crate::conn::ConnShared;
use crate::error::HubError;
use crate::hub::core::Core;

/// How long a publication that came early waits for the ones before it, before they are read
/// from history.
pub(crate) const GAP_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Publishes `data` on `topic`; returns the sequence number. `skip`: the publisher's connection,
/// when it does not receive its own publication.
pub(crate) async fn publish(
    core: &Core,
    topic: &Topic,
    event: Option<String>,
    data: RawPayload,
    from: Option<wire::Origin>,
    skip: Option<&ConnShared>,
) -> Result<u64, HubError> {
    let settings = core.settings.of(topic);
    let record =
        Record { event, data, from, skip: skip.map(|conn| Skip { id: conn.id.clone(), local: true }) };
    let bytes = Bytes::from(serde_json::to_vec(&record).map_err(|e| HubError::Encode(e.to_string()))?);
    // No lock: concurrent publications of one topic are numbered by history and put back in
    // order by the sequencer, so they pipeline (several appends and broker publishes in flight).
    let position = core
        .backends
        .history
        .append(topic, bytes.clone(), settings.history)
        .await
        .map_err(|e| HubError::Backend(e.to_string()))?;
    if let Some(state) = core.topics.get(topic) {
        sequenced(core, &state, &position.epoch, position.seq, record);
    }
    let wire = encode_publication(&position, &bytes);
    core.backends
        .broker
        .publish(&core.node, topic, wire)
        .await
        .map_err(|e| HubError::Backend(e.to_string()))?;
    Ok(position.seq)
}

/// A publication from another node.
pub(crate) fn deliver_remote(core: &Arc<Core>, topic: &str, wire: &Bytes) {
    let Some(state) = core.topics.get(topic) else { return };
    match decode_publication(wire) {
        Some((epoch, seq, record)) => sequenced(core, &state, &epoch, seq, record),
        None => tracing::error!(topic, "undecodable publication from another node"),
    }
}

/// Passes a publication through the topic's sequencer, delivering what it releases.
fn sequenced(core: &Core, state: &Arc<TopicState>, epoch: &Arc<str>, seq: u64, record: Record) {
    let mut sequencer = state.sequencer.lock();
    let released = sequencer.push(epoch, seq, record);
    apply(core, state, released);
}

/// Delivers what a sequencer released, in order (its caller still holds the sequencer's lock, so
/// no other release can come between), and schedules the gap check it asked for.
pub(super) fn apply(core: &Core, state: &Arc<TopicState>, (out, check): Released) {
    for (seq, record) in &out {
        deliver(core, state, *seq, record);
    }
    if let Some((epoch, waiting_for)) = check {
        schedule_gap_check(core, &state.name, epoch, waiting_for);
    }
}

fn schedule_gap_check(core: &Core, topic: &str, epoch: Arc<str>, waiting_for: u64) {
    let Some(core) = core.myself() else { return };
    let topic: Arc<str> = Arc::from(topic);
    tokio::spawn(async move {
        tokio::time::sleep(GAP_WAIT).await;
        fill_gap(&core, &topic, epoch, waiting_for).await;
    });
}

/// The publication `waiting_for` has not come: read it (and what follows) from history; a gap
/// that history cannot fill is skipped, and where the topic keeps history its subscribers are
/// closed with 4000 so that they recover (and learn `recovered: false`).
async fn fill_gap(core: &Arc<Core>, topic: &str, epoch: Arc<str>, waiting_for: u64) {
    let Some(state) = core.topics.get(topic) else { return };
    let still_waiting = |s: &Sequencer| s.epoch.as_ref() == Some(&epoch) && s.next == waiting_for;
    if !still_waiting(&state.sequencer.lock()) {
        rearm(core, &state);
        return;
    }
    let since = Position { epoch: epoch.clone(), seq: waiting_for.saturating_sub(1) };
    let recovery = core.backends.history.recover(topic, &since).await;
    let mut sequencer = state.sequencer.lock();
    if !still_waiting(&sequencer) {
        drop(sequencer);
        rearm(core, &state);
        return;
    }
    if let Ok(r) = recovery
        && r.complete
        && r.position.epoch == epoch
    {
        for p in r.publications {
            if let Ok(record) = serde_json::from_slice::<Record>(&p.data) {
                sequencer.held.push((epoch.clone(), p.seq, record));
            }
        }
    }
    let (mut out, _) = sequencer.release();
    if sequencer.next == waiting_for {
        tracing::warn!(topic, %epoch, missing = waiting_for, "publications missed and not in history");
        if state.settings.history.size > 0 {
            for conn in state.subs.read().iter() {
                conn.close(CloseCode::RECONNECT, "publications were missed: resubscribe with since", true);
            }
        }
        out.extend(sequencer.skip_gap().0);
    }
    for (seq, record) in &out {
        deliver(core, &state, *seq, record);
    }
    drop(sequencer);
    rearm(core, &state);
}

/// Schedules the next gap check if publications are still held.
fn rearm(core: &Core, state: &Arc<TopicState>) {
    let mut sequencer = state.sequencer.lock();
    sequencer.checking = false;
    let released = sequencer.release();
    apply(core, state, released);
}
