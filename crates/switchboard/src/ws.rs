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
//! fragmented one, and malformed close frames close with 1002; text must be UTF-8 (checked
//! incrementally across fragments; 4501 like any frame that is not a message, or 1007 in a
//! close reason); a message over the size limit closes with 1009 before its payload is read.
//! Pings are answered with pongs; a close is answered with a close carrying the same code.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::ConnShared;
use crate::transport::{Inbound, Outbound, Transport};

/// Bytes read per `poll_read`, into a buffer on the stack of that call (never kept).
const SCRATCH: usize = 8 * 1024;
/// Largest payload copied into the write buffer; a larger one goes out vectored, not copied.
const COPY_MAX: usize = 2 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Close code for a violation of RFC 6455.
pub(crate) const PROTOCOL_ERROR: u16 = 1002;
/// Close code for data inconsistent with its type (invalid UTF-8 in a close reason).
pub(crate) const INVALID_DATA: u16 = 1007;

/// What the decoder found in the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A whole message (fragments joined, unmasked).
    Message { bytes: Bytes, binary: bool },
    /// A ping with its payload (to echo in the pong).
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The peer's close frame: its code, if it gave one.
    Close(Option<u16>),
    /// A message over the size limit (1009).
    TooBig,
    /// A text message that is not UTF-8.
    InvalidText,
    /// The peer broke the protocol: close with this code and reason.
    Fail(u16, &'static str),
}

/// A frame's header, parsed.
#[derive(Debug, Clone, Copy)]
struct Head {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: u64,
    /// Bytes of the header itself (2 to 14).
    size: usize,
}

/// Parses a client frame's header; `Ok(None)` while incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, &'static str> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err("reserved bits set without a negotiated extension");
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin {
                return Err("fragmented control frame");
            }
            if b1 & 0x7F > 125 {
                return Err("control frame longer than 125 bytes");
            }
        }
        _ => return Err("unknown opcode"),
    }
    if b1 & 0x80 == 0 {
        return Err("unmasked client frame");
    }
    let (len, at) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else { return Ok(None) };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else { return Ok(None) };
            let len = u64::from_be_bytes(b.try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err("frame length with the most significant bit set");
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let Some(mask) = buf.get(at..at + 4) else { return Ok(None) };
    Ok(Some(Head { fin, opcode, mask: mask.try_into().expect("4 bytes"), len, size: at + 4 }))
}

/// Unmasks (or masks) a whole payload in place.
fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let unmasked = u32::from_ne_bytes(chunk.try_into().expect("4 bytes")) ^ word;
        chunk.copy_from_slice(&unmasked.to_ne_bytes());
    }
    for (b, m) in chunks.into_remainder().iter_mut().zip(mask) {
        *b ^= m;
    }
}

/// A fragmented message being assembled.
struct Partial {
    binary: bool,
    data: BytesMut,
    /// How much of `data` is known to be UTF-8 (text only).
    checked: usize,
}

impl Partial {
    /// Checks the text received since the last call; an incomplete character at the end is
    /// fine unless this is the last fragment.
    fn check_utf8(&mut self, fin: bool) -> bool {
        if self.binary {
            return true;
        }
        match std::str::from_utf8(&self.data[self.checked..]) {
            Ok(_) => {
                self.checked = self.data.len();
                true
            }
            Err(e) if e.error_len().is_none() && !fin => {
                self.checked += e.valid_up_to();
                true
            }
            Err(_) => false,
        }
    }
}

/// Frames out of received bytes. Holds no allocation between messages.
pub(crate) struct Decoder {
    /// Received bytes not consumed yet: the start of a frame, or more frames after it.
    buf: BytesMut,
    /// A fragmented message in progress (boxed: rare, and large next to the rest).
    partial: Option<Box<Partial>>,
    /// Largest message, in bytes.
    max: u32,
    /// Where reading stands (kept here, in what would be padding).
    state: ReadState,
}

impl Decoder {
    pub(crate) fn new(max: usize) -> Self {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        Self { buf: BytesMut::new(), partial: None, max, state: ReadState::Open }
    }

