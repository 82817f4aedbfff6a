//! A connection's outbound queue: unbounded (the sender bounds it in bytes, see
//! `ConnShared::push`), first in first out, and allocated only while it is in use.
//!
//! It replaces tokio's unbounded channel, whose first block (32 slots) and shared state cost
//! about 2 KB per connection whether anything is queued or not. Senders take a short lock; the
//! one reader (the connection's task) drains up to a batch at a time and lets go of the memory
//! when the queue is empty, or, while other tasks keep sending to it, once it has been quiet
//! for a housekeeping period (see [`Queue::written`]). The reader's waker is kept in the queue
//! (there is only one reader), so that waiting costs its future no `Notified` (64 bytes in
//! every connection's task).
//!
//! Wake-ups can be put off with a [`Cork`]: a connection's task corks while it handles what it
//! read in one wake-up, so that a burst of publications fanned out to thousands of subscribers
//! wakes each subscriber once, after the whole burst is queued (and its writer sends the burst
//! in one write), and a reply queued for the connection itself wakes nobody.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// Items a queue allocates room for when its first item comes.
const FIRST_CAPACITY: usize = 8;
/// A batch of at least this many items is a burst: its buffer goes back to the queue (see
/// [`Queue::written`] for the other case).
const KEEP_AFTER: usize = 4;
/// Largest buffer (in items) handed back.
const KEEP_CAPACITY: usize = 64;

/// Why [`Queue::send_with`] refused items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The reader is gone.
    Closed,
    /// The limit: the bytes they would have made.
    Full(usize),
}

/// The queue; see the module's documentation.
pub(crate) struct Queue<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    items: VecDeque<T>,
    /// Bytes of the items sent with [`Queue::send_with`], until the reader reports them
    /// written ([`Queue::written`]).
    bytes: usize,
    /// Set when the reader is gone: nothing is accepted any more.
    closed: bool,
    /// Set when the reader must stop at once, whatever is queued (see `interrupt`).
    interrupted: bool,
    /// Another task queued data since the last [`Queue::trim`]: the buffer is kept between
    /// batches until the queue has been quiet for a whole trim period.
    busy: bool,
    /// The reader, while it waits.
    reader: Option<Waker>,
    /// The connection's socket, for writer passes (see `direct`); let go of when closed.
    socket: Option<std::sync::Arc<tokio::net::TcpStream>>,
}

