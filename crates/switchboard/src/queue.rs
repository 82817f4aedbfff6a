//! A connection's outbound queue: unbounded (the sender bounds it in bytes, see
//! `ConnShared::push`), first in first out, and allocated only while it holds something.
//!
//! It replaces tokio's unbounded channel, whose first block (32 slots) and shared state cost
//! about 2 KB per connection whether anything is queued or not. Senders take a short lock; the
//! one reader (the connection's task) drains up to a batch at a time and lets go of the memory
//! when the queue is empty. The reader's waker is kept in the queue (there is only one reader),
//! so that waiting costs its future no `Notified` (64 bytes in every connection's task).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// The queue; see the module's documentation.
pub(crate) struct Queue<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    items: VecDeque<T>,
    /// Set when the reader is gone: nothing is accepted any more.
    closed: bool,
    /// Set when the reader must stop at once, whatever is queued (see `interrupt`).
    interrupted: bool,
    /// The reader, while it waits.
    reader: Option<Waker>,
}

impl<T> Queue<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                interrupted: false,
                reader: None,
            }),
        }
    }

    /// Appends an item; gives it back if the reader is gone.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(item);
        }
        state.items.push_back(item);
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            reader.wake();
        }
        Ok(())
    }

    /// Moves up to `limit` items into `buf`, waiting for at least one; 0 once interrupted, or
    /// closed and empty. Cancel-safe: items are taken only when the call returns.
    pub(crate) fn recv_many<'a>(
        &'a self,
        buf: &'a mut Vec<T>,
        limit: usize,
    ) -> impl Future<Output = usize> + Send + 'a
    where
        T: Send,
    {
        poll_fn(move |cx| self.poll_recv_many(cx, buf, limit))
    }

    fn poll_recv_many(&self, cx: &mut Context<'_>, buf: &mut Vec<T>, limit: usize) -> Poll<usize> {
        let mut state = self.state.lock();
        if state.interrupted {
            return Poll::Ready(0);
        }
        let n = state.items.len().min(limit);
        if n > 0 {
            buf.extend(state.items.drain(..n));
            if state.items.is_empty() {
                state.items = VecDeque::new();
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
        let q = Queue::new();
        for i in 0..5 {
            q.send(i).unwrap();
        }
        let mut buf = Vec::new();
        assert_eq!(q.recv_many(&mut buf, 3).await, 3);
        assert_eq!(q.recv_many(&mut buf, 3).await, 2);
        assert_eq!(buf, [0, 1, 2, 3, 4]);
        assert_eq!(q.state.lock().items.capacity(), 0);
        q.close();
        assert_eq!(q.send(9), Err(9));
        assert_eq!(q.recv_many(&mut buf, 3).await, 0);
    }

    #[tokio::test]
    async fn an_interrupt_comes_before_what_is_queued() {
        let q = Queue::new();
        q.send(1).unwrap();
        q.interrupt();
        let mut buf = Vec::new();
        assert_eq!(q.recv_many(&mut buf, 3).await, 0);
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken() {
        let q = std::sync::Arc::new(Queue::new());
        let reader = tokio::spawn({
            let q = q.clone();
            async move {
                let mut buf = Vec::new();
                q.recv_many(&mut buf, 10).await;
                buf
            }
        });
        tokio::task::yield_now().await;
        q.send("x").unwrap();
        assert_eq!(reader.await.unwrap(), ["x"]);
    }
}
