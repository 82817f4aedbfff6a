//! Writer passes: a fan-out's subscribers written in batches by a few tasks, instead of each by
//! its own connection's task.
//!
//! When a corked fan-out (see `queue::Cork`) queues data for a connection whose task is waiting,
//! the push hands the task's waker to this thread's list instead of waking it. When the cork is
//! removed, the list is cut into chunks of [`PASS_CHUNK`] and each chunk becomes one task. That
//! task yields once (publications read by the next I/O poll join the write, as they would join
//! a woken connection task that runs a little later), then writes each connection's queue to
//! its socket with one non-blocking `send`. Waking, scheduling and polling thousands of
//! connection tasks (with tokio's local run queue overflowing into the global one) cost more
//! than the writes themselves at 10,000 subscribers.
//!
//! A connection's task and a pass never write the same socket at once: the task holds
//! `ConnShared::writing` while it is polled, and a pass takes it without waiting. A pass also
//! leaves alone a socket whose transport still holds bytes (`ConnShared::buffered`: a pong, or
//! the rest of a write). Whatever a pass cannot do goes back to the connection's task, by
//! waking it: a queue holding anything but data frames, the rest of a write the socket did not
//! take (queued first, already framed), a socket in use.
//!
//! Only the lean transport over TCP (`Switchboard::serve`) takes part, and only with frames
//! that transport would copy too (`ws::PassFrames`; a large payload goes out vectored, by the
//! connection's task). The queue holds the socket for the passes (`Queue::drain_for_pass`) and
//! lets go of it when it closes.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::conn::ConnShared;
use crate::hub::HubInner;

/// Connections written per pass task. (With 128, S1 at 1,000 subscribers and bursts of 1 lost
/// 9 %: each write carried fewer publications. See docs/architecture.md.)
const PASS_CHUNK: usize = 32;

/// A TCP stream that writer passes may write to as well (they hold it while they write).
pub(crate) struct SharedTcp(Arc<TcpStream>);

impl SharedTcp {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Self(Arc::new(tcp))
    }

    /// The stream, for the connection's queue (see `Queue::drain_for_pass`).
    pub(crate) fn share(&self) -> Arc<TcpStream> {
        self.0.clone()
    }
}

thread_local! {
    /// Where a read lands before it is copied into the caller's buffer (whose unfilled part is
    /// not initialised: reading into it would first zero it).
    static READ_INTO: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl AsyncRead for SharedTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            let read: io::Result<()> = READ_INTO.with(|into| {
                let mut into = into.borrow_mut();
                into.clear();
                into.reserve(buf.remaining());
                let n = self.0.try_read_buf(&mut *into)?;
                buf.put_slice(&into[..n]);
                Ok(())
            });
            match read {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Writes all of `buf` it can to `tcp` without waiting; returns how much went.
pub(crate) fn send_now(tcp: &TcpStream, buf: &[u8]) -> usize {
    let socket = socket2::SockRef::from(tcp);
    let mut at = 0;
    while at < buf.len() {
        match socket.send(&buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Full, or failed: the connection's task writes the rest (and sees the failure).
            Err(_) => break,
        }
    }
    at
}

pin_project_lite::pin_project! {
    /// A connection task whose socket writer passes may write to: it holds the right to write
    /// while it is polled, so that no pass writes at the same time.
    pub(crate) struct WhileWriting<F> {
        pub(crate) conn: Arc<ConnShared>,
        #[pin]
        pub(crate) session: F,
    }
}

impl<F: Future> Future for WhileWriting<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.conn.writing.swap(true, Ordering::Acquire) {
            // A pass is writing (one `send`): try again right after.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let polled = this.session.poll(cx);
        this.conn.writing.store(false, Ordering::Release);
        polled
    }
}

thread_local! {
    /// The hub whose connections this thread's passes write (for their counters): the one of
    /// the last connection task that corked here.
    static HUB: RefCell<Weak<HubInner>> = const { RefCell::new(Weak::new()) };
}

/// Notes the hub of the connection task about to cork this thread (see [`HUB`]).
pub(crate) fn note_hub(hub: &Arc<HubInner>) {
    HUB.with(|h| {
        if h.borrow().as_ptr() != Arc::as_ptr(hub) {
            *h.borrow_mut() = Arc::downgrade(hub);
        }
    });
}

thread_local! {
    /// Connections that got data while this thread was corked, with their task's waker.
    static DIRTY: RefCell<Vec<(Arc<ConnShared>, Waker)>> = const { RefCell::new(Vec::new()) };
}

/// Puts `conn` (whose task's waker a corked push took) in this thread's next passes.
pub(crate) fn defer(conn: &Arc<ConnShared>, waker: Waker) {
    let first = DIRTY.with(|d| {
        let mut d = d.borrow_mut();
        d.push((conn.clone(), waker));
        d.len() == 1
    });
    if first {
        crate::queue::Cork::after(run_passes);
    }
}

/// Starts the passes for the connections this thread's cork collected (when it is removed).
fn run_passes() {
    let dirty = DIRTY.with(|d| std::mem::take(&mut *d.borrow_mut()));
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        for (_, waker) in dirty {
            waker.wake();
        }
        return;
    };
    let hub = HUB.with(|h| h.borrow().clone());
    let mut dirty = dirty.into_iter();
    loop {
        let chunk: Vec<_> = dirty.by_ref().take(PASS_CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        let hub = hub.clone();
        handle.spawn(async move {
            // After the next I/O poll: publications read meanwhile join this write.
            tokio::task::yield_now().await;
            let (mut messages, mut bytes) = (0, 0);
            for (conn, waker) in chunk {
                let (m, b) = conn.write_direct(waker);
                messages += m;
                bytes += b;
            }
            if let Some(hub) = hub.upgrade() {
                let stats = hub.stats.here();
                stats.messages_out.fetch_add(messages, Ordering::Relaxed);
                stats.bytes_out.fetch_add(bytes, Ordering::Relaxed);
            }
        });
    }
}
