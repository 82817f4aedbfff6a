//! The sweeper: one task per server goes through the timers (`timers.rs`) and every
//! connection's heartbeat, a few times per interval.

use std::sync::{Arc, Weak};
use std::time::Duration;

use switchboard_protocol::CloseCode;

use super::core::Core;
use crate::base::clock::millis;
use crate::conn::Pending;

/// The sweeper task; ends when the server shuts down or is dropped.
pub(crate) async fn run(hub: Weak<Core>) {
    let (config, shutdown) = match hub.upgrade() {
        Some(h) => (h.config.clone(), h.running.shutdown.clone()),
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

fn sweep_idents(hub: &Core, now: u64) {
    while let Some(conn) = hub.timers.pop_ident(now) {
        if let Some(conn) = conn.upgrade()
            && conn.identity.read().is_none()
        {
            conn.close(CloseCode::IDENTIFICATION_TIMEOUT, "identification timeout", true);
        }
    }
}

fn sweep_expiries(hub: &Core, now: u64) {
    while let Some((due, id)) = hub.timers.pop_expiry(now) {
        if let Some(conn) = hub.local(&id)
            && conn.expires_at.load(std::sync::atomic::Ordering::Acquire) == due
        {
            conn.close(CloseCode::CREDENTIALS_EXPIRED, "credentials expired", true);
        }
    }
}

fn sweep_acks(hub: &Core, now: u64) {
    let mut again = Vec::new();
    while let Some((conn, id)) = hub.timers.pop_ack(now) {
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
    hub.timers.acks_due(again);
}

fn sweep_heartbeats(hub: &Core, now: u64, heartbeat: u64, ping: bool) {
    hub.registry.for_each(|conn| {
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
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use switchboard_protocol::{CloseCode, RawPayload};

    use crate::conn::{Out, Receiver};
    use crate::hub::core::Core;
    use crate::{Config, Server};

    async fn hub(config: Config) -> Arc<Core> {
        Server::new().config(config).build().await.unwrap().hub().core().clone()
    }

    fn drain(rx: &mut Receiver) -> Vec<Out> {
        std::iter::from_fn(|| rx.try_recv()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_pings_every_interval_and_closes_after_two_silent_ones() {
        let hub = hub(Config { heartbeat: Duration::from_secs(10), ..Config::default() }).await;
        let (conn, mut rx) = hub.test_conn();
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
        let (conn, _rx) = hub.test_conn();
        // A close queued behind frames the writer cannot flush (nothing drains `_rx` here).
        conn.close(CloseCode::KICKED, "kicked", true);
        tokio::time::sleep(Duration::from_secs(26)).await;
        let (code, _) = conn.kill_reason.lock().clone().expect("killed");
        assert_eq!(code, CloseCode::HEARTBEAT_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn identification_deadline_closes_anonymous_connections_only() {
        let hub = hub(Config { identify_timeout: Duration::from_secs(2), ..Config::default() }).await;
        let (anonymous, mut rx) = hub.test_conn();
        hub.timers().identify_by(hub.now_ms() + 2000, &anonymous);
        tokio::time::sleep(Duration::from_millis(1900)).await;
        assert!(drain(&mut rx).is_empty());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(matches!(drain(&mut rx)[..], [Out::Close { code: CloseCode::IDENTIFICATION_TIMEOUT, .. }]));
        assert_eq!(hub.timers().len(), 0, "the deadline entry is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn acked_deliveries_are_resent_at_most_max_resends_times_and_stop_on_ack() {
        let config = Config { ack_timeout: Duration::from_millis(300), max_resends: 5, ..Config::default() };
        let hub = hub(config).await;
        let (conn, mut rx) = hub.test_conn();
        crate::hub::acked::send_acked(&hub, &conn, "alert", &RawPayload::json(&"fire").unwrap());
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
        assert_eq!(hub.timers().len(), 0);

        crate::hub::acked::send_acked(&hub, &conn, "alert", &RawPayload::json(&"again").unwrap());
        tokio::time::sleep(Duration::from_millis(650)).await;
        assert_eq!(drain(&mut rx).len(), 3, "sent, then resent twice");
        let id = *conn.pending.lock().keys().next().unwrap();
        assert!(conn.resolve(switchboard_protocol::Id::new(id).unwrap(), Ok(RawPayload::null())));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(drain(&mut rx).is_empty(), "no resend after the ack");
    }
}
