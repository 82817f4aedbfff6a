//! A lean WebSocket client for the workers' subscribers: the load generator must not be what a
//! fan-out measures, so a subscriber reads into one reusable buffer per connection, parses the
//! server's frames in place (no message allocated, no UTF-8 check) and writes only to answer pings.
//!
//! It does its own upgrade (HTTP/1.1, RFC 6455 §4.1) so that no byte read past a frame is left in
//! another library's buffer; the dialects' handshakes and subscriptions then run on it through
//! [`crate::client::TextSocket`], as they do on a tokio-tungstenite [`crate::client::Ws`].
//!
//! Over TLS (`wss://`) it runs on a [`crate::tls::Stream`] that did the client's handshake:
//! rustls then holds the records being decrypted, and the frames are parsed from the plaintext as
//! over TCP.
//!
//! Server frames are unmasked; client frames are masked (§5.3). No extension is negotiated, so a
//! frame with a reserved bit set is an error, as are a masked server frame, an unknown opcode, a
//! fragmented or > 125-byte control frame and a continuation frame outside a fragmented message.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::tls::Stream;
use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};

/// Continuation frame.
const CONTINUATION: u8 = 0x0;
/// Text frame.
const TEXT: u8 = 0x1;
/// Binary frame.
const BINARY: u8 = 0x2;
/// Close frame.
const CLOSE: u8 = 0x8;
/// Ping frame.
const PING: u8 = 0x9;
/// Pong frame.
const PONG: u8 = 0xA;

/// Initial size of a connection's read buffer.
const INITIAL_BUFFER: usize = 4096;
/// Largest the buffer grows to for reading (a single larger frame still fits: it grows to it).
const MAX_READ_BUFFER: usize = 64 * 1024;
/// Free room asked for before every read.
const MIN_READ: usize = 1024;
/// Largest message accepted (a bench frame is a few hundred bytes).
const MAX_MESSAGE: usize = 64 << 20;

