//! [`Switchboard::router`]: the endpoint as an axum route. axum and hyper do the HTTP (1.1, or 2
//! with extended CONNECT); the upgrade's checks and answer are ours (`io::http1`, as axum's
//! `WebSocketUpgrade` has them), and the upgraded stream runs under our own WebSocket (`io::ws`),
//! as on [`Switchboard::serve`]: one RFC 6455 implementation for every path, with the same
//! bounds (no buffer while idle, pongs and close replies never piling up, reading paused while
//! the socket does not take our bytes) and the same close codes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderValue, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::Switchboard;
use super::admission::Admission;
use crate::io::http1::{HANDSHAKE_HEADERS, NOT_UPGRADABLE, check_request};
use crate::io::upgrade::{UpgradeRequest, negotiate};
use crate::io::ws::WebSocket;

/// The router of [`Switchboard::router`].
pub(super) fn router<S: Clone + Send + Sync + 'static>(board: Switchboard<S>) -> axum::Router {
    let path = board.runtime.hub.core().config().path.clone();
    // GET over HTTP/1.1, CONNECT over HTTP/2 (RFC 8441); other methods are refused by the checks.
    axum::Router::new().route(&path, any(upgrade::<S>)).with_state(board)
}

async fn upgrade<S: Clone + Send + Sync + 'static>(
    State(board): State<Switchboard<S>>,
    req: Request,
) -> Response {
    let core = board.runtime.hub.core();
    let (mut parts, _body) = req.into_parts();
    if core.running().shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let Some((format, named)) = negotiate(&parts.headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "unknown subprotocol: use switchboard.v1.json or switchboard.v1.msgpack",
        )
            .into_response();
    };
    let remote = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    // The place among its address's connections: taken by the accept loop (`Switchboard::admit`,
    // in the request's extensions), or here (for its client, if it came through a trusted proxy).
    let admission =
        match board.admit_request(parts.extensions.get::<Admission>().cloned(), remote, &parts.headers) {
            Ok(admission) => admission,
            Err(refused) => {
                let retry = HeaderValue::from(refused.retry_after_secs());
                return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, retry)], refused.to_string())
                    .into_response();
            }
        };
    let request = Arc::new(UpgradeRequest::from_parts(&parts.headers, &parts.uri, remote));
    if let Some(hook) = &board.runtime.upgrade_hook
        && let Err(rejection) = hook(request.clone()).await
    {
        board.upgrade_refused(&rejection);
        return (rejection.status, rejection.message).into_response();
    }
    let (accept, on_upgrade) = match check(&mut parts) {
        Ok(checked) => checked,
        Err(refused) => return refused,
    };
    // As the connection keeps it: without the handshake's own headers (the hook saw them all).
    let request = Arc::new(UpgradeRequest::without(&parts.headers, &HANDSHAKE_HEADERS, &parts.uri, remote));
    let max_message_size = core.config().max_message_size;
    let upgraded = board.clone();
    core.running().tracker.spawn(async move {
        match on_upgrade.await {
            Ok(io) => {
                let ws = WebSocket::new(TokioIo::new(io), max_message_size, b"");
                upgraded.spawn(ws, format, request, admission);
            }
            Err(e) => tracing::debug!(error = %e, "the upgrade did not complete"),
        }
    });
    switching(accept, named.then(|| format.subprotocol()))
}

/// The checks of an upgrade request (`io::http1::check_request`): its `Sec-WebSocket-Accept`
/// (HTTP/1.1) and the upgrade hyper will hand over, or the answer of a refusal.
#[allow(clippy::result_large_err)] // A refusal is the response itself.
pub(super) fn check(parts: &mut http::request::Parts) -> Result<(Option<String>, OnUpgrade), Response> {
    let protocol = parts.extensions.get::<hyper::ext::Protocol>().map(hyper::ext::Protocol::as_str);
    let accept = check_request(&parts.method, parts.version, &parts.headers, protocol)
        .map_err(IntoResponse::into_response)?;
    let on_upgrade = parts
        .extensions
        .remove::<OnUpgrade>()
        .ok_or_else(|| (StatusCode::UPGRADE_REQUIRED, NOT_UPGRADABLE).into_response())?;
    Ok((accept, on_upgrade))
}

/// The answer that switches to WebSocket: 101 over HTTP/1.1 (`accept`), 200 over HTTP/2 (RFC
/// 8441), naming the subprotocol if one was chosen.
pub(super) fn switching(accept: Option<String>, subprotocol: Option<&'static str>) -> Response {
    let mut response = match accept {
        Some(accept) => Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .body(Body::empty())
            .unwrap_or_default(),
        None => Response::new(Body::empty()),
    };
    if let Some(subprotocol) = subprotocol {
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(subprotocol));
    }
    response
}
