//! The socket behind a small interface, so that the WebSocket implementation can be swapped.
//!
//! Two implementations: axum's `WebSocket` (servers mounted in a router with
//! [`Switchboard::router`](crate::Switchboard::router)) and our own lean one, `ws::WebSocket`,
//! for the connections that [`Switchboard::serve`](crate::Switchboard::serve) upgrades itself
//! and those handed to [`Switchboard::accept`](crate::Switchboard::accept). The lean one holds no
//! buffer while idle and writes shared payloads without copying them (see `ws.rs`).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::task::{Context, Poll, ready};

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
    /// A data frame whose payload stays the caller's (shared by many connections): a transport
    /// that copies it anyway (small frames into its write buffer) takes no reference to it.
    Shared(&'a Bytes),
    Ping,
    Close(u16, &'a str),
    /// Bytes already framed (the rest of a writer pass's write).
    Raw(&'a [u8]),
}

/// The socket operations a connection task needs. `recv` must be cancel-safe.
///
/// Writing is split in two so that the common case costs no future: [`Transport::buffer`]
/// takes frames without writing, [`Transport::poll_flush`] writes them, and is restartable
/// (what is left is kept by the transport), so a connection can try it once in place and only
/// wait when the socket is full.
pub(crate) trait Transport: Send + 'static {
    fn recv(&mut self) -> impl Future<Output = Inbound> + Send;
    /// Takes a frame to write at the next flush.
    fn buffer(&mut self, frame: Outbound<'_>, binary: bool);
    /// Writes what is buffered; `Ready(false)` if the socket failed.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<bool>;

    /// Lets the connection's writer passes write to the socket, if this transport can (see
    /// `direct`): whether they may.
    fn share_socket(&mut self, _conn: &std::sync::Arc<crate::conn::ConnShared>) -> bool {
        false
    }

    /// Writes what is buffered, waiting for the socket as needed.
    fn flush(&mut self) -> impl Future<Output = bool> + Send {
        poll_fn(|cx| self.poll_flush(cx))
    }

    /// Buffers a frame and writes it with what came before.
    #[cfg(test)]
    fn feed(&mut self, frame: Outbound<'_>, binary: bool) -> impl Future<Output = bool> + Send {
        self.buffer(frame, binary);
        self.flush()
    }
}

/// axum's WebSocket, with the frames buffered by [`Transport::buffer`] until they are flushed
/// into its sink.
pub(crate) struct AxumSocket {
    ws: WebSocket,
    pending: VecDeque<ws::Message>,
}

impl AxumSocket {
    pub(crate) fn new(ws: WebSocket) -> Self {
        Self { ws, pending: VecDeque::new() }
    }
}

impl Transport for AxumSocket {
    async fn recv(&mut self) -> Inbound {
        match self.ws.next().await {
            Some(Ok(ws::Message::Text(t))) => Inbound::Data { bytes: Bytes::from(t), binary: false },
            Some(Ok(ws::Message::Binary(b))) => Inbound::Data { bytes: b, binary: true },
            Some(Ok(ws::Message::Ping(_) | ws::Message::Pong(_))) => Inbound::Control,
            Some(Ok(ws::Message::Close(_))) | None => Inbound::Closed,
            Some(Err(e)) => classify_axum(&e),
        }
    }

    fn buffer(&mut self, frame: Outbound<'_>, binary: bool) {
        let data = |bytes: Bytes| {
            if binary {
                Some(ws::Message::Binary(bytes))
            } else {
                ws::Utf8Bytes::try_from(bytes).ok().map(ws::Message::Text)
            }
        };
        let msg = match frame {
            Outbound::Data(bytes) => data(bytes),
            Outbound::Shared(bytes) => data(bytes.clone()),
            Outbound::Ping => Some(ws::Message::Ping(Bytes::new())),
            Outbound::Close(code, reason) => {
                Some(ws::Message::Close(Some(ws::CloseFrame { code, reason: ws::Utf8Bytes::from(reason) })))
            }
            // Never queued for this transport: its socket is not shared with writer passes.
            Outbound::Raw(_) => None,
        };
        let Some(msg) = msg else { return };
        self.pending.push_back(msg);
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        while !self.pending.is_empty() {
            if ready!(self.ws.poll_ready_unpin(cx)).is_err() {
                return Poll::Ready(false);
            }
            let msg = self.pending.pop_front().expect("not empty");
            if self.ws.start_send_unpin(msg).is_err() {
                return Poll::Ready(false);
            }
        }
        if self.pending.capacity() > 0 {
            self.pending = VecDeque::new();
        }
        Poll::Ready(ready!(self.ws.poll_flush_unpin(cx)).is_ok())
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
