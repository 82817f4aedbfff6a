//! Writer passes: a fan-out's subscribers written in batches by a few tasks, instead of each by
//! its own connection's task.
//!
//! When a corked fan-out (see `cork.rs`) queues data for a connection whose task is waiting and
//! whose socket may be shared, the send leaves the task's waker to the cork's list of passes
//! instead of waking it. When the cork is removed, [`start`] cuts the list into chunks of
//! [`PASS_CHUNK`] and each chunk becomes one task. That task yields once (publications read by
//! the next I/O poll join the write, as they would join a woken connection task that runs a
//! little later), then writes each connection's queue to its socket with one non-blocking
//! `send` ([`write`]). Waking, scheduling and polling thousands of connection tasks (with
//! tokio's local run queue overflowing into the global one) cost more than the writes
//! themselves at 10,000 subscribers.
//!
//! A connection's task and a pass never write the same socket at once: the task holds the
//! socket's write lock (`io::tcp::SharedSocket`) while it is polled ([`WhileWriting`]), and a
//! pass takes it without waiting. A pass also leaves alone a socket whose transport still holds
//! bytes (the socket's `buffered` flag, kept by the transport: a pong, or the rest of a write).
//! Whatever a pass cannot do goes back to the connection's task, by waking it: a queue holding
//! anything but data frames, the rest of a write the socket did not take (queued first, already
//! framed), a socket in use.
//!
//! Only the lean transport over TCP (`Switchboard::serve`) shares its socket, and only frames
//! that transport would copy too are written by a pass (`io::ws::PassFrames`; a large payload
//! goes out vectored, by the connection's task). The queue holds the socket as its attachment
//! and lets go of it when it closes.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::state::{ConnShared, Out};
use crate::base::counters::Counters;
use crate::io::tcp::{SharedSocket, send_now};
use crate::io::transport::Transport;
use crate::io::ws::PassFrames;

/// Connections written per pass task. (With 128, S1 at 1,000 subscribers and bursts of 1 lost
/// 9 %: each write carried fewer publications. See docs/benchmarks-findings.md.)
const PASS_CHUNK: usize = 32;

/// Lets writer passes write `conn`'s socket, if its transport shares it: the socket, then the
/// task must run inside [`WhileWriting`].
pub(crate) fn enable(conn: &ConnShared, transport: &mut impl Transport) -> Option<Arc<SharedSocket>> {
    let socket = transport.share_socket()?;
    conn.queue.attach(socket.clone());
    Some(socket)
}

/// Starts the passes for the connections a cork collected (when it is removed).
pub(super) fn start(dirty: Vec<(Arc<ConnShared>, Waker)>, counters: &Weak<Counters>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        for (_, waker) in dirty {
            waker.wake();
        }
        return;
    };
    let mut dirty = dirty.into_iter();
    loop {
        let chunk: Vec<_> = dirty.by_ref().take(PASS_CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        let counters = counters.clone();
        handle.spawn(async move {
            // After the next I/O poll: publications read meanwhile join this write.
            tokio::task::yield_now().await;
            let (mut messages, mut bytes) = (0, 0);
            for (conn, waker) in chunk {
                let (m, b) = write(&conn, waker);
                messages += m;
                bytes += b;
            }
            if let Some(counters) = counters.upgrade() {
                counters.wrote(messages, bytes);
            }
        });
    }
}

/// Writes the queue to the socket for the connection's task, whose waker this is, when it holds
/// only data frames and nobody else writes the socket; else, and with whatever the socket did not
/// take, the task is woken to do it. Returns the messages and bytes written, for the counters.
fn write(conn: &ConnShared, waker: Waker) -> (u64, u64) {
    let (mut messages, mut bytes) = (0u64, 0usize);
    let mut rest = None;
    {
        let binary = conn.format.is_binary();
        let mut frames = PassFrames::new();
        let mut frame = |payload: &Bytes| {
            messages += 1;
            bytes += payload.len();
            frames.push(binary, payload);
        };
        // Nobody else writes the socket, and the transport holds nothing of its own.
        let free = |socket: &Arc<SharedSocket>| {
            if !socket.try_write_lock() {
                return false;
            }
            if socket.is_buffered() {
                socket.write_unlock();
                return false;
            }
            true
        };
        let drained = conn.queue.drain_if(
            free,
            |item| match item {
                Out::Frame(payload) => PassFrames::takes(payload.len()),
                Out::Frames(payloads) => payloads.iter().all(|p| PassFrames::takes(p.len())),
                _ => false,
            },
            |item| match item {
                Out::Frame(payload) => frame(&payload),
                Out::Frames(payloads) => payloads.iter().for_each(&mut frame),
                _ => unreachable!("taken only if all are data frames"),
            },
        );
        if let Some(socket) = drained {
            let framed = frames.bytes();
            let sent = send_now(&socket, framed);
            socket.write_unlock();
            if sent < framed.len() {
                let raw = Bytes::copy_from_slice(&framed[sent..]);
                let len = raw.len();
                rest = Some((Out::Raw(raw), len));
            }
        }
    }
    if let Some(waker) = conn.queue.drained(bytes, rest, waker) {
        waker.wake();
    }
    (messages, bytes as u64)
}

pin_project_lite::pin_project! {
    /// A connection task whose socket writer passes may write to: it holds the socket's write
    /// lock while it is polled, so that no pass writes at the same time.
    pub(crate) struct WhileWriting<F> {
        pub(crate) socket: Arc<SharedSocket>,
        #[pin]
        pub(crate) session: F,
    }
}

impl<F: Future> Future for WhileWriting<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !this.socket.try_write_lock() {
            // A pass is writing (one `send`): try again right after.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let polled = this.session.poll(cx);
        this.socket.write_unlock();
        polled
    }
}
