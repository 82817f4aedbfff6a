//! The deadlines the sweeper (`sweeper.rs`) keeps for every connection: identification
//! deadlines, acknowledgement resends and credential expiries. State only: one shared set per
//! server (no timer task per connection or per message).
//!
//! Identification deadlines and ack resends all use one fixed delay each, so their queues are
//! already in deadline order: a sweep pops from the front only what is due, O(due).
//!
//! Credential expiries differ per connection and may lie hours ahead, so they are an ordered set
//! with **one entry per connection**: `(due, id)`, where `due` is also the connection's
//! `expires_at`. A refresh replaces the entry, a close removes it (`forget_expiry`), so the set
//! holds exactly the open connections whose credentials expire.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::base::ordered::{self, rank};
use crate::conn::ConnShared;

/// Deadlines waiting for the sweeper. Identification and acknowledgement entries hold weak
/// references: a connection that is gone is skipped and its entries drain within one delay;
/// expiries are removed with their connection.
#[derive(Default)]
pub(crate) struct Timers {
    idents: Mutex<VecDeque<(u64, Weak<ConnShared>)>>,
    acks: ordered::Mutex<VecDeque<(u64, Weak<ConnShared>, u64)>, { rank::TIMERS }>,
    /// Credential expiries, earliest first: `(due, connection id)`, one per connection. The lock
    /// also guards every change of a connection's `expires_at`, so the two always agree.
    expiries: Mutex<BTreeSet<(u64, Arc<str>)>>,
}

impl Timers {
    pub(crate) fn len(&self) -> usize {
        self.idents.lock().len() + self.acks.lock().len() + self.expiries.lock().len()
    }

    /// Closes `conn` with 4003 at `at_ms` (replacing its earlier expiry, if any: `~refresh`).
    pub(crate) fn expire_at(&self, at_ms: u64, conn: &ConnShared) {
        let mut expiries = self.expiries.lock();
        let before = conn.expires_at.swap(at_ms, Ordering::AcqRel);
        if before != 0 {
            expiries.remove(&(before, conn.id.clone()));
        }
        expiries.insert((at_ms, conn.id.clone()));
    }

    /// `conn`'s credentials no longer expire (it closed, or refreshed without an expiry).
    pub(crate) fn forget_expiry(&self, conn: &ConnShared) {
        if conn.expires_at.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut expiries = self.expiries.lock();
        let before = conn.expires_at.swap(0, Ordering::AcqRel);
        if before != 0 {
            expiries.remove(&(before, conn.id.clone()));
        }
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

    /// The next credential expiry due by `now`, if any: its due time and connection id (the
    /// entry is gone; the connection's `expires_at` still says `due` unless it changed since).
    pub(crate) fn pop_expiry(&self, now: u64) -> Option<(u64, Arc<str>)> {
        let mut expiries = self.expiries.lock();
        match expiries.first() {
            Some((due, _)) if *due <= now => expiries.pop_first(),
            _ => None,
        }
    }
}
