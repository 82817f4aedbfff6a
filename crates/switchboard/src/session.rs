//! One task per connection: read, dispatch, write — in one `select!` loop.
//!
//! Reading decodes a frame and starts its handler as a future in this task's set (no spawn per
//! message); at most `max_inflight` run at once, beyond which reading pauses. Writing drains
//! every queued message, buffers them all, and writes them at once (in place when the socket
//! takes them, with no future or allocation).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use switchboard_protocol::{CloseCode, DecodeError, ErrorBody, Message, Payload as RawPayload, codes, wire};

use crate::conn::{ConnShared, Out, Receiver};
use crate::handler::{CtxMeta, Erased};
use crate::server::ServerInner;
use crate::transport::{Inbound, Outbound, Transport};
use crate::{Conn, Ctx, Error};

pub(crate) type Task = BoxFuture<'static, ()>;

/// A request that was answered ([`Server::on_request_done`](crate::Server::on_request_done)).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestDone<'a> {
    /// The message type.
    pub kind: &'a str,
    /// From the start of its handling (filters included) to its reply.
    pub duration: Duration,
    /// The error code, if it failed.
    pub error: Option<&'a str>,
}

pub(crate) type RequestHook = Arc<dyn Fn(&RequestDone<'_>) + Send + Sync>;

/// When a request's handling starts, for the request hook; `None` (no clock read) without one.
pub(crate) fn started(hub: &crate::hub::HubInner) -> Option<tokio::time::Instant> {
    hub.request_done.is_some().then(tokio::time::Instant::now)
}

/// Tells the request hook about an answered request (`started`: see [`started`]).
pub(crate) fn observe(
    hub: &crate::hub::HubInner,
    msg: &Message,
    started: Option<tokio::time::Instant>,
    result: &Result<RawPayload, Error>,
) {
    if let (Some(hook), Some(_), Some(started)) = (&hub.request_done, msg.id, started) {
        let error = result.as_ref().err().map(Error::code);
        hook(&RequestDone { kind: msg.kind.as_str(), duration: started.elapsed(), error });
    }
}

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
        Self { code, reason: e.to_string(), bye: false, jump: None }
    }
}

