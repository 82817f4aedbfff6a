//! The cork: while a connection's task handles what it read in one wake-up, its thread batches
//! the effects of the sends it makes, and carries them out when the cork is removed.
//!
//! A send to another connection inside a cork does not wake that connection's task at once: its
//! waker joins the cork's list (or, for a fan-out to a connection whose socket writer passes may
//! write, the list of passes, see `pass.rs`). So a burst of publications fanned out to thousands
//! of subscribers wakes each subscriber once, after the whole burst is queued, and its writer
//! sends the burst in one write; and a reply to the corked task's own connection wakes nobody
//! (the task drains its queue before it waits again).
//!
//! A cork can also hold back one fan-out ([`Held`], a topic's: `hub::topics::held`): the
//! publications of one topic in a row go to each subscriber together. What it holds is released
//! before anything else is sent to another connection on this thread, and when the cork is
//! removed, so that every connection still gets its messages in the order they were sent.
//!
//! Everything is per thread (a cork is created and dropped by the code that runs on it, and
//! must not be held across an `.await`).

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};
use std::task::Waker;

use super::pass;
use super::state::ConnShared;
use crate::base::counters::Counters;

/// A fan-out a cork holds back (see the module's documentation).
pub(crate) trait Held: Send + Sync {
    /// Queues what is held to its connections.
    fn release(&self);
}

/// How a send on this thread wakes its connection's task.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// Not corked: at once.
    Now,
    /// When the outermost cork is removed.
    Later,
    /// Not at all: the connection's task is the one running here, inside its cork.
    Own,
}

thread_local! {
    // What this thread's cork batches. Separate cells rather than one struct: `DEPTH` and `OWN`
    // are read for every send, and a `Cell` of a type without destructor is the cheapest
    // thread-local there is (no registration check, no borrow flag).

    /// Corks alive on this thread.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The connection whose task runs inside the cork (its address; 0: none).
    static OWN: Cell<usize> = const { Cell::new(0) };
    /// Wake-ups put off until the outermost cork is removed.
    static WAKE: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
    /// Connections whose queues writer passes will write when the cork is removed.
    static PASSES: RefCell<Vec<(Arc<ConnShared>, Waker)>> = const { RefCell::new(Vec::new()) };
    /// The fan-out held back.
    static HELD: RefCell<Option<Arc<dyn Held>>> = const { RefCell::new(None) };
    /// Where the passes of this thread count what they write (the server of the last task that
    /// corked here).
    static COUNTERS: RefCell<Weak<Counters>> = const { RefCell::new(Weak::new()) };
}

fn addr(conn: &ConnShared) -> usize {
    std::ptr::from_ref(conn).addr()
}

/// While it lives, the sends of this thread are batched (see the module's documentation).
pub(crate) struct Cork {
    /// The `own` of an enclosing cork, restored on drop.
    outer: usize,
    /// Dropped on the thread that made it.
    _here: std::marker::PhantomData<*const ()>,
}

impl Cork {
    /// Corks this thread for the task of `own` (if any), which counts into `counters`.
    pub(crate) fn new(own: Option<&ConnShared>, counters: &Arc<Counters>) -> Self {
        DEPTH.with(|d| d.set(d.get() + 1));
        COUNTERS.with(|c| {
            if c.borrow().as_ptr() != Arc::as_ptr(counters) {
                *c.borrow_mut() = Arc::downgrade(counters);
            }
        });
        let outer = OWN.with(|o| o.replace(own.map_or(0, addr)));
        Self { outer, _here: std::marker::PhantomData }
    }
}

impl Drop for Cork {
    fn drop(&mut self) {
        if DEPTH.with(Cell::get) == 1 {
            // Still corked while it is released: the wake-ups it causes join the others.
            release_held();
        }
        OWN.with(|o| o.set(self.outer));
        let depth = DEPTH.with(|d| {
            let depth = d.get() - 1;
            d.set(depth);
            depth
        });
        if depth > 0 {
            return;
        }
        // Out of the cells before waking: a waker may run code that sends (and batches) again.
        let mut wake = WAKE.with(|w| std::mem::take(&mut *w.borrow_mut()));
        for waker in wake.drain(..) {
            waker.wake();
        }
        let passes = PASSES.with(|p| std::mem::take(&mut *p.borrow_mut()));
        if !passes.is_empty() {
            pass::start(passes, &COUNTERS.with(|c| c.borrow().clone()));
        }
        // The list is kept for the next batch, unless it grew large (it holds no waker now).
        if wake.capacity() <= 4096 {
            WAKE.with(|w| {
                let mut w = w.borrow_mut();
                if w.is_empty() {
                    *w = wake;
                }
            });
        }
    }
}

/// How a send to `conn` on this thread wakes its task now.
pub(crate) fn mode(conn: &ConnShared) -> Mode {
    if DEPTH.with(Cell::get) == 0 {
        Mode::Now
    } else if OWN.with(Cell::get) == addr(conn) {
        Mode::Own
    } else {
        Mode::Later
    }
}

/// Whether this thread is corked.
pub(crate) fn is_corked() -> bool {
    DEPTH.with(Cell::get) > 0
}

/// Puts off a wake-up until the cork is removed.
pub(crate) fn wake_later(waker: Waker) {
    WAKE.with(|w| w.borrow_mut().push(waker));
}

/// Leaves `conn`'s queue to a writer pass when the cork is removed (its task's waker: the pass
/// hands it back when the task has something to do).
pub(crate) fn pass_later(conn: &Arc<ConnShared>, waker: Waker) {
    PASSES.with(|p| p.borrow_mut().push((conn.clone(), waker)));
}

/// Whether the cork holds `held`'s fan-out (compared by address).
pub(crate) fn holds<T: Held + 'static>(held: &Arc<T>) -> bool {
    HELD.with(|h| h.borrow().as_ref().is_some_and(|h| std::ptr::addr_eq(Arc::as_ptr(h), Arc::as_ptr(held))))
}

/// Holds `held`'s fan-out back (inside a cork; releasing what was held before first is the
/// caller's).
pub(crate) fn hold(held: Arc<dyn Held>) {
    HELD.with(|h| *h.borrow_mut() = Some(held));
}

/// Releases the held fan-out, if any (before a send to another connection, and when the cork is
/// removed).
pub(crate) fn release_held() {
    if let Some(held) = HELD.with(|h| h.borrow_mut().take()) {
        held.release();
    }
}

/// Takes the held fan-out aside while a fan-out is being queued (its sends must not release
/// it: the one being queued is the held one, or holds locks ranked above it); puts it back when
/// dropped unless another one was held meanwhile.
pub(crate) struct Aside(Option<Arc<dyn Held>>);

impl Aside {
    pub(crate) fn new() -> Self {
        Self(HELD.with(|h| h.borrow_mut().take()))
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        let Some(held) = self.0.take() else { return };
        let corked = is_corked();
        let left = HELD.with(|h| {
            let mut h = h.borrow_mut();
            if h.is_none() && corked {
                *h = Some(held);
                None
            } else {
                Some(held)
            }
        });
        // Another one is held now (or the cork is gone): this one goes out, never lost.
        if let Some(held) = left {
            held.release();
        }
    }
}
