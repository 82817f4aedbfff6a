//! One task per connection: read, dispatch, write — in one `select!` loop.
//!
//! Reading decodes a frame and starts its handler as a future in this task's set (no spawn per
//! message); at most `max_inflight` run at once, beyond which reading pauses. Writing drains
//! every queued message, buffers them all, and writes them at once (in place when the socket
//! takes them, with no future or allocation).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use switchboard_protocol::{CloseCode, DecodeError, wire};

use super::dispatch::dispatch;
use super::limits::ConnLimits;
use super::reply::Task;
use super::runtime::Runtime;
use crate::conn::cork::Cork;
use crate::conn::{ConnShared, Out, Receiver};
use crate::hub::core::Core;
use crate::hub::membership;
use crate::io::transport::{Inbound, Outbound, Transport};

/// The connection's running handler futures; the set is allocated only while one runs.
#[derive(Default)]
struct Inflight(Option<FuturesUnordered<Task>>);

impl Inflight {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, FuturesUnordered::len)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, task: Task) {
        self.0.get_or_insert_with(FuturesUnordered::new).push(task);
    }

    /// Waits for one to finish (cancel-safe); lets go of the set once none is left.
    async fn next(&mut self) -> Option<()> {
        std::future::poll_fn(|cx| {
            let Some(set) = self.0.as_mut() else { return std::task::Poll::Ready(None) };
            let done = set.poll_next_unpin(cx);
            if done.is_ready() && set.is_empty() {
                self.0 = None;
            }
            done
        })
        .await
    }
}

/// How a connection ends: the close frame to send, if any.
struct Ending {
    code: CloseCode,
    reason: String,
    bye: bool,
    jump: Option<String>,
}

impl Ending {
    fn protocol(e: &DecodeError) -> Self {
        let code =
            if matches!(e, DecodeError::TooBig) { CloseCode::TOO_BIG } else { CloseCode::PROTOCOL_ERROR };
        // The decoder's words for a frame are written for people; a payload's are not (and
        // never end a connection, but say nothing of them if they did).
        let reason = match e {
            DecodeError::Payload(_) => "the frame is not a valid message".to_owned(),
            e => e.to_string(),
        };
        Self { code, reason, bye: false, jump: None }
    }
}