    /// Appends received bytes.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        if self.buf.is_empty() {
            // Exactly what arrived (or what the frame being read still needs, see `decode`).
            self.buf = BytesMut::from(bytes);
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Drops everything buffered.
    fn clear(&mut self) {
        self.buf = BytesMut::new();
        self.partial = None;
    }

    /// The next event in the bytes received so far, if they hold one. After an error (too big,
    /// not UTF-8, a violation) everything buffered is dropped: the stream cannot be trusted.
    pub(crate) fn decode(&mut self) -> Option<Event> {
        let event = self.next_event();
        if matches!(event, Some(Event::TooBig | Event::InvalidText | Event::Fail(..))) {
            self.clear();
        }
        event
    }

    fn next_event(&mut self) -> Option<Event> {
        loop {
            let head = match parse_head(&self.buf) {
                Ok(Some(head)) => head,
                Ok(None) => return None,
                Err(reason) => return Some(Event::Fail(PROTOCOL_ERROR, reason)),
            };
            if head.opcode < OP_CLOSE {
                let before = self.partial.as_ref().map_or(0, |p| p.data.len());
                if head.len.saturating_add(before as u64) > u64::from(self.max) {
                    return Some(Event::TooBig);
                }
                match (head.opcode, &self.partial) {
                    (OP_CONTINUATION, None) => {
                        return Some(Event::Fail(PROTOCOL_ERROR, "continuation frame without a message"));
                    }
                    (OP_TEXT | OP_BINARY, Some(_)) => {
                        return Some(Event::Fail(PROTOCOL_ERROR, "new message inside a fragmented one"));
                    }
                    _ => {}
                }
            }
            let len = usize::try_from(head.len).expect("bounded by the size limit or 125");
            let need = head.size + len;
            if self.buf.len() < need {
                // Room for the rest of this frame, once, so that reads append without moving.
                self.buf.reserve(need - self.buf.len());
                return None;
            }
            let mut payload = self.buf.split_to(need);
            payload.advance(head.size);
            apply_mask(&mut payload, head.mask);
            if self.buf.is_empty() {
                // Let go of the allocation (the payload keeps what it needs).
                self.buf = BytesMut::new();
            }
            match head.opcode {
                OP_PING => return Some(Event::Ping(payload.freeze())),
                OP_PONG => return Some(Event::Pong),
                OP_CLOSE => return Some(close_event(&payload)),
                OP_TEXT | OP_BINARY if head.fin => {
                    let binary = head.opcode == OP_BINARY;
                    // ASCII first: a word at a time, several times cheaper than `from_utf8` on the
                    // short all-ASCII messages that are most of them.
                    if !binary && !payload.is_ascii() && std::str::from_utf8(&payload).is_err() {
                        return Some(Event::InvalidText);
                    }
                    return Some(Event::Message { bytes: payload.freeze(), binary });
                }
                OP_TEXT | OP_BINARY => {
                    let mut partial =
                        Box::new(Partial { binary: head.opcode == OP_BINARY, data: payload, checked: 0 });
                    if !partial.check_utf8(false) {
                        return Some(Event::InvalidText);
                    }
                    self.partial = Some(partial);
                }
                _ => {
                    let partial = self.partial.as_mut().expect("checked above");
                    partial.data.extend_from_slice(&payload);
                    if !partial.check_utf8(head.fin) {
                        return Some(Event::InvalidText);
                    }
                    if head.fin {
                        let partial = self.partial.take().expect("checked above");
                        return Some(Event::Message { bytes: partial.data.freeze(), binary: partial.binary });
                    }
                }
            }
        }
    }
}

/// The event of a received close frame's payload.
fn close_event(payload: &[u8]) -> Event {
    match payload {
        [] => Event::Close(None),
        [_] => Event::Fail(PROTOCOL_ERROR, "close frame with a one-byte payload"),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                Event::Fail(PROTOCOL_ERROR, "invalid close code")
            } else if std::str::from_utf8(reason).is_err() {
                Event::Fail(INVALID_DATA, "close reason is not UTF-8")
            } else {
                Event::Close(Some(code))
            }
        }
    }
}

/// Largest spare write buffer a thread keeps for the next connection that writes.
const SPARE_MAX: usize = 64 * 1024;
/// Room a write buffer starts with.
const CHUNK_FIRST: usize = 2 * 1024;

