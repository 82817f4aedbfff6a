//! The accept loop of the standalone server (instead of `axum::serve`): optional TLS, HTTP/1.1
//! (and h2c) with upgrades, and what a connection may cost before it sent a request.
//!
//! - **Deadline**: from accept to the first complete request head (the TLS handshake included)
//!   `http.handshake_timeout_ms`; then each later request head on a kept-alive connection has
//!   the same time (hyper's header read timeout). A connection past its deadline is closed.
//! - **Header size**: a request head over `http.max_header_bytes` is answered 431.
//! - **Cap**: at most `http.max_handshakes` connections in their handshake at once; a
//!   connection accepted beyond it is closed at once (`switchboard_handshake_failures_total
//!   {reason="cap"}`), so slow clients cannot take every descriptor.
//!
//! Every accepted socket gets `TCP_NODELAY`, and every request carries `ConnectInfo<SocketAddr>`
//! (the framework's upgrade reads the peer address from it).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

/// What a connection may cost before its first request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Accept to first request head, TLS included; also each later request head.
    pub handshake_timeout: Duration,
    /// Largest request head in bytes (at least 8192, hyper's minimum).
    pub max_header_bytes: usize,
    /// Connections in their handshake at once.
    pub max_handshakes: usize,
}

/// A connection's place among those in their handshake, given back once (first request head, or
/// the end of the connection).
struct Slot {
    /// The count of connections in their handshake.
    pending: Arc<AtomicUsize>,
    /// Given back already.
    released: AtomicBool,
    /// The listener's label.
    listener: &'static str,
}

impl Slot {
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            let left = self.pending.fetch_sub(1, Ordering::AcqRel) - 1;
            pending_gauge(self.listener, left);
        }
    }

    fn released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

#[allow(clippy::cast_precision_loss)]
fn pending_gauge(listener: &'static str, count: usize) {
    metrics::gauge!("switchboard_handshakes_pending", "listener" => listener).set(count as f64);
}

fn failed(listener: &'static str, reason: &'static str) {
    metrics::counter!("switchboard_handshake_failures_total", "listener" => listener, "reason" => reason)
        .increment(1);
}

/// Declares the series (present from the first scrape on) of a listener (`main`, `metrics`).
pub(crate) fn describe(listener: &'static str) {
    metrics::describe_counter!(
        "switchboard_handshake_failures_total",
        "Connections closed before their first request, by listener and reason: cap (too many \
         in handshake), timeout (no request head by the deadline), tls (failed TLS handshake)"
    );
    metrics::describe_gauge!("switchboard_handshakes_pending", "Connections in their TLS or HTTP handshake");
    for reason in ["cap", "timeout", "tls"] {
        metrics::counter!("switchboard_handshake_failures_total", "listener" => listener, "reason" => reason)
            .absolute(0);
    }
    pending_gauge(listener, 0);
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

/// Serves `app` on `listener` until `stop` (with `board`, the framework's server, counting
/// connections per address: `Switchboard::admit`); connection tasks go to `tracker` (HTTP connections
/// finish their current request after `stop`; upgraded WebSockets are the framework's). `name`
/// labels the listener's series.
pub(crate) async fn serve(
    name: &'static str,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    (app, board): (Router, Option<switchboard::Switchboard>),
    limits: Limits,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let pending = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Connections per address (the framework's `connection_limits`): refused, a plain-text
        // socket gets a 429 if it takes it at once; the admission goes with every request, so
        // that an upgraded connection keeps it.
        let admission = match board.as_ref().map(|b| b.admit(remote)) {
            Some(Err(refused)) => {
                if tls.is_none() {
                    let _ = tcp.try_write(refused.response().as_bytes());
                }
                continue;
            }
            Some(Ok(admission)) => admission,
            None => switchboard::Admission::default(),
        };
        if pending.load(Ordering::Acquire) >= limits.max_handshakes {
            failed(name, "cap");
            drop(tcp);
            continue;
        }
        let count = pending.fetch_add(1, Ordering::AcqRel) + 1;
        pending_gauge(name, count);
        let slot =
            Arc::new(Slot { pending: pending.clone(), released: AtomicBool::new(false), listener: name });
        // Small frames must not wait for Nagle's algorithm: replies are latency-bound.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let peer = Peer { remote, admission };
        tracker.spawn(connection(tcp, peer, tls.clone(), app.clone(), limits, slot, stop.clone()));
    }
}

/// Who a connection is from: its address, and its place among that address's connections.
struct Peer {
    remote: SocketAddr,
    admission: switchboard::Admission,
}

async fn connection(
    tcp: TcpStream,
    peer: Peer,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: Limits,
    slot: Arc<Slot>,
    stop: CancellationToken,
) {
    let deadline = tokio::time::Instant::now() + limits.handshake_timeout;
    let remote = peer.remote;
    match tls {
        None => http(tcp, peer, app, limits, slot, deadline, stop).await,
        Some(acceptor) => {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => accepted,
            };
            match accepted {
                Ok(Ok(io)) => http(io, peer, app, limits, slot, deadline, stop).await,
                Ok(Err(e)) => {
                    failed(slot.listener, "tls");
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    failed(slot.listener, "timeout");
                    tracing::debug!(%remote, "TLS handshake not done by the deadline");
                }
            }
        }
    }
}

async fn http<IO>(
    io: IO,
    peer: Peer,
    app: Router,
    limits: Limits,
    slot: Arc<Slot>,
    deadline: tokio::time::Instant,
    stop: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let seen = slot.clone();
    let Peer { remote, admission } = peer;
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // A complete request head: no longer in the handshake.
        seen.release();
        request.extensions_mut().insert(ConnectInfo(remote));
        request.extensions_mut().insert(admission.clone());
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut watching = true;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    // hyper's own header read timeout may beat our deadline to it.
                    let timed_out = e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout);
                    if timed_out && !slot.released() {
                        failed(slot.listener, "timeout");
                    }
                    tracing::debug!(%remote, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline), if watching => {
                if !slot.released() {
                    failed(slot.listener, "timeout");
                    tracing::debug!(%remote, "no request head by the deadline: closed");
                    return;
                }
                watching = false;
            }
            () = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
                return;
            }
        }
    }
}
