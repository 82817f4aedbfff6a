//! The socket behind a small interface, so that a session knows nothing of WebSocket framing.
//!
//! One implementation today, our own (`ws/`), under every path: the connections that
//! [`Switchboard::serve`](crate::Switchboard::serve) upgrades itself, those that
//! [`Switchboard::router`](crate::Switchboard::router) gets from hyper's upgrade, and those
//! handed to [`Switchboard::accept`](crate::Switchboard::accept). It holds no buffer while idle
//! and writes shared payloads without copying them.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::tcp::SharedSocket;

/// One thing read from the socket.
pub(crate) enum Inbound {
    /// A data frame (`binary` tells which kind).
    Data { bytes: Bytes, binary: bool },
    /// A ping or pong: proof of life only.
    Control,
    /// The peer closed (with its close frame's code: 1005 when it gave none), or the socket
    /// failed or the stream ended (`None`).
    Closed(Option<u16>),
    /// The peer sent a message over the size limit.
    TooBig,
    /// The peer broke RFC 6455: close with this code and reason — 1002 for framing (reserved
    /// bits, unknown opcode, unmasked frame, …), 1007 for text that is not UTF-8.
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

    /// Shares the TCP socket under this transport with a second writer (a connection's writer
    /// passes), if it can: the socket, for that writer's non-blocking sends. From then on the
    /// transport tells the socket whether bytes of its own wait to be written, which must go
    /// first (see `tcp.rs`).
    fn share_socket(&mut self) -> Option<Arc<SharedSocket>> {
        None
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
