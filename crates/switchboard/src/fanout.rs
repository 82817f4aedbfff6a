//! Topics: the local subscriber registry, publishing (encode once, fan out), subscribing with
//! recovery, and what arrives from other nodes.
//!
//! Order: a publication is appended to history (which assigns its sequence number), then passes
//! the topic's sequencer (below) to the local subscribers, and goes to the other nodes. While a
//! subscription reads history it is *pending*: what the sequencer releases meanwhile is buffered
//! for it and delivered after the replay (skipping what the replay already covered), so every
//! subscriber sees sequence numbers in order, with no gap between the replay and live
//! publications. Subscriptions of one topic take its order lock, one at a time.
//!
//! Between nodes, publications of several publishers can arrive out of `seq` order (each got its
//! number from history, then published on its own), and a node can miss some (its broker
//! connection was down). Every publication therefore passes the topic's [`Sequencer`] before
//! reaching local subscribers: it releases them in `seq` order, holds a publication that comes
//! early, and when the missing one has not come within [`GAP_WAIT`] reads it from history. A gap
//! that history cannot fill closes the topic's subscribers with 4000 (reconnect) where the topic
//! keeps history, so that their recovery says `recovered: false`; elsewhere the jump in `seq` is
//! all that shows.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use switchboard_core::Position;
use switchboard_protocol::{CloseCode, Format, Id, MapWriter, Payload as RawPayload, Topic, encode, wire};

use crate::Error;
use crate::conn::ConnShared;
use crate::frame::{PerFormat, SharedFrame};
use crate::hub::{HubError, HubInner, Sharded};
use crate::topic::TopicSettings;

/// Local subscribers of one topic.
pub(crate) struct TopicState {
    /// The name, shared with the registry's key and with every subscriber's topic list.
    name: Topic,
    pub(crate) settings: TopicSettings,
    pub(crate) subs: RwLock<Subscribers>,
    /// Subscriptions still reading history, with what was published meanwhile. Lock order:
    /// `pending` before `subs`, everywhere.
    /// (A list, not a map: it is empty nearly always, and an empty `Vec` is half the size.)
    pending: Mutex<Vec<(Arc<str>, Buffered)>>,
    /// Puts publications in `seq` order. Lock order: `sequencer` before `pending`.
    sequencer: Mutex<Sequencer>,
    /// Publications released by the sequencer whose fan-out waits for the cork of the thread
    /// that released them (see [`deliver`]). Lock order: after `pending`, before `subs`.
    deferred: Mutex<Vec<(u64, Record)>>,
}

/// A topic's local subscribers: a list while they are few (a topic of one connection costs
/// one pointer, not a hash table), a map by connection id beyond.
pub(crate) enum Subscribers {
    Few(Vec<Arc<ConnShared>>),
    /// Boxed: the list is the usual case, and the enum stays the size of a `Vec`.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Arc<str>, Arc<ConnShared>>>),
}

impl Subscribers {
    /// Up to this many, a list.
    const FEW: usize = 16;

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Few(list) => list.len(),
            Self::Many(map) => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<ConnShared>> {
        let (list, map) = match self {
            Self::Few(list) => (Some(list.iter()), None),
            Self::Many(map) => (None, Some(map.values())),
        };
        list.into_iter().flatten().chain(map.into_iter().flatten())
    }

    fn insert(&mut self, conn: &Arc<ConnShared>) {
        match self {
            Self::Few(list) => {
                if list.iter().any(|c| c.id == conn.id) {
                    return;
                }
                if list.len() < Self::FEW {
                    if list.capacity() == 0 {
                        list.reserve_exact(1);
                    }
                    list.push(conn.clone());
                } else {
                    let mut map: HashMap<_, _> = list.drain(..).map(|c| (c.id.clone(), c)).collect();
                    map.insert(conn.id.clone(), conn.clone());
                    *self = Self::Many(Box::new(map));
                }
            }
            Self::Many(map) => {
                map.insert(conn.id.clone(), conn.clone());
            }
        }
    }

    fn remove(&mut self, id: &str) {
        match self {
            Self::Few(list) => {
                list.retain(|c| &*c.id != id);
                if list.is_empty() {
                    *list = Vec::new();
                }
            }
            Self::Many(map) => {
                map.remove(id);
                if map.len() <= Self::FEW / 2 {
                    *self = Self::Few(map.drain().map(|(_, c)| c).collect());
                }
            }
        }
    }
}

/// Publications (with their sequence numbers) held for a subscription that is reading history.
type Buffered = Vec<(u64, Record)>;

