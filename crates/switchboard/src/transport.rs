//! The socket behind a small interface, so that the WebSocket implementation can be swapped.
//!
//! Two implementations: axum's `WebSocket` (servers mounted in a router with
//! [`Switchboard::router`](crate::Switchboard::router)) and our own lean one, `ws::WebSocket`,
//! for the connections that [`Switchboard::serve`](crate::Switchboard::serve) upgrades itself
//! and those handed to [`Switchboard::accept`](crate::Switchboard::accept). The lean one holds no
//! buffer while idle and writes shared payloads without copying them (see `ws.rs`).

use std::future::Future;

use axum::extract::ws::{self, WebSocket};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};

/// One thing read from the socket.
pub(crate) enum Inbound {
    /// A data frame (`binary` tells which kind).
    Data { bytes: Bytes, binary: bool },
    /// A ping or pong: proof of life only.
    Control,
    /// The peer closed, the socket failed, or the stream ended.
    Closed,
    /// The peer sent a message over the size limit.
    TooBig,
    /// The peer sent a frame WebSocket itself refuses (invalid UTF-8 in a text frame).
    Invalid,
    /// The peer broke RFC 6455 (reserved bits, unknown opcode, unmasked frame, …): close with
    /// this code (1002, or 1007) and reason.
    Refused(u16, &'static str),
}

/// One thing to write.
pub(crate) enum Outbound<'a> {
    Data(Bytes),
    Ping,
    Close(u16, &'a str),
}

/// The socket operations a connection task needs. `recv` must be cancel-safe.
pub(crate) trait Transport: Send + 'static {
    fn recv(&mut self) -> impl Future<Output = Inbound> + Send;
    /// Buffers a frame (writing only if the buffer is full).
    fn feed(&mut self, frame: Outbound<'_>, binary: bool) -> impl Future<Output = bool> + Send;
    /// Writes what is buffered.
    fn flush(&mut self) -> impl Future<Output = bool> + Send;
}

impl Transport for WebSocket {
    async fn recv(&mut self) -> Inbound {
        match self.next().await {
            Some(Ok(ws::Message::Text(t))) => Inbound::Data { bytes: Bytes::from(t), binary: false },
            Some(Ok(ws::Message::Binary(b))) => Inbound::Data { bytes: b, binary: true },
            Some(Ok(ws::Message::Ping(_) | ws::Message::Pong(_))) => Inbound::Control,
            Some(Ok(ws::Message::Close(_))) | None => Inbound::Closed,
            Some(Err(e)) => classify_axum(&e),
        }
    }

    async fn feed(&mut self, frame: Outbound<'_>, binary: bool) -> bool {
        let msg = match frame {
            Outbound::Data(bytes) if binary => ws::Message::Binary(bytes),
            Outbound::Data(bytes) => match ws::Utf8Bytes::try_from(bytes) {
                Ok(text) => ws::Message::Text(text),
                Err(_) => return true,
            },
            Outbound::Ping => ws::Message::Ping(Bytes::new()),
            Outbound::Close(code, reason) => {
                ws::Message::Close(Some(ws::CloseFrame { code, reason: ws::Utf8Bytes::from(reason) }))
            }
        };
        SinkExt::feed(self, msg).await.is_ok()
    }

    async fn flush(&mut self) -> bool {
        SinkExt::flush(self).await.is_ok()
    }
}

fn classify_axum(e: &axum::Error) -> Inbound {
    // axum wraps tungstenite's error; its text is the only stable view of "capacity".
    let text = e.to_string();
    if text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Message too big")
    {
        Inbound::TooBig
    } else if text.contains("UTF-8") {
        Inbound::Invalid
    } else {
        Inbound::Closed
    }
}
