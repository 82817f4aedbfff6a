//! [`Switchboard::serve`]: our own listener and HTTP/1.1 upgrade (`io::http1`), then our own
//! WebSocket (`io::ws`) over the raw socket, shared with the connection's writer passes.
//!
//! The answers are those of [`Switchboard::router`] (axum): another path is 404, another method
//! 405; then, on the endpoint, in this order: 503 while shutting down, 400 for unknown
//! subprotocols, the upgrade hook's refusal, and the checks of axum's `WebSocketUpgrade` (405
//! unless GET, 400 for a missing `Connection: upgrade`, `Upgrade: websocket` or
//! `Sec-WebSocket-Key`, or a `Sec-WebSocket-Version` other than 13). A refused request gets its
//! answer and the connection is closed (no keep-alive).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::net::{TcpListener, TcpStream};

use super::Switchboard;
use crate::io::http1::{HANDSHAKE_HEADERS, check_upgrade, read_head, refuse, switch};
use crate::io::tcp::SharedTcp;
use crate::io::upgrade::{UpgradeRequest, negotiate};
use crate::io::ws::WebSocket;

/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections on `listener` until shutdown; each handshake runs in a task of its own.
pub(super) async fn serve<S: Clone + Send + Sync + 'static>(board: &Switchboard<S>, listener: TcpListener) {
    let running = board.runtime.hub.core().running();
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
        // Small frames must not wait for Nagle's algorithm: replies are latency-bound.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        let board = board.clone();
        let token = token.clone();
        running.tracker.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = handshake(board, tcp, remote) => {}
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
) {
    let runtime = &board.runtime;
    let core = runtime.hub.core();
    let config = core.config();
    let (head, buf) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut tcp)).await {
        Ok(Ok(Some(Ok(read)))) => read,
        Ok(Ok(Some(Err((status, body))))) => return refuse(&mut tcp, status, body, "").await,
        Ok(Ok(None) | Err(_)) | Err(_) => return,
    };
    if head.uri.path() != config.path {
        return refuse(&mut tcp, StatusCode::NOT_FOUND, "", "").await;
    }
    if !head.get && !head.head {
        return refuse(&mut tcp, StatusCode::METHOD_NOT_ALLOWED, "", "allow: GET,HEAD\r\n").await;
    }
    if core.running().shutdown.is_cancelled() {
        return refuse(&mut tcp, StatusCode::SERVICE_UNAVAILABLE, "shutting down", "").await;
    }
    let Some((format, named)) = negotiate(&head.headers) else {
        let body = "unknown subprotocol: use switchboard.v1.json or switchboard.v1.msgpack";
        return refuse(&mut tcp, StatusCode::BAD_REQUEST, body, "").await;
    };
    let request = Arc::new(UpgradeRequest::from_parts(&head.headers, &head.uri, Some(remote)));
    if let Some(hook) = &runtime.upgrade_hook
        && let Err(rejection) = hook(request.clone()).await
    {
        tracing::warn!(status = %rejection.status, reason = %rejection.message, "upgrade refused");
        return refuse(&mut tcp, rejection.status, &rejection.message, "").await;
    }
    let accept = match check_upgrade(&head) {
        Ok(accept) => accept,
        Err((status, body)) => return refuse(&mut tcp, status, body, "").await,
    };
    // The request as the connection keeps it: without the handshake's own headers, which mean
    // nothing once upgraded. (The upgrade hook saw them all.)
    let request =
        Arc::new(UpgradeRequest::without(&head.headers, &HANDSHAKE_HEADERS, &head.uri, Some(remote)));
    if !switch(&mut tcp, &accept, named.then(|| format.subprotocol())).await {
        return;
    }
    let tcp = SharedTcp::new(tcp);
    let socket = tcp.share();
    let ws = WebSocket::new(tcp, config.max_message_size, &buf[head.len..]).with_socket(socket);
    drop(buf);
    board.spawn(ws, format, request);
}
