//! Shared timers: one task per server sweeps identification deadlines, acknowledgement resends
//! and heartbeats for every connection (no timer task per connection or per message).
//!
//! Identification deadlines and ack resends all use one fixed delay each, so their queues are
//! already in deadline order: a sweep pops from the front only what is due, O(due).

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use switchboard_protocol::{CloseCode, Payload as RawPayload, encode};

use crate::conn::{ConnShared, Pending};
use crate::hub::HubInner;

/// Deadlines waiting for the sweeper. Entries hold weak references: a connection that is gone
/// is skipped and its entries drain within one delay, so nothing outlives it for long.
#[derive(Default)]
pub(crate) struct Timers {
    idents: Mutex<VecDeque<(u64, Weak<ConnShared>)>>,
    acks: Mutex<VecDeque<(u64, Weak<ConnShared>, u64)>>,
}

impl Timers {
    pub(crate) fn len(&self) -> usize {
        self.idents.lock().len() + self.acks.lock().len()
    }

    pub(crate) fn identify_by(&self, deadline_ms: u64, conn: &Arc<ConnShared>) {
        self.idents.lock().push_back((deadline_ms, Arc::downgrade(conn)));
    }
}

/// Sends `[kind, payload, id]` as an acknowledged delivery: kept until the client answers
/// `~ok`, resent with the same id every `ack_timeout`, at most `max_resends` times.
pub(crate) fn send_acked(hub: &HubInner, conn: &Arc<ConnShared>, kind: &str, payload: &RawPayload) {
    let id = conn.next_id();
    let Ok(frame) = encode(conn.format, kind, payload, Some(id)) else { return };
    {
        let mut pending = conn.pending.lock();
        if pending.len() >= hub.config.max_pending_acks {
            drop(pending);
            tracing::warn!(conn = %conn.id, "slow consumer: too many unacknowledged deliveries");
            conn.kill(CloseCode::SLOW_CONSUMER, "slow consumer: too many unacknowledged deliveries");
            return;
        }
        pending.insert(id.get(), Pending::Ack { frame: frame.clone(), resends: 0 });
    }
    if conn.push(frame).is_ok() {
        let due = hub.now_ms() + millis(hub.config.ack_timeout);
        hub.timers.acks.lock().push_back((due, Arc::downgrade(conn), id.get()));
    } else {
        conn.pending.lock().remove(&id.get());
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The sweeper task; ends when the server shuts down or is dropped.
pub(crate) async fn run(hub: Weak<HubInner>) {
    let (config, shutdown) = match hub.upgrade() {
        Some(h) => (h.config.clone(), h.shutdown.clone()),
        None => return,
    };
    let tick = [
        Duration::from_millis(100),
        config.ack_timeout / 4,
        config.heartbeat / 4,
        config.identify_timeout / 4,
    ]
    .into_iter()
    .min()
    .unwrap_or(Duration::from_millis(100))
    .max(Duration::from_millis(5));
    let heartbeat = millis(config.heartbeat).max(1);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Liveness is checked every half interval (a silent connection closes within 2 to 2.5
    // intervals); pings go out every other check, once per interval.
    let half = (heartbeat / 2).max(1);
    let mut next_check = half;
    let mut ping = false;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let Some(hub) = hub.upgrade() else { return };
        let now = hub.now_ms();
        sweep_idents(&hub, now);
        sweep_acks(&hub, now);
        if now >= next_check {
            next_check = now + half;
            ping = !ping;
            sweep_heartbeats(&hub, now, heartbeat, ping);
        }
    }
}

fn sweep_idents(hub: &HubInner, now: u64) {
    loop {
        let entry = {
            let mut q = hub.timers.idents.lock();
            match q.front() {
                Some((due, _)) if *due <= now => q.pop_front(),
                _ => None,
            }
        };
        let Some((_, conn)) = entry else { break };
        if let Some(conn) = conn.upgrade()
            && conn.identity.read().is_none()
        {
            conn.close(CloseCode::IDENTIFICATION_TIMEOUT, "identification timeout", true);
        }
    }
}

fn sweep_acks(hub: &HubInner, now: u64) {
    let mut again = Vec::new();
    loop {
        let entry = {
            let mut q = hub.timers.acks.lock();
            match q.front() {
                Some((due, _, _)) if *due <= now => q.pop_front(),
                _ => None,
            }
        };
        let Some((_, conn, id)) = entry else { break };
        let Some(conn) = conn.upgrade() else { continue };
        let resend = {
            let mut pending = conn.pending.lock();
            match pending.get_mut(&id) {
                Some(Pending::Ack { frame, resends }) if *resends < hub.config.max_resends => {
                    *resends += 1;
                    Some(frame.clone())
                }
                Some(Pending::Ack { .. }) => {
                    pending.remove(&id);
                    None
                }
                _ => None,
            }
        };
        if let Some(frame) = resend
            && conn.push(frame).is_ok()
        {
            again.push((now + millis(hub.config.ack_timeout), Arc::downgrade(&conn), id));
        }
    }
    if !again.is_empty() {
        hub.timers.acks.lock().extend(again);
    }
}

fn sweep_heartbeats(hub: &HubInner, now: u64, heartbeat: u64, ping: bool) {
    for shard in hub.conns.shards() {
        let conns: Vec<_> = shard.read().values().cloned().collect();
        for conn in conns {
            let seen = conn.last_seen.load(std::sync::atomic::Ordering::Relaxed);
            if now.saturating_sub(seen) > 2 * heartbeat {
                conn.close(CloseCode::HEARTBEAT_TIMEOUT, "heartbeat timeout", true);
            } else if ping {
                conn.ping();
            }
        }
    }
}
