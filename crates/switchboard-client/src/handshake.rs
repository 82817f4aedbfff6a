//! Identification: `~hello` (with a fresh identity from the provider), the optional
//! `~challenge`, and the welcome — or the refusal that stops the client.

use std::panic::AssertUnwindSafe;

use futures_util::{FutureExt, StreamExt};
use switchboard_protocol::wire::{Hello, Welcome, types};
use switchboard_protocol::{ErrorBody, Payload, codes};
use tokio::time::Instant;

use crate::connection::{Connection, End};
use crate::state::{CloseReason, Counters};
use crate::transport::{Incoming, Link};

/// Identifies on a fresh link. Calls made meanwhile wait in the offline buffer.
pub(crate) async fn run(conn: &mut Connection, link: &mut Link) -> Result<Welcome, End> {
    let deadline = Instant::now() + conn.config.connect_timeout;
    let identity = match conn.config.identity.clone() {
        Some(provider) => match conn.idle(provider()).await {
            Err(reason) => return Err(End::Stop(reason)),
            Ok(Err(e)) => return Err(End::Lost(format!("the identity provider failed: {e}"))),
            Ok(Ok(identity)) => Some(identity),
        },
        None => None,
    };
    let hello = Hello { ns: conn.config.namespace.clone(), identity, meta: conn.config.meta.clone() };
    let format = conn.out.format();
    let hello_id = conn.out.next_id();
    let sent = Payload::encode(format, &hello)
        .map_err(Into::into)
        .and_then(|payload| conn.out.frame(types::HELLO, &payload, Some(hello_id)));
    if let Err(e) = sent {
        return Err(End::Stop(CloseReason::Refused { code: e.code().to_owned(), message: e.to_string() }));
    }
    conn.flush(link).await.map_err(End::Lost)?;
    loop {
        let next = tokio::time::timeout_at(deadline, link.stream.next());
        let item = match conn.idle(next).await {
            Err(reason) => return Err(End::Stop(reason)),
            Ok(Err(_)) => return Err(End::Lost("no welcome in time".to_owned())),
            Ok(Ok(item)) => item,
        };
        let bytes = match item {
            Some(Ok(Incoming::Frame(bytes))) => bytes,
            Some(Ok(Incoming::Close { code, reason })) => return Err(End::Closed { code, reason }),
            Some(Err(e)) => return Err(End::Lost(e.0)),
            None => return Err(End::Lost("the connection ended during the handshake".to_owned())),
        };
        Counters::add(&conn.shared.stats.frames_in, 1);
        let msg = match format.decode(&bytes) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable frame during the handshake ignored");
                continue;
            }
        };
        match (msg.kind.as_str(), msg.id) {
            (types::OK, Some(id)) if id == hello_id => {
                return msg
                    .payload
                    .decode::<Welcome>()
                    .map_err(|e| End::Lost(format!("undecodable welcome: {e}")));
            }
            (types::ERR, Some(id)) if id == hello_id => return Err(refusal(&msg.payload)),
            (types::CHALLENGE, Some(id)) => {
                let answer = match conn.config.challenge.clone() {
                    Some(handler) => {
                        let answering = AssertUnwindSafe(handler(msg.payload)).catch_unwind();
                        match conn.idle(answering).await {
                            Err(reason) => return Err(End::Stop(reason)),
                            Ok(Ok(answer)) => answer,
                            Ok(Err(_)) => {
                                Err(ErrorBody::new(codes::FAILED, "the challenge handler panicked"))
                            }
                        }
                    }
                    None => Err(ErrorBody::new(codes::NOT_FOUND, "this client has no challenge handler")),
                };
                conn.out.reply(id, &answer);
                conn.flush(link).await.map_err(End::Lost)?;
            }
            (types::PING, Some(id)) => {
                conn.out.reply(id, &Ok(Payload::null()));
                conn.flush(link).await.map_err(End::Lost)?;
            }
            (types::BYE, _) => conn.bye = msg.payload.decode().ok(),
            (kind, _) => tracing::debug!(kind, "frame before the welcome ignored"),
        }
    }
}

/// A `~err` to `~hello`: a refusal stops the client; a transient failure is retried.
fn refusal(payload: &Payload) -> End {
    let body = payload
        .decode::<ErrorBody>()
        .unwrap_or_else(|e| ErrorBody::new(codes::FAILED, format!("undecodable refusal: {e}")));
    match body.code.as_str() {
        codes::TIMEOUT | codes::UNAVAILABLE | codes::RATE_LIMITED | codes::FAILED => {
            End::Lost(format!("identification failed: {body}"))
        }
        _ => End::Stop(CloseReason::Refused { code: body.code, message: body.message }),
    }
}
