//! `bench-switchboard`: the Switchboard server of the benchmarks ("switchboard" dialect of
//! `bench/DIALECTS.md`), written with the `switchboard` library the way an application would:
//!
//! - identification with an HS256 JWT: `["~hello", {"identity": {"token": JWT}}, id]`, user = `sub`;
//! - topics `{name}` (one segment) that any identified client may subscribe to and publish on;
//! - request `echo` (returns its payload), event/request `tell` `{"user", "data"}`: sends
//!   `["m", data]` to every connection of that user (all devices, all nodes) through the `Hub`;
//! - `--redis URL`: several servers on one Redis form a cluster (`switchboard-redis`);
//! - `--history N`: topics keep their last N publications (recovery with `since`; S9).
//!
//! Over TLS (`wss://`) when env `TLS_CERT` and `TLS_KEY` name PEM files (the chain, the key):
//! `Switchboard::serve` speaks plain TCP only, so each connection is accepted here, goes through
//! a tokio-rustls handshake (aws-lc-rs provider, as the standalone server), then, with
//! `--tls-stack accept` (the default), this binary's minimal HTTP/1.1 upgrade and
//! `Switchboard::accept` (the framework's own WebSocket), or with `--tls-stack router`, hyper
//! serving `Switchboard::router` (axum's upgrade and WebSocket).
//!
//! ```text
//! bench-switchboard [--port P | PORT=P] [--redis redis://127.0.0.1:6379] [--queue-bytes N] [--history N]
//! TLS_CERT=cert.pem TLS_KEY=key.pem bench-switchboard [--tls-stack accept|router]
//! ```
//!
//! Prints `listening <port>` once it accepts connections. Heartbeats stay at their defaults.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use switchboard::{
    Accept, Config, Error, Format, Hub, Namespace, Payload, Rate, RawPayload, Server, Switchboard,
    TopicOptions, UpgradeRequest,
};
use switchboard_bench::jwt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::http;

#[derive(Parser)]
#[command(about = "The Switchboard server of the benchmarks")]
struct Args {
    /// Port on 127.0.0.1 (0: any; default: env PORT, else 0).
    #[arg(long)]
    port: Option<u16>,
    /// Redis URL: servers on one Redis form a cluster.
    #[arg(long)]
    redis: Option<String>,
    /// HS256 secret of the identification tokens.
    #[arg(long, default_value = jwt::SECRET)]
    secret: String,
    /// Publications each topic keeps for recovery with `since` (default 0: none).
    #[arg(long, default_value_t = 0)]
    history: usize,
    /// Outbound queue limit per connection (`Config::max_queue_bytes`; default 1 MiB).
    #[arg(long)]
    queue_bytes: Option<usize>,
    /// Do the WebSocket handshake here on the raw `TcpStream` and hand the socket to
    /// `Switchboard::accept` instead of `Switchboard::serve` (axum + hyper). An experiment for
    /// docs/benchmarks-findings.md (S3); also enabled by env `BENCH_RAW_ACCEPT=1`.
    #[arg(long)]
    raw_accept: bool,
    /// Over TLS (env `TLS_CERT`, `TLS_KEY`): how an accepted TLS connection reaches the framework
    /// (default: env `BENCH_TLS_STACK`, else `accept`).
    #[arg(long, value_enum)]
    tls_stack: Option<TlsStack>,
    /// Rate limits on, generous (10M per second for every limit of `Config::rate_limits`, per
    /// connection and per user: every message is checked, none refused): what the checks cost
    /// (S12).
    #[arg(long)]
    rate_limits: bool,
}

/// How a TLS connection reaches the framework (`Switchboard::serve` is plain TCP only).
///
/// `accept` is the default because it measured faster (S1-TLS and S4-TLS, `--quick`, same
/// machine, interleaved with the reference): the upgrade through `Switchboard::accept` costs one
/// parse of a small head, the router's goes through hyper's HTTP/1.1 connection. Measured when
/// the router still ran axum's (tungstenite) WebSocket, which cost more server CPU: 3.66 against
/// 3.29 µs per delivery at burst 1, 0.53 against 0.40 at burst 10, 450 against 310 µs per
/// connection in S4-TLS (medians of 3 rounds on a busy machine); since #16 both paths run the
/// framework's own WebSocket after the upgrade.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum TlsStack {
    /// This binary's HTTP/1.1 upgrade, then `Switchboard::accept` (the framework's WebSocket).
    Accept,
    /// hyper (HTTP/1.1 with upgrades) serving `Switchboard::router`.
    Router,
}

/// The identity a bench client sends in `~hello`.
#[derive(Deserialize)]
struct Identity {
    /// An HS256 JWT whose `sub` is the user.
    token: String,
}