thread_local! {
    /// A written chunk, emptied, for the next connection on this thread that writes: a
    /// connection holds a write buffer only while its bytes wait for the socket.
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A frame too large to copy: its header and its shared payload.
struct LargeFrame {
    head: [u8; 10],
    head_len: u8,
    payload: Bytes,
}

impl LargeFrame {
    fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    fn len(&self) -> usize {
        usize::from(self.head_len) + self.payload.len()
    }
}

/// Writer passes frame into this thread's spare write buffer, as the transport does (see
/// `direct`): only frames the transport would copy too, so that a large payload still goes out
/// vectored, by the connection's task.
pub(crate) struct PassFrames(Vec<u8>);

impl PassFrames {
    /// Whether a pass frames a payload of `len` bytes (else the connection's task writes it).
    pub(crate) fn takes(len: usize) -> bool {
        len <= COPY_MAX
    }

    pub(crate) fn new() -> Self {
        Self(SPARE.with(std::cell::Cell::take))
    }

    /// Appends a data frame (text, or binary) carrying `payload`.
    pub(crate) fn push(&mut self, binary: bool, payload: &[u8]) {
        let (head, head_len) = header(data_opcode(binary), payload.len());
        self.0.extend_from_slice(&head[..usize::from(head_len)]);
        self.0.extend_from_slice(payload);
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PassFrames {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.0));
    }
}

