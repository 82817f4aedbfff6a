//! Acknowledged delivery: a message with an id that the client must answer `~ok`; kept and
//! resent (by the sweeper) until it does.

use std::sync::Arc;

use switchboard_protocol::{CloseCode, RawPayload, encode};

use super::core::Core;
use crate::base::clock::millis;
use crate::conn::{ConnShared, Pending};

/// Sends `[kind, payload, id]` as an acknowledged delivery: kept until the client answers
/// `~ok`, resent with the same id every `ack_timeout`, at most `max_resends` times.
pub(crate) fn send_acked(core: &Core, conn: &Arc<ConnShared>, kind: &str, payload: &RawPayload) {
    let id = conn.next_id();
    let Ok(frame) = encode(conn.format, kind, payload, Some(id)) else { return };
    {
        let mut pending = conn.pending.lock();
        if pending.len() >= core.config.max_pending_acks {
            drop(pending);
            conn.kill(CloseCode::SLOW_CONSUMER, "slow consumer: too many unacknowledged deliveries");
            return;
        }
        pending.insert(id.get(), Pending::Ack { frame: frame.clone(), resends: 0 });
    }
    if conn.push(frame).is_ok() {
        let due = core.now_ms() + millis(core.config.ack_timeout);
        core.timers.ack_due(due, conn, id.get());
    } else {
        conn.pending.lock().remove(&id.get());
    }
}