/// `tell`: a message to every connection of a user.
#[derive(Deserialize)]
struct Tell {
    /// Recipient.
    user: String,
    /// Sent as `["m", data]`.
    #[serde(default)]
    data: RawPayload,
}

async fn echo(raw: RawPayload) -> RawPayload {
    raw
}

async fn tell(hub: Hub, Payload(t): Payload<Tell>) -> Result<usize, Error> {
    Ok(hub.send_to_user(&t.user, "m", &t.data).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let port = args.port.or_else(|| std::env::var("PORT").ok().and_then(|p| p.parse().ok())).unwrap_or(0);
    let verifier = jwt::Verifier::new(&args.secret);
    let identify = move |Payload(id): Payload<Identity>| {
        let user = verifier.verify(&id.token);
        async move {
            match user {
                Some(user) => Ok(Accept::user(user)),
                None => Err(Error::not_authorized("invalid token")),
            }
        }
    };
    let mut topics = TopicOptions::new().clients_publish();
    if args.history > 0 {
        topics = topics.history(args.history, None);
    }
    let main =
        Namespace::new("main").identify(identify).on("echo", echo).on("tell", tell).topic("{name}", topics);
    let mut config = Config::default();
    if let Some(bytes) = args.queue_bytes {
        config.max_queue_bytes = bytes;
    }
    if args.rate_limits {
        let generous = Some(Rate::new(10_000_000, 10_000_000));
        let l = &mut config.rate_limits;
        (l.messages, l.publications, l.subscriptions) = (generous, generous, generous);
        (l.user_messages, l.user_publications, l.user_subscriptions) = (generous, generous, generous);
        l.close_after = 0;
    }
    let mut server = Server::new().config(config);
    if let Some(url) = &args.redis {
        let backends =
            switchboard_redis::RedisBackends::connect(url, switchboard_redis::RedisOptions::default())
                .await
                .with_context(|| format!("--redis {url}"))?;
        server = server.backends(backends);
    }
    let tls = switchboard_bench::tls::acceptor_from_env()?;
    let board = server.namespace(main).build().await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.context("bind")?;
    println!("listening {}", listener.local_addr()?.port());
    if let Some(acceptor) = tls {
        let stack = match (args.tls_stack, std::env::var("BENCH_TLS_STACK").ok()) {
            (Some(stack), _) => stack,
            (None, Some(env)) => <TlsStack as clap::ValueEnum>::from_str(&env, true)
                .map_err(|e| anyhow::anyhow!("BENCH_TLS_STACK: {e}"))?,
            (None, None) => TlsStack::Accept,
        };
        return serve_tls(&board, &listener, &acceptor, stack).await;
    }
    if args.raw_accept || std::env::var("BENCH_RAW_ACCEPT").is_ok_and(|v| v == "1") {
        loop {
            let (tcp, addr) = listener.accept().await?;
            let board = board.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                if let Some((tcp, headers, uri)) = handshake(tcp).await {
                    board.accept(tcp, UpgradeRequest::new(headers, uri, Some(addr)), Format::Json).await;
                }
            });
        }
    }
    board.serve(listener).await?;
    Ok(())
}

/// Serves `wss://` forever: for each accepted connection, in its own task, the TLS handshake,
/// then the upgrade and the framework as `stack` says.
async fn serve_tls(
    board: &Switchboard,
    listener: &tokio::net::TcpListener,
    acceptor: &tokio_rustls::TlsAcceptor,
    stack: TlsStack,
) -> anyhow::Result<()> {
    let router = board.router();
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (board, acceptor, router) = (board.clone(), acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            match stack {
                TlsStack::Accept => {
                    if let Some((tls, headers, uri)) = handshake(tls).await {
                        board.accept(tls, UpgradeRequest::new(headers, uri, Some(addr)), Format::Json).await;
                    }
                }
                TlsStack::Router => {
                    let service = hyper::service::service_fn(move |request| {
                        let mut router = router.clone();
                        async move { tower_service::Service::call(&mut router, request).await }
                    });
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await;
                }
            }
        });
    }
}

/// A minimal server handshake on the raw socket, or on TLS over it (JSON subprotocol or none;
/// no pipelined bytes after the request): small buffers only, nothing kept afterwards.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(mut tcp: S) -> Option<(S, http::HeaderMap, http::Uri)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > 16 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    if end + 4 != buf.len() {
        return None;
    }
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let uri: http::Uri = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            http::HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let key = headers.get("sec-websocket-key")?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    tcp.write_all(reply.as_bytes()).await.ok()?;
    // Over TLS, what rustls could not write at once waits for a flush.
    tcp.flush().await.ok()?;
    Some((tcp, headers, uri))
}
