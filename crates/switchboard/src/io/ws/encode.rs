//! Writing: frames buffered in order, small ones copied into one contiguous chunk (one plain
//! write per batch), large ones kept as their shared payload (one vectored write each).

use std::collections::VecDeque;

use bytes::Bytes;

use super::opcode::data_opcode;

/// Largest payload copied into the write buffer; a larger one goes out vectored, not copied.
const COPY_MAX: usize = 2 * 1024;

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
pub(super) struct LargeFrame {
    head: [u8; 10],
    head_len: u8,
    pub(super) payload: Bytes,
}

impl LargeFrame {
    pub(super) fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    fn len(&self) -> usize {
        usize::from(self.head_len) + self.payload.len()
    }
}

/// Frames for whoever writes to the socket beside the transport (a connection's writer passes,
/// `conn::pass`), built in this thread's spare write buffer as the transport builds its own:
/// only frames the transport would copy too, so that a large payload still goes out vectored,
/// by the transport.
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
pub(super) fn header(opcode: u8, len: usize) -> ([u8; 10], u8) {
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
pub(super) enum Run {
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
pub(super) struct Outbox {
    /// What goes before `chunk`: only after a large frame. Boxed: the field is in every
    /// connection's task and rarely used (8 bytes there instead of 32).
    #[allow(clippy::box_collection)]
    pub(super) earlier: Option<Box<VecDeque<Run>>>,
    /// The small frames buffered last, framed.
    pub(super) chunk: Vec<u8>,
    /// Bytes already written of the first run, or of `chunk` when there is none.
    pub(super) offset: usize,
    /// Our close frame is queued: nothing but it may follow.
    pub(super) close_sent: bool,
}

impl Outbox {
    /// Buffers a frame whose payload is `payload`; `owned` gives it without a copy if it is large.
    pub(super) fn push(&mut self, opcode: u8, payload: &[u8], owned: impl FnOnce() -> Bytes) {
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
    pub(super) fn push_raw(&mut self, raw: &[u8]) {
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

    pub(super) fn is_empty(&self) -> bool {
        self.earlier.is_none() && self.offset == self.chunk.len()
    }

    /// Marks `n` more bytes written (at most the rest of the first run, or of the chunk).
    pub(super) fn advance(&mut self, n: usize) {
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