/// The connection's task. Not an `async fn`: its future would keep the arguments twice (the
/// arguments, then the locals they move into), 144 bytes more in every connection's task.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run<S, T>(
    server: Arc<Runtime<S>>,
    mut transport: T,
    conn: Arc<ConnShared>,
    mut rx: Receiver,
) -> impl Future<Output = ()> + Send + 'static
where
    S: Clone + Send + Sync + 'static,
    T: Transport,
{
    async move {
        let hub = &**server.hub.core();
        membership::arrive(hub, &conn);
        if hub.running().shutdown.is_cancelled() {
            // `Switchboard::shutdown` told the registered connections; this one came just after.
            conn.shut_down();
        }
        tracing::debug!(format = %conn.format, "connected");

        let binary = conn.format.is_binary();
        let mut inflight = Inflight::default();
        let mut limits = ConnLimits::default();
        let mut batch = std::collections::VecDeque::new();
        let mut draining = false;
        // While shutting down: how long running handlers may still take.
        let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        // The peer's close frame's code, when the peer closed.
        let mut peer_closed = None;
        let ending: Option<Ending> = loop {
            tokio::select! {
                biased;
                // A kill (slow consumer) interrupts the queue: 0 before anything queued.
                n = rx.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break conn.is_killed().then(|| killed(&server, &conn));
                    }
                    let mut written = 0;
                    let mut counted = 0;
                    let mut messages = n;
                    let mut close = None;
                    let mut shutdown = false;
                    for out in batch.drain(..) {
                        match out {
                            Out::Frame(bytes) => {
                                written += bytes.len();
                                transport.buffer(Outbound::Data(bytes), binary);
                            }
                            Out::Frames(frames) => {
                                messages += frames.len().saturating_sub(1);
                                for bytes in frames.iter() {
                                    written += bytes.len();
                                    transport.buffer(Outbound::Shared(bytes), binary);
                                }
                            }
                            Out::Ping => transport.buffer(Outbound::Ping, binary),
                            Out::Raw(raw) => {
                                // The rest of a writer pass's write: counted by the pass.
                                messages -= 1;
                                counted += raw.len();
                                written += raw.len();
                                transport.buffer(Outbound::Raw(&raw), binary);
                            }
                            Out::Shutdown => shutdown = true,
                            Out::Close { code, reason, bye, jump } => {
                                close = Some(Ending { code, reason, bye, jump });
                                break;
                            }
                        }
                    }
                    // Written in place when the socket takes it all (the usual case: no future,
                    // no allocation; a no-op waker, as an await here would widen every task's
                    // future); else waited for, boxed, and a kill (slow consumer) gets through.
                    let now = transport.poll_flush(&mut Context::from_waker(Waker::noop()));
                    let (ok, kill) = match now {
                        Poll::Ready(ok) => (ok, false),
                        Poll::Pending => {
                            Box::pin(async {
                                tokio::select! {
                                    ok = transport.flush() => (ok, false),
                                    () = conn.killed() => (false, true),
                                }
                            })
                            .await
                        }
                    };
                    // The queue's buffer goes back to it while bursts or other tasks' messages
                    // come (the next one fills it without allocating); otherwise, and once the
                    // queue stayed quiet for a sweep, it is let go of: an idle
                    // connection holds no buffer (see `Queue::written`).
                    rx.written(written, std::mem::take(&mut batch), n);
                    if kill {
                        break Some(killed(&server, &conn));
                    }
                    hub.counters().wrote(messages as u64, (written - counted) as u64);
                    if close.is_some() {
                        break close;
                    }
                    if !ok {
                        break None;
                    }
                    if shutdown && !draining {
                        draining = true;
                        if inflight.is_empty() {
                            conn.close(CloseCode::GOING_AWAY, "server shutting down", true);
                        } else {
                            grace = Some(Box::pin(tokio::time::sleep(conn.config.shutdown_grace)));
                        }
                    }
                }
                Some(()) = inflight.next(), if !inflight.is_empty() => {
                    // Every other handler that finished too, before the replies are written.
                    while !inflight.is_empty() && inflight.next().now_or_never().flatten().is_some() {}
                    if draining && inflight.is_empty() {
                        grace = None;
                        conn.close(CloseCode::GOING_AWAY, "server shutting down", true);
                    }
                }
                () = async { grace.as_mut().expect("guarded").await }, if grace.is_some() => {
                    grace = None;
                    conn.close(CloseCode::GOING_AWAY, "server shutting down", true);
                }
                // (Not while a message waits for its user's tokens: see `session::limits`.)
                inbound = transport.recv(), if !draining && inflight.len() < conn.config.max_inflight.max(1)
                    && !conn.rates.held.load(Ordering::Relaxed) => {
                    // What the frames read now queue wakes its readers once, at the end (a burst
                    // fanned out is written in one go); replies to this connection wake nobody:
                    // the loop drains its queue next.
                    let cork = Cork::new(Some(&conn), hub.counters());
                    let mut tally = Tally::default();
                    if server.limits.on {
                        tally.now = Some(hub.now_ms());
                    }
                    let mut end = receive(&server, &conn, &mut inflight, inbound, binary, &mut tally, &mut limits);
                    // Take every frame that already arrived (their handlers run as they are taken),
                    // so that the replies they produce leave in one write, not one write each.
                    while end.is_none()
                        && inflight.len() < conn.config.max_inflight.max(1)
                        && !conn.rates.held.load(Ordering::Relaxed)
                    {
                        let Some(inbound) = transport.recv().now_or_never() else { break };
                        end = receive(&server, &conn, &mut inflight, inbound, binary, &mut tally, &mut limits);
                    }
                    tally.count(hub, &conn);
                    peer_closed = tally.peer_closed;
                    drop(cork);
                    if let Some(end) = end {
                        break end;
                    }
                }
            }
        };
        drop(inflight);
        // The connection is gone for everyone else before its last bytes are written.
        // Boxed, like the goodbye below: run once, they need not widen the task's future.
        let (code, reason) = match (&ending, peer_closed) {
            (Some(end), _) => (end.code.0, end.reason.as_str()),
            (None, Some(code)) => (code, "closed by the client"),
            (None, None) => (CloseCode::ABNORMAL.0, "connection lost"),
        };
        let mut owed = Box::pin(membership::forget(hub, &conn, code, reason)).await;
        // Its credentials' expiry, if any, goes with it (not at the expiry, hours later).
        hub.timers().forget_expiry(&conn);
        // Its lifecycle events are written before its close frame while the log answers (a
        // client that reconnects at once finds them written), after it otherwise.
        Box::pin(owed.write_now(hub)).await;
        if let Some(end) = ending {
            tracing::debug!(code = end.code.0, reason = %end.reason, "closing");
            let goodbye = Box::pin(async {
                if end.bye {
                    let bye =
                        wire::Bye { code: end.code.0, reason: end.reason.clone(), jump: end.jump.clone() };
                    if let Ok(frame) =
                        switchboard_protocol::encode_value(conn.format, wire::types::BYE, &bye, None)
                    {
                        transport.buffer(Outbound::Data(frame), binary);
                    }
                }
                transport.buffer(Outbound::Close(end.code.0, &end.reason), binary);
                transport.flush().await;
                // Read (and drop) what the peer still sends until its close or EOF: closing a socket
                // with unread input makes the kernel reset it, and the close frame would be lost.
                while let Inbound::Data { .. } | Inbound::Control = transport.recv().await {}
            });
            // A slow consumer gets longer: its close frame waits behind its backlog in the socket.
            let patience = if end.code == CloseCode::SLOW_CONSUMER { 5 } else { 1 };
            // Boxed with its timer (a `Sleep` is 112 bytes): the task's future holds a pointer.
            let _ = Box::pin(tokio::time::timeout(Duration::from_secs(patience), goodbye)).await;
        } else {
            let _ = Box::pin(tokio::time::timeout(Duration::from_millis(200), transport.flush())).await;
        }
        drop(transport);
        Box::pin(owed.write_surely(hub)).await;
        tracing::debug!("disconnected");
    }
}

