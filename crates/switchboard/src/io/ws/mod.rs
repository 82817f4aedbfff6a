//! Our own server side of WebSocket (RFC 6455) over any byte stream, for the connections that
//! [`Switchboard::serve`](crate::Switchboard::serve) and
//! [`Switchboard::accept`](crate::Switchboard::accept) upgrade themselves.
//!
//! Why not tungstenite here: an idle connection should cost only its state, not buffers.
//! Reading goes through a scratch array on the stack of one `poll` call; bytes are kept only
//! while a frame is incomplete (or a fragmented message is being assembled), in a buffer sized
//! for that frame and released once it is consumed. Writing copies small frames, header and
//! payload, one after the other into one buffer, written with one plain write per batch (the
//! buffer goes back to a per-thread spare once written, so an idle connection holds none); a
//! frame over 2 KiB keeps its shared `Bytes` payload and goes out vectored, not copied. Text
//! payloads we send are ours (encoded JSON), so they are not validated again.
//!
//! Inbound rules, as RFC 6455 has them for a server that negotiates no extension:
//! client frames must be masked; RSV bits, unknown opcodes, fragmented or oversized (> 125
//! bytes) control frames, a continuation with nothing to continue, a new message inside a
//! fragmented one, and malformed close frames (a one-byte payload, a code that is not allowed on
//! the wire) close with 1002; text must be UTF-8, in a message (checked incrementally across
//! fragments, so a bad fragment fails at once) as in a close reason, else 1007; a message over
//! the size limit closes with 1009 before its payload is read. A close frame is sent before the
//! socket is closed in every case.
//! Pings are answered with pongs; a close is answered with a close carrying the same code.
//!
//! Bounded by construction: nothing more is read while bytes of ours wait for the socket (a
//! pong, a close reply, the rest of a write), so a peer that sends without reading is held back
//! by TCP; what a connection holds is its outbound queue (`Config::max_queue_bytes`), one control
//! frame, and the bytes of one incomplete frame (never more than 16 KiB reserved ahead of what
//! arrived, and at most the message size limit).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod decode;
mod encode;
mod opcode;

use self::decode::{Decoder, Event, ReadState};
pub(crate) use self::encode::PassFrames;
use self::encode::{Outbox, Run};
use self::opcode::{INVALID_DATA, OP_CLOSE, OP_PING, OP_PONG, data_opcode};
use super::tcp::SharedSocket;
use super::transport::{Inbound, Outbound, Transport};

/// Bytes read per `poll_read`, into a buffer on the stack of that call (never kept).
const SCRATCH: usize = 8 * 1024;

/// A server-side WebSocket over `S`.
pub(crate) struct WebSocket<S> {
    io: S,
    decoder: Decoder,
    out: Outbox,
    /// The socket under `io`, when a second writer may share it (see [`Transport::share_socket`]).
    socket: Option<Arc<SharedSocket>>,
    /// The socket is shared: it is told when bytes of ours wait to be written.
    shared: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// A connection over an upgraded stream; `received` holds bytes that arrived after the
    /// HTTP request (usually none).
    pub(crate) fn new(io: S, max_message_size: usize, received: &[u8]) -> Self {
        let mut decoder = Decoder::new(max_message_size);
        if !received.is_empty() {
            decoder.extend(received);
        }
        Self { io, decoder, out: Outbox::default(), socket: None, shared: false }
    }

    /// Lets another writer write to `socket` (the one under `io`), see [`Transport::share_socket`].
    pub(crate) fn with_socket(mut self, socket: Arc<SharedSocket>) -> Self {
        self.socket = Some(socket);
        self
    }

    /// Tells the shared socket whether bytes of ours wait to be written (they must go first).
    fn note_buffered(&self) {
        if self.shared
            && let Some(socket) = &self.socket
        {
            socket.set_buffered(!self.out.is_empty());
        }
    }

    fn queue_close(&mut self, code: Option<u16>, reason: &str) {
        if self.out.close_sent {
            return;
        }
        self.out.close_sent = true;
        let payload = match code {
            None => Bytes::new(),
            Some(code) => {
                // 125 bytes at most: the code and 123 bytes of reason, cut at a character.
                let mut end = reason.len().min(123);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                let mut payload = Vec::with_capacity(2 + end);
                payload.extend_from_slice(&code.to_be_bytes());
                payload.extend_from_slice(&reason.as_bytes()[..end]);
                Bytes::from(payload)
            }
        };
        self.out.push(OP_CLOSE, &payload, || payload.clone());
    }

