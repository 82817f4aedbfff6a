//! Topics: the local subscriber registry, publishing (encode once, fan out), subscribing with
//! recovery, and what arrives from other nodes.
//!
//! Order: a publication is appended to history (which assigns its sequence number) and fanned
//! out locally under the topic's order lock, and a subscription with `since` replays history
//! under the same lock, so every subscriber sees sequence numbers in order, with no gap between
//! the replay and live publications. Publications from other nodes do not take that lock: while
//! a subscription reads history it is *pending*, and what arrives meanwhile is buffered and
//! delivered after the replay (skipping what the replay already covered).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use switchboard_core::Position;
use switchboard_protocol::{Format, Id, MapWriter, Payload as RawPayload, Topic, encode, wire};

use crate::Error;
use crate::conn::ConnShared;
use crate::frame::{PerFormat, SharedFrame};
use crate::hub::{HubError, HubInner, Sharded};
use crate::topic::TopicSettings;

/// Local subscribers of one topic.
pub(crate) struct TopicState {
    pub(crate) settings: TopicSettings,
    pub(crate) subs: RwLock<HashMap<Arc<str>, Arc<ConnShared>>>,
    /// Subscriptions still reading history, with what was published meanwhile. Lock order:
    /// `pending` before `subs`, everywhere.
    pending: Mutex<HashMap<Arc<str>, Buffered>>,
}

/// Publications (with their sequence numbers) held for a subscription that is reading history.
type Buffered = Vec<(u64, Record)>;

impl TopicState {
    fn is_unused(&self) -> bool {
        let pending = self.pending.lock();
        pending.is_empty() && self.subs.read().is_empty()
    }
}

/// The local topic registry.
pub(crate) struct Topics {
    map: Sharded<Arc<TopicState>>,
    /// Striped order locks: publications and recoveries of one topic are serialized.
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
    skip: Option<String>,
}

/// Publishes `data` on `topic`; returns the sequence number.
pub(crate) async fn publish(
    hub: &HubInner,
    topic: &Topic,
    event: Option<String>,
    data: RawPayload,
    from: Option<wire::Origin>,
    skip: Option<Arc<str>>,
) -> Result<u64, HubError> {
    let settings = hub.settings_for(topic);
    let record = Record { event, data, from, skip: skip.map(|s| s.to_string()) };
    let bytes = Bytes::from(serde_json::to_vec(&record).map_err(|e| HubError::Encode(e.to_string()))?);
    let _order = hub.topics.order(topic).lock().await;
    let position = hub
        .backends
        .history
        .append(topic, bytes.clone(), settings.history)
        .await
        .map_err(|e| HubError::Backend(e.to_string()))?;
    if let Some(state) = hub.topics.get(topic) {
        deliver(hub, topic, &state, position.seq, &record);
    }
    let mut wire = BytesMut::with_capacity(bytes.len() + 8);
    wire.put_u64(position.seq);
    wire.extend_from_slice(&bytes);
    hub.backends
        .broker
        .publish(&hub.node, topic, wire.freeze())
        .await
        .map_err(|e| HubError::Backend(e.to_string()))?;
    Ok(position.seq)
}

/// A publication from another node.
pub(crate) fn deliver_remote(hub: &HubInner, topic: &str, wire: &Bytes) {
    let Some(state) = hub.topics.get(topic) else { return };
    if wire.len() < 8 {
        return;
    }
    let seq = u64::from_be_bytes(wire[..8].try_into().unwrap_or_default());
    match serde_json::from_slice::<Record>(&wire[8..]) {
        Ok(record) => deliver(hub, topic, &state, seq, &record),
        Err(e) => tracing::error!(error = %e, topic, "undecodable publication from another node"),
    }
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
fn deliver(hub: &HubInner, topic: &str, state: &TopicState, seq: u64, record: &Record) {
    let payloads: PerFormat<Option<RawPayload>> = PerFormat::default();
    let frames: PerFormat<Option<Bytes>> = PerFormat::default();
    // Held through the delivery: a subscription that finishes its replay meanwhile sees this
    // publication either in its buffer or as a live subscriber, never neither.
    let mut pending = state.pending.lock();
    for buffer in pending.values_mut() {
        buffer.push((seq, record.clone()));
    }
    let subs = state.subs.read();
    for conn in subs.values() {
        if record.skip.as_deref() == Some(&*conn.id) {
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

/// Delivers one publication to one connection (replays and buffered publications).
fn deliver_one(
    hub: &HubInner,
    conn: &Arc<ConnShared>,
    topic: &str,
    settings: TopicSettings,
    seq: u64,
    record: &Record,
) {
    if record.skip.as_deref() == Some(&*conn.id) {
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
    if let Some(state) = hub.topics.get(topic) {
        for conn in state.subs.read().values() {
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
                .entry(Arc::from(topic.as_str()))
                .or_insert_with(|| {
                    Arc::new(TopicState {
                        settings,
                        subs: RwLock::new(HashMap::new()),
                        pending: Mutex::new(HashMap::new()),
                    })
                })
                .clone();
            state.pending.lock().insert(conn.id.clone(), Vec::new());
            (state, created)
        };
        conn.topics.lock().push(topic.clone());
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
    // 4. Go live: what arrived meanwhile and was not covered, then everything new.
    if let Some(state) = &state {
        let mut pending = state.pending.lock();
        if let Some(buffer) = pending.remove(&conn.id) {
            for (seq, record) in buffer.iter().filter(|(seq, _)| *seq > covered) {
                deliver_one(hub, conn, topic, settings, *seq, record);
            }
            state.subs.write().insert(conn.id.clone(), conn.clone());
        }
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
            state.pending.lock().remove(&*conn.id);
            state.subs.write().remove(&*conn.id);
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
