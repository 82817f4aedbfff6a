//! Routing one decoded message: replies to our requests, `~ping`, `~hello`, the reserved
//! messages, and the application's handlers (public ones before identification), with their
//! filters.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use switchboard_protocol::{ErrorBody, Message, RawPayload, codes, wire};

use super::identify;
use super::limits::{ConnLimits, Verdict, passed, refuse};
use super::reply::{Task, guarded, observe, respond, started};
use super::reserved;
use super::runtime::Runtime;
use crate::app::handler::{Ctx, CtxMeta, Erased};
use crate::conn::cork::Cork;
use crate::conn::{Conn, ConnShared};
use crate::error::Error;

/// Routes one message after counting it against the rate limits (`limits`: the connection's
/// own buckets; `now_ms`: the server clock, read once per read); returns the future that handles
/// it, if any.
pub(super) fn dispatch<S: Clone + Send + Sync + 'static>(
    server: &Arc<Runtime<S>>,
    conn: &Arc<ConnShared>,
    msg: Message,
    limits: &mut ConnLimits,
    now_ms: u64,
) -> Option<Task> {
    // Replies to our own requests are not the client's to ration.
    if !server.limits.on || matches!(msg.kind.as_str(), wire::types::OK | wire::types::ERR) {
        return route(server, conn, msg, None);
    }
    let ns = conn.identity.read().as_ref().map(|i| i.ns);
    let counters = server.hub.core().counters();
    match limits.check(&server.limits, conn, &msg, ns, now_ms) {
        Verdict::Pass => {
            passed(conn);
            route(server, conn, msg, Some(ns))
        }
        Verdict::Refused(what, retry) => {
            refuse(&server.limits, counters, conn, &msg, ns, (what, retry), now_ms);
            None
        }
        Verdict::Wait(tokens) => {
            // Nothing more is read until this message is routed: messages start in order.
            conn.rates.held.store(true, Ordering::Relaxed);
            let (server, conn) = (server.clone(), conn.clone());
            Some(Box::pin(async move {
                let verdict = tokens.await;
                conn.rates.held.store(false, Ordering::Relaxed);
                let hub = server.hub.core();
                match verdict {
                    Ok(()) => {
                        passed(&conn);
                        let task = {
                            let _cork = Cork::new(Some(&conn), hub.counters());
                            route(&server, &conn, msg, None)
                        };
                        if let Some(task) = task {
                            task.await;
                        }
                    }
                    Err(refused) => {
                        refuse(&server.limits, hub.counters(), &conn, &msg, ns, refused, hub.now_ms());
                    }
                }
            }))
        }
    }
}

/// Routes one message (`ns`: the connection's namespace, if the caller read it already);
/// returns the future that handles it, if any.
fn route<S: Clone + Send + Sync + 'static>(
    server: &Arc<Runtime<S>>,
    conn: &Arc<ConnShared>,
    msg: Message,
    ns: Option<Option<usize>>,
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
        wire::types::HELLO => identify::hello(server, conn, msg),
        _ => {
            let ns = ns.unwrap_or_else(|| conn.identity.read().as_ref().map(|i| i.ns));
            if let Some(ns) = ns
                && msg.kind.is_reserved()
            {
                return reserved::dispatch(server, conn, ns, msg);
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

/// Runs an application handler (namespace `ns`, or the public ones): per-connection filters,
/// the namespace's filters in order, then the handler.
///
/// Without namespace filters (they are async) it runs here, in the caller: extraction, then one
/// poll of the handler's future. One that finishes at once (most do) is answered right away,
/// with no task; one that must wait is returned to run in the connection's set.
fn run_handler<S: Clone + Send + Sync + 'static>(
    server: &Arc<Runtime<S>>,
    conn: &Arc<ConnShared>,
    ns: Option<usize>,
    handler: &Erased<S, Result<RawPayload, Error>>,
    msg: Message,
) -> Option<Task> {
    if ns.is_some_and(|ns| !server.namespaces[ns].filters.is_empty()) {
        return Some(run_filtered(server.clone(), conn.clone(), ns, msg));
    }
    let started = started(server);
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
                observe(&server, &msg, started, &result);
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
    observe(server, &msg, started, &result);
    respond(conn, &msg, result);
    None
}

/// The context an application handler of `msg` gets (no topic parameters; the meta read from
/// the connection only if an extractor asks for it).
fn handler_ctx<'a, S>(server: &'a Runtime<S>, conn: &'a Conn, msg: &'a Message) -> Ctx<'a, S> {
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
    server: Arc<Runtime<S>>,
    conn: Arc<ConnShared>,
    ns: Option<usize>,
    msg: Message,
) -> Task {
    Box::pin(async move {
        let started = started(&server);
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
        observe(&server, &msg, started, &result);
        respond(&conn, &msg, result);
    })
}
