//! Subscribing and unsubscribing a connection. A subscription with `since` replays what history
//! holds after that position; while it reads history it is *pending*: what the sequencer
//! releases meanwhile is buffered for it and delivered after the replay (skipping what the
//! replay already covered), so every subscriber sees sequence numbers in order, with no gap
//! between the replay and live publications. Subscriptions of one topic take its order lock,
//! one at a time.

use std::sync::Arc;

use switchboard_core::Position;
use switchboard_protocol::{Id, RawPayload, Topic, wire};

use super::deliver::{deliver_one, release};
use super::publish::apply;
use super::record::Record;
use super::table::Apart;
use crate::conn::ConnShared;
use crate::error::Error;
use crate::hub::core::Core;

/// A subscription made.
pub(crate) struct Subscribed {
    /// The `~sub` reply.
    pub(crate) answer: wire::Subscribed,
    /// The connection is new in a topic with presence: its join is to be announced.
    pub(crate) joined_presence: bool,
    /// Whether it was not subscribed before.
    pub(crate) fresh: bool,
}

/// Subscribes `conn` to `topic`; with `reply`, queues the `~sub` reply and then the recovered
/// publications, in that order, before any newer publication. (Presence is the caller's: see
/// `hub::membership`.)
pub(crate) async fn subscribe(
    core: &Core,
    conn: &Arc<ConnShared>,
    topic: &Topic,
    since: Option<wire::StreamPosition>,
    reply: Option<Id>,
) -> Result<Subscribed, Error> {
    let settings = core.settings.of(topic);
    let unavailable = |_| Error::unavailable("the topic's history is unavailable");
    let order = core.topics.order(topic).lock().await;
    // Checked once the topic's order is ours: a connection's requests run concurrently
    // (pipelined `~sub`s), and from here to the push below nothing awaits, so the limit holds.
    let already = {
        let topics = conn.topics.lock();
        let already = topics.iter().any(|t| t == topic);
        if !already && topics.len() >= core.config.max_subscriptions {
            return Err(Error::limit("too many subscriptions"));
        }
        already
    };
    // 1. Become pending: from here on, publications from other nodes are buffered for us.
    let state = if already {
        None
    } else {
        let (state, created) = core.topics.enter(topic, settings, &conn.id);
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
            core.backends.broker.subscribe(&core.node, topic).await.err().map(|e| {
                // One line per 10 s for the process: a broker outage refuses every new topic.
                static WARN: crate::base::throttle::Throttle = crate::base::throttle::Throttle::new();
                if let Some(suppressed) = WARN.allow(10_000) {
                    tracing::warn!(error = %e, %topic, suppressed, "the broker could not subscribe to a topic: ~sub refused (UNAVAILABLE)");
                }
                Error::unavailable("the topic cannot be subscribed to now, try again")
            })
        } else {
            None
        };
        if let Some(e) = failed {
            drop(order);
            unsubscribe(core, conn, topic).await;
            return Err(e);
        }
        Some(state)
    };
    // 2. Read history.
    let read = match &since {
        Some(since) => {
            let since = Position { epoch: since.epoch.as_str().into(), seq: since.seq };
            core.backends.history.recover(topic, &since).await.map(|r| {
                // An incomplete recovery replays nothing: the client reloads its state instead,
                // and a partial replay would only be applied twice.
                let replay = if r.complete { r.publications } else { Vec::new() };
                (r.position, replay, r.complete)
            })
        }
        None => core.backends.history.position(topic).await.map(|p| (p, Vec::new(), false)),
    };
    let (position, replay, recovered) = match read {
        Ok(read) => read,
        Err(e) => {
            drop(order);
            if state.is_some() {
                unsubscribe(core, conn, topic).await;
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
            Ok(record) => deliver_one(core, conn, topic, settings, (p.seq, &record), None),
            Err(e) => tracing::error!(error = %e, %topic, "undecodable publication in history"),
        }
    }
    // 4. Go live: what arrived meanwhile and was not covered, then everything new. The first
    // subscription of this node starts the topic's sequencer right after what it covered.
    if let Some(state) = &state {
        let mut sequencer = state.sequencer.lock();
        if sequencer.epoch.is_none() {
            let released = sequencer.start(&position.epoch, covered + 1);
            apply(core, state, released);
        }
        let mut pending = state.pending.lock();
        let mine =
            pending.iter().position(|(id, apart)| *id == conn.id && matches!(apart, Apart::Reading(_)));
        if let Some((id, Apart::Reading(buffer))) = mine.map(|i| pending.swap_remove(i)) {
            if pending.is_empty() {
                // Nearly always: no subscription reads history, and the list's room goes.
                *pending = Vec::new();
            }
            // The subscriber was told the epoch of the position it read. What was released
            // meanwhile of that stream and not covered by the replay follows; if the stream
            // restarted meanwhile (the sequencer is on another one), the new stream's
            // publications follow, the first of them carrying its epoch.
            let current = sequencer.epoch.clone();
            let mut told = position.epoch;
            for (epoch, seq, record) in &buffer {
                let new = *epoch != told;
                if (!new && *seq <= covered) || (new && Some(epoch) != current.as_ref()) {
                    continue;
                }
                deliver_one(core, conn, topic, settings, (*seq, record), new.then_some(&**epoch));
                told = epoch.clone();
            }
            if current.as_ref().is_some_and(|current| *current != told) {
                // Its next delivery tells it the stream's epoch.
                pending.push((id, Apart::Told(told)));
            }
            // What this topic's publishers held goes to the subscribers it was published to.
            release(state);
            state.subs.write().insert(conn);
        }
        drop(pending);
        drop(sequencer);
    }
    drop(order);
    Ok(Subscribed { answer, joined_presence: settings.presence && !already, fresh: !already })
}

/// Removes `conn` from `topic`: `None` if it was not subscribed, else whether the topic has
/// presence (its leave is to be announced; the caller's, see `hub::membership`).
pub(crate) async fn unsubscribe(core: &Core, conn: &Arc<ConnShared>, topic: &str) -> Option<bool> {
    {
        let mut topics = conn.topics.lock();
        let before = topics.len();
        topics.retain(|t| t.as_str() != topic);
        if topics.len() == before {
            return None;
        }
    }
    // What the topic holds goes to the subscribers of the moment, this one included.
    let left = core.topics.leave(topic, &conn.id, release);
    let (settings, last) = left.unwrap_or_default();
    if last && let Err(e) = core.backends.broker.unsubscribe(&core.node, topic).await {
        tracing::warn!(error = %e, topic, "could not unsubscribe the node from the broker");
    }
    Some(settings.presence)
}