/// How long a publication that came early waits for the ones before it, before they are read
/// from history.
pub(crate) const GAP_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Releases a topic's publications in `seq` order (see the module documentation).
#[derive(Default)]
pub(crate) struct Sequencer {
    /// The stream being delivered; `None` until the first subscription read the position.
    epoch: Option<Arc<str>>,
    /// The next `seq` to release.
    next: u64,
    /// Publications that came early (or before the position was known), unordered.
    held: Vec<(Arc<str>, u64, Record)>,
    /// Whether a gap check is scheduled.
    checking: bool,
}

/// What a sequencer decided: publications to release now, in order, and whether to schedule a
/// gap check (for `(epoch, seq)`, the publication waited for).
type Released = (Vec<(u64, Record)>, Option<(Arc<str>, u64)>);

impl Sequencer {
    /// Starts (or restarts) the stream at `epoch`, releasing from `next`.
    fn start(&mut self, epoch: &Arc<str>, next: u64) -> Released {
        self.epoch = Some(epoch.clone());
        self.next = next;
        self.release()
    }

    /// A publication arrives.
    fn push(&mut self, epoch: &Arc<str>, seq: u64, record: Record) -> Released {
        let Some(current) = &self.epoch else {
            self.held.push((epoch.clone(), seq, record));
            return (Vec::new(), None);
        };
        if current != epoch {
            // The stream restarted (history lost or expired): what is held of the old stream
            // goes out in order, and the new one starts at 1.
            let mut old = std::mem::take(&mut self.held);
            old.sort_by_key(|(_, seq, _)| *seq);
            let mut out: Vec<_> = old.into_iter().map(|(_, seq, r)| (seq, r)).collect();
            self.held.push((epoch.clone(), seq, record));
            let (more, check) = self.start(epoch, 1);
            out.extend(more);
            return (out, check);
        }
        if seq < self.next {
            return (Vec::new(), None);
        }
        if seq == self.next && self.held.is_empty() {
            // The usual case: the next one, nothing held.
            self.next += 1;
            return (vec![(seq, record)], None);
        }
        self.held.push((epoch.clone(), seq, record));
        self.release()
    }

    /// Releases what follows `next` without a gap; drops what is older or of another stream.
    fn release(&mut self) -> Released {
        let Some(epoch) = self.epoch.clone() else { return (Vec::new(), None) };
        self.held.retain(|(e, seq, _)| *e == epoch && *seq >= self.next);
        self.held.sort_by_key(|(_, seq, _)| std::cmp::Reverse(*seq));
        let mut out = Vec::new();
        while let Some((_, seq, _)) = self.held.last() {
            if *seq > self.next {
                break;
            }
            let (_, seq, record) = self.held.pop().expect("a last element");
            if seq == self.next {
                out.push((seq, record));
                self.next += 1;
            }
        }
        let check = (!self.held.is_empty() && !self.checking).then(|| {
            self.checking = true;
            (epoch, self.next)
        });
        (out, check)
    }

    /// Gives up on the gap before the first held publication.
    fn skip_gap(&mut self) -> Released {
        if let Some(first) = self.held.iter().map(|(_, seq, _)| *seq).min() {
            self.next = first;
        }
        self.release()
    }
}

impl TopicState {
    fn is_unused(&self) -> bool {
        let pending = self.pending.lock();
        pending.is_empty() && self.subs.read().is_empty()
    }
}

/// The local topic registry.
pub(crate) struct Topics {
    map: Sharded<Arc<TopicState>>,
    /// Striped order locks: subscriptions of one topic are serialized.
    order: Box<[tokio::sync::Mutex<()>]>,
    hasher: RandomState,
}

