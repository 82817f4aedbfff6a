//! Test support for Autobahn|Testsuite, behind the `autobahn` feature (never in a normal
//! build): a raw echo of text and binary messages over the framework's own handshakes and
//! WebSocket — [`serve_echo`] over `serve()`'s HTTP/1.1 upgrade (`io::http1`), [`echo_router`]
//! over the `router()` path (axum and hyper's upgrade) — so that the fuzzing client exercises
//! exactly the code that carries Switchboard's connections: the codec (`io::ws`), its transport
//! interface, and both upgrades. Only the session above them (which speaks the Switchboard
//! protocol, not an echo) is replaced, by `echo`.

use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout, timeout_at};

use super::router::{check, switching};
use crate::io::http1::{check_upgrade, read_head, refuse, switch};
use crate::io::transport::{Inbound, Outbound, Transport};
use crate::io::ws::WebSocket;

/// Largest message echoed (Autobahn's case 9 sends up to 16 MiB).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Time for an upgrade request.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Echoes on every connection accepted from `listener`, upgraded as `Switchboard::serve` does.
pub async fn serve_echo(listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(upgrade_tcp(tcp));
    }
}

async fn upgrade_tcp(mut tcp: TcpStream) {
    let (head, buf) = match timeout(HANDSHAKE, read_head(&mut tcp, 16 * 1024)).await {
        Ok(Ok(Some(Ok(read)))) => read,
        Ok(Ok(Some(Err((status, body))))) => {
            return refuse(&mut tcp, status, body, "", Instant::now() + HANDSHAKE).await;
        }
        _ => return,
    };
    let accept = match check_upgrade(&head) {
        Ok(accept) => accept,
        Err((status, body)) => return refuse(&mut tcp, status, body, "", Instant::now() + HANDSHAKE).await,
    };
    if timeout_at(Instant::now() + HANDSHAKE, switch(&mut tcp, &accept, None)).await != Ok(true) {
        return;
    }
    echo(WebSocket::new(tcp, MAX_MESSAGE, &buf[head.len..])).await;
}

/// An axum router echoing at every path, upgraded as `Switchboard::router` does.
pub fn echo_router() -> axum::Router {
    axum::Router::new().fallback(upgrade_router)
}

async fn upgrade_router(req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let (accept, on_upgrade) = match check(&mut parts) {
        Ok(checked) => checked,
        Err(refused) => return refused,
    };
    tokio::spawn(async move {
        if let Ok(io) = on_upgrade.await {
            echo(WebSocket::new(TokioIo::new(io), MAX_MESSAGE, b"")).await;
        }
    });
    switching(accept, None)
}

/// Sends back every message as it came (text as text, binary as binary) until the peer closes
/// or breaks the protocol; then closes as a session does: the close frame (with the code the
/// transport chose), and what the peer still sends is read until its close or EOF.
async fn echo<T: Transport>(mut transport: T) {
    let ending = loop {
        match transport.recv().await {
            Inbound::Data { bytes, binary } => {
                transport.buffer(Outbound::Data(bytes), binary);
                if !transport.flush().await {
                    return;
                }
            }
            Inbound::Control => {}
            Inbound::Closed(_) => break None,
            Inbound::TooBig => break Some((1009, "message too big")),
            Inbound::Refused(code, reason) => break Some((code, reason)),
        }
    };
    let Some((code, reason)) = ending else {
        // The peer's close was answered by the transport: write it.
        let _ = timeout(Duration::from_secs(1), transport.flush()).await;
        return;
    };
    let _ = timeout(Duration::from_secs(1), async {
        transport.buffer(Outbound::Close(code, reason), false);
        transport.flush().await;
        while let Inbound::Data { .. } | Inbound::Control = transport.recv().await {}
    })
    .await;
}
