//! A connection's outbound queue: bounded in bytes by the caller's limit, first in first out,
//! and allocated only while it is in use.
//!
//! It replaces tokio's unbounded channel, whose first block (32 slots) and shared state cost
//! about 2 KB per connection whether anything is queued or not. Senders take a short lock; the
//! one reader (the connection's task) drains up to a batch at a time and lets go of the memory
//! when the queue is empty, or, while other tasks keep sending to it, once it has been quiet
//! for a sweep of the sweeper (see [`Queue::written`]). The reader's waker is kept in the queue
//! (there is only one reader), so that waiting costs its future no `Notified` (64 bytes in
//! every connection's task).
//!
//! A send does not wake the reader itself: it hands the reader's waker back to the sender, who
//! wakes it now or later (a connection's sends inside a cork wake their readers when the cork is
//! removed, see `conn::cork`), or leaves it in place when the sender is the reader's own task.
//!
//! A queue may carry an *attachment* (`A`): something a second writer needs to write the
//! queue's items out without its reader (a connection's socket, for its writer passes). It is
//! handed out by [`Queue::drain_if`] and let go of when the queue closes.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use crate::base::ordered::{self, rank};

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
pub(crate) struct Queue<T, A = ()> {
    state: ordered::Mutex<State<T, A>, { rank::QUEUE }>,
}

/// The reader's waker, handed to a sender by [`Queue::send_with`].
pub(crate) struct Reader {
    pub(crate) waker: Waker,
    /// The queue has an attachment: a second writer may write its items instead of the reader.
    pub(crate) attached: bool,
}

struct State<T, A> {
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
    /// See the module's documentation; let go of when closed.
    attachment: Option<A>,
}

