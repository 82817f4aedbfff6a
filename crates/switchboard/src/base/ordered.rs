//! Locks with a rank. A thread may only take a lock of a higher rank than every lock it holds;
//! debug builds check it at every acquisition (a violation panics with both ranks named), release
//! builds compile to the plain `parking_lot` lock. The ranks are the crate's lock order, written
//! once, here:
//!
//! | rank | lock | owner |
//! |---:|---|---|
//! | 10 | a shard of the topic table | `hub::topics::table::Topics` |
//! | 20 | a topic's sequencer | `TopicState::sequencer` |
//! | 30 | a topic's subscriptions still reading history | `TopicState::pending` |
//! | 40 | a topic's held fan-out | `TopicState::held` |
//! | 50 | a topic's subscribers | `TopicState::subs` |
//! | 60 | a connection's pending replies and acknowledgements | `ConnShared::pending` |
//! | 70 | the acknowledgement timers | `hub::timers::Timers` |
//! | 90 | a connection's outbound queue | `outbound::queue::Queue` |
//!
//! So a fan-out may hold a topic's locks while it queues to subscribers, never the other way
//! round; two topics' locks of one rank are never held together (a held fan-out of another topic
//! is released before a topic's locks are taken, see `conn::cork`).

use std::ops::{Deref, DerefMut};

/// A lock outside the order (never held while another ranked lock is taken, nor the other way).
pub(crate) const UNRANKED: u8 = 0;

/// The ranks of the table above.
pub(crate) mod rank {
    /// A shard of the topic table.
    pub(crate) const TOPIC_TABLE: u8 = 10;
    /// A topic's sequencer.
    pub(crate) const SEQUENCER: u8 = 20;
    /// A topic's subscriptions still reading history.
    pub(crate) const PENDING: u8 = 30;
    /// A topic's held fan-out.
    pub(crate) const HELD: u8 = 40;
    /// A topic's subscribers.
    pub(crate) const SUBSCRIBERS: u8 = 50;
    /// A connection's pending replies and acknowledgements.
    pub(crate) const CONN_PENDING: u8 = 60;
    /// The acknowledgement timers.
    pub(crate) const TIMERS: u8 = 70;
    /// A connection's outbound queue.
    pub(crate) const QUEUE: u8 = 90;
}

#[cfg(debug_assertions)]
thread_local! {
    /// Ranks of the locks this thread holds, in acquisition order.
    static HELD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Notes that the thread takes a lock of `rank` (checked in debug builds).
#[inline]
fn enter(rank: u8) {
    if rank == UNRANKED {
        return;
    }
    #[cfg(debug_assertions)]
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if let Some(&top) = held.iter().max() {
            assert!(
                rank > top,
                "lock order violated: taking a lock of rank {rank} while holding one of rank {top} \
                 (see base/ordered.rs)"
            );
        }
        held.push(rank);
    });
    #[cfg(not(debug_assertions))]
    let _ = rank;
}

/// Notes that the thread let go of a lock of `rank`.
#[inline]
fn leave(rank: u8) {
    if rank == UNRANKED {
        return;
    }
    #[cfg(debug_assertions)]
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if let Some(at) = held.iter().rposition(|r| *r == rank) {
            held.remove(at);
        }
    });
    #[cfg(not(debug_assertions))]
    let _ = rank;
}

/// A mutex of rank `RANK`.
#[derive(Default)]
pub(crate) struct Mutex<T, const RANK: u8>(parking_lot::Mutex<T>);

/// Its guard.
pub(crate) struct MutexGuard<'a, T, const RANK: u8>(parking_lot::MutexGuard<'a, T>);

impl<T, const RANK: u8> Mutex<T, RANK> {
    pub(crate) const fn new(value: T) -> Self {
        Self(parking_lot::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T, RANK> {
        enter(RANK);
        MutexGuard(self.0.lock())
    }
}

impl<T, const RANK: u8> Deref for MutexGuard<'_, T, RANK> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T, const RANK: u8> DerefMut for MutexGuard<'_, T, RANK> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T, const RANK: u8> Drop for MutexGuard<'_, T, RANK> {
    fn drop(&mut self) {
        leave(RANK);
    }
}

/// A reader-writer lock of rank `RANK`.
#[derive(Default)]
pub(crate) struct RwLock<T, const RANK: u8>(parking_lot::RwLock<T>);

/// Its read guard.
pub(crate) struct ReadGuard<'a, T, const RANK: u8>(parking_lot::RwLockReadGuard<'a, T>);

/// Its write guard.
pub(crate) struct WriteGuard<'a, T, const RANK: u8>(parking_lot::RwLockWriteGuard<'a, T>);

impl<T, const RANK: u8> RwLock<T, RANK> {
    pub(crate) const fn new(value: T) -> Self {
        Self(parking_lot::RwLock::new(value))
    }

    pub(crate) fn read(&self) -> ReadGuard<'_, T, RANK> {
        enter(RANK);
        ReadGuard(self.0.read())
    }

    pub(crate) fn write(&self) -> WriteGuard<'_, T, RANK> {
        enter(RANK);
        WriteGuard(self.0.write())
    }
}

impl<T, const RANK: u8> Deref for ReadGuard<'_, T, RANK> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T, const RANK: u8> Drop for ReadGuard<'_, T, RANK> {
    fn drop(&mut self) {
        leave(RANK);
    }
}

impl<T, const RANK: u8> Deref for WriteGuard<'_, T, RANK> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T, const RANK: u8> DerefMut for WriteGuard<'_, T, RANK> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T, const RANK: u8> Drop for WriteGuard<'_, T, RANK> {
    fn drop(&mut self) {
        leave(RANK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increasing_ranks_are_fine_in_any_release_order() {
        let a: Mutex<u8, 10> = Mutex::new(1);
        let b: RwLock<u8, 20> = RwLock::new(2);
        let c: Mutex<u8, 30> = Mutex::new(3);
        let ga = a.lock();
        let gb = b.read();
        drop(ga);
        let gc = c.lock();
        drop(gb);
        drop(gc);
        // All released: a low rank again.
        let _ga = a.lock();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order violated")]
    fn a_lower_rank_under_a_higher_one_panics_in_debug_builds() {
        let low: Mutex<u8, 10> = Mutex::new(1);
        let high: Mutex<u8, 20> = Mutex::new(2);
        let _h = high.lock();
        let _l = low.lock();
    }
}