/// One complete server message or control frame, borrowed from the reader's buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A text message (not checked for UTF-8).
    Text(&'a [u8]),
    /// A binary message.
    Binary(&'a [u8]),
    /// A ping, with its payload (to echo in the pong).
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame, with its payload (status code and reason).
    Close(&'a [u8]),
}

/// A frame's header: FIN, opcode, header length and payload length.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// Last frame of its message.
    fin: bool,
    /// Opcode.
    opcode: u8,
    /// Header bytes.
    len: usize,
    /// Payload bytes.
    payload: usize,
}

/// Parses the header at the start of `b`: `Ok(None)` if more bytes are needed (`want` set to how
/// many, at least).
fn head(b: &[u8], want: &mut usize) -> anyhow::Result<Option<Head>> {
    let [b0, b1, ..] = *b else {
        *want = 2;
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        bail!("reserved bits set in a server frame ({b0:#04x})");
    }
    if b1 & 0x80 != 0 {
        bail!("masked server frame");
    }
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
    let (len, payload) = match b1 & 0x7f {
        126 => match b.get(2..4) {
            Some(l) => (4, u16::from_be_bytes([l[0], l[1]]) as usize),
            None => {
                *want = 4;
                return Ok(None);
            }
        },
        127 => match b.get(2..10) {
            Some(l) => {
                let n = u64::from_be_bytes(l.try_into().expect("8 bytes"));
                if n > MAX_MESSAGE as u64 {
                    bail!("frame of {n} bytes");
                }
                (10, n as usize)
            }
            None => {
                *want = 10;
                return Ok(None);
            }
        },
        n => (2, n as usize),
    };
    match opcode {
        CONTINUATION | TEXT | BINARY => {}
        CLOSE | PING | PONG if fin && payload <= 125 => {}
        CLOSE | PING | PONG => bail!("fragmented or long control frame"),
        _ => bail!("unknown opcode {opcode:#x}"),
    }
    Ok(Some(Head { fin, opcode, len, payload }))
}

/// The server → client half: a reusable read buffer and the frames parsed from it.
#[derive(Debug, Default)]
pub struct FrameReader {
    /// Storage; bytes `start..end` are read and not yet parsed.
    buf: Vec<u8>,
    /// First unparsed byte.
    start: usize,
    /// End of the bytes read.
    end: usize,
    /// Bytes from `start` needed before the next frame can be parsed (0: unknown).
    want: usize,
    /// A fragmented message being assembled: its opcode and its bytes so far.
    frag_op: Option<u8>,
    /// The fragmented message's bytes.
    frag: Vec<u8>,
    /// `frag` was handed out complete: clear it on the next call.
    frag_done: bool,
}

impl FrameReader {
    /// A reader with no buffer yet (allocated on the first [`FrameReader::spare`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Room to read into (at least 1 KiB, and enough for the frame being waited
    /// for); call [`FrameReader::filled`] with the number of bytes read.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        let pending = self.end - self.start;
        let room = self.want.saturating_sub(pending).max(MIN_READ);
        if self.buf.len() - self.end < room {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, pending);
            }
            let size = (self.end + room).max(INITIAL_BUFFER).max(self.buf.len());
            self.buf.resize(size, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Records `n` bytes read into [`FrameReader::spare`]. A read that filled all the room
    /// doubles the buffer (up to 64 KiB), so that the next read takes more at once.
    pub fn filled(&mut self, n: usize) {
        let room = self.buf.len() - self.end;
        self.end += n.min(room);
        if n >= room && self.buf.len() < MAX_READ_BUFFER {
            let size = (self.buf.len() * 2).min(MAX_READ_BUFFER);
            self.buf.resize(size, 0);
        }
    }

    /// Copies `bytes` in, as if read.
    pub fn push(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(rest.len());
            spare[..n].copy_from_slice(&rest[..n]);
            self.filled(n);
            rest = &rest[n..];
        }
    }

    /// The bytes read and not parsed (the upgrade response is read through here too).
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops the first `n` pending bytes.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.end - self.start);
        self.want = 0;
    }

    /// The next complete message or control frame, `Ok(None)` if more bytes must be read first.
    /// Fragments are assembled (control frames between them are returned as they come).
    pub fn next_event(&mut self) -> anyhow::Result<Option<Event<'_>>> {
        if self.frag_done {
            self.frag.clear();
            self.frag_done = false;
        }
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.len() < self.want {
                return Ok(None);
            }
            let Some(h) = head(avail, &mut self.want)? else {
                return Ok(None);
            };
            let total = h.len + h.payload;
            if avail.len() < total {
                self.want = total;
                return Ok(None);
            }
            self.want = 0;
            let payload = self.start + h.len..self.start + total;
            self.start += total;
            match (h.opcode, self.frag_op) {
                (TEXT, None) if h.fin => return Ok(Some(Event::Text(&self.buf[payload]))),
                (BINARY, None) if h.fin => return Ok(Some(Event::Binary(&self.buf[payload]))),
                (TEXT | BINARY, None) => {
                    self.frag_op = Some(h.opcode);
                    self.frag.extend_from_slice(&self.buf[payload]);
                }
                (TEXT | BINARY, Some(_)) => bail!("a new message inside a fragmented one"),
                (CONTINUATION, None) => bail!("continuation frame outside a fragmented message"),
                (CONTINUATION, Some(op)) => {
                    if self.frag.len() + h.payload > MAX_MESSAGE {
                        bail!("message over {MAX_MESSAGE} bytes");
                    }
                    self.frag.extend_from_slice(&self.buf[payload]);
                    if h.fin {
                        self.frag_op = None;
                        self.frag_done = true;
                        return Ok(Some(if op == TEXT {
                            Event::Text(&self.frag)
                        } else {
                            Event::Binary(&self.frag)
                        }));
                    }
                }
                (PING, _) => return Ok(Some(Event::Ping(&self.buf[payload]))),
                (PONG, _) => return Ok(Some(Event::Pong)),
                (_, _) => return Ok(Some(Event::Close(&self.buf[payload]))),
            }
        }
    }
}

