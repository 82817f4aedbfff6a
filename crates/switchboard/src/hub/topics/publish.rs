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
use switchboard_core::{BackendError, Position};
use switchboard_protocol::{CloseCode, MessageType, RawPayload, Topic, wire};

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

/// Options of [`Hub::publish_with`](crate::Hub::publish_with).
///
/// ```
/// use switchboard::PublishOptions;
/// let options = PublishOptions::new().event("price").key("tick-2026-12-06T10:00:00Z");
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PublishOptions {
    /// The event name carried with the delivery.
    pub event: Option<String>,
    /// The idempotency key (at most 64 bytes).
    pub key: Option<String>,
}

impl PublishOptions {
    /// No event name, no key.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The event name carried with the delivery.
    #[must_use]
    pub fn event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// An idempotency key: a publication whose key the topic's kept history has already seen is
    /// not published again (a topic that keeps no history keeps no keys).
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Checks the event name and the key.
    pub(crate) fn check(&self) -> Result<(), HubError> {
        check_event_and_key(self.event.as_deref(), self.key.as_deref())
    }
}

/// An event name has 1 to 128 bytes; a key, 1 to 64.
pub(crate) fn check_event_and_key(event: Option<&str>, key: Option<&str>) -> Result<(), HubError> {
    if event.is_some_and(|e| !MessageType::is_valid(e)) {
        return Err(HubError::Invalid("an event name has 1 to 128 bytes".to_owned()));
    }
    if key.is_some_and(|k| k.is_empty() || k.len() > wire::MAX_PUBLISH_KEY) {
        return Err(HubError::Invalid(format!("a key has 1 to {} bytes", wire::MAX_PUBLISH_KEY)));
    }
    Ok(())
}

/// A publication to make.
pub(crate) struct Publication<'a> {
    pub(crate) event: Option<String>,
    pub(crate) data: RawPayload,
    /// The publisher, for publications by clients.
    pub(crate) from: Option<wire::Origin>,
    /// The publisher's connection, when it does not receive its own publication.
    pub(crate) skip: Option<&'a ConnShared>,
    /// The idempotency key: a publication whose key the topic's kept history has already seen is
    /// not published again.
    pub(crate) key: Option<&'a str>,
}

/// Publishes on `topic`; returns the sequence number (for a duplicate key, the first one's).
///
/// Once history numbered it, the publication is published: delivered here, sent to the other
/// nodes through the broker, and found in history by those the broker missed. An error means it
/// was not published anywhere, except [`HubError::Indeterminate`]: history did not answer, it
/// may have been (a retry with the same key is safe).
pub(crate) async fn publish(
    core: &Core,
    topic: &Topic,
    publication: Publication<'_>,
) -> Result<u64, HubError> {
    let settings = core.settings.of(topic);
    let Publication { event, data, from, skip, key } = publication;
    let record =
        Record { event, data, from, skip: skip.map(|conn| Skip { id: conn.id.clone(), local: true }) };
    let bytes = Bytes::from(serde_json::to_vec(&record).map_err(|e| HubError::Encode(e.to_string()))?);
    // No lock: concurrent publications of one topic are numbered by history and put back in
    // order by the sequencer, so they pipeline (several appends and broker publishes in flight).
    let appended = core.backends.history.append(topic, bytes.clone(), settings.history, key).await.map_err(
        |e| match e {
            // It may have been numbered and kept: the publisher retries with its key.
            BackendError::Indeterminate(e) => HubError::Indeterminate(e),
            // Not numbered, not kept, published nowhere.
            e => HubError::Backend(e.to_string()),
        },
    )?;
    let position = appended.position;
    if appended.duplicate {
        return Ok(position.seq);
    }
    if let Some(state) = core.topics.get(topic) {
        sequenced(core, &state, &position.epoch, position.seq, record);
    }
    let wire = encode_publication(&position, &bytes);
    if let Err(e) = core.backends.broker.publish(&core.node, topic, wire).await {
        // Numbered and kept in history, delivered here: published. The other nodes find it in
        // history at their next position check (`positions.rs`), as they would after losing it.
        tracing::warn!(error = %e, %topic, seq = position.seq, "a publication did not reach the broker: the other nodes will read it from history");
    }
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
pub(super) fn sequenced(core: &Core, state: &Arc<TopicState>, epoch: &Arc<str>, seq: u64, record: Record) {
    let mut sequencer = state.sequencer.lock();
    let released = sequencer.push(epoch, seq, record);
    apply(core, state, released);
}

/// Delivers what a sequencer released, in order (its caller still holds the sequencer's lock, so
/// no other release can come between), and schedules the gap check it asked for.
pub(super) fn apply(core: &Core, state: &Arc<TopicState>, (out, check): Released) {
    for out in &out {
        deliver(core, state, out);
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
/// that history cannot fill is skipped, and the topic's subscribers are closed with 4000, so that
/// they recover (and learn `recovered: false`): no gap is silent (protocol §5).
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
        signal_missed(&state);
        out.extend(sequencer.skip_gap().0);
    }
    for out in &out {
        deliver(core, &state, out);
    }
    drop(sequencer);
    rearm(core, &state);
}

/// Tells the topic's subscribers that publications were missed: closed with 4000, they
/// resubscribe with `since` and learn `recovered: false`.
pub(super) fn signal_missed(state: &TopicState) {
    for conn in state.subs.read().iter() {
        conn.close(CloseCode::RECONNECT, "publications were missed: resubscribe with since", true);
    }
}

/// Schedules the next gap check if publications are still held.
fn rearm(core: &Core, state: &Arc<TopicState>) {
    let mut sequencer = state.sequencer.lock();
    sequencer.checking = false;
    let released = sequencer.release();
    apply(core, state, released);
}