impl Topics {
    pub(crate) fn new() -> Self {
        Self {
            map: Sharded::new(64),
            order: (0..256).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn order(&self, topic: &str) -> &tokio::sync::Mutex<()> {
        &self.order[(self.hasher.hash_one(topic) as usize) % self.order.len()]
    }

    pub(crate) fn get(&self, topic: &str) -> Option<Arc<TopicState>> {
        self.map.shard(topic).read().get(topic).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn names(&self) -> Vec<(Arc<str>, usize)> {
        self.map
            .shards()
            .iter()
            .flat_map(|s| {
                s.read().iter().map(|(t, st)| (t.clone(), st.subs.read().len())).collect::<Vec<_>>()
            })
            .collect()
    }
}

/// A publication as history keeps it and the broker carries it (JSON).
#[derive(Clone, Serialize, Deserialize)]
struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    data: RawPayload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<wire::Origin>,
    /// The publisher's connection when it asked not to receive its own publication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    skip: Option<Skip>,
}

impl Record {
    /// Whether `conn` is the publisher that asked not to receive this publication.
    fn skips(&self, conn: &ConnShared) -> bool {
        self.skip.as_ref().is_some_and(|skip| skip.is(conn))
    }
}

/// The connection a publication is not delivered to: its publisher, when it asked so.
///
/// Published here, it is the connection's own id, compared by address with each subscriber's
/// (a fan-out does not read every subscriber's id); read back from history or from another node,
/// it is compared by value.
#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
struct Skip {
    id: Arc<str>,
    /// `id` is the connection's own (`ConnShared::id`, the same allocation).
    local: bool,
}

impl Skip {
    fn is(&self, conn: &ConnShared) -> bool {
        if self.local { Arc::ptr_eq(&self.id, &conn.id) } else { *self.id == *conn.id }
    }
}

impl From<String> for Skip {
    fn from(id: String) -> Self {
        Self { id: id.into(), local: false }
    }
}

impl From<Skip> for String {
    fn from(skip: Skip) -> Self {
        skip.id.to_string()
    }
}

/// Publishes `data` on `topic`; returns the sequence number. `skip`: the publisher's connection,
/// when it does not receive its own publication.
pub(crate) async fn publish(
    hub: &HubInner,
    topic: &Topic,
    event: Option<String>,
    data: RawPayload,
    from: Option<wire::Origin>,
    skip: Option<&ConnShared>,
) -> Result<u64, HubError> {
    let settings = hub.settings_for(topic);
    let record =
        Record { event, data, from, skip: skip.map(|conn| Skip { id: conn.id.clone(), local: true }) };
    let bytes = Bytes::from(serde_json::to_vec(&record).map_err(|e| HubError::Encode(e.to_string()))?);
    // No lock: concurrent publications of one topic are numbered by history and put back in
    // order by the sequencer, so they pipeline (several appends and broker publishes in flight).
    let position = hub
        .backends
        .history
        .append(topic, bytes.clone(), settings.history)
        .await
        .map_err(|e| HubError::Backend(e.to_string()))?;
    if let Some(state) = hub.topics.get(topic) {
        sequenced(hub, topic, &state, &position.epoch, position.seq, record);
    }
    let wire = encode_publication(&position, &bytes);
    hub.backends
        .broker
        .publish(&hub.node, topic, wire)
        .await
        .map_err(|e| HubError::Backend(e.to_string()))?;
    Ok(position.seq)
}

/// What the broker carries: `seq` (8 bytes, big-endian), the epoch's length (1 byte), the epoch,
/// and the record (JSON).
fn encode_publication(position: &Position, record: &[u8]) -> Bytes {
    let epoch = position.epoch.as_bytes();
    let epoch = &epoch[..epoch.len().min(255)];
    let mut wire = BytesMut::with_capacity(9 + epoch.len() + record.len());
    wire.put_u64(position.seq);
    wire.put_u8(u8::try_from(epoch.len()).unwrap_or(u8::MAX));
    wire.extend_from_slice(epoch);
    wire.extend_from_slice(record);
    wire.freeze()
}

fn decode_publication(wire: &[u8]) -> Option<(Arc<str>, u64, Record)> {
    let seq = u64::from_be_bytes(wire.get(..8)?.try_into().ok()?);
    let len = usize::from(*wire.get(8)?);
    let epoch = std::str::from_utf8(wire.get(9..9 + len)?).ok()?;
    let record = serde_json::from_slice(wire.get(9 + len..)?).ok()?;
    Some((Arc::from(epoch), seq, record))
}

/// A publication from another node.
pub(crate) fn deliver_remote(hub: &Arc<HubInner>, topic: &str, wire: &Bytes) {
    let Some(state) = hub.topics.get(topic) else { return };
    match decode_publication(wire) {
        Some((epoch, seq, record)) => sequenced(hub, topic, &state, &epoch, seq, record),
        None => tracing::error!(topic, "undecodable publication from another node"),
    }
}

/// Passes a publication through the topic's sequencer, delivering what it releases.
fn sequenced(
    hub: &HubInner,
    topic: &str,
    state: &Arc<TopicState>,
    epoch: &Arc<str>,
    seq: u64,
    record: Record,
) {
    let mut sequencer = state.sequencer.lock();
    let released = sequencer.push(epoch, seq, record);
    apply(hub, topic, state, released);
}

/// Delivers what a sequencer released, in order (its caller still holds the sequencer's lock, so
/// no other release can come between), and schedules the gap check it asked for.
fn apply(hub: &HubInner, topic: &str, state: &Arc<TopicState>, (out, check): Released) {
    for (seq, record) in &out {
        deliver(hub, topic, state, *seq, record);
    }
    if let Some((epoch, waiting_for)) = check {
        schedule_gap_check(hub, topic, epoch, waiting_for);
    }
}

fn schedule_gap_check(hub: &HubInner, topic: &str, epoch: Arc<str>, waiting_for: u64) {
    let Some(hub) = hub.myself() else { return };
    let topic: Arc<str> = Arc::from(topic);
    tokio::spawn(async move {
        tokio::time::sleep(GAP_WAIT).await;
        fill_gap(&hub, &topic, epoch, waiting_for).await;
    });
}

/// The publication `waiting_for` has not come: read it (and what follows) from history; a gap
/// that history cannot fill is skipped, and where the topic keeps history its subscribers are
/// closed with 4000 so that they recover (and learn `recovered: false`).
async fn fill_gap(hub: &Arc<HubInner>, topic: &str, epoch: Arc<str>, waiting_for: u64) {
    let Some(state) = hub.topics.get(topic) else { return };
    let still_waiting = |s: &Sequencer| s.epoch.as_ref() == Some(&epoch) && s.next == waiting_for;
    if !still_waiting(&state.sequencer.lock()) {
        rearm(hub, topic, &state);
        return;
    }
    let since = Position { epoch: epoch.clone(), seq: waiting_for.saturating_sub(1) };
    let recovery = hub.backends.history.recover(topic, &since).await;
    let mut sequencer = state.sequencer.lock();
    if !still_waiting(&sequencer) {
        drop(sequencer);
        rearm(hub, topic, &state);
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
        deliver(hub, topic, &state, *seq, record);
    }
    drop(sequencer);
    rearm(hub, topic, &state);
}

/// Schedules the next gap check if publications are still held.
fn rearm(hub: &HubInner, topic: &str, state: &Arc<TopicState>) {
    let mut sequencer = state.sequencer.lock();
    sequencer.checking = false;
    let released = sequencer.release();
    apply(hub, topic, state, released);
}

/// The `~msg` payload of a publication.
fn delivery_payload(topic: &str, seq: u64, record: &Record, format: Format) -> Option<RawPayload> {
    let len = 3 + u32::from(record.event.is_some()) + u32::from(record.from.is_some());
    let mut w = MapWriter::new(format, len);
    let built = (|| {
        w.field("topic", topic)?;
        if let Some(event) = &record.event {
            w.field("event", event)?;
        }
        w.raw("data", &record.data)?;
        w.field("seq", &seq)?;
        if let Some(from) = &record.from {
            w.field("from", from)?;
        }
        Ok::<_, switchboard_protocol::EncodeError>(())
    })();
    match built {
        Ok(()) => Some(w.finish()),
        Err(e) => {
            tracing::warn!(topic, error = %e, "a publication cannot be encoded");
            None
        }
    }
}

/// Fans a publication out to the local subscribers: the payload is built once per format, and
/// (for topics without acknowledgements) the whole frame too.
///
/// In a corked stretch (a connection's task handling one read batch, see `queue::Cork`), the
/// fan-out of a topic's consecutive publications waits for the end of the stretch and goes out
/// together ([`flush_deferred`]): each subscriber gets the batch with one push (one lock, its
/// queue's lines touched once) instead of one per publication. They go to the subscribers of
/// the moment they were published: the subscriber list changes only after the deferred
/// publications were queued to it (see `subscribe`, `unsubscribe`); any other message queued
/// meanwhile on this thread, or a publication on another topic, first sends them.
fn deliver(hub: &HubInner, topic: &str, state: &Arc<TopicState>, seq: u64, record: &Record) {
    let defer = !state.settings.acked && crate::queue::Cork::is_corked();
    let held = defer && deferring(state);
    if !held {
        // Another topic's fan-out held by this thread goes first, before any lock is taken.
        flush_corked();
    }
    // Held through the delivery: a subscription that finishes its replay meanwhile sees this
    // publication either in its buffer or as a live subscriber, never neither.
    let mut pending = state.pending.lock();
    for (_, buffer) in pending.iter_mut() {
        buffer.push((seq, record.clone()));
    }
    if defer {
        if !held {
            DEFERRED_TOPIC.with(|t| *t.borrow_mut() = Some(state.clone()));
            crate::queue::Cork::before_next_send(flush_corked);
        }
        state.deferred.lock().push((seq, record.clone()));
        return;
    }
    let payloads: PerFormat<Option<RawPayload>> = PerFormat::default();
    let frames: PerFormat<Option<Bytes>> = PerFormat::default();
    let subs = state.subs.read();
    for conn in subs.iter() {
        if record.skips(conn) {
            continue;
        }
        let format = conn.format;
        let Some(payload) = payloads.get(format, || delivery_payload(topic, seq, record, format)) else {
            continue;
        };
        if state.settings.acked {
            crate::housekeeping::send_acked(hub, conn, wire::types::MSG, payload);
        } else if let Some(frame) =
            frames.get(format, || encode(format, wire::types::MSG, payload, None).ok())
        {
            let _ = conn.push(frame.clone());
        }
    }
    drop(subs);
    drop(pending);
}

thread_local! {
    /// The topic whose fan-out this thread's cork holds (one at a time: a publication on
    /// another topic sends it first, so that subscribers of both get them in order).
    static DEFERRED_TOPIC: std::cell::RefCell<Option<Arc<TopicState>>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether this thread's cork holds `state`'s fan-out.
fn deferring(state: &Arc<TopicState>) -> bool {
    DEFERRED_TOPIC.with(|t| t.borrow().as_ref().is_some_and(|t| Arc::ptr_eq(t, state)))
}

/// Sends the fan-out this thread's cork holds, if any.
fn flush_corked() {
    if let Some(state) = DEFERRED_TOPIC.with(|t| t.borrow_mut().take()) {
        flush_deferred(&state);
    }
}

/// Queues a topic's deferred publications to its subscribers: each gets them in one push.
/// The list's lock is held throughout, so that a change of the subscribers (which flushes
/// first) waits for them to be queued.
///
/// Lock order: `deferred`, `subs`, then the subscribers' queues, and nothing else: a send on
/// this thread does not run the cork's hook meanwhile (no other fan-out is flushed inside).
fn flush_deferred(state: &TopicState) {
    let mut deferred = state.deferred.lock();
    if deferred.is_empty() {
        return;
    }
    let batch = std::mem::take(&mut *deferred);
    let hook = crate::queue::Cork::take_before_next_send();
    // Per format: each publication's frame (`None`: it cannot be encoded), and, for a batch of
    // several, those that can, shared by the subscribers (a lone frame is queued as itself:
    // an allocation made here and freed on the writer's thread would cost more than it saves).
    let encoded: PerFormat<Encoded> = PerFormat::default();
    let skips = batch.iter().any(|(_, record)| record.skip.is_some());
    let subs = state.subs.read();
    for conn in subs.iter() {
        let format = conn.format;
        let encoded = encoded.get(format, || {
            let each: Vec<Option<Bytes>> = batch
                .iter()
                .map(|(seq, record)| {
                    delivery_payload(&state.name, *seq, record, format)
                        .and_then(|payload| encode(format, wire::types::MSG, &payload, None).ok())
                })
                .collect();
            let shared = (each.len() > 1).then(|| {
                let frames: Arc<[Bytes]> = each.iter().flatten().cloned().collect();
                let len = frames.iter().map(Bytes::len).sum();
                (frames, len)
            });
            Encoded { each, shared }
        });
        let skipped = |record: &Record| record.skips(conn);
        let _ = match &encoded.shared {
            // Unless it is the publisher of one of them, which asked not to get it back.
            Some((frames, len)) if !skips || !batch.iter().any(|(_, record)| skipped(record)) => {
                conn.push_shared(frames, *len)
            }
            _ => conn.push_many(
                batch
                    .iter()
                    .zip(&encoded.each)
                    .filter(|((_, record), _)| !skipped(record))
                    .filter_map(|(_, frame)| frame.clone()),
            ),
        };
    }
    drop(subs);
    drop(deferred);
    if let Some(hook) = hook {
        crate::queue::Cork::before_next_send(hook);
    }
}

/// A held batch encoded in one format (see [`flush_deferred`]).
struct Encoded {
    /// Each publication's frame; `None`: it cannot be encoded.
    each: Vec<Option<Bytes>>,
    /// For a batch of several, the frames shared by the subscribers, and their bytes.
    shared: Option<(Arc<[Bytes]>, usize)>,
}

/// Delivers one publication to one connection (replays and buffered publications).
fn deliver_one(
    hub: &HubInner,
    conn: &Arc<ConnShared>,
    topic: &str,
    settings: TopicSettings,
    seq: u64,
    record: &Record,
) {
    if record.skips(conn) {
        return;
    }
    if let Some(payload) = delivery_payload(topic, seq, record, conn.format) {
        if settings.acked {
            crate::housekeeping::send_acked(hub, conn, wire::types::MSG, &payload);
        } else {
            let _ = conn.push_message(wire::types::MSG, &payload, None);
        }
    }
}

/// Sends an event (not a publication: no sequence number) to a topic's local subscribers.
pub(crate) fn deliver_event(hub: &HubInner, topic: &str, frame: &SharedFrame) {
    // A fan-out this thread's cork holds goes first, before the topic's lock is taken.
    flush_corked();
    if let Some(state) = hub.topics.get(topic) {
        for conn in state.subs.read().iter() {
            let _ = frame.push_to(conn);
        }
    }
}

/// Subscribes `conn` to `topic`; with `reply`, queues the `~sub` reply and then the recovered
/// publications, in that order, before any newer publication.
pub(crate) async fn subscribe(
    hub: &HubInner,
    conn: &Arc<ConnShared>,
    topic: &Topic,
    since: Option<wire::StreamPosition>,
    reply: Option<Id>,
) -> Result<wire::Subscribed, Error> {
    let already = conn.topics.lock().iter().any(|t| t == topic);
    if !already && conn.topics.lock().len() >= hub.config.max_subscriptions {
        return Err(Error::limit("too many subscriptions"));
    }
    let settings = hub.settings_for(topic);
    let unavailable = |_| Error::unavailable("the topic's history is unavailable");
    let order = hub.topics.order(topic).lock().await;
    // 1. Become pending: from here on, publications from other nodes are buffered for us.
    let state = if already {
        None
    } else {
        let (state, created) = {
            let mut shard = hub.topics.map.shard(topic).write();
            let created = !shard.contains_key(topic.as_str());
            let state = shard
                .entry(topic.shared())
                .or_insert_with(|| {
                    Arc::new(TopicState {
                        name: topic.clone(),
                        settings,
                        subs: RwLock::new(Subscribers::Few(Vec::new())),
                        pending: Mutex::new(Vec::new()),
                        sequencer: Mutex::new(Sequencer::default()),
                        deferred: Mutex::new(Vec::new()),
                    })
                })
                .clone();
            state.pending.lock().push((conn.id.clone(), Vec::new()));
            (state, created)
        };
        {
            let mut topics = conn.topics.lock();
            // A few topics per connection is the usual case: room for them exactly, then doubling.
            if topics.len() == topics.capacity() && topics.len() < 4 {
                topics.reserve_exact(1);
            }
            topics.push(state.name.clone());
        }
        let failed = if conn.is_closing() {
            Some(Error::unavailable("the connection is closing"))
        } else if created {
            // The node hears the topic before reading its history, so nothing falls between.
            hub.backends.broker.subscribe(&hub.node, topic).await.err().map(unavailable)
        } else {
            None
        };
        if let Some(e) = failed {
            drop(order);
            unsubscribe(hub, conn, topic).await;
            return Err(e);
        }
        Some(state)
    };
    // 2. Read history.
    let read = match &since {
        Some(since) => {
            let since = Position { epoch: since.epoch.as_str().into(), seq: since.seq };
            hub.backends.history.recover(topic, &since).await.map(|r| {
                // An incomplete recovery replays nothing: the client reloads its state instead,
                // and a partial replay would only be applied twice.
                let replay = if r.complete { r.publications } else { Vec::new() };
                (r.position, replay, r.complete)
            })
        }
        None => hub.backends.history.position(topic).await.map(|p| (p, Vec::new(), false)),
    };
    let (position, replay, recovered) = match read {
        Ok(read) => read,
        Err(e) => {
            drop(order);
            if state.is_some() {
                unsubscribe(hub, conn, topic).await;
            }
            return Err(unavailable(e));
        }
    };
    // 3. The reply, then the replay.
    let answer = wire::Subscribed {
        topic: topic.to_string(),
        epoch: position.epoch.to_string(),
        seq: position.seq,
        recovered: since.is_some() && recovered,
    };
    if let Some(id) = reply {
        conn.reply(id, RawPayload::encode(conn.format, &answer).map_err(|_| Error::failed()));
    }
    let mut covered = position.seq;
    for p in replay {
        covered = covered.max(p.seq);
        match serde_json::from_slice::<Record>(&p.data) {
            Ok(record) => deliver_one(hub, conn, topic, settings, p.seq, &record),
            Err(e) => tracing::error!(error = %e, %topic, "undecodable publication in history"),
        }
    }
    // 4. Go live: what arrived meanwhile and was not covered, then everything new. The first
    // subscription of this node starts the topic's sequencer right after what it covered.
    if let Some(state) = &state {
        let mut sequencer = state.sequencer.lock();
        if sequencer.epoch.is_none() {
            let released = sequencer.start(&position.epoch, covered + 1);
            apply(hub, topic, state, released);
        }
        let mut pending = state.pending.lock();
        let mine = pending.iter().position(|(id, _)| *id == conn.id);
        if let Some((_, buffer)) = mine.map(|i| pending.swap_remove(i)) {
            if pending.is_empty() {
                // Nearly always: no subscription reads history, and the list's room goes.
                *pending = Vec::new();
            }
            for (seq, record) in buffer.iter().filter(|(seq, _)| *seq > covered) {
                deliver_one(hub, conn, topic, settings, *seq, record);
            }
            // What this topic's publishers deferred goes to the subscribers it was published to.
            flush_deferred(state);
            state.subs.write().insert(conn);
        }
        drop(pending);
        drop(sequencer);
    }
    drop(order);
    if settings.presence && !already {
        crate::presence::topic_join(hub, conn, topic).await;
    }
    Ok(answer)
}

/// Removes `conn` from `topic`; returns whether it was subscribed.
pub(crate) async fn unsubscribe(hub: &HubInner, conn: &Arc<ConnShared>, topic: &str) -> bool {
    {
        let mut topics = conn.topics.lock();
        let before = topics.len();
        topics.retain(|t| t.as_str() != topic);
        if topics.len() == before {
            return false;
        }
    }
    let mut last = false;
    let mut settings = TopicSettings::default();
    {
        let mut shard = hub.topics.map.shard(topic).write();
        if let Some(state) = shard.get(topic) {
            settings = state.settings;
            let mut pending = state.pending.lock();
            pending.retain(|(id, _)| **id != *conn.id);
            if pending.is_empty() {
                *pending = Vec::new();
            }
            drop(pending);
            flush_deferred(state);
            state.subs.write().remove(&conn.id);
            if state.is_unused() {
                last = true;
                shard.remove(topic);
            }
        }
    }
    if last && let Err(e) = hub.backends.broker.unsubscribe(&hub.node, topic).await {
        tracing::warn!(error = %e, topic, "could not unsubscribe the node from the broker");
    }
    if settings.presence {
        crate::presence::topic_leave(hub, conn, topic).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{Out, Receiver};
    use futures_util::FutureExt;

    async fn hub() -> Arc<HubInner> {
        crate::Server::new().build().await.unwrap().hub().inner
    }

    /// What a connection was sent: `seq` of each publication, 0 for anything else.
    fn received(rx: &mut Receiver) -> Vec<u64> {
        let seq = |bytes: &Bytes| {
            let msg: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            msg[1]["seq"].as_u64().unwrap_or(0)
        };
        std::iter::from_fn(|| rx.try_recv())
            .flat_map(|out| match out {
                Out::Frame(bytes) => vec![seq(&bytes)],
                Out::Frames(frames) => frames.iter().map(seq).collect(),
                _ => vec![0],
            })
            .collect()
    }

    /// Publishes `n` on the in-memory history, which answers at once.
    fn publish_now(hub: &HubInner, topic: &Topic, n: u64, skip: Option<&ConnShared>) -> u64 {
        publish(hub, topic, None, RawPayload::json(&n).unwrap(), None, skip)
            .now_or_never()
            .expect("in-memory history answers at once")
            .unwrap()
    }

    #[tokio::test]
    async fn a_corked_fan_out_keeps_each_subscriber_s_order_and_its_subscriber_set() {
        let hub = hub().await;
        let topic = Topic::new("room").unwrap();
        let (a, mut rx_a) = ConnShared::registered(&hub);
        let (b, mut rx_b) = ConnShared::registered(&hub);
        let (c, mut rx_c) = ConnShared::registered(&hub);
        for conn in [&a, &b] {
            subscribe(&hub, conn, &topic, None, None).await.unwrap();
        }
        let publish = |n: u64| publish_now(&hub, &topic, n, None);
        {
            let _cork = crate::queue::Cork::new::<Out>(None);
            publish(1);
            publish(2);
            // Another message to `a` in between: it comes after 1 and 2.
            a.push(Bytes::from_static(b"[\"hint\"]")).unwrap();
            publish(3);
            // Nothing is queued for the subscribers until the cork is removed, or ...
            assert_eq!(received(&mut rx_b), [1, 2]);
            // ... their set changes: `c` joins now and gets 4, not what came before it.
            subscribe(&hub, &c, &topic, None, None).now_or_never().unwrap().unwrap();
            assert_eq!(received(&mut rx_b), [3]);
            publish(4);
        }
        assert_eq!(received(&mut rx_a), [1, 2, 0, 3, 4]);
        assert_eq!(received(&mut rx_b), [4]);
        assert_eq!(received(&mut rx_c), [4]);
    }

    #[tokio::test]
    async fn a_held_burst_is_one_shared_item_except_for_a_publisher_that_skips_its_own() {
        let hub = hub().await;
        let topic = Topic::new("room").unwrap();
        let (a, mut rx_a) = ConnShared::registered(&hub);
        let (b, mut rx_b) = ConnShared::registered(&hub);
        for conn in [&a, &b] {
            subscribe(&hub, conn, &topic, None, None).await.unwrap();
        }
        drop((received(&mut rx_a), received(&mut rx_b)));
        let publish = |n: u64, skip: Option<&ConnShared>| publish_now(&hub, &topic, n, skip);
        {
            let _cork = crate::queue::Cork::new::<Out>(None);
            publish(1, None);
            // `a` publishes 2 without echo.
            publish(2, Some(&a));
            publish(3, None);
        }
        // `b` gets the burst as one shared item; `a` gets its frames one by one, without 2.
        let items: Vec<Out> = std::iter::from_fn(|| rx_b.try_recv()).collect();
        assert!(matches!(&items[..], [Out::Frames(frames)] if frames.len() == 3));
        assert_eq!(received(&mut rx_a), [1, 3]);
        // A lone publication is queued as itself.
        {
            let _cork = crate::queue::Cork::new::<Out>(None);
            publish(4, None);
        }
        assert!(matches!(rx_b.try_recv(), Some(Out::Frame(_))));
        assert_eq!(received(&mut rx_a), [4]);
    }

    #[tokio::test]
    async fn a_publisher_is_skipped_by_address_here_and_by_id_once_read_back() {
        let hub = hub().await;
        let (a, _rx_a) = ConnShared::registered(&hub);
        let (b, _rx_b) = ConnShared::registered(&hub);
        let published = Record { skip: Some(Skip { id: a.id.clone(), local: true }), ..record(1) };
        assert!(published.skips(&a));
        assert!(!published.skips(&b));
        // History and the broker carry the id as a string, as before.
        let json = serde_json::to_value(&published).unwrap();
        assert_eq!(json["skip"], serde_json::Value::String(a.id.to_string()));
        // Read back (a replay, another node), it is compared by value.
        let read: Record = serde_json::from_value(json).unwrap();
        assert!(read.skip.as_ref().is_some_and(|skip| !skip.local));
        assert!(read.skips(&a));
        assert!(!read.skips(&b));
    }

    fn record(n: u64) -> Record {
        Record { event: None, data: RawPayload::json(&n).unwrap(), from: None, skip: None }
    }

    fn seqs(released: &Released) -> Vec<u64> {
        released.0.iter().map(|(seq, _)| *seq).collect()
    }

    #[test]
    fn holds_until_the_position_is_known_then_releases_in_order() {
        let e: Arc<str> = Arc::from("e1");
        let mut s = Sequencer::default();
        assert!(seqs(&s.push(&e, 7, record(7))).is_empty());
        assert!(seqs(&s.push(&e, 5, record(5))).is_empty());
        // The subscription covered up to 5: 6 is awaited, 7 stays held, a check is scheduled.
        let r = s.start(&e, 6);
        assert!(seqs(&r).is_empty());
        assert_eq!(r.1, Some((e.clone(), 6)));
        assert_eq!(seqs(&s.push(&e, 6, record(6))), [6, 7]);
        assert_eq!(seqs(&s.push(&e, 8, record(8))), [8]);
    }

    #[test]
    fn out_of_order_and_duplicates() {
        let e: Arc<str> = Arc::from("e1");
        let mut s = Sequencer::default();
        s.start(&e, 1);
        assert_eq!(seqs(&s.push(&e, 1, record(1))), [1]);
        let r = s.push(&e, 3, record(3));
        assert!(seqs(&r).is_empty());
        assert_eq!(r.1, Some((e.clone(), 2)), "a gap check for 2");
        // Only one check at a time.
        assert_eq!(s.push(&e, 4, record(4)).1, None);
        assert_eq!(seqs(&s.push(&e, 2, record(2))), [2, 3, 4]);
        assert!(seqs(&s.push(&e, 3, record(3))).is_empty(), "a duplicate is dropped");
    }

    #[test]
    fn a_new_epoch_flushes_the_old_stream_and_starts_at_one() {
        let e1: Arc<str> = Arc::from("e1");
        let e2: Arc<str> = Arc::from("e2");
        let mut s = Sequencer::default();
        s.start(&e1, 10);
        assert!(seqs(&s.push(&e1, 12, record(12))).is_empty());
        assert_eq!(seqs(&s.push(&e2, 1, record(1))), [12, 1]);
        assert_eq!(seqs(&s.push(&e2, 2, record(2))), [2]);
    }

    #[test]
    fn skipping_a_gap_releases_what_follows() {
        let e: Arc<str> = Arc::from("e1");
        let mut s = Sequencer::default();
        s.start(&e, 1);
        s.push(&e, 4, record(4));
        s.push(&e, 5, record(5));
        assert_eq!(seqs(&s.skip_gap()), [4, 5]);
        assert_eq!(seqs(&s.push(&e, 6, record(6))), [6]);
    }

    #[test]
    fn publications_carry_their_epoch_between_nodes() {
        let position = Position { epoch: Arc::from("ep"), seq: 42 };
        let wire = encode_publication(&position, br#"{"data":1}"#);
        let (epoch, seq, record) = decode_publication(&wire).unwrap();
        assert_eq!((&*epoch, seq), ("ep", 42));
        assert_eq!(record.data.decode::<u64>().unwrap(), 1);
        assert!(decode_publication(&wire[..9]).is_none());
    }
}
