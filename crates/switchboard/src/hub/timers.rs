//! The deadlines the sweeper (`sweeper.rs`) keeps for every connection: identification
//! deadlines, acknowledgement resends and credential expiries. State only: one shared set per
//! server (no timer task per connection or per message).
//!
//! Identification deadlines and ack resends all use one fixed delay each, so their queues are
//! already in deadline order: a sweep pops from the front only what is due, O(due).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::base::ordered::{self, rank};
use crate::conn::ConnShared;

/// A credential expiry: (due, connection id), earliest first.
type Expiry = Reverse<(u64, Arc<str>)>;

/// Deadlines waiting for the sweeper. Entries hold weak references: a connection that is gone
/// is skipped and its entries drain within one delay, so nothing outlives it for long.
#[derive(Default)]
pub(crate) struct Timers {
    idents: Mutex<VecDeque<(u64, Weak<ConnShared>)>>,
    acks: ordered::Mutex<VecDeque<(u64, Weak<ConnShared>, u64)>, { rank::TIMERS }>,
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

    /// Closes `conn` with 4504 at `deadline_ms` unless it identified by then.
    pub(crate) fn identify_by(&self, deadline_ms: u64, conn: &Arc<ConnShared>) {
        self.idents.lock().push_back((deadline_ms, Arc::downgrade(conn)));
    }

    /// Checks acknowledgement `id` of `conn` at `due_ms`.
    pub(crate) fn ack_due(&self, due_ms: u64, conn: &Arc<ConnShared>, id: u64) {
        self.acks.lock().push_back((due_ms, Arc::downgrade(conn), id));
    }

    /// Acknowledgement checks again, in deadline order.
    pub(crate) fn acks_due(&self, again: Vec<(u64, Weak<ConnShared>, u64)>) {
        if !again.is_empty() {
            self.acks.lock().extend(again);
        }
    }

    /// The next identification deadline due by `now`, if any.
    pub(crate) fn pop_ident(&self, now: u64) -> Option<Weak<ConnShared>> {
        let mut q = self.idents.lock();
        match q.front() {
            Some((due, _)) if *due <= now => q.pop_front().map(|(_, c)| c),
            _ => None,
        }
    }

    /// The next acknowledgement check due by `now`, if any.
    pub(crate) fn pop_ack(&self, now: u64) -> Option<(Weak<ConnShared>, u64)> {
        let mut q = self.acks.lock();
        match q.front() {
            Some((due, _, _)) if *due <= now => q.pop_front().map(|(_, c, id)| (c, id)),
            _ => None,
        }
    }

    /// The next credential expiry due by `now`, if any: its due time and connection id.
    pub(crate) fn pop_expiry(&self, now: u64) -> Option<(u64, Arc<str>)> {
        let mut heap = self.expiries.lock();
        match heap.peek() {
            Some(Reverse((due, _))) if *due <= now => heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}
