//! The fan-out: a publication (or a topic event) queued to this node's subscribers of a topic,
//! its payload built once per format and, for topics without acknowledgements, the whole frame
//! too.
//!
//! In a corked stretch (a connection's task handling one read batch, see `conn::cork`), the
//! fan-out of a topic's consecutive publications waits for the end of the stretch and goes out
//! together ([`TopicState`]'s `held` list, released by the cork through [`Held`]): each
//! subscriber gets the batch with one push (one lock, its queue's lines touched once) instead of
//! one per publication. They go to the subscribers of the moment they were published: the
//! subscriber list changes only after the held publications were queued to it (see
//! `subscribe.rs`); any other message queued meanwhile on this thread, or a publication on
//! another topic, first releases them.

use std::sync::Arc;

use bytes::Bytes;
use switchboard_protocol::{RawPayload, encode, wire};

use super::record::{Record, delivery_payload};
use super::sequencer::Out;
use super::settings::TopicSettings;
use super::table::{Apart, TopicState};
use crate::conn::ConnShared;
use crate::conn::cork::{self, Held};
use crate::hub::acked::send_acked;
use crate::hub::core::Core;
use crate::outbound::frame::{PerFormat, SharedFrame};

/// Fans a released publication out to the topic's local subscribers (see the module's
/// documentation), and to the subscriptions still reading history (buffered for them).
pub(super) fn deliver(core: &Core, state: &Arc<TopicState>, out: &Out) {
    let corked = !state.settings.acked && cork::is_corked();
    let held = corked && cork::holds(state);
    if !held {
        // Another topic's fan-out held by this thread goes first, before any lock is taken.
        cork::release_held();
    }
    // Held through the delivery: a subscription that finishes its replay meanwhile sees this
    // publication either in its buffer or as a live subscriber, never neither.
    let mut pending = state.pending.lock();
    let told = if pending.is_empty() { Vec::new() } else { apart(&mut pending, out) };
    let plain = !out.restart && told.is_empty();
    if corked && plain {
        if !held {
            cork::hold(state.clone());
        }
        state.held.lock().push((out.seq, out.record.clone()));
        return;
    }
    if held {
        // This topic's earlier publications, held by the cork, go first.
        release(state);
    }
    fan_out(core, state, out, &told);
    drop(pending);
}

/// Buffers the publication for the subscriptions reading history; returns the live subscribers
/// that were told another epoch than this publication's (they get it now, and are told).
fn apart(pending: &mut Vec<(Arc<str>, Apart)>, out: &Out) -> Vec<Arc<str>> {
    let mut told = Vec::new();
    pending.retain_mut(|(id, apart)| match apart {
        Apart::Reading(buffer) => {
            buffer.push((out.epoch.clone(), out.seq, out.record.clone()));
            true
        }
        Apart::Told(epoch) => {
            if *epoch != out.epoch {
                told.push(id.clone());
            }
            false
        }
    });
    if pending.is_empty() {
        *pending = Vec::new();
    }
    told
}

/// Queues a publication to every subscriber, with the payload built once per format (and the
/// frame too, for topics without acknowledgements); with its epoch where the subscriber was
/// told another one (`out.restart`: all of them; else those in `told`).
fn fan_out(core: &Core, state: &TopicState, out: &Out, told: &[Arc<str>]) {
    let (seq, record) = (out.seq, &out.record);
    // Per format, without and with the epoch.
    let payloads: [PerFormat<Option<RawPayload>>; 2] = Default::default();
    let frames: [PerFormat<Option<Bytes>>; 2] = Default::default();
    let subs = state.subs.read();
    for conn in subs.iter() {
        if record.skips(conn) {
            continue;
        }
        let with_epoch = out.restart || (!told.is_empty() && told.contains(&conn.id));
        let epoch = with_epoch.then_some(&*out.epoch);
        let format = conn.format;
        let variant = usize::from(with_epoch);
        let Some(payload) =
            payloads[variant].get(format, || delivery_payload(&state.name, seq, record, format, epoch))
        else {
            continue;
        };
        if state.settings.acked {
            send_acked(core, conn, wire::types::MSG, payload);
        } else if let Some(frame) =
            frames[variant].get(format, || encode(format, wire::types::MSG, payload, None).ok())
        {
            let _ = conn.push(frame.clone());
        }
    }
}

impl Held for TopicState {
    fn release(&self) {
        release(self);
    }
}

/// Queues a topic's held publications to its subscribers: each gets them in one push. The
/// list's lock is held throughout, so that a change of the subscribers (which releases first)
/// waits for them to be queued.
pub(super) fn release(state: &TopicState) {
    let mut held = state.held.lock();
    if held.is_empty() {
        return;
    }
    let batch = std::mem::take(&mut *held);
    // What the cork holds (this topic, usually) stays put while this one's sends go out.
    let _aside = cork::Aside::new();
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
                    delivery_payload(&state.name, *seq, record, format, None)
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
    drop(held);
}

