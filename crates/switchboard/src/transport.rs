//! The socket behind a small interface, so that the WebSocket implementation can be swapped.
//!
//! Two implementations: axum's `WebSocket` (servers mounted in a router) and tokio-tungstenite
//! over any already-upgraded IO ([`Switchboard::accept`](crate::Switchboard::accept)).

use std::future::Future;

use axum::extract::ws::{self, WebSocket};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self as ts, protocol::frame::coding::CloseCode as TsCloseCode};

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

/// tokio-tungstenite over any upgraded IO.
pub(crate) struct Tungstenite<S>(pub(crate) WebSocketStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for Tungstenite<S> {
    async fn recv(&mut self) -> Inbound {
        match self.0.next().await {
            Some(Ok(ts::Message::Text(t))) => Inbound::Data { bytes: Bytes::from(t), binary: false },
            Some(Ok(ts::Message::Binary(b))) => Inbound::Data { bytes: b, binary: true },
            Some(Ok(ts::Message::Ping(_) | ts::Message::Pong(_) | ts::Message::Frame(_))) => Inbound::Control,
            Some(Ok(ts::Message::Close(_))) | None => Inbound::Closed,
            Some(Err(ts::Error::Capacity(_))) => Inbound::TooBig,
            Some(Err(ts::Error::Utf8(_))) => Inbound::Invalid,
            Some(Err(_)) => Inbound::Closed,
        }
    }

    async fn feed(&mut self, frame: Outbound<'_>, binary: bool) -> bool {
        let msg = match frame {
            Outbound::Data(bytes) if binary => ts::Message::Binary(bytes),
            Outbound::Data(bytes) => match ts::Utf8Bytes::try_from(bytes) {
                Ok(text) => ts::Message::Text(text),
                Err(_) => return true,
            },
            Outbound::Ping => ts::Message::Ping(Bytes::new()),
            Outbound::Close(code, reason) => ts::Message::Close(Some(ts::protocol::CloseFrame {
                code: TsCloseCode::from(code),
                reason: ts::Utf8Bytes::from(reason),
            })),
        };
        self.0.feed(msg).await.is_ok()
    }

    async fn flush(&mut self) -> bool {
        self.0.flush().await.is_ok()
    }
}

/// The tungstenite settings for a connection: small read buffer, message limit.
pub(crate) fn ws_config(config: &crate::Config) -> ts::protocol::WebSocketConfig {
    ts::protocol::WebSocketConfig::default()
        .read_buffer_size(config.read_buffer_size)
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size))
}
