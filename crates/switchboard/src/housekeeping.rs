//! Shared timers: one task per server sweeps identification deadlines, acknowledgement resends
//! and heartbeats for every connection (no timer task per connection or per message).
//!
//! Identification deadlines and ack resends all use one fixed delay each, so their queues are
//! already in deadline order: a sweep pops from the front only what is due, O(due).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use switchboard_protocol::{CloseCode, Payload as RawPayload, encode};

use crate::conn::{ConnShared, Pending};
use crate::hub::HubInner;

/// A credential expiry: (due, connection id), earliest first.
type Expiry = Reverse<(u64, Arc<str>)>;

/// Deadlines waiting for the sweeper. Entries hold weak references: a connection that is gone
/// is skipped and its entries drain within one delay, so nothing outlives it for long.
#[derive(Default)]
pub(crate) struct Timers {
    idents: Mutex<VecDeque<(u64, Weak<ConnShared>)>>,
    acks: Mutex<VecDeque<(u64, Weak<ConnShared>, u64)>>,
    /// Credential expiries differ per connection: a heap, earliest first.
    expiries: Mutex<BinaryHeap<Expiry>>,
}

impl Timers {
    pub(crate) fn len(&self) -> usize {
        self.idents.lock().len() + self.acks.lock().len() + self.expiries.lock().len()
    }

    /// Closes `conn` with 4003 at `at_ms` unless its expiry was moved by then (`~refresh`).
    pub(crate) fn expire_at(&self, at_ms: u64, conn: &ConnShared) {
        conn.expires_at.store(at_ms, std::sync::atomic::Ordering::Release);
        self.expiries.lock().push(Reverse((at_ms, conn.id.clone())));
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
        sweep_expiries(&hub, now);
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

fn sweep_expiries(hub: &HubInner, now: u64) {
    loop {
        let entry = {
            let mut heap = hub.timers.expiries.lock();
            match heap.peek() {
                Some(Reverse((due, _))) if *due <= now => heap.pop(),
                _ => None,
            }
        };
        let Some(Reverse((due, id))) = entry else { break };
        if let Some(conn) = hub.local(&id)
            && conn.expires_at.load(std::sync::atomic::Ordering::Acquire) == due
        {
            conn.close(CloseCode::CREDENTIALS_EXPIRED, "credentials expired", true);
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
            conn.trim_queue();
            let seen = conn.last_seen.load(std::sync::atomic::Ordering::Relaxed);
            if now.saturating_sub(seen) > 2 * heartbeat {
                if conn.is_closing() {
                    // Already closing and still silent: its close is stuck behind a backlog.
                    conn.kill(CloseCode::HEARTBEAT_TIMEOUT, "heartbeat timeout");
                } else {
                    conn.close(CloseCode::HEARTBEAT_TIMEOUT, "heartbeat timeout", true);
                }
            } else if ping {
                conn.ping();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use switchboard_protocol::{CloseCode, Payload as RawPayload};

    use crate::conn::{ConnShared, Out, Receiver};
    use crate::hub::HubInner;
    use crate::{Config, Server};

    async fn hub(config: Config) -> Arc<HubInner> {
        Server::new().config(config).build().await.unwrap().hub().inner
    }

    fn drain(rx: &mut Receiver) -> Vec<Out> {
        std::iter::from_fn(|| rx.try_recv()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_pings_every_interval_and_closes_after_two_silent_ones() {
        let hub = hub(Config { heartbeat: Duration::from_secs(10), ..Config::default() }).await;
        let (conn, mut rx) = ConnShared::registered(&hub);
        tokio::time::sleep(Duration::from_millis(10_100)).await;
        assert!(matches!(drain(&mut rx)[..], [Out::Ping]), "one ping after one interval");
        // Something arrives at 15 s: the connection lives on past 20 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
        conn.last_seen.store(hub.now_ms(), std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(drain(&mut rx).iter().all(|o| matches!(o, Out::Ping)), "alive: only pings");
        // Then silence: closed with 4001 within 2 to 2.5 intervals of the last frame (15 s),
        // so by 40 s.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let out = drain(&mut rx);
        assert!(out.iter().any(|o| matches!(o, Out::Close { code: CloseCode::HEARTBEAT_TIMEOUT, .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_stuck_behind_a_backlog_becomes_a_kill() {
        let hub = hub(Config { heartbeat: Duration::from_secs(10), ..Config::default() }).await;
        let (conn, _rx) = ConnShared::registered(&hub);
        // A close queued behind frames the writer cannot flush (nothing drains `_rx` here).
        conn.close(CloseCode::KICKED, "kicked", true);
        tokio::time::sleep(Duration::from_secs(26)).await;
        let (code, _) = conn.kill_reason.lock().clone().expect("killed");
        assert_eq!(code, CloseCode::HEARTBEAT_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn identification_deadline_closes_anonymous_connections_only() {
        let hub = hub(Config { identify_timeout: Duration::from_secs(2), ..Config::default() }).await;
        let (anonymous, mut rx) = ConnShared::registered(&hub);
        hub.timers.identify_by(hub.now_ms() + 2000, &anonymous);
        tokio::time::sleep(Duration::from_millis(1900)).await;
        assert!(drain(&mut rx).is_empty());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(matches!(drain(&mut rx)[..], [Out::Close { code: CloseCode::IDENTIFICATION_TIMEOUT, .. }]));
        assert_eq!(hub.timers.len(), 0, "the deadline entry is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn acked_deliveries_are_resent_at_most_max_resends_times_and_stop_on_ack() {
        let config = Config { ack_timeout: Duration::from_millis(300), max_resends: 5, ..Config::default() };
        let hub = hub(config).await;
        let (conn, mut rx) = ConnShared::registered(&hub);
        super::send_acked(&hub, &conn, "alert", &RawPayload::json(&"fire").unwrap());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let frames: Vec<_> = drain(&mut rx)
            .into_iter()
            .filter_map(|o| match o {
                Out::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 6, "the first send and 5 resends");
        assert!(frames.iter().all(|f| f == &frames[0]), "resent with the same id");
        assert!(conn.pending.lock().is_empty(), "given up after the last resend");
        assert_eq!(hub.timers.len(), 0);

        super::send_acked(&hub, &conn, "alert", &RawPayload::json(&"again").unwrap());
        tokio::time::sleep(Duration::from_millis(650)).await;
        assert_eq!(drain(&mut rx).len(), 3, "sent, then resent twice");
        let id = *conn.pending.lock().keys().next().unwrap();
        assert!(conn.resolve(switchboard_protocol::Id::new(id).unwrap(), Ok(RawPayload::null())));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(drain(&mut rx).is_empty(), "no resend after the ack");
    }
}
