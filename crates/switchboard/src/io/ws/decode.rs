//! Reading: frames out of received bytes, checked as RFC 6455 has it for a server that
//! negotiates no extension. Holds no allocation between messages.

use bytes::{Buf, Bytes, BytesMut};

use super::opcode::{
    INVALID_DATA, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, PROTOCOL_ERROR,
};

/// Room reserved ahead of the bytes received, at most, for a frame that is not complete yet.
const AHEAD: usize = 16 * 1024;

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
pub(super) struct Partial {
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
    pub(super) buf: BytesMut,
    /// A fragmented message in progress (boxed: rare, and large next to the rest).
    pub(super) partial: Option<Box<Partial>>,
    /// Largest message, in bytes.
    max: u32,
    /// Where reading stands (kept here, in what would be padding).
    pub(super) state: ReadState,
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
    pub(super) fn clear(&mut self) {
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
                // Room for the rest of this frame, so that reads append without moving — but
                // never more than [`AHEAD`] beyond what arrived: a header that announces a large
                // frame costs nothing until its bytes come (the buffer then grows as they do).
                let missing = need - self.buf.len();
                self.buf.reserve(missing.min(AHEAD.max(self.buf.len())));
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

/// Where reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadState {
    /// Decoding frames.
    Open,
    /// After a violation: what arrives is read and dropped, so that closing the socket does not
    /// reset it (and lose our close frame) because of unread input.
    Discard,
    /// The peer closed, or the socket ended or failed.
    Done,
}
