//! Position checks: a node compares, for each topic it has subscribers of, the topic's position
//! in history with what its sequencer delivered, so that no missed publication goes unnoticed —
//! the last ones of a burst whose broker message was lost (no later publication would reveal the
//! gap), or everything sent while the broker connection was down.
//!
//! A missed tail of the same stream is read from history and passes the sequencer (delivered in
//! order, before anything newer, which the sequencer holds meanwhile). A stream that restarted
//! (another epoch) is read from its start and passes the sequencer, whose first release then
//! carries the new epoch. What history cannot give back is signalled: the subscribers are closed
//! with 4000 and recover with `recovered: false`. After a broker outage the end of the old stream
//! cannot be checked any more when the stream restarted meanwhile, so that is signalled too.
//!
//! A publication numbered by history but not delivered yet may still be on its way through the
//! broker: a periodic check counts as missed only what the previous check (one period earlier)
//! had already read as numbered, so a busy topic is not taken for a broken one. After a broker
//! outage nothing is in transit any more, and the check acts on what it reads. A topic whose
//! check after an outage could not read its position (history not answering yet: a broker that
//! restarted may still be loading) stays checked as after an outage until one read succeeds:
//! otherwise the next periodic check would take the restarted stream for one that only moved on,
//! and a tail of the old stream that this node missed would go unsignalled.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use switchboard_core::Position;

use super::publish::{apply, sequenced, signal_missed};
use super::record::Record;
use crate::hub::core::Core;

/// How many topics a check reads at once.
const CONCURRENCY: usize = 32;

/// Checks every topic this node has subscribers of; `after_outage`: the broker connection was
/// lost and is back; `unsettled`: the topics whose check after an earlier outage read nothing
/// (checked as after an outage again, and kept there until a read succeeds); `previous`: each
/// topic's position as the previous check read it. Returns each topic's position read (for the
/// history spans and the next check).
pub(crate) async fn check_all(
    core: &Arc<Core>,
    after_outage: bool,
    unsettled: &mut HashSet<Arc<str>>,
    previous: &HashMap<Arc<str>, (Position, Instant)>,
) -> Vec<(Arc<str>, Position)> {
    let topics: Vec<Arc<str>> = core.topics.names().into_iter().map(|(t, _)| t).collect();
    if after_outage {
        unsettled.clear();
    } else if !unsettled.is_empty() {
        // A topic without subscribers here any more has nothing left to check.
        let present: HashSet<&Arc<str>> = topics.iter().collect();
        unsettled.retain(|t| present.contains(t));
    }
    let mut read = Vec::with_capacity(topics.len());
    for chunk in topics.chunks(CONCURRENCY) {
        let outage: Vec<bool> = chunk.iter().map(|t| after_outage || unsettled.contains(t)).collect();
        let positions = futures_util::future::join_all(chunk.iter().zip(&outage).map(|(t, &outage)| {
            let before = if outage { None } else { previous.get(t).map(|(p, _)| p) };
            check(core, t, outage, before)
        }))
        .await;
        for ((t, position), outage) in chunk.iter().zip(positions).zip(outage) {
            match position {
                Some(p) => {
                    unsettled.remove(t);
                    read.push((t.clone(), p));
                }
                None if outage => {
                    unsettled.insert(t.clone());
                }
                None => {}
            }
        }
    }
    read
}

/// Checks one topic (see the module's documentation); the position read, if any. `before`: the
/// previous check's position (`None` after an outage: then the check acts on what it reads).
async fn check(
    core: &Arc<Core>,
    topic: &str,
    after_outage: bool,
    before: Option<&Position>,
) -> Option<Position> {
    let state = core.topics.get(topic)?;
    let (epoch, next) = {
        let s = state.sequencer.lock();
        match &s.epoch {
            Some(epoch) => (epoch.clone(), s.next),
            // Its first subscription is still reading history.
            None => return None,
        }
    };
    let history = &core.backends.history;
    // The broker or history being down is not a verdict: the next check tries again.
    let position = history.position(topic).await.ok()?;
    let same = position.epoch == epoch;
    if same && position.seq < next {
        return Some(position);
    }
    if !after_outage {
        // Only what was numbered a period ago can be missed: the rest may be in transit.
        let settled = before.filter(|b| b.epoch == position.epoch).map(|b| b.seq);
        match settled {
            Some(seq) if !same || seq >= next => {}
            _ => return Some(position),
        }
    }
    let since = if same {
        Position { epoch: epoch.clone(), seq: next - 1 }
    } else {
        Position { epoch: position.epoch.clone(), seq: 0 }
    };
    let recovery = history.recover(topic, &since).await.ok()?;
    let filled = recovery.complete && recovery.position.epoch == since.epoch;
    if filled && (same || !after_outage) {
        let records: Vec<_> = recovery
            .publications
            .into_iter()
            .filter_map(|p| serde_json::from_slice::<Record>(&p.data).ok().map(|r| (p.seq, r)))
            .collect();
        if !records.is_empty() {
            tracing::info!(
                topic,
                missed = records.len(),
                "publications missed by this node, filled from history"
            );
            core.health.missed_filled.fetch_add(records.len() as u64, Ordering::Relaxed);
        }
        for (seq, record) in records {
            sequenced(core, &state, &since.epoch, seq, record);
        }
        return Some(position);
    }
    tracing::warn!(
        topic,
        %epoch,
        delivered = next - 1,
        now = %position.epoch,
        seq = position.seq,
        "publications missed that history cannot give back: subscribers told to recover"
    );
    let mut sequencer = state.sequencer.lock();
    if sequencer.epoch.as_ref() != Some(&epoch) || sequencer.next != next {
        // Something arrived meanwhile: the next check decides again.
        return Some(position);
    }
    signal_missed(&state);
    core.health.missed_signalled.fetch_add(1, Ordering::Relaxed);
    // Carry on from where the stream is now (the subscribers recover what they can).
    let released = sequencer.start(&recovery.position.epoch, recovery.position.seq + 1);
    apply(core, &state, released);
    Some(position)
}