/// The connection's task. Not an `async fn`: its future would keep the arguments twice (the
/// arguments, then the locals they move into), 144 bytes more in every connection's task.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run<S, T>(
    server: Arc<ServerInner<S>>,
    mut transport: T,
    conn: Arc<ConnShared>,
    mut rx: Receiver,
) -> impl Future<Output = ()> + Send + 'static
where
    S: Clone + Send + Sync + 'static,
    T: Transport,
{
    async move {
        let hub = &server.hub.inner;
        hub.conns.shard(&conn.id).write().insert(conn.id.clone(), conn.clone());
        if hub.shutdown.is_cancelled() {
            // `Switchboard::shutdown` told the registered connections; this one came just after.
            conn.shut_down();
        }
        hub.stats.here().connections_total.fetch_add(1, Ordering::Relaxed);
        hub.timers.identify_by(hub.now_ms() + millis(hub.config.identify_timeout), &conn);
        tracing::debug!(format = %conn.format, "connected");

        let binary = conn.format.is_binary();
        let mut inflight = Inflight::default();
        let mut batch = std::collections::VecDeque::new();
        let mut draining = false;
        // While shutting down: how long running handlers may still take.
        let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
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
                    // queue stayed quiet for a housekeeping sweep, it is let go of: an idle
                    // connection holds no buffer (see `Queue::written`).
                    rx.written(written, std::mem::take(&mut batch), n);
                    if kill {
                        break Some(killed(&server, &conn));
                    }
                    let stats = hub.stats.here();
                    stats.messages_out.fetch_add(messages as u64, Ordering::Relaxed);
                    stats.bytes_out.fetch_add((written - counted) as u64, Ordering::Relaxed);
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
                            grace = Some(Box::pin(tokio::time::sleep(hub.config.shutdown_grace)));
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
                inbound = transport.recv(), if !draining && inflight.len() < hub.config.max_inflight.max(1) => {
                    // What the frames read now queue wakes its readers once, at the end (a burst
                    // fanned out is written in one go); replies to this connection wake nobody:
                    // the loop drains its queue next.
                    crate::direct::note_hub(&server.hub.inner);
                    let cork = rx.cork();
                    let mut tally = Tally::default();
                    let mut end = receive(&server, &conn, &mut inflight, inbound, binary, &mut tally);
                    // Take every frame that already arrived (their handlers run as they are taken),
                    // so that the replies they produce leave in one write, not one write each.
                    while end.is_none() && inflight.len() < hub.config.max_inflight.max(1) {
                        let Some(inbound) = transport.recv().now_or_never() else { break };
                        end = receive(&server, &conn, &mut inflight, inbound, binary, &mut tally);
                    }
                    tally.count(hub, &conn);
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
        Box::pin(cleanup(&server, &conn)).await;
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
        tracing::debug!("disconnected");
    }
}

/// What one wake-up read, counted once for all its frames.
#[derive(Default)]
struct Tally {
    /// Whether anything came from the peer (liveness).
    seen: bool,
    messages: u64,
    bytes: u64,
}

impl Tally {
    fn count(&self, hub: &crate::hub::HubInner, conn: &ConnShared) {
        if self.seen {
            conn.last_seen.store(hub.now_ms(), Ordering::Relaxed);
        }
        if self.messages > 0 {
            let stats = hub.stats.here();
            stats.messages_in.fetch_add(self.messages, Ordering::Relaxed);
            stats.bytes_in.fetch_add(self.bytes, Ordering::Relaxed);
        }
    }
}

/// Handles one thing read from the socket; `Some` ends the connection (with that close frame,
/// or none). A handler is polled once right away: most finish at once, and their replies join
/// the next write.
fn receive<S: Clone + Send + Sync + 'static>(
    server: &Arc<ServerInner<S>>,
    conn: &Arc<ConnShared>,
    inflight: &mut Inflight,
    inbound: Inbound,
    binary: bool,
    tally: &mut Tally,
) -> Option<Option<Ending>> {
    match inbound {
        Inbound::Closed => Some(None),
        Inbound::TooBig => Some(Some(Ending::protocol(&DecodeError::TooBig))),
        Inbound::Invalid => Some(Some(Ending::protocol(&DecodeError::Syntax("UTF-8")))),
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
                    if let Some(mut task) = dispatch(server, conn, msg) {
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
fn killed<S>(server: &ServerInner<S>, conn: &ConnShared) -> Ending {
    let (code, reason) = conn.kill_reason.lock().take().unwrap_or((CloseCode::SLOW_CONSUMER, String::new()));
    if code == CloseCode::SLOW_CONSUMER {
        server.hub.inner.stats.here().slow_consumers.fetch_add(1, Ordering::Relaxed);
    }
    Ending { code, reason, bye: false, jump: None }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Forgets the connection everywhere: registry, users, topics, presence, pending replies.
async fn cleanup<S>(server: &ServerInner<S>, conn: &Arc<ConnShared>) {
    let hub = &server.hub.inner;
    conn.close(CloseCode::NORMAL, "", false);
    hub.conns.shard(&conn.id).write().remove(&conn.id);
    let topics = conn.topics.lock().clone();
    for topic in topics {
        crate::fanout::unsubscribe(hub, conn, &topic).await;
    }
    crate::presence::on_gone(hub, conn).await;
    if let Some(user) = conn.user() {
        hub.remove_local_user(&user, &conn.id);
        if let Err(e) = hub.backends.users.unregister(&user, &conn.id).await {
            tracing::warn!(error = %e, "could not unregister the connection's user");
        }
    }
    conn.pending.lock().clear();
}

/// Routes one message; returns the future that handles it, if any.
fn dispatch<S: Clone + Send + Sync + 'static>(
    server: &Arc<ServerInner<S>>,
    conn: &Arc<ConnShared>,
    msg: Message,
) -> Option<Task> {
    match msg.kind.as_str() {
        wire::types::OK | wire::types::ERR => {
            if let Some(id) = msg.id {
                let result = if msg.kind.as_str() == wire::types::OK {
                    Ok(msg.payload)
                } else {
                    Err(msg
                        .payload
                        .decode::<ErrorBody>()
                        .unwrap_or_else(|_| ErrorBody::new(codes::FAILED, "malformed error")))
                };
                conn.resolve(id, result);
            }
            None
        }
        wire::types::PING => {
            if let Some(id) = msg.id {
                conn.reply(id, Ok(RawPayload::null()));
            }
            None
        }
        wire::types::HELLO => crate::identify::hello(server, conn, msg),
        _ => {
            let ns = conn.identity.read().as_ref().map(|i| i.ns);
            if let Some(ns) = ns
                && msg.kind.is_reserved()
            {
                return crate::builtin::dispatch(server, conn, ns, msg);
            }
            // One lookup: the namespace's handler, else a public one.
            let handler = ns
                .and_then(|ns| server.namespaces[ns].handlers.get(msg.kind.as_str()).map(|h| (Some(ns), h)))
                .or_else(|| server.public.get(msg.kind.as_str()).map(|h| (None, h)));
            if let Some((ns, handler)) = handler {
                return run_handler(server, conn, ns, handler, msg);
            }
            match ns {
                Some(_) => {
                    let e = Error::not_found(format!("no handler for {}", msg.kind))
                        .with_data(&serde_json::json!({"type": msg.kind.as_str()}));
                    respond(conn, &msg, Err(e));
                    None
                }
                None => {
                    if let Some(id) = msg.id {
                        conn.reply(id, Err(Error::new(codes::NOT_AUTHENTICATED, "identify first")));
                    }
                    None
                }
            }
        }
    }
}

/// Sends a handler's result: the reply for a request; for an event, only an error, pushed as
/// `["~err", {…, "data": {"type": name}}]` (events have no reply channel).
pub(crate) fn respond(conn: &ConnShared, msg: &Message, result: Result<RawPayload, Error>) {
    match (msg.id, result) {
        (Some(id), result) => conn.reply(id, result),
        (None, Ok(_)) => {}
        (None, Err(e)) => {
            let e = if e.data().is_some() {
                e
            } else {
                e.with_data(&serde_json::json!({"type": msg.kind.as_str()}))
            };
            let _ = conn.push_error(&e, None);
        }
    }
}

/// Runs `future` catching panics: a panicking handler is a `FAILED` reply, nothing more.
pub(crate) async fn guarded<F>(future: F) -> Result<RawPayload, Error>
where
    F: std::future::Future<Output = Result<RawPayload, Error>>,
{
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!("a handler panicked");
            Err(Error::new(codes::FAILED, "the handler failed"))
        }
    }
}

/// Runs an application handler (namespace `ns`, or the public ones): per-connection filters,
/// the namespace's filters in order, then the handler.
///
/// Without namespace filters (they are async) it runs here, in the caller: extraction, then one
/// poll of the handler's future. One that finishes at once (most do) is answered right away,
/// with no task; one that must wait is returned to run in the connection's set.
fn run_handler<S: Clone + Send + Sync + 'static>(
    server: &Arc<ServerInner<S>>,
    conn: &Arc<ConnShared>,
    ns: Option<usize>,
    handler: &Erased<S, Result<RawPayload, Error>>,
    msg: Message,
) -> Option<Task> {
    if ns.is_some_and(|ns| !server.namespaces[ns].filters.is_empty()) {
        return Some(run_filtered(server.clone(), conn.clone(), ns, msg));
    }
    let hub = &server.hub.inner;
    let started = started(hub);
    let handle = Conn(conn.clone());
    let started_fut = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let ctx = handler_ctx(server, &handle, &msg);
        conn_filters(conn, &msg)?;
        let mut fut = handler(&ctx)?;
        // A no-op waker: one that must wait is polled again by the connection's set, which
        // registers the real one.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        Ok(match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => Err(result),
            std::task::Poll::Pending => Ok(fut),
        })
    }));
    let result = match started_fut {
        Ok(Ok(Ok(pending))) => {
            let conn = conn.clone();
            let server = server.clone();
            return Some(Box::pin(async move {
                let result = guarded(pending).await;
                observe(&server.hub.inner, &msg, started, &result);
                respond(&conn, &msg, result);
            }));
        }
        Ok(Ok(Err(result))) => result,
        Ok(Err(refused)) => Err(refused),
        Err(_) => {
            tracing::error!("a handler panicked");
            Err(Error::new(codes::FAILED, "the handler failed"))
        }
    };
    observe(hub, &msg, started, &result);
    respond(conn, &msg, result);
    None
}