impl<T, A: Clone + Send> Queue<T, A> {
    pub(crate) fn new() -> Self {
        Self {
            state: ordered::Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
                interrupted: false,
                busy: false,
                reader: None,
                attachment: None,
            }),
        }
    }

    /// Appends an unsized item and wakes the reader at once; gives the item back if the reader
    /// is gone.
    #[cfg(test)]
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let mut item = Some(item);
        match self.send_with(0, usize::MAX, |items| items.push_back(item.take().expect("once")), true) {
            Ok(reader) => {
                if let Some(reader) = reader {
                    reader.waker.wake();
                }
                Ok(())
            }
            Err(_) => Err(item.take().expect("not sent")),
        }
    }

    /// Appends items (`put` pushes them, under the lock) of `bytes` bytes, unless that takes the
    /// bytes queued or being written past `max`. (Counted here, under the lock the send takes
    /// anyway: a separate atomic counter was one more cache line moving between the sender's
    /// core and the reader's on every message.)
    ///
    /// With `take_reader`, a waiting reader's waker is handed back, for the caller to wake;
    /// without (the caller is the reader's own task, which drains its queue before it waits
    /// again), it stays in place.
    pub(crate) fn send_with(
        &self,
        bytes: usize,
        max: usize,
        put: impl FnOnce(&mut VecDeque<T>),
        take_reader: bool,
    ) -> Result<Option<Reader>, Refused> {
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
        if !take_reader {
            return Ok(None);
        }
        if bytes > 0 {
            state.busy = true;
        }
        let attached = state.attachment.is_some();
        Ok(state.reader.take().map(|waker| Reader { waker, attached }))
    }

    /// Attaches what a second writer needs (see the module's documentation).
    pub(crate) fn attach(&self, attachment: A) {
        self.state.lock().attachment = Some(attachment);
    }

    /// For a second writer: takes every queued item, handing each to `each` under the lock, if
    /// all pass `ok`, the queue is open, and it has an attachment that passes `ready` (checked
    /// last: once it passes, the items are taken); returns the attachment. The queue keeps its
    /// buffer. [`Queue::drained`] follows.
    pub(crate) fn drain_if(
        &self,
        ready: impl FnOnce(&A) -> bool,
        ok: impl Fn(&T) -> bool,
        each: impl FnMut(T),
    ) -> Option<A> {
        let mut state = self.state.lock();
        if state.interrupted || state.closed || state.items.is_empty() || !state.items.iter().all(ok) {
            return None;
        }
        let attachment = state.attachment.as_ref().filter(|a| ready(a))?.clone();
        state.items.drain(..).for_each(each);
        Some(attachment)
    }

    /// After a second writer wrote `bytes` of what it drained for the reader: they no longer
    /// count against the limit, and `rest` (an item of its bytes), if any, goes first. Gives the
    /// reader's waker back to the queue, or back to the caller to wake when there is something
    /// for the reader to do.
    pub(crate) fn drained(&self, bytes: usize, rest: Option<(T, usize)>, waker: Waker) -> Option<Waker> {
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
    /// (the sweeper calls it for every connection, once per sweep).
    pub(crate) fn trim(&self) {
        let mut state = self.state.lock();
        if !state.busy && state.items.is_empty() && state.items.capacity() > 0 {
            state.items = VecDeque::new();
        }
        state.busy = false;
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
            state.attachment = None;
            state.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_in_order_and_no_memory_when_empty() {
        let q: Queue<_> = Queue::new();
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
        let q: Queue<_> = Queue::new();
        // Data from another task (taking the reader's waker): kept after a batch of one.
        q.send_with(10, usize::MAX, |i| i.push_back(1), true).unwrap();
        let mut buf = VecDeque::new();
        assert_eq!(q.poll_recv_many(&mut Context::from_waker(Waker::noop()), &mut buf, 10), Poll::Ready(1));
        q.written(10, buf, 1);
        assert!(q.state.lock().items.capacity() > 0);
        // The first trim sees the data sent since the last one; the second finds it quiet.
        q.trim();
        assert!(q.state.lock().items.capacity() > 0);
        q.trim();
        assert_eq!(q.state.lock().items.capacity(), 0);
        // Replies the reader's own task queued (leaving its waker) do not keep it.
        q.send_with(10, usize::MAX, |i| i.push_back(2), false).unwrap();
        let mut buf = VecDeque::new();
        assert_eq!(q.poll_recv_many(&mut Context::from_waker(Waker::noop()), &mut buf, 10), Poll::Ready(1));
        q.written(10, buf, 1);
        assert_eq!(q.state.lock().items.capacity(), 0);
    }

    #[test]
    fn sized_sends_are_bounded_until_written() {
        let q: Queue<_> = Queue::new();
        q.send_with(60, 100, |i| i.push_back(1), true).unwrap();
        assert!(matches!(q.send_with(60, 100, |i| i.push_back(2), true), Err(Refused::Full(120))));
        q.send(3).unwrap();
        assert_eq!(q.try_recv(), Some(1));
        // Taken but not yet written: still counted.
        assert!(matches!(q.send_with(60, 100, |i| i.push_back(2), true), Err(Refused::Full(120))));
        q.written(60, VecDeque::new(), 1);
        q.send_with(60, 100, |i| i.push_back(2), true).unwrap();
    }

    #[tokio::test]
    async fn an_interrupt_comes_before_what_is_queued() {
        let q: Queue<_> = Queue::new();
        q.send(1).unwrap();
        q.interrupt();
        let mut buf = VecDeque::new();
        assert_eq!(q.recv_many(&mut buf, 3).await, 0);
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken() {
        let q = std::sync::Arc::new(Queue::<_>::new());
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
        fn waiting_reader<A: Clone + Send>(q: &Queue<u32, A>) -> std::sync::Arc<Self> {
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
    fn the_reader_s_own_sends_leave_its_waker_others_take_it() {
        let q: Queue<u32> = Queue::new();
        let w = Count::waiting_reader(&q);
        assert!(q.send_with(1, usize::MAX, |i| i.push_back(1), false).unwrap().is_none());
        let reader =
            q.send_with(1, usize::MAX, |i| i.push_back(2), true).unwrap().expect("the waiting reader");
        assert!(!reader.attached);
        reader.waker.wake();
        assert_eq!(w.get(), 1);
        // Taken: the next send finds no reader waiting.
        assert!(q.send_with(1, usize::MAX, |i| i.push_back(3), true).unwrap().is_none());
    }

    #[test]
    fn a_second_writer_drains_only_an_attached_queue_of_accepted_items() {
        let q: Queue<u32, &'static str> = Queue::new();
        q.send_with(1, usize::MAX, |i| i.push_back(1), true).unwrap();
        assert!(q.drain_if(|_| true, |_| true, |_| {}).is_none(), "no attachment");
        q.attach("socket");
        assert!(q.drain_if(|_| true, |i| *i > 1, |_| {}).is_none(), "an item it does not take");
        assert!(q.drain_if(|_| false, |_| true, |_| {}).is_none(), "an attachment not ready");
        let mut got = Vec::new();
        assert_eq!(q.drain_if(|_| true, |_| true, |i| got.push(i)), Some("socket"));
        assert_eq!(got, [1]);
        // What it could not write goes first; the waker goes back when nothing is left.
        let w = Count::waiting_reader(&q);
        let waker = Waker::from(w);
        assert!(q.drained(1, Some((7, 1)), waker.clone()).is_some(), "the rest is for the reader");
        assert_eq!(q.try_recv(), Some(7));
        assert!(q.drained(1, None, waker).is_none(), "nothing left: the waker stays");
        q.close();
        assert!(q.drain_if(|_| true, |_| true, |_| {}).is_none(), "closed: the attachment is gone");
    }
}