/// A frame's header for a payload of `len` bytes: the buffer and how much of it is used.
fn header(opcode: u8, len: usize) -> ([u8; 10], u8) {
    let mut head = [0; 10];
    head[0] = 0x80 | opcode;
    let head_len = if len < 126 {
        head[1] = len as u8;
        2
    } else if let Ok(len) = u16::try_from(len) {
        head[1] = 126;
        head[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (head, head_len)
}

/// Bytes to write, before the last chunk: only when a large frame was buffered.
enum Run {
    Copied(Vec<u8>),
    Large(LargeFrame),
}

/// Frames waiting to be written, in order. A small frame (payload up to [`COPY_MAX`]) is
/// copied, header and payload, after the previous one into one contiguous chunk, so that a
/// batch goes out with one plain write (for 100-byte messages, a vectored write of a header
/// and a payload per frame cost the kernel 4× more in `copy_from_iter`), and the caller keeps
/// its payload (a publication shared by thousands of connections is not reference-counted once
/// more per connection). A larger frame keeps its shared payload and goes out vectored, not
/// copied. Holds no allocation once written.
#[derive(Default)]
struct Outbox {
    /// What goes before `chunk`: only after a large frame. Boxed: the field is in every
    /// connection's task and rarely used (8 bytes there instead of 32).
    #[allow(clippy::box_collection)]
    earlier: Option<Box<VecDeque<Run>>>,
    /// The small frames buffered last, framed.
    chunk: Vec<u8>,
    /// Bytes already written of the first run, or of `chunk` when there is none.
    offset: usize,
    /// Our close frame is queued: nothing but it may follow.
    close_sent: bool,
}

impl Outbox {
    /// Buffers a frame whose payload is `payload`; `owned` gives it without a copy if it is large.
    fn push(&mut self, opcode: u8, payload: &[u8], owned: impl FnOnce() -> Bytes) {
        let (head, head_len) = header(opcode, payload.len());
        if payload.len() > COPY_MAX {
            let earlier = self.earlier.get_or_insert_default();
            if !self.chunk.is_empty() {
                earlier.push_back(Run::Copied(std::mem::take(&mut self.chunk)));
            }
            earlier.push_back(Run::Large(LargeFrame { head, head_len, payload: owned() }));
            return;
        }
        let chunk = self.chunk_for(usize::from(head_len) + payload.len());
        chunk.extend_from_slice(&head[..usize::from(head_len)]);
        chunk.extend_from_slice(payload);
    }

    /// Buffers bytes already framed.
    fn push_raw(&mut self, raw: &[u8]) {
        self.chunk_for(raw.len()).extend_from_slice(raw);
    }

    /// The chunk, taken from this thread's spare if there is none, for `need` more bytes.
    fn chunk_for(&mut self, need: usize) -> &mut Vec<u8> {
        if self.chunk.capacity() == 0 {
            self.chunk = SPARE.with(std::cell::Cell::take);
            self.chunk.reserve(need.max(CHUNK_FIRST));
        }
        &mut self.chunk
    }

    fn is_empty(&self) -> bool {
        self.earlier.is_none() && self.offset == self.chunk.len()
    }

    /// Marks `n` more bytes written (at most the rest of the first run, or of the chunk).
    fn advance(&mut self, n: usize) {
        self.offset += n;
        match self.earlier.as_deref_mut() {
            Some(earlier) => {
                let len = match earlier.front() {
                    Some(Run::Copied(bytes)) => bytes.len(),
                    Some(Run::Large(frame)) => frame.len(),
                    None => 0,
                };
                if self.offset == len {
                    self.offset = 0;
                    if let Some(Run::Copied(bytes)) = earlier.pop_front() {
                        recycle(bytes);
                    }
                    if earlier.is_empty() {
                        self.earlier = None;
                    }
                }
            }
            None if self.offset == self.chunk.len() => {
                self.offset = 0;
                recycle(std::mem::take(&mut self.chunk));
            }
            None => {}
        }
    }
}

/// Hands a written chunk to this thread's spare, unless it has one or the chunk is large.
fn recycle(mut bytes: Vec<u8>) {
    if bytes.capacity() <= SPARE_MAX {
        bytes.clear();
        SPARE.with(|spare| {
            let kept = spare.take();
            spare.set(if kept.capacity() == 0 { bytes } else { kept });
        });
    }
}

/// Where reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// Decoding frames.
    Open,
    /// After a violation: what arrives is read and dropped, so that closing the socket does not
    /// reset it (and lose our close frame) because of unread input.
    Discard,
    /// The peer closed, or the socket ended or failed.
    Done,
}

/// A server-side WebSocket over `S`.
pub(crate) struct WebSocket<S> {
    io: S,
    decoder: Decoder,
    out: Outbox,
    /// The socket, until it is shared with the connection's writer passes (see `direct`).
    socket: Option<Arc<tokio::net::TcpStream>>,
    /// The connection, once writer passes may write to its socket: told when bytes of ours
    /// wait to be written.
    conn: Option<Arc<ConnShared>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// A connection over an upgraded stream; `received` holds bytes that arrived after the
    /// HTTP request (usually none).
    pub(crate) fn new(io: S, max_message_size: usize, received: &[u8]) -> Self {
        let mut decoder = Decoder::new(max_message_size);
        if !received.is_empty() {
            decoder.extend(received);
        }
        Self { io, decoder, out: Outbox::default(), socket: None, conn: None }
    }

    /// Lets the connection's writer passes write to `socket` (the one under `io`).
    pub(crate) fn with_socket(mut self, socket: Arc<tokio::net::TcpStream>) -> Self {
        self.socket = Some(socket);
        self
    }

    /// Tells writer passes whether bytes of ours wait to be written (they must go first).
    fn note_buffered(&self) {
        if let Some(conn) = &self.conn {
            conn.buffered.store(!self.out.is_empty(), std::sync::atomic::Ordering::Release);
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
                return Poll::Ready(Inbound::Closed);
            }
            // Pongs and close replies go out without waiting for the next batch.
            if !self.out.is_empty() {
                let flushed = self.poll_flush(cx);
                self.note_buffered();
                if let Poll::Ready(Err(_)) = flushed {
                    self.decoder.state = ReadState::Done;
                    return Poll::Ready(Inbound::Closed);
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
                    return Poll::Ready(Inbound::Closed);
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
                Inbound::Closed
            }
            Event::TooBig => {
                stop(self, ReadState::Discard);
                Inbound::TooBig
            }
            Event::InvalidText => {
                stop(self, ReadState::Discard);
                Inbound::Invalid
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

    fn share_socket(&mut self, conn: &Arc<ConnShared>) -> bool {
        let Some(socket) = self.socket.take() else { return false };
        conn.share_socket(socket);
        self.conn = Some(conn.clone());
        true
    }
}

fn data_opcode(binary: bool) -> u8 {
    if binary { OP_BINARY } else { OP_TEXT }
}

#[cfg(test)]
#[path = "ws_tests.rs"]
mod tests;