/// The context an application handler of `msg` gets (no topic parameters; the meta read from
/// the connection only if an extractor asks for it).
fn handler_ctx<'a, S>(server: &'a ServerInner<S>, conn: &'a Conn, msg: &'a Message) -> Ctx<'a, S> {
    Ctx {
        conn,
        hub: &server.hub,
        state: &server.state,
        kind: &msg.kind,
        payload: &msg.payload,
        meta: CtxMeta::Identity(std::cell::OnceCell::new()),
        params: None,
    }
}

/// The connection's own filters ([`Conn::add_filter`](crate::Conn::add_filter)), in order.
fn conn_filters(conn: &ConnShared, msg: &Message) -> Result<(), Error> {
    // No lock (and no copy of the list) on a connection that never had a filter.
    if !conn.filters.any() {
        return Ok(());
    }
    let filters = conn.filters.read().clone();
    for filter in filters {
        filter(&msg.kind, &msg.payload)?;
    }
    Ok(())
}

/// [`run_handler`] where the namespace has filters: everything in one task, filters awaited.
fn run_filtered<S: Clone + Send + Sync + 'static>(
    server: Arc<ServerInner<S>>,
    conn: Arc<ConnShared>,
    ns: Option<usize>,
    msg: Message,
) -> Task {
    Box::pin(async move {
        let started = started(&server.hub.inner);
        let handle = Conn(conn.clone());
        let result = guarded(async {
            let ctx = handler_ctx(&server, &handle, &msg);
            conn_filters(&conn, &msg)?;
            let handler = match ns {
                Some(ns) => {
                    let ns = &server.namespaces[ns];
                    for filter in &ns.filters {
                        filter(&ctx)?.await?;
                    }
                    ns.handlers.get(msg.kind.as_str()).cloned()
                }
                None => server.public.get(msg.kind.as_str()).cloned(),
            };
            let handler = handler.ok_or_else(|| Error::not_found("no handler"))?;
            handler(&ctx)?.await
        })
        .await;
        observe(&server.hub.inner, &msg, started, &result);
        respond(&conn, &msg, result);
    })
}
