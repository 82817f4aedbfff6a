//! The connection task's registry of subscriptions: `~sub` / `~unsub`, resubscription with the
//! last position after a reconnection, in-order delivery without duplicates, the epoch of each
//! topic's stream (protocol §5), topic presence.

use std::collections::HashMap;

use switchboard_protocol::wire::{
    Delivery, Peers, PresenceDiff, StreamPosition, Subscribe, Subscribed, Unsubscribe, Who, types,
};
use switchboard_protocol::{ErrorBody, Id, RawPayload};
use tokio::sync::{mpsc, oneshot};

use crate::delivery::{Publication, TopicEvent};
use crate::error::ClientError;
use crate::presence::{Change, PeerSet, Roster};
use crate::requests::{Internal, Outbox};

/// What a successful subscribe call gets back.
pub(crate) struct SubReply {
    pub(crate) info: Subscribed,
    pub(crate) presence: Option<Roster>,
}

/// Where a subscribe call waits.
pub(crate) type SubWaiter = oneshot::Sender<Result<SubReply, ClientError>>;

/// A local subscriber to add.
pub(crate) struct NewSink {
    pub(crate) topic: String,
    pub(crate) since: Option<StreamPosition>,
    pub(crate) presence: bool,
    pub(crate) id: u64,
    pub(crate) tx: mpsc::UnboundedSender<TopicEvent>,
    pub(crate) waiter: SubWaiter,
}

/// Where a delivery went.
pub(crate) enum Routed {
    /// To the topic's subscribers.
    Delivered,
    /// Dropped: already delivered (same or lower `seq` in the same epoch).
    Duplicate,
    /// Kept until the pending `~sub` is answered.
    Buffered,
    /// No local subscription: a topic the server put the connection into.
    Unsubscribed(Delivery),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not subscribed on the current connection (offline, or not sent yet).
    Idle,
    /// `~sub` with this id in flight.
    Pending(Id),
    /// Subscribed on the current connection.
    Active,
}

struct Entry {
    sinks: Vec<(u64, mpsc::UnboundedSender<TopicEvent>)>,
    /// Subscribe calls waiting for the `~sub` reply.
    waiters: Vec<SubWaiter>,
    /// Subscribe calls with presence, waiting for the `~who {topic}` reply.
    presence_waiters: Vec<SubWaiter>,
    phase: Phase,
    /// The epoch (from the `~sub` reply, or the last `~msg` that carried one) and the last
    /// `seq` delivered in it: the `since` of the next `~sub`.
    position: Option<StreamPosition>,
    /// The last `~sub` reply.
    last: Option<Subscribed>,
    /// Was active on an earlier connection: its next `~sub` is a resubscription.
    was_active: bool,
    /// Deliveries that arrived while the `~sub` was in flight.
    buffered: Vec<Delivery>,
    presence: Option<PeerSet>,
}

impl Entry {
    fn fan_out(&self, event: &TopicEvent) {
        for (_, tx) in &self.sinks {
            let _ = tx.send(event.clone());
        }
    }

    /// Delivers a publication, unless its `seq` was already delivered in its epoch. A delivery
    /// that carries a new epoch is a restarted stream (the server lost the topic's history):
    /// it is taken whatever its `seq`, counting starts again from it, and the application
    /// hears first that its state was not recovered.
    fn deliver(&mut self, d: Delivery) -> bool {
        let mut restarted = None;
        if let Some(pos) = &mut self.position {
            match d.epoch.as_deref() {
                Some(epoch) if epoch != pos.epoch => {
                    pos.epoch = epoch.to_owned();
                    pos.seq = d.seq;
                    restarted = Some(epoch.to_owned());
                }
                // `seq` 0 would mean "not numbered": never a duplicate by number.
                _ if d.seq != 0 && d.seq <= pos.seq => return false,
                _ => pos.seq = pos.seq.max(d.seq),
            }
        }
        if let Some(epoch) = restarted {
            tracing::debug!(topic = %d.topic, %epoch, seq = d.seq, "the topic's stream restarted");
            self.fan_out(&TopicEvent::Resubscribed { recovered: false, epoch, seq: d.seq.saturating_sub(1) });
        }
        self.fan_out(&TopicEvent::Publication(Publication::from(d)));
        true
    }