/// A held batch encoded in one format (see [`release`]).
struct Encoded {
    /// Each publication's frame; `None`: it cannot be encoded.
    each: Vec<Option<Bytes>>,
    /// For a batch of several, the frames shared by the subscribers, and their bytes.
    shared: Option<(Arc<[Bytes]>, usize)>,
}

/// Delivers one publication to one connection (replays and buffered publications), with `epoch`
/// if the connection was told another one.
pub(super) fn deliver_one(
    core: &Core,
    conn: &Arc<ConnShared>,
    topic: &str,
    settings: TopicSettings,
    (seq, record): (u64, &Record),
    epoch: Option<&str>,
) {
    if record.skips(conn) {
        return;
    }
    if let Some(payload) = delivery_payload(topic, seq, record, conn.format, epoch) {
        if settings.acked {
            send_acked(core, conn, wire::types::MSG, &payload);
        } else {
            let _ = conn.push_message(wire::types::MSG, &payload, None);
        }
    }
}

/// Sends an event (not a publication: no sequence number) to a topic's local subscribers.
pub(crate) fn deliver_event(core: &Core, topic: &str, frame: &SharedFrame) {
    // A fan-out this thread's cork holds goes first, before the topic's lock is taken.
    cork::release_held();
    if let Some(state) = core.topics.get(topic) {
        for conn in state.subs.read().iter() {
            let _ = conn.push_frame(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::FutureExt;
    use switchboard_protocol::{RawPayload, Topic};

    use super::super::publish::{Publication, publish};
    use super::super::record::{Record, Skip, record_of};
    use super::super::subscribe::subscribe;
    use super::*;
    use crate::conn::cork::Cork;
    use crate::conn::{Out, Receiver};

    fn core() -> Arc<Core> {
        Core::for_tests(crate::Config::default())
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
    fn publish_now(core: &Core, topic: &Topic, n: u64, skip: Option<&ConnShared>) -> u64 {
        let data = RawPayload::json(&n).unwrap();
        publish(core, topic, Publication { event: None, data, from: None, skip, key: None })
            .now_or_never()
            .expect("in-memory history answers at once")
            .unwrap()
    }

    #[tokio::test]
    async fn a_corked_fan_out_keeps_each_subscriber_s_order_and_its_subscriber_set() {
        let core = core();
        let topic = Topic::new("room").unwrap();
        let (a, mut rx_a) = core.test_conn();
        let (b, mut rx_b) = core.test_conn();
        let (c, mut rx_c) = core.test_conn();
        for conn in [&a, &b] {
            subscribe(&core, conn, &topic, None, None).await.unwrap();
        }
        let publish = |n: u64| publish_now(&core, &topic, n, None);
        {
            let _cork = Cork::new(None, core.counters());
            publish(1);
            publish(2);
            // Another message to `a` in between: it comes after 1 and 2.
            a.push(Bytes::from_static(b"[\"hint\"]")).unwrap();
            publish(3);
            // Nothing is queued for the subscribers until the cork is removed, or ...
            assert_eq!(received(&mut rx_b), [1, 2]);
            // ... their set changes: `c` joins now and gets 4, not what came before it.
            subscribe(&core, &c, &topic, None, None).now_or_never().unwrap().unwrap();
            assert_eq!(received(&mut rx_b), [3]);
            publish(4);
        }
        assert_eq!(received(&mut rx_a), [1, 2, 0, 3, 4]);
        assert_eq!(received(&mut rx_b), [4]);
        assert_eq!(received(&mut rx_c), [4]);
    }

    #[tokio::test]
    async fn a_held_burst_is_one_shared_item_except_for_a_publisher_that_skips_its_own() {
        let core = core();
        let topic = Topic::new("room").unwrap();
        let (a, mut rx_a) = core.test_conn();
        let (b, mut rx_b) = core.test_conn();
        for conn in [&a, &b] {
            subscribe(&core, conn, &topic, None, None).await.unwrap();
        }
        drop((received(&mut rx_a), received(&mut rx_b)));
        let publish = |n: u64, skip: Option<&ConnShared>| publish_now(&core, &topic, n, skip);
        {
            let _cork = Cork::new(None, core.counters());
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
            let _cork = Cork::new(None, core.counters());
            publish(4, None);
        }
        assert!(matches!(rx_b.try_recv(), Some(Out::Frame(_))));
        assert_eq!(received(&mut rx_a), [4]);
    }

    #[tokio::test]
    async fn a_publisher_is_skipped_by_address_here_and_by_id_once_read_back() {
        let core = core();
        let (a, _rx_a) = core.test_conn();
        let (b, _rx_b) = core.test_conn();
        let published = Record { skip: Some(Skip { id: a.id.clone(), local: true }), ..record_of(1) };
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
}
