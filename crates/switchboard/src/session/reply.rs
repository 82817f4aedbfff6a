//! Answering: a handler's result becomes a reply (or, for an event, an `~err` push), a panic
//! becomes `FAILED`, and the request-done hook hears about it.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use switchboard_protocol::{Message, RawPayload, codes};

use super::runtime::{RequestDone, Runtime};
use crate::conn::ConnShared;
use crate::error::Error;

/// A handler running in its connection's task.
pub(crate) type Task = BoxFuture<'static, ()>;

/// When a request's handling starts, for the request hook; `None` (no clock read) without one.
pub(crate) fn started<S>(runtime: &Runtime<S>) -> Option<tokio::time::Instant> {
    runtime.request_done.is_some().then(tokio::time::Instant::now)
}

/// Tells the request hook about an answered request (`started`: see [`started`]).
pub(crate) fn observe<S>(
    runtime: &Runtime<S>,
    msg: &Message,
    started: Option<tokio::time::Instant>,
    result: &Result<RawPayload, Error>,
) {
    if let (Some(hook), Some(_), Some(started)) = (&runtime.request_done, msg.id, started) {
        let error = result.as_ref().err().map(Error::code);
        hook(&RequestDone { kind: msg.kind.as_str(), duration: started.elapsed(), error });
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
