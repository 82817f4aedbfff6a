//! Run: `cargo run -p switchboard-examples --example hyper_upgrade [-- 127.0.0.1:4000]`
//!
//! A plain hyper 1 server that does the WebSocket handshake itself (RFC 6455 section 4.2) and
//! hands the upgraded connection to [`Switchboard::accept`]. Use this shape when the HTTP stack
//! is not axum: the handshake, the subprotocol answer and any allow/deny decision are yours;
//! Switchboard takes over once the socket speaks WebSocket.
//!
//! The namespace has no identify hook, so `["~hello", {}, 1]` identifies anonymously (user
//! `null`); then `echo` answers its payload and `chat/{room}` takes publications.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchboard::{Namespace, RawPayload, Server, Switchboard, TopicOptions, UpgradeRequest};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// `echo`: replies with the payload, untouched (whatever the connection's codec).
async fn echo(payload: RawPayload) -> RawPayload {
    payload
}

fn text(status: StatusCode, body: &str) -> Response<String> {
    let mut res = Response::new(body.to_owned());
    *res.status_mut() = status;
    res
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The `Sec-WebSocket-Key` of a valid WebSocket upgrade request.
fn websocket_key<B>(req: &Request<B>) -> Option<&[u8]> {
    let h = req.headers();
    let ok = req.method() == Method::GET
        && has_token(h, header::UPGRADE, "websocket")
        && has_token(h, header::CONNECTION, "upgrade")
        && h.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    if ok { h.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes()) } else { None }
}

async fn handle(
    board: Switchboard,
    remote: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<String>, Infallible> {
    if req.uri().path() != "/ws" {
        return Ok(text(StatusCode::OK, "a plain hyper server; the WebSocket endpoint is /ws\n"));
    }
    let Some(accept_key) = websocket_key(&req).map(derive_accept_key) else {
        return Ok(text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n"));
    };
    // JSON when the client named no subprotocol; None when it named only unknown ones.
    let Some(format) = switchboard::subprotocol(req.headers()) else {
        return Ok(text(StatusCode::BAD_REQUEST, "use switchboard.v1.json or switchboard.v1.msgpack\n"));
    };
    let named = has_any_value(req.headers(), header::SEC_WEBSOCKET_PROTOCOL);
    // This is where an upgrade hook would look at Origin, cookies, the remote address…
    let info = UpgradeRequest::new(req.headers().clone(), req.uri().clone(), Some(remote));
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => board.accept(TokioIo::new(upgraded), info, format).await,
            Err(e) => tracing::warn!(error = %e, "the upgrade did not complete"),
        }
    });
    let mut res = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept_key);
    // Answer a subprotocol only when the client offered some (RFC 6455 section 4.2.2).
    if named {
        res = res.header(header::SEC_WEBSOCKET_PROTOCOL, format.subprotocol());
    }
    Ok(res.body(String::new()).expect("a valid response"))
}

fn has_any_value(headers: &HeaderMap, name: header::HeaderName) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| !t.trim().is_empty())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:4000".to_owned());

    let board = Server::new()
        .namespace(
            Namespace::new("main")
                .on("echo", echo)
                .topic("chat/{room}", TopicOptions::new().clients_publish().history(50, None)),
        )
        .build()
        .await
        .expect("a valid server");

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = &mut stop => break,
        };
        let _ = tcp.set_nodelay(true);
        let board = board.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(board.clone(), remote, req));
            let served = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).with_upgrades();
            if let Err(e) = served.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    println!("shutting down");
    board.shutdown().await;
    Ok(())
}