    /// Writes queued frames until none is left (or the socket would block): the chunk of
    /// small frames with one plain write, a large frame with one vectored write (header and
    /// payload).
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let at = self.out.offset;
            let io = Pin::new(&mut self.io);
            let n = match self.out.earlier.as_deref().and_then(VecDeque::front) {
                Some(Run::Copied(bytes)) => ready!(io.poll_write(cx, &bytes[at..]))?,
                Some(Run::Large(frame)) => {
                    let head = frame.head();
                    if at < head.len() && io.is_write_vectored() {
                        let slices = [IoSlice::new(&head[at..]), IoSlice::new(&frame.payload)];
                        ready!(io.poll_write_vectored(cx, &slices))?
                    } else if at < head.len() {
                        ready!(io.poll_write(cx, &head[at..]))?
                    } else {
                        ready!(io.poll_write(cx, &frame.payload[at - head.len()..]))?
                    }
                }
                None => ready!(io.poll_write(cx, &self.out.chunk[at..]))?,
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Inbound> {
        loop {
            if self.decoder.state == ReadState::Done {
                return Poll::Ready(Inbound::Closed(None));
            }
            // Pongs and close replies go out without waiting for the next batch; and nothing
            // more is read (nor decoded) while bytes of ours wait for the socket: a peer that
            // sends pings without reading is held back by TCP, not by our memory. So at most one
            // unwritten control frame per connection (data frames are bounded by the queue).
            if !self.out.is_empty() {
                let flushed = self.poll_flush(cx);
                self.note_buffered();
                match flushed {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => {
                        self.decoder.state = ReadState::Done;
                        return Poll::Ready(Inbound::Closed(None));
                    }
                    // Woken when the socket takes bytes again.
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.decoder.state == ReadState::Open
                && let Some(event) = self.decoder.decode()
            {
                return Poll::Ready(self.on_event(event));
            }
            // Not zeroed: `ReadBuf` tracks what the read filled (zeroing 8 KB on every poll cost
            // more than the rest of a small message's handling).
            let mut scratch = [std::mem::MaybeUninit::<u8>::uninit(); SCRATCH];
            let mut buf = ReadBuf::uninit(&mut scratch);
            match ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => {
                    if self.decoder.state == ReadState::Open {
                        self.decoder.extend(buf.filled());
                    } else {
                        return Poll::Ready(Inbound::Control);
                    }
                }
                Ok(()) | Err(_) => {
                    self.decoder.state = ReadState::Done;
                    self.decoder.clear();
                    return Poll::Ready(Inbound::Closed(None));
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Inbound {
        let stop = |this: &mut Self, read| {
            this.decoder.state = read;
            this.decoder.clear();
        };
        match event {
            Event::Message { bytes, binary } => Inbound::Data { bytes, binary },
            Event::Ping(payload) => {
                if !self.out.close_sent {
                    self.out.push(OP_PONG, &payload, || payload.clone());
                }
                Inbound::Control
            }
            Event::Pong => Inbound::Control,
            Event::Close(code) => {
                self.queue_close(code, "");
                stop(self, ReadState::Done);
                Inbound::Closed(Some(code.unwrap_or(1005)))
            }
            Event::TooBig => {
                stop(self, ReadState::Discard);
                Inbound::TooBig
            }
            Event::InvalidText => {
                stop(self, ReadState::Discard);
                Inbound::Refused(INVALID_DATA, "a text message that is not UTF-8")
            }
            Event::Fail(code, reason) => {
                stop(self, ReadState::Discard);
                Inbound::Refused(code, reason)
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for WebSocket<S> {
    async fn recv(&mut self) -> Inbound {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn buffer(&mut self, frame: Outbound<'_>, binary: bool) {
        match frame {
            Outbound::Data(bytes) => self.out.push(data_opcode(binary), &bytes, || bytes.clone()),
            Outbound::Shared(bytes) => self.out.push(data_opcode(binary), bytes, || bytes.clone()),
            Outbound::Ping => self.out.push(OP_PING, &[], Bytes::new),
            Outbound::Raw(raw) => self.out.push_raw(raw),
            Outbound::Close(code, reason) => self.queue_close(Some(code), reason),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let flushed = WebSocket::poll_flush(self, cx);
        self.note_buffered();
        Poll::Ready(ready!(flushed).is_ok())
    }

    fn share_socket(&mut self) -> Option<Arc<SharedSocket>> {
        let socket = self.socket.clone()?;
        self.shared = true;
        Some(socket)
    }
}

#[cfg(test)]
mod tests;
