//! [`Switchboard::serve`]: our own listener and HTTP/1.1 upgrade (`io::http1`), then our own
//! WebSocket (`io::ws`) over the raw socket, shared with the connection's writer passes.
//!
//! The answers are those of [`Switchboard::router`] (axum): another path is 404, another method
//! 405; then, on the endpoint, in this order: 503 while shutting down, 400 for unknown
//! subprotocols, the upgrade hook's refusal, and the checks of axum's `WebSocketUpgrade` (405
//! unless GET, 400 for a missing `Connection: upgrade`, `Upgrade: websocket` or
//! `Sec-WebSocket-Key`, or a `Sec-WebSocket-Version` other than 13). A refused request gets its
//! answer and the connection is closed (no keep-alive).
//!
//! What a connection may cost before it is upgraded (issue 16), from `Config`:
//! - **deadline** `handshake_timeout`: from accept to the complete request head, and again for
//!   writing the answer; a connection past it is closed (counted: `handshake_timeouts`);
//! - **header size** `max_header_bytes`: a longer request head is answered 431;
//! - **cap** `max_handshakes`: connections whose request head is not complete yet; one accepted
//!   beyond it is closed at once (counted: `handshake_cap`), so that slow clients cannot hold
//!   every descriptor while the others wait.
//!
//! The upgrade hook runs after the head is complete, outside the deadline (it is the
//! application's, and may ask a network service).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout_at};

use super::Switchboard;
use super::admission::Admission;
use crate::base::counters::Counters;
use crate::io::http1::{HANDSHAKE_HEADERS, check_upgrade, read_head, refuse, switch};
use crate::io::tcp::SharedTcp;
use crate::io::upgrade::{UpgradeRequest, negotiate};
use crate::io::ws::WebSocket;

/// A connection's place among those in their handshake, given back once: when its request head
/// is complete, or when it ends.
struct Slot(Option<Arc<Counters>>);

impl Slot {
    /// Takes a place, unless `max` are taken.
    fn take(counters: &Arc<Counters>, max: usize) -> Option<Self> {
        let taken = counters
            .handshakes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
        taken.is_ok().then(|| Self(Some(counters.clone())))
    }

    fn release(&mut self) {
        if let Some(counters) = self.0.take() {
            counters.handshakes.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Accepts connections on `listener` until shutdown; each handshake runs in a task of its own.
pub(super) async fn serve<S: Clone + Send + Sync + 'static>(board: &Switchboard<S>, listener: TcpListener) {
    let core = board.runtime.hub.core();
    let running = core.running();
    let counters = core.counters();
    let max_handshakes = core.config().max_handshakes;
    let token = running.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Its address's limits first (`Config::connection_limits`): refused, it gets a 429 if the
        // socket takes it at once, and is closed.
        let admission = match board.admit(remote) {
            Ok(admission) => admission,
            Err(refused) => {
                let _ = tcp.try_write(refused.response().as_bytes());
                continue;
            }
        };
        let Some(slot) = Slot::take(counters, max_handshakes) else {
            counters.add(|c| &c.handshake_cap);
            drop(tcp);
            continue;
        };
        // Small frames must not wait for Nagle's algorithm: replies are latency-bound.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let board = board.clone();
        let token = token.clone();
        running.tracker.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = handshake(board, tcp, remote, slot, admission) => {}
            }
        });
    }
}

/// Accept errors that concern one connection only (as `axum::serve` classifies them).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Runs one accepted TCP connection until it is upgraded (and its WebSocket runs in a task of
/// its own) or refused.
async fn handshake<S: Clone + Send + Sync + 'static>(
    board: Switchboard<S>,
    mut tcp: TcpStream,
    remote: SocketAddr,
    mut slot: Slot,
    admission: Admission,
) {
    let runtime = &board.runtime;
    let core = runtime.hub.core();
    let config = core.config();
    let counters = core.counters();
    let deadline = Instant::now() + config.handshake_timeout;
    let read = timeout_at(deadline, read_head(&mut tcp, config.max_header_bytes)).await;
    slot.release();
    let (head, buf) = match read {
        Ok(Ok(Some(Ok(read)))) => read,
        Ok(Ok(Some(Err((status, body))))) => {
            if status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
                counters.add(|c| &c.handshake_too_large);
            }
            return refuse(&mut tcp, status, body, "", Instant::now() + config.handshake_timeout).await;
        }
        Ok(Ok(None) | Err(_)) => return,
        Err(_) => {
            counters.add(|c| &c.handshake_timeouts);
            tracing::debug!(%remote, "no upgrade request by the deadline: closed");
            return;
        }
    };
    // Writing the answer gets the same time again, from when it is written.
    let deadline = || Instant::now() + config.handshake_timeout;
    // From a trusted proxy, the client it names is counted now.
    let admission = match board.admit_request(Some(admission), Some(remote), &head.headers) {
        Ok(admission) => admission,
        Err(refused) => {
            let retry = format!("retry-after: {}\r\n", refused.retry_after_secs());
            let status = StatusCode::TOO_MANY_REQUESTS;
            return refuse(&mut tcp, status, &refused.to_string(), &retry, deadline()).await;
        }
    };
    if head.uri.path() != config.path {
        return refuse(&mut tcp, StatusCode::NOT_FOUND, "", "", deadline()).await;
    }
    if !head.get && !head.head {
        return refuse(&mut tcp, StatusCode::METHOD_NOT_ALLOWED, "", "allow: GET,HEAD\r\n", deadline()).await;
    }
    if core.running().shutdown.is_cancelled() {
        return refuse(&mut tcp, StatusCode::SERVICE_UNAVAILABLE, "shutting down", "", deadline()).await;
    }
    let Some((format, named)) = negotiate(&head.headers) else {
        let body = "unknown subprotocol: use switchboard.v1.json or switchboard.v1.msgpack";
        return refuse(&mut tcp, StatusCode::BAD_REQUEST, body, "", deadline()).await;
    };
    let request = Arc::new(UpgradeRequest::from_parts(&head.headers, &head.uri, Some(remote)));
    if let Some(hook) = &runtime.upgrade_hook
        && let Err(rejection) = hook(request.clone()).await
    {
        board.upgrade_refused(&rejection);
        return refuse(&mut tcp, rejection.status, &rejection.message, "", deadline()).await;
    }
    let accept = match check_upgrade(&head) {
        Ok(accept) => accept,
        Err((status, body)) => return refuse(&mut tcp, status, body, "", deadline()).await,
    };
    // The request as the connection keeps it: without the handshake's own headers, which mean
    // nothing once upgraded. (The upgrade hook saw them all.)
    let request =
        Arc::new(UpgradeRequest::without(&head.headers, &HANDSHAKE_HEADERS, &head.uri, Some(remote)));
    let switched =
        timeout_at(deadline(), switch(&mut tcp, &accept, named.then(|| format.subprotocol()))).await;
    if switched != Ok(true) {
        return;
    }
    let tcp = SharedTcp::new(tcp);
    let socket = tcp.share();
    let ws = WebSocket::new(tcp, config.max_message_size, &buf[head.len..]).with_socket(socket);
    drop(buf);
    board.spawn(ws, format, request, admission);
}