/// What one wake-up read, counted once for all its frames.
#[derive(Default)]
struct Tally {
    /// Whether anything came from the peer (liveness).
    seen: bool,
    /// The peer's close frame's code, if it closed.
    peer_closed: Option<u16>,
    messages: u64,
    bytes: u64,
    /// The server clock, read once for the whole read when rate limits need it.
    now: Option<u64>,
}

impl Tally {
    fn count(&self, hub: &Core, conn: &ConnShared) {
        if self.seen {
            conn.last_seen.store(self.now.unwrap_or_else(|| hub.now_ms()), Ordering::Relaxed);
        }
        if self.messages > 0 {
            hub.counters().read(self.messages, self.bytes);
        }
    }
}

/// Handles one thing read from the socket; `Some` ends the connection (with that close frame,
/// or none). A handler is polled once right away: most finish at once, and their replies join
/// the next write.
fn receive<S: Clone + Send + Sync + 'static>(
    server: &Arc<Runtime<S>>,
    conn: &Arc<ConnShared>,
    inflight: &mut Inflight,
    inbound: Inbound,
    binary: bool,
    tally: &mut Tally,
    limits: &mut ConnLimits,
) -> Option<Option<Ending>> {
    match inbound {
        Inbound::Closed(code) => {
            tally.peer_closed = code;
            Some(None)
        }
        Inbound::TooBig => Some(Some(Ending::protocol(&DecodeError::TooBig))),
        Inbound::Refused(code, reason) => {
            Some(Some(Ending { code: CloseCode(code), reason: reason.to_owned(), bye: false, jump: None }))
        }
        Inbound::Control => {
            tally.seen = true;
            None
        }
        Inbound::Data { bytes, binary: is_binary } => {
            tally.seen = true;
            tally.messages += 1;
            tally.bytes += bytes.len() as u64;
            if is_binary != binary {
                let kind = if is_binary { "binary" } else { "text" };
                return Some(Some(Ending::protocol(&DecodeError::WrongFrame(kind, conn.format.name()))));
            }
            match conn.format.decode(&bytes) {
                Ok(msg) => {
                    if let Some(mut task) = dispatch(server, conn, msg, limits, tally.now.unwrap_or(0)) {
                        // Polled with a no-op waker: a handler that must wait is polled again
                        // by the set, which registers the real one.
                        if (&mut task).now_or_never().is_none() {
                            inflight.push(task);
                        }
                    }
                    None
                }
                Err(e) => {
                    tracing::debug!(error = %e, "protocol error");
                    Some(Some(Ending::protocol(&e)))
                }
            }
        }
    }
}

/// The ending of a connection killed by [`ConnShared::kill`].
fn killed<S>(server: &Runtime<S>, conn: &ConnShared) -> Ending {
    let (code, reason) = conn.kill_reason.lock().take().unwrap_or((CloseCode::SLOW_CONSUMER, String::new()));
    if code == CloseCode::SLOW_CONSUMER {
        server.hub.core().counters().here().slow_consumers.fetch_add(1, Ordering::Relaxed);
    }
    Ending { code, reason, bye: false, jump: None }
}