    fn roster_reply(&self) -> SubReply {
        let info = self.last.clone().unwrap_or_else(|| unreachable!("answered after a ~sub reply"));
        SubReply { info, presence: self.presence.as_ref().map(PeerSet::roster) }
    }
}

/// Every topic the application subscribed to, across connections.
#[derive(Default)]
pub(crate) struct Topics {
    entries: HashMap<String, Entry>,
}

impl Topics {
    /// Adds a local subscriber; sends `~sub` when the topic is new and the link is up.
    pub(crate) fn add(&mut self, out: Option<&mut Outbox>, new: NewSink) {
        let entry = self.entries.entry(new.topic.clone()).or_insert_with(|| Entry {
            sinks: Vec::new(),
            waiters: Vec::new(),
            presence_waiters: Vec::new(),
            phase: Phase::Idle,
            position: new.since.clone(),
            last: None,
            was_active: false,
            buffered: Vec::new(),
            presence: None,
        });
        entry.sinks.push((new.id, new.tx));
        let start_presence = new.presence && entry.presence.is_none();
        if start_presence {
            entry.presence = Some(PeerSet::new());
        }
        match (entry.phase, out) {
            (Phase::Active, Some(out)) => {
                let set = entry.presence.as_mut();
                if let Some(set) = set.filter(|_| start_presence) {
                    set.loading(out.internal(types::WHO, &who(&new.topic), Internal::Who(Some(new.topic))));
                }
                if new.presence && entry.presence.as_ref().is_some_and(PeerSet::is_loading) {
                    entry.presence_waiters.push(new.waiter);
                } else {
                    let _ = new.waiter.send(Ok(entry.roster_reply()));
                }
            }
            (phase, out) => {
                if new.presence {
                    entry.presence_waiters.push(new.waiter);
                } else {
                    entry.waiters.push(new.waiter);
                }
                if let (Phase::Idle, Some(out)) = (phase, out) {
                    send_sub(out, &new.topic, entry);
                }
            }
        }
    }

    /// Removes a local subscriber; leaves the topic (`~unsub`) when it was the last.
    pub(crate) fn remove(&mut self, out: Option<&mut Outbox>, topic: &str, sink: u64) {
        let Some(entry) = self.entries.get_mut(topic) else { return };
        entry.sinks.retain(|(id, _)| *id != sink);
        entry.waiters.retain(|w| !w.is_closed());
        entry.presence_waiters.retain(|w| !w.is_closed());
        if entry.sinks.is_empty() && entry.waiters.is_empty() && entry.presence_waiters.is_empty() {
            let phase = entry.phase;
            self.entries.remove(topic);
            if let (Some(out), Phase::Pending(_) | Phase::Active) = (out, phase) {
                let unsub = Unsubscribe { topic: Some(topic.to_owned()), prefix: None };
                out.internal(types::UNSUB, &unsub, Internal::Unsub);
            }
        }
    }

    /// The connection is ready: subscribe to everything again, from the last positions.
    pub(crate) fn resubscribe_all(&mut self, out: &mut Outbox) {
        for (topic, entry) in &mut self.entries {
            send_sub(out, topic, entry);
        }
    }

    /// The connection dropped.
    pub(crate) fn disconnected(&mut self) {
        for entry in self.entries.values_mut() {
            if entry.phase == Phase::Active {
                entry.was_active = true;
            }
            entry.phase = Phase::Idle;
            entry.buffered.clear();
            if let Some(p) = &mut entry.presence {
                p.disconnected();
            }
        }
    }

