//! [`Switchboard::router`]: the endpoint as an axum route, upgraded by axum's
//! `WebSocketUpgrade` and run over axum's WebSocket (`io::axum_ws`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;

use super::Switchboard;
use crate::io::axum_ws::AxumSocket;
use crate::io::upgrade::{UpgradeRequest, negotiate};

/// The router of [`Switchboard::router`].
pub(super) fn router<S: Clone + Send + Sync + 'static>(board: Switchboard<S>) -> axum::Router {
    let path = board.runtime.hub.core().config().path.clone();
    axum::Router::new().route(&path, get(upgrade::<S>)).with_state(board)
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
    let request = Arc::new(UpgradeRequest::from_parts(&parts.headers, &parts.uri, remote));
    if let Some(hook) = &board.runtime.upgrade_hook
        && let Err(rejection) = hook(request.clone()).await
    {
        tracing::warn!(status = %rejection.status, reason = %rejection.message, "upgrade refused");
        return (rejection.status, rejection.message).into_response();
    }
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let config = core.config();
    let ws = ws
        .read_buffer_size(config.read_buffer_size)
        .max_message_size(config.max_message_size)
        .max_frame_size(config.max_message_size);
    let ws = if named { ws.protocols([format.subprotocol()]) } else { ws };
    ws.on_upgrade(move |socket| async move {
        board.spawn(AxumSocket::new(socket), format, request);
    })
}