/// A mask key (RFC 6455 asks for unpredictable ones, against cache poisoning by proxies; here it
/// only has to vary): splitmix64 over a process-wide counter seeded by the clock.
fn mask_key() -> [u8; 4] {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let s = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    let mut z = s.wrapping_add(crate::clock::unix_ns());
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) as u32).to_be_bytes()
}

/// Appends a masked client frame (FIN set) to `out`.
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// A client WebSocket on a raw TCP stream, or on TLS over one (`wss://`).
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    tcp: Stream,
    /// What was read from it.
    reader: FrameReader,
    /// Frames to write (pongs, texts), reused.
    out: Vec<u8>,
}

impl Conn {
    /// Upgrades `tcp` (connected to 127.0.0.1:`port`, TLS done if any) to a WebSocket at `path`,
    /// asking for `protocol` if given; checks the 101 answer and its `Sec-WebSocket-Accept`.
    /// Bytes after the response (frames the server sent at once) stay in the reader.
    pub async fn upgrade(
        mut tcp: Stream,
        port: u16,
        path: &str,
        protocol: Option<&str>,
    ) -> anyhow::Result<Self> {
        let key = generate_key();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
        );
        if let Some(p) = protocol {
            request.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await?;
        tcp.flush().await?;
        let mut reader = FrameReader::new();
        let head_len = loop {
            if let Some(at) = reader.pending().windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if reader.pending().len() > 16 * 1024 {
                bail!("upgrade response too long");
            }
            let n = tcp.read(reader.spare()).await?;
            if n == 0 {
                bail!("connection closed during the upgrade");
            }
            reader.filled(n);
        };
        let response = std::str::from_utf8(&reader.pending()[..head_len]).context("upgrade response")?;
        let mut lines = response.split("\r\n");
        let status = lines.next().unwrap_or("");
        if !status.starts_with("HTTP/1.1 101") {
            bail!("upgrade refused: {status}");
        }
        let accept = lines.filter_map(|l| l.split_once(':')).find_map(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept").then(|| value.trim())
        });
        if accept != Some(derive_accept_key(key.as_bytes()).as_str()) {
            bail!("wrong Sec-WebSocket-Accept: {accept:?}");
        }
        reader.consume(head_len);
        Ok(Self { tcp, reader, out: Vec::new() })
    }

    /// Sends text frames, in one write, flushed.
    pub async fn send_texts(&mut self, texts: &[&str]) -> anyhow::Result<()> {
        self.out.clear();
        for t in texts {
            encode(&mut self.out, TEXT, t.as_bytes(), mask_key());
        }
        self.write_out().await?;
        Ok(())
    }

    /// Writes `out`, then flushes: over TLS, a write that finds the socket not ready (or the
    /// task's cooperative budget spent) leaves the encrypted bytes in rustls, which sends them
    /// only at the next write or flush. Without the flush a `~hello` or a subscription could wait
    /// there forever while the connection waits for the reply (seen as rare 20–30 s time-outs
    /// of the workers' connections under load). A no-op on TCP.
    async fn write_out(&mut self) -> std::io::Result<()> {
        self.tcp.write_all(&self.out).await?;
        self.tcp.flush().await
    }

    /// The next text message (pings answered; a close frame or the end is an error).
    pub async fn next_text(&mut self) -> anyhow::Result<String> {
        loop {
            self.out.clear();
            let mut text = None;
            while let Some(ev) = self.reader.next_event()? {
                match ev {
                    Event::Text(t) => {
                        text = Some(String::from_utf8(t.to_vec()).context("text frame")?);
                        break;
                    }
                    Event::Ping(p) => encode(&mut self.out, PONG, p, mask_key()),
                    Event::Close(c) => bail!("closed by the server: {}", String::from_utf8_lossy(c)),
                    Event::Binary(_) | Event::Pong => {}
                }
            }
            if !self.out.is_empty() {
                self.write_out().await?;
            }
            if let Some(t) = text {
                return Ok(t);
            }
            let n = self.tcp.read(self.reader.spare()).await?;
            if n == 0 {
                bail!("connection ended");
            }
            self.reader.filled(n);
        }
    }

    /// Reads until the connection ends or fails, calling `on_text` with every text message;
    /// answers WebSocket pings, and Engine.IO pings (`2` → `3`) if `eio_pings`. One read per
    /// readiness takes everything available (up to the buffer's size); writes happen only for
    /// pongs.
    pub async fn read_all(mut self, eio_pings: bool, mut on_text: impl FnMut(&[u8])) {
        loop {
            self.out.clear();
            let mut stop = false;
            loop {
                match self.reader.next_event() {
                    Ok(Some(Event::Text(t))) => {
                        if eio_pings && t == b"2" {
                            encode(&mut self.out, TEXT, b"3", mask_key());
                        } else {
                            on_text(t);
                        }
                    }
                    Ok(Some(Event::Ping(p))) => encode(&mut self.out, PONG, p, mask_key()),
                    Ok(Some(Event::Close(c))) => {
                        // Echo the status code (RFC 6455 §5.5.1), then stop.
                        encode(&mut self.out, CLOSE, c.get(..2).unwrap_or(&[]), mask_key());
                        stop = true;
                        break;
                    }
                    Ok(Some(Event::Binary(_) | Event::Pong)) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            if !self.out.is_empty() && self.write_out().await.is_err() {
                return;
            }
            if stop {
                return;
            }
            match self.tcp.read(self.reader.spare()).await {
                Ok(0) | Err(_) => return,
                Ok(n) => self.reader.filled(n),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked server frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(n as u8),
            n @ 126..=0xffff => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    /// Owned events, to compare.
    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Text(Vec<u8>),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong,
        Close(Vec<u8>),
    }

    /// Every event of `r` now.
    fn drain(r: &mut FrameReader) -> Vec<Owned> {
        let mut v = vec![];
        while let Some(e) = r.next_event().unwrap() {
            v.push(match e {
                Event::Text(t) => Owned::Text(t.to_vec()),
                Event::Binary(t) => Owned::Binary(t.to_vec()),
                Event::Ping(t) => Owned::Ping(t.to_vec()),
                Event::Pong => Owned::Pong,
                Event::Close(t) => Owned::Close(t.to_vec()),
            });
        }
        v
    }

    /// Feeds `bytes` in chunks of `step` bytes, collecting the events.
    fn feed(bytes: &[u8], step: usize) -> Vec<Owned> {
        let mut r = FrameReader::new();
        let mut v = vec![];
        for chunk in bytes.chunks(step) {
            r.push(chunk);
            v.extend(drain(&mut r));
        }
        assert!(r.pending().is_empty());
        v
    }

    #[test]
    fn lengths_7_16_64_bits_whatever_the_reads() {
        let short = vec![b'a'; 125];
        let medium = vec![b'b'; 126];
        let medium2 = vec![b'c'; 65_535];
        let long = vec![b'd'; 70_000];
        let mut bytes = frame(true, TEXT, b"");
        for p in [&short, &medium, &medium2, &long] {
            bytes.extend(frame(true, TEXT, p));
        }
        bytes.extend(frame(true, BINARY, b"\x00\xff"));
        let want = vec![
            Owned::Text(vec![]),
            Owned::Text(short),
            Owned::Text(medium),
            Owned::Text(medium2),
            Owned::Text(long),
            Owned::Binary(vec![0, 255]),
        ];
        for step in [1, 2, 3, 7, 100, 4096, 1 << 20] {
            assert_eq!(feed(&bytes, step), want, "reads of {step} bytes");
        }
    }

    #[test]
    fn a_64_bit_length_for_a_short_payload_is_read() {
        let mut bytes = vec![0x81, 127];
        bytes.extend_from_slice(&5u64.to_be_bytes());
        bytes.extend_from_slice(b"hello");
        assert_eq!(feed(&bytes, 1), vec![Owned::Text(b"hello".to_vec())]);
        assert_eq!(feed(&bytes, 64), vec![Owned::Text(b"hello".to_vec())]);
    }

    #[test]
    fn fragmented_messages_with_control_frames_between() {
        let mut bytes = frame(false, TEXT, b"#00000");
        bytes.extend(frame(true, PING, b"p1"));
        bytes.extend(frame(false, CONTINUATION, b"00004"));
        bytes.extend(frame(true, CONTINUATION, b"2#xx"));
        bytes.extend(frame(true, TEXT, b"after"));
        bytes.extend(frame(false, BINARY, b"b1"));
        bytes.extend(frame(true, CONTINUATION, b"b2"));
        bytes.extend(frame(true, PONG, b""));
        bytes.extend(frame(true, CLOSE, &[0x03, 0xe8, b'b', b'y', b'e']));
        let want = vec![
            Owned::Ping(b"p1".to_vec()),
            Owned::Text(b"#00000000042#xx".to_vec()),
            Owned::Text(b"after".to_vec()),
            Owned::Binary(b"b1b2".to_vec()),
            Owned::Pong,
            Owned::Close(vec![0x03, 0xe8, b'b', b'y', b'e']),
        ];
        for step in [1, 5, 1000] {
            assert_eq!(feed(&bytes, step), want, "reads of {step} bytes");
        }
    }

    #[test]
    fn protocol_errors() {
        let bad = |bytes: &[u8]| {
            let mut r = FrameReader::new();
            r.push(bytes);
            r.next_event().is_err()
        };
        assert!(bad(&[0x81, 0x81, 0, 0, 0, 0, b'x'])); // masked
        assert!(bad(&[0xc1, 0x01, b'x'])); // RSV1
        assert!(bad(&[0x83, 0x00])); // opcode 3
        assert!(bad(&[0x09, 0x00])); // fragmented ping
        assert!(bad(&[0x80, 0x00])); // continuation without a start
        assert!(bad(&[0x01, 0x01, b'a', 0x81, 0x00])); // text inside a fragmented text
        let mut long_ping = vec![0x89, 126, 0, 126];
        long_ping.extend([0; 126]);
        assert!(bad(&long_ping));
    }

    #[test]
    fn client_frames_are_masked() {
        let mask = [1, 2, 3, 4];
        for len in [0, 3, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = vec![];
            encode(&mut out, TEXT, &payload, mask);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0x80);
            // Unmask and read it as a server frame.
            let at = match out[1] & 0x7f {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            let mut server = out[..at].to_vec();
            server[1] &= 0x7f;
            assert_eq!(&out[at..at + 4], &mask);
            server.extend(out[at + 4..].iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
            assert_eq!(feed(&server, 1000), vec![Owned::Text(payload)]);
        }
        assert_ne!(mask_key(), mask_key());
    }

    #[tokio::test]
    async fn upgrade_then_frames_sent_with_the_response() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = vec![0; 4096];
            let mut n = 0;
            while !req[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                n += s.read(&mut req[n..]).await.unwrap();
            }
            let req = String::from_utf8_lossy(&req[..n]).into_owned();
            assert!(req.contains("Sec-WebSocket-Protocol: wse-default-json\r\n"));
            let key = req.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
            let mut resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.trim().as_bytes())
            )
            .into_bytes();
            // Frames in the same segment as the response, one of them split.
            resp.extend(frame(true, PING, b"hb"));
            resp.extend(frame(true, TEXT, b"first"));
            let second = frame(true, TEXT, b"#0000000007#");
            resp.extend(&second[..3]);
            s.write_all(&resp).await.unwrap();
            // The pong to the ping, masked.
            let mut pong = [0u8; 8];
            s.read_exact(&mut pong).await.unwrap();
            assert_eq!(pong[0], 0x8a);
            assert_eq!(pong[1], 0x82);
            assert_eq!([pong[6] ^ pong[2], pong[7] ^ pong[3]], *b"hb");
            s.write_all(&second[3..]).await.unwrap();
            s.write_all(&frame(true, TEXT, b"2")).await.unwrap();
            let mut eio_pong = [0u8; 7];
            s.read_exact(&mut eio_pong).await.unwrap();
            assert_eq!(eio_pong[6] ^ eio_pong[2], b'3');
            s.write_all(&frame(true, CLOSE, &[0x03, 0xe8])).await.unwrap();
            let mut close = [0u8; 8];
            s.read_exact(&mut close).await.unwrap();
            assert_eq!(close[0], 0x88);
        });
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut c = Conn::upgrade(Stream::Tcp(tcp), port, "/", Some("wse-default-json")).await.unwrap();
        assert_eq!(c.next_text().await.unwrap(), "first");
        let mut texts = vec![];
        c.read_all(true, |t| texts.push(t.to_vec())).await;
        assert_eq!(texts, vec![b"#0000000007#".to_vec()]);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn upgrade_and_frames_over_tls() {
        let dir = std::env::temp_dir().join(format!("switchboard-bench-lean-tls-{}", std::process::id()));
        let pki = crate::tls::Pki::generate(&dir).unwrap();
        let acceptor =
            tokio_rustls::TlsAcceptor::from(crate::tls::server_config(&pki.cert, &pki.key).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut s = acceptor.accept(tcp).await.unwrap();
            let mut req = vec![0; 4096];
            let mut n = 0;
            while !req[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                n += s.read(&mut req[n..]).await.unwrap();
            }
            let req = String::from_utf8_lossy(&req[..n]).into_owned();
            assert!(req.starts_with("GET /ws HTTP/1.1\r\n"), "{req}");
            let key = req.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
            let mut resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.trim().as_bytes())
            )
            .into_bytes();
            resp.extend(frame(true, TEXT, b"hello over tls"));
            resp.extend(frame(true, PING, b"p"));
            s.write_all(&resp).await.unwrap();
            s.flush().await.unwrap();
            // The client's text frame, then its pong, masked.
            let mut got = [0u8; 6 + 2 + 6 + 1];
            s.read_exact(&mut got).await.unwrap();
            assert_eq!(&got[..2], &[0x81, 0x82]);
            assert_eq!([got[6] ^ got[2], got[7] ^ got[3]], *b"hi");
            assert_eq!(&got[8..10], &[0x8a, 0x81]);
            assert_eq!(got[14] ^ got[10], b'p');
            s.write_all(&frame(true, TEXT, b"#0000000009#")).await.unwrap();
            s.write_all(&frame(true, CLOSE, &[0x03, 0xe8])).await.unwrap();
            s.flush().await.unwrap();
            let mut close = [0u8; 8];
            s.read_exact(&mut close).await.unwrap();
            assert_eq!(close[0], 0x88);
        });
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let tls = Stream::connect(tcp, Some(&pki.client)).await.unwrap();
        let mut c = Conn::upgrade(tls, port, "/ws", None).await.unwrap();
        assert_eq!(c.next_text().await.unwrap(), "hello over tls");
        c.send_texts(&["hi"]).await.unwrap();
        let mut texts = vec![];
        c.read_all(false, |t| texts.push(t.to_vec())).await;
        assert_eq!(texts, vec![b"#0000000009#".to_vec()]);
        server.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