    /// The reply to `~sub` number `id`.
    pub(crate) fn on_sub_reply(
        &mut self,
        out: &mut Outbox,
        topic: &str,
        id: Id,
        result: Result<RawPayload, ErrorBody>,
    ) {
        let Some(entry) = self.entries.get_mut(topic) else { return };
        if entry.phase != Phase::Pending(id) {
            return;
        }
        let info = result.map_err(ClientError::Server).and_then(|p| Ok(p.decode::<Subscribed>()?));
        let info = match info {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(topic, error = %e, "subscription refused");
                let entry = self.entries.remove(topic).unwrap_or_else(|| unreachable!());
                for w in entry.waiters.into_iter().chain(entry.presence_waiters) {
                    let _ = w.send(Err(e.clone()));
                }
                if entry.was_active {
                    for (_, tx) in &entry.sinks {
                        let _ = tx.send(TopicEvent::Ended(e.clone()));
                    }
                }
                return;
            }
        };
        let recovered_from = entry.position.take().filter(|_| info.recovered);
        entry.position = Some(match recovered_from {
            Some(p) => StreamPosition { epoch: info.epoch.clone(), seq: p.seq },
            None => StreamPosition { epoch: info.epoch.clone(), seq: info.seq },
        });
        if entry.was_active {
            tracing::debug!(topic, recovered = info.recovered, "resubscribed");
            entry.fan_out(&TopicEvent::Resubscribed {
                recovered: info.recovered,
                epoch: info.epoch.clone(),
                seq: info.seq,
            });
        }
        entry.phase = Phase::Active;
        entry.was_active = true;
        entry.last = Some(info);
        for w in std::mem::take(&mut entry.waiters) {
            let _ = w.send(Ok(SubReply { info: entry.roster_reply().info, presence: None }));
        }
        for d in std::mem::take(&mut entry.buffered) {
            entry.deliver(d);
        }
        if let Some(set) = &mut entry.presence {
            set.loading(out.internal(types::WHO, &who(topic), Internal::Who(Some(topic.to_owned()))));
        }
    }

    /// A `~msg`.
    pub(crate) fn on_delivery(&mut self, d: Delivery) -> Routed {
        let Some(entry) = self.entries.get_mut(&d.topic) else { return Routed::Unsubscribed(d) };
        match entry.phase {
            Phase::Active => {
                if entry.deliver(d) {
                    Routed::Delivered
                } else {
                    Routed::Duplicate
                }
            }
            Phase::Pending(_) => {
                entry.buffered.push(d);
                Routed::Buffered
            }
            Phase::Idle => Routed::Duplicate,
        }
    }

    /// A `~presence` diff.
    pub(crate) fn on_presence(&mut self, diff: PresenceDiff) {
        let Some(entry) = self.entries.get_mut(&diff.topic) else { return };
        let Some(set) = &mut entry.presence else { return };
        for change in Change::from_diff(&diff) {
            set.on_change(change);
        }
        entry.fan_out(&TopicEvent::Presence(diff));
    }

    /// The reply to `~who {topic}` number `id`.
    pub(crate) fn on_who_reply(&mut self, topic: &str, id: Id, result: Result<RawPayload, ErrorBody>) {
        let Some(entry) = self.entries.get_mut(topic) else { return };
        let Some(set) = &mut entry.presence else { return };
        let peers = result.map_err(ClientError::Server).and_then(|p| Ok(p.decode::<Peers>()?.peers));
        set.on_snapshot(id, peers);
        if !set.is_loading() && entry.last.is_some() {
            for w in std::mem::take(&mut entry.presence_waiters) {
                let _ = w.send(Ok(entry.roster_reply()));
            }
        }
    }

    /// The client closed: waiting calls fail, streams end.
    pub(crate) fn close(&mut self, error: &ClientError) {
        for (_, mut entry) in self.entries.drain() {
            for w in entry.waiters.drain(..).chain(entry.presence_waiters.drain(..)) {
                let _ = w.send(Err(error.clone()));
            }
            if let Some(set) = &mut entry.presence {
                set.fail(error);
            }
        }
    }
}

fn who(topic: &str) -> Who {
    Who { topic: Some(topic.to_owned()) }
}

fn send_sub(out: &mut Outbox, topic: &str, entry: &mut Entry) {
    let sub = Subscribe { topic: topic.to_owned(), since: entry.position.clone() };
    let id = out.internal(types::SUB, &sub, Internal::Sub(topic.to_owned()));
    entry.phase = Phase::Pending(id);
}