impl<T> Queue<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
                interrupted: false,
                busy: false,
                reader: None,
                socket: None,
            }),
        }
    }

    /// Appends an item; gives it back if the reader is gone.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let mut item = Some(item);
        match self.send_with(0, usize::MAX, |items| items.push_back(item.take().expect("once"))) {
            Ok(()) => Ok(()),
            Err(_) => Err(item.take().expect("not sent")),
        }
    }

    /// Appends items (`put` pushes them) of `bytes` bytes, unless that takes the bytes queued
    /// or being written past `max`. (Counted here, under the lock the send takes anyway: a
    /// separate atomic counter was one more cache line moving between the sender's core and the
    /// reader's on every message.)
    pub(crate) fn send_with(
        &self,
        bytes: usize,
        max: usize,
        put: impl FnOnce(&mut VecDeque<T>),
    ) -> Result<(), Refused> {
        self.send_taking(bytes, max, put, false).map(|_| ())
    }

    /// [`Queue::send_with`]; with `hand`, a reader woken later (corked) is handed back to the
    /// caller instead of being deferred, if the queue has a socket for writer passes.
    pub(crate) fn send_taking(
        &self,
        bytes: usize,
        max: usize,
        put: impl FnOnce(&mut VecDeque<T>),
        hand: bool,
    ) -> Result<Option<Waker>, Refused> {
        let wake = Cork::mode(self.addr());
        if wake == Wake::Later {
            // What the cork holds for before the next message (a deferred fan-out) goes first.
            if let Some(first) = BEFORE.with(Cell::take) {
                first();
            }
        }
        let mut state = self.state.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        let queued = state.bytes + bytes;
        if queued > max {
            return Err(Refused::Full(queued));
        }
        state.bytes = queued;
        if state.items.capacity() == 0 {
            // Room for a small burst at once, rather than growing 4, 8, 16 as it comes.
            state.items.reserve(FIRST_CAPACITY);
        }
        put(&mut state.items);
        if bytes > 0 && wake != Wake::Never {
            state.busy = true;
        }
        if wake == Wake::Never {
            // The reader is the task running this: it drains its queue before it waits.
            return Ok(None);
        }
        let hand = hand && state.socket.is_some();
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            match wake {
                Wake::Later if hand => return Ok(Some(reader)),
                Wake::Later => Cork::defer(reader),
                _ => reader.wake(),
            }
        }
        Ok(None)
    }

    /// Lets writer passes write the reader's queue to `socket` (see `direct`).
    pub(crate) fn set_socket(&self, socket: std::sync::Arc<tokio::net::TcpStream>) {
        self.state.lock().socket = Some(socket);
    }

    /// For a writer pass: takes every queued item, handing each to `each` under the lock, if
    /// all pass `ok` and the queue is open and has a socket; returns the socket. The queue
    /// keeps its buffer. [`Queue::finish_pass`] follows.
    pub(crate) fn drain_for_pass(
        &self,
        ok: impl Fn(&T) -> bool,
        each: impl FnMut(T),
    ) -> Option<std::sync::Arc<tokio::net::TcpStream>> {
        let mut state = self.state.lock();
        if state.interrupted || state.closed || state.items.is_empty() || !state.items.iter().all(ok) {
            return None;
        }
        let socket = state.socket.clone()?;
        state.items.drain(..).for_each(each);
        Some(socket)
    }

    /// After a writer pass wrote `bytes` of what it drained for the reader: they no longer
    /// count against the limit, and `rest` (an item of its bytes), if any, goes first. Gives the
    /// reader's waker back to the queue, or back to the caller to wake when there is something
    /// for the reader to do.
    pub(crate) fn finish_pass(&self, bytes: usize, rest: Option<(T, usize)>, waker: Waker) -> Option<Waker> {
        let mut state = self.state.lock();
        state.bytes = state.bytes.saturating_sub(bytes);
        if let Some((item, len)) = rest
            && !state.closed
        {
            state.bytes += len;
            state.items.push_front(item);
        }
        if state.interrupted || state.closed || !state.items.is_empty() {
            return Some(waker);
        }
        if state.reader.is_none() {
            state.reader = Some(waker);
        }
        None
    }

    /// The reader wrote `bytes` of the `n` items it took into `buf` (now empty): they no
    /// longer count against the limit. The buffer is handed back for the next batch, if the
    /// queue has none, after a burst (`n` ≥ [`KEEP_AFTER`]) or while other tasks keep queuing
    /// data (`busy`): they then queue without allocating, and a buffer allocated on one thread
    /// is not freed on another after every small batch (at one publication per write to 1,000
    /// subscribers, those frees made the allocator's arena lock the most contended lock of the
    /// process). After a small batch of replies only, or once [`Queue::trim`] found the queue
    /// quiet, it is dropped: an idle connection holds none.
    pub(crate) fn written(&self, bytes: usize, mut buf: VecDeque<T>, n: usize) {
        if bytes == 0 && n < KEEP_AFTER {
            return;
        }
        let mut state = self.state.lock();
        state.bytes = state.bytes.saturating_sub(bytes);
        let keep = (n >= KEEP_AFTER || state.busy) && buf.capacity() <= KEEP_CAPACITY;
        if keep && state.items.capacity() == 0 && !state.closed {
            buf.clear();
            state.items = buf;
        }
    }

    /// Lets go of an empty queue's buffer unless another task queued data since the last call
    /// (housekeeping calls it for every connection, once per sweep).
    pub(crate) fn trim(&self) {
        let mut state = self.state.lock();
        if !state.busy && state.items.is_empty() && state.items.capacity() > 0 {
            state.items = VecDeque::new();
        }
        state.busy = false;
    }

    /// This queue's identity for the cork's own-queue check (`OWN`).
    fn addr(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// Moves up to `limit` items into `buf`, waiting for at least one; 0 once interrupted, or
    /// closed and empty. Cancel-safe: items are taken only when the call returns. Into an empty
    /// `buf`, taking everything, the queue's own buffer changes hands (no copy).
    pub(crate) fn recv_many<'a>(
        &'a self,
        buf: &'a mut VecDeque<T>,
        limit: usize,
    ) -> impl Future<Output = usize> + Send + 'a
    where
        T: Send,
    {
        poll_fn(move |cx| self.poll_recv_many(cx, buf, limit))
    }

    fn poll_recv_many(&self, cx: &mut Context<'_>, buf: &mut VecDeque<T>, limit: usize) -> Poll<usize> {
        let mut state = self.state.lock();
        if state.interrupted {
            return Poll::Ready(0);
        }
        let n = state.items.len().min(limit);
        if n > 0 {
            if n == state.items.len() && buf.is_empty() {
                std::mem::swap(buf, &mut state.items);
            } else {
                buf.extend(state.items.drain(..n));
                if state.items.is_empty() {
                    state.items = VecDeque::new();
                }
            }
            return Poll::Ready(n);
        }
        if state.closed {
            return Poll::Ready(0);
        }
        if !state.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.reader = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits until the queue is interrupted (for a reader stuck writing: it is not in
    /// `recv_many` then, so the waker slot is free; items arriving meanwhile wake it for
    /// nothing, and it waits again).
    pub(crate) async fn interrupted(&self) {
        poll_fn(|cx| {
            let mut state = self.state.lock();
            if state.interrupted {
                return Poll::Ready(());
            }
            if !state.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                state.reader = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
    }

    /// Takes the next item, if any.
    #[cfg(test)]
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.state.lock().items.pop_front()
    }

    /// Makes the reader's `recv_many` return 0 at once, now and from now on, even with items
    /// queued (the connection is being killed).
    pub(crate) fn interrupt(&self) {
        let reader = {
            let mut state = self.state.lock();
            state.interrupted = true;
            state.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    /// Refuses further items and drops the queued ones (the reader is gone).
    pub(crate) fn close(&self) {
        let reader = {
            let mut state = self.state.lock();
            state.closed = true;
            state.items = VecDeque::new();
            state.bytes = 0;
            state.socket = None;
            state.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// How a send on this thread wakes the queue's reader.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wake {
    Now,
    /// When the outermost [`Cork`] is dropped.
    Later,
    /// Not at all: the reader is running on this thread and drains its queue before it waits.
    Never,
}

thread_local! {
    /// Corks alive on this thread.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The queue whose reader is the task running on this thread, inside a cork (0: none).
    static OWN: Cell<usize> = const { Cell::new(0) };
    /// Wake-ups put off until the outermost cork is dropped.
    static DEFERRED: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
    /// Run when the outermost cork is dropped, after the wake-ups.
    static AFTER: Cell<Option<fn()>> = const { Cell::new(None) };
    /// Run before the next send to another queue, or when the cork is removed
    /// ([`Cork::before_next_send`]).
    static BEFORE: Cell<Option<fn()>> = const { Cell::new(None) };
}

/// While a cork lives, sends on this thread wake their readers only when it is dropped (the
/// outermost one, if nested), and a send to its own queue wakes nobody. Only for synchronous
/// stretches of code: a cork must not be held across an `.await` (the wake-ups would wait for
/// whatever this thread runs next).
pub(crate) struct Cork {
    /// The `OWN` of an enclosing cork, restored on drop.
    outer: usize,
    /// Dropped on the thread that made it.
    _here: std::marker::PhantomData<*const ()>,
}

impl Cork {
    /// Corks this thread; `own` is the queue of the task running this code (whose reader
    /// drains it before waiting again), if any.
    pub(crate) fn new<T>(own: Option<&Queue<T>>) -> Self {
        DEPTH.with(|d| d.set(d.get() + 1));
        let outer = OWN.with(|o| o.replace(own.map_or(0, Queue::addr)));
        Self { outer, _here: std::marker::PhantomData }
    }

    /// Whether this thread is corked.
    pub(crate) fn is_corked() -> bool {
        DEPTH.with(Cell::get) > 0
    }

    /// Runs `first` before the next send on this thread to a queue other than its own, or when
    /// the cork is removed, whichever comes first (a fan-out held by the cork: see
    /// `fanout::deliver`). Only inside a cork.
    pub(crate) fn before_next_send(first: fn()) {
        BEFORE.with(|b| b.set(Some(first)));
    }

    /// Runs `last` when the outermost cork is dropped.
    pub(crate) fn after(last: fn()) {
        AFTER.with(|a| a.set(Some(last)));
    }

    /// Takes back what [`Cork::before_next_send`] set (to run sends without it).
    pub(crate) fn take_before_next_send() -> Option<fn()> {
        BEFORE.with(Cell::take)
    }

    fn mode(queue: usize) -> Wake {
        if DEPTH.with(Cell::get) == 0 {
            Wake::Now
        } else if OWN.with(Cell::get) == queue {
            Wake::Never
        } else {
            Wake::Later
        }
    }

    fn defer(waker: Waker) {
        DEFERRED.with(|d| d.borrow_mut().push(waker));
    }
}

impl Drop for Cork {
    fn drop(&mut self) {
        if DEPTH.with(Cell::get) == 1 {
            // Still corked while it runs: the wake-ups it causes join the others.
            if let Some(first) = BEFORE.with(Cell::take) {
                first();
            }
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
        // Out of the cell before waking: a waker may run code that sends (and defers) again.
        let mut wakers = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
        for waker in wakers.drain(..) {
            waker.wake();
        }
        if let Some(last) = AFTER.with(Cell::take) {
            last();
        }
        // The list is kept for the next batch, unless it grew large (it holds no waker now).
        if wakers.capacity() <= 4096 {
            DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                if d.is_empty() {
                    *d = wakers;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_in_order_and_no_memory_when_empty() {
        let q = Queue::new();
        for i in 0..5 {
            q.send(i).unwrap();
        }
        let mut buf = VecDeque::new();
        assert_eq!(q.recv_many(&mut buf, 3).await, 3);
        assert_eq!(q.recv_many(&mut buf, 3).await, 2);
        assert_eq!(buf, [0, 1, 2, 3, 4]);
        assert_eq!(q.state.lock().items.capacity(), 0);
        // A burst's buffer goes back to the queue; a small batch's does not.
        let mut burst = VecDeque::new();
        for i in 0..5 {
            q.send(i).unwrap();
        }
        assert_eq!(q.recv_many(&mut burst, 10).await, 5);
        q.written(0, burst, 5);
        assert!(q.state.lock().items.capacity() >= 5);
        q.send(5).unwrap();
        let mut small = VecDeque::new();
        assert_eq!(q.recv_many(&mut small, 10).await, 1);
        q.written(0, small, 1);
        assert_eq!(q.state.lock().items.capacity(), 0);
        q.close();
        assert_eq!(q.send(9), Err(9));
        assert_eq!(q.recv_many(&mut buf, 3).await, 0);
    }

    #[test]
    fn a_busy_queue_keeps_its_buffer_until_a_quiet_trim() {
        let q = Queue::new();
        // Data from another task (no cork: `Wake::Now`): kept after a batch of one.
        q.send_with(10, usize::MAX, |i| i.push_back(1)).unwrap();
        let mut buf = VecDeque::new();
        assert_eq!(q.poll_recv_many(&mut Context::from_waker(Waker::noop()), &mut buf, 10), Poll::Ready(1));
        q.written(10, buf, 1);
        assert!(q.state.lock().items.capacity() > 0);
        // The first trim sees the data sent since the last one; the second finds it quiet.
        q.trim();
        assert!(q.state.lock().items.capacity() > 0);
        q.trim();
        assert_eq!(q.state.lock().items.capacity(), 0);
        // Replies the reader's own task queued (inside its cork) do not keep it.
        {
            let _cork = Cork::new(Some(&q));
            q.send_with(10, usize::MAX, |i| i.push_back(2)).unwrap();
        }
        let mut buf = VecDeque::new();
        assert_eq!(q.poll_recv_many(&mut Context::from_waker(Waker::noop()), &mut buf, 10), Poll::Ready(1));
        q.written(10, buf, 1);
        assert_eq!(q.state.lock().items.capacity(), 0);
    }

    #[test]
    fn sized_sends_are_bounded_until_written() {
        let q = Queue::new();
        q.send_with(60, 100, |i| i.push_back(1)).unwrap();
        assert!(matches!(q.send_with(60, 100, |i| i.push_back(2)), Err(Refused::Full(120))));
        q.send(3).unwrap();
        assert_eq!(q.try_recv(), Some(1));
        // Taken but not yet written: still counted.
        assert!(matches!(q.send_with(60, 100, |i| i.push_back(2)), Err(Refused::Full(120))));
        q.written(60, VecDeque::new(), 1);
        q.send_with(60, 100, |i| i.push_back(2)).unwrap();
    }

    #[tokio::test]
    async fn an_interrupt_comes_before_what_is_queued() {
        let q = Queue::new();
        q.send(1).unwrap();
        q.interrupt();
        let mut buf = VecDeque::new();
        assert_eq!(q.recv_many(&mut buf, 3).await, 0);
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken() {
        let q = std::sync::Arc::new(Queue::new());
        let reader = tokio::spawn({
            let q = q.clone();
            async move {
                let mut buf = VecDeque::new();
                q.recv_many(&mut buf, 10).await;
                buf
            }
        });
        tokio::task::yield_now().await;
        q.send("x").unwrap();
        assert_eq!(reader.await.unwrap(), ["x"]);
    }

    /// A waker that counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl Count {
        fn waiting_reader(q: &Queue<u32>) -> std::sync::Arc<Self> {
            let count = std::sync::Arc::new(Self(std::sync::atomic::AtomicUsize::new(0)));
            let waker = Waker::from(count.clone());
            let mut buf = VecDeque::new();
            let polled = q.poll_recv_many(&mut Context::from_waker(&waker), &mut buf, 10);
            assert!(polled.is_pending());
            count
        }

        fn get(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[test]
    fn a_cork_wakes_each_reader_once_when_dropped() {
        let (a, b) = (Queue::new(), Queue::new());
        let (wa, wb) = (Count::waiting_reader(&a), Count::waiting_reader(&b));
        {
            let _outer = Cork::new::<u32>(None);
            {
                let _inner = Cork::new::<u32>(None);
                for i in 0..10 {
                    a.send(i).unwrap();
                    b.send(i).unwrap();
                }
            }
            // Still corked: the inner cork only nests.
            assert_eq!((wa.get(), wb.get()), (0, 0));
        }
        assert_eq!((wa.get(), wb.get()), (1, 1));
        // Uncorked: a send wakes at once.
        while a.try_recv().is_some() {}
        let wa = Count::waiting_reader(&a);
        a.send(1).unwrap();
        assert_eq!(wa.get(), 1);
    }

    #[test]
    fn a_send_to_the_corked_task_s_own_queue_wakes_nobody() {
        let (own, other) = (Queue::new(), Queue::new());
        let (w_own, w_other) = (Count::waiting_reader(&own), Count::waiting_reader(&other));
        {
            let _cork = Cork::new(Some(&own));
            own.send(1).unwrap();
            other.send(1).unwrap();
        }
        assert_eq!((w_own.get(), w_other.get()), (0, 1));
        // Its waker is still registered: a send from elsewhere wakes it.
        own.send(2).unwrap();
        assert_eq!(w_own.get(), 1);
    }
}
