//! The transport over axum's WebSocket (tungstenite), for [`Switchboard::router`](crate::Switchboard::router).

use std::collections::VecDeque;
use std::task::{Context, Poll, ready};

use axum::extract::ws::{self, WebSocket};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};

use super::transport::{Inbound, Outbound, Transport};

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
            Some(Ok(ws::Message::Close(frame))) => Inbound::Closed(Some(frame.map_or(1005, |f| f.code))),
            None => Inbound::Closed(None),
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
        Inbound::Closed(None)
    }
}
