//! The codec of `io/ws`: frames, fragments, masking, limits, UTF-8, control and close frames,
//! and the transport over an in-memory stream.

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::decode::*;
use super::opcode::*;
use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `fin`, `opcode`, masked with `MASK`.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(fin) << 7 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

fn text(fin: bool, payload: &[u8]) -> Vec<u8> {
    frame(fin, OP_TEXT, payload)
}

fn cont(fin: bool, payload: &[u8]) -> Vec<u8> {
    frame(fin, OP_CONTINUATION, payload)
}

fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    frame(true, OP_CLOSE, &payload)
}

/// Every event in `input`, fed all at once.
fn events(max: usize, input: &[u8]) -> Vec<Event> {
    let mut d = Decoder::new(max);
    d.extend(input);
    std::iter::from_fn(|| d.decode()).collect()
}

/// Every event in `input`, fed one byte at a time.
fn events_bytewise(max: usize, input: &[u8]) -> Vec<Event> {
    let mut d = Decoder::new(max);
    let mut out = Vec::new();
    for b in input {
        d.extend(std::slice::from_ref(b));
        while let Some(e) = d.decode() {
            out.push(e);
        }
    }
    out
}

fn msg(s: &str) -> Event {
    Event::Message { bytes: Bytes::copy_from_slice(s.as_bytes()), binary: false }
}

#[test]
fn masked_frames_of_every_length_encoding() {
    for n in [0, 1, 3, 4, 5, 125, 126, 127, 65535, 65536, 100_000] {
        let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let got = events(1 << 20, &frame(true, OP_BINARY, &payload));
        assert_eq!(got, vec![Event::Message { bytes: Bytes::from(payload), binary: true }], "length {n}");
    }
}

#[test]
fn several_frames_in_one_read_and_byte_by_byte() {
    let mut input = text(true, b"[\"a\"]");
    input.extend(frame(true, OP_PING, b"hi"));
    input.extend(frame(true, OP_BINARY, &[1, 2, 3]));
    input.extend(frame(true, OP_PONG, b""));
    let expected = vec![
        msg("[\"a\"]"),
        Event::Ping(Bytes::from_static(b"hi")),
        Event::Message { bytes: Bytes::from_static(&[1, 2, 3]), binary: true },
        Event::Pong,
    ];
    assert_eq!(events(1024, &input), expected);
    assert_eq!(events_bytewise(1024, &input), expected);
}

#[test]
fn unmasked_client_frames_are_refused() {
    let got = events(1024, &[0x81, 0x02, b'h', b'i']);
    assert_eq!(got.first(), Some(&Event::Fail(PROTOCOL_ERROR, "unmasked client frame")));
}

#[test]
fn reserved_bits_and_unknown_opcodes_are_refused() {
    for first in [0xC1, 0xA1, 0x91, 0x83, 0x87, 0x8B, 0x8F] {
        let mut f = text(true, b"x");
        f[0] = first;
        assert!(matches!(events(1024, &f)[..], [Event::Fail(PROTOCOL_ERROR, _)]), "first byte {first:#x}");
    }
}

#[test]
fn fragments_are_joined_with_control_frames_between_them() {
    let mut input = text(false, b"[\"he");
    input.extend(frame(true, OP_PING, b"p"));
    input.extend(cont(false, b"ll"));
    input.extend(frame(true, OP_PONG, b""));
    input.extend(cont(true, b"o\"]"));
    let expected = vec![Event::Ping(Bytes::from_static(b"p")), Event::Pong, msg("[\"hello\"]")];
    assert_eq!(events(1024, &input), expected);
    assert_eq!(events_bytewise(1024, &input), expected);
}

#[test]
fn fragmented_binary_and_empty_fragments() {
    let mut input = frame(false, OP_BINARY, b"");
    input.extend(cont(false, &[1]));
    input.extend(cont(false, b""));
    input.extend(cont(true, &[2]));
    let expected = vec![Event::Message { bytes: Bytes::from_static(&[1, 2]), binary: true }];
    assert_eq!(events(1024, &input), expected);
}

#[test]
fn fragmentation_errors() {
    assert_eq!(
        events(1024, &cont(true, b"x")),
        vec![Event::Fail(PROTOCOL_ERROR, "continuation frame without a message")]
    );
    let mut input = text(false, b"a");
    input.extend(text(true, b"b"));
    assert_eq!(
        events(1024, &input),
        vec![Event::Fail(PROTOCOL_ERROR, "new message inside a fragmented one")]
    );
    let fragmented_ping = frame(false, OP_PING, b"");
    assert_eq!(events(1024, &fragmented_ping), vec![Event::Fail(PROTOCOL_ERROR, "fragmented control frame")]);
    let long_ping = frame(true, OP_PING, &[0; 126]);
    assert_eq!(
        events(1024, &long_ping),
        vec![Event::Fail(PROTOCOL_ERROR, "control frame longer than 125 bytes")]
    );
}

#[test]
fn utf8_split_across_fragments() {
    // "é" is C3 A9: split between fragments it is still text.
    let mut input = text(false, b"[\"\xC3");
    input.extend(cont(true, b"\xA9\"]"));
    assert_eq!(events(1024, &input), vec![msg("[\"é\"]")]);
    assert_eq!(events_bytewise(1024, &input), vec![msg("[\"é\"]")]);
    // A character started in one fragment and broken in the next.
    let mut input = text(false, b"\xC3");
    input.extend(cont(true, b"("));
    assert_eq!(events(1024, &input), vec![Event::InvalidText]);
    // Invalid in a fragment that is not the last: refused without waiting for the end.
    let mut input = text(false, b"ok\xFF");
    input.extend(cont(true, b"x"));
    assert_eq!(events(1024, &input), vec![Event::InvalidText]);
    assert_eq!(events(1024, &text(false, b"ok\xFF")), vec![Event::InvalidText]);
    // A character cut short at the end of the message.
    let mut input = text(false, b"a");
    input.extend(cont(true, b"\xE2\x82"));
    assert_eq!(events(1024, &input), vec![Event::InvalidText]);
    // Unfragmented.
    assert_eq!(events(1024, &text(true, b"\xC0\xAF")), vec![Event::InvalidText]);
    // Binary is not checked.
    let mut input = frame(false, OP_BINARY, b"\xFF");
    input.extend(cont(true, b"\xC3"));
    assert_eq!(
        events(1024, &input),
        vec![Event::Message { bytes: Bytes::from_static(b"\xFF\xC3"), binary: true }]
    );
}

#[test]
fn the_size_limit_applies_to_the_message_before_its_payload_arrives() {
    assert_eq!(events(10, &text(true, b"0123456789")), vec![msg("0123456789")]);
    // Only the header of an oversized frame: refused at once.
    let big = text(true, &[b'a'; 11]);
    assert_eq!(events(10, &big[..6]), vec![Event::TooBig]);
    // Fragments adding up to more than the limit.
    let mut input = text(false, b"012345");
    input.extend(cont(true, b"6789X"));
    assert_eq!(events(10, &input), vec![Event::TooBig]);
    // A frame announcing 2^63 - 1 bytes.
    let mut huge = vec![0x82, 0xFF];
    huge.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    huge.extend_from_slice(&MASK);
    assert_eq!(events(10, &huge), vec![Event::TooBig]);
    huge[2] = 0x80;
    assert!(matches!(events(10, &huge)[..], [Event::Fail(PROTOCOL_ERROR, _)]));
}

#[test]
fn close_frames_and_codes() {
    assert_eq!(events(1024, &frame(true, OP_CLOSE, b"")), vec![Event::Close(None)]);
    for code in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4000, 4999] {
        assert_eq!(events(1024, &close(code, b"bye")), vec![Event::Close(Some(code))], "code {code}");
    }
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        assert_eq!(
            events(1024, &close(code, b"")),
            vec![Event::Fail(PROTOCOL_ERROR, "invalid close code")],
            "code {code}"
        );
    }
    assert_eq!(
        events(1024, &frame(true, OP_CLOSE, &[3])),
        vec![Event::Fail(PROTOCOL_ERROR, "close frame with a one-byte payload")]
    );
    assert_eq!(
        events(1024, &close(1000, b"\xFF")),
        vec![Event::Fail(INVALID_DATA, "close reason is not UTF-8")]
    );
}

#[test]
fn nothing_stays_allocated_between_messages() {
    let mut d = Decoder::new(1 << 20);
    let input = text(true, &[b'a'; 3000]);
    d.extend(&input[..100]);
    assert_eq!(d.decode(), None);
    assert!(d.buf.capacity() >= input.len(), "room for the rest of a small frame is reserved once");
    d.extend(&input[100..]);
    assert!(matches!(d.decode(), Some(Event::Message { .. })));
    assert_eq!(d.buf.capacity(), 0);
    assert!(d.partial.is_none());
}

#[test]
fn a_large_frame_announced_reserves_only_a_little_ahead_of_what_arrived() {
    let mut d = Decoder::new(1 << 20);
    let input = text(true, &[b'a'; 1 << 20]);
    d.extend(&input[..100]);
    assert_eq!(d.decode(), None);
    assert!(d.buf.capacity() < 64 * 1024, "{} bytes reserved for 100 received", d.buf.capacity());
    for chunk in input[100..].chunks(8192) {
        d.extend(chunk);
        let _ = d.decode();
    }
    assert_eq!(d.buf.capacity(), 0, "released once consumed");
}

fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

async fn read_exactly(peer: &mut tokio::io::DuplexStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    peer.read_exact(&mut buf).await.unwrap();
    buf
}

#[tokio::test]
async fn pings_are_answered_and_a_close_is_echoed() {
    let (io, mut peer) = tokio::io::duplex(1 << 16);
    let mut ws = WebSocket::new(io, 1024, b"");
    peer.write_all(&frame(true, OP_PING, b"abc")).await.unwrap();
    assert!(matches!(ws.recv().await, Inbound::Control));
    peer.write_all(&text(true, b"[1]")).await.unwrap();
    assert!(matches!(ws.recv().await, Inbound::Data { binary: false, .. }));
    assert_eq!(read_exactly(&mut peer, 5).await, server_frame(OP_PONG, b"abc"));
    peer.write_all(&close(4000, b"later")).await.unwrap();
    assert!(matches!(ws.recv().await, Inbound::Closed(_)));
    assert!(ws.flush().await);
    assert_eq!(read_exactly(&mut peer, 4).await, server_frame(OP_CLOSE, &4000u16.to_be_bytes()));
    // Our own close afterwards is not sent again.
    assert!(ws.feed(Outbound::Close(1000, ""), false).await);
    assert!(ws.flush().await);
    drop(ws);
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn frames_are_written_in_batches_with_the_right_headers() {
    let (io, mut peer) = tokio::io::duplex(1 << 20);
    let mut ws = WebSocket::new(io, 1024, b"");
    let big = Bytes::from(vec![7u8; 70_000]);
    let mid = Bytes::from(vec![8u8; 300]);
    assert!(ws.feed(Outbound::Data(Bytes::from_static(b"[\"a\"]")), false).await);
    // Shared payloads: a small one is copied, a large one is kept (one more reference).
    assert!(ws.feed(Outbound::Shared(&mid), true).await);
    assert!(ws.feed(Outbound::Shared(&big), true).await);
    assert!(ws.feed(Outbound::Ping, true).await);
    let reason = "é".repeat(100);
    assert!(ws.feed(Outbound::Close(4501, &reason), true).await);
    assert!(ws.flush().await);
    let mut expected = server_frame(OP_TEXT, b"[\"a\"]");
    expected.extend(server_frame(OP_BINARY, &mid));
    expected.extend(server_frame(OP_BINARY, &big));
    expected.extend(server_frame(OP_PING, b""));
    // The reason is cut to 123 bytes at a character boundary: 61 "é".
    let mut close_payload = 4501u16.to_be_bytes().to_vec();
    close_payload.extend_from_slice("é".repeat(61).as_bytes());
    expected.extend(server_frame(OP_CLOSE, &close_payload));
    assert_eq!(read_exactly(&mut peer, expected.len()).await, expected);
    assert!(ws.out.chunk.capacity() == 0 && ws.out.earlier.is_none(), "the buffers are let go once written");
}

#[tokio::test]
async fn after_a_violation_input_is_drained_until_the_peer_leaves() {
    let (io, mut peer) = tokio::io::duplex(1 << 16);
    let mut ws = WebSocket::new(io, 1024, b"");
    let mut bad = text(true, b"x");
    bad[0] |= 0x40;
    peer.write_all(&bad).await.unwrap();
    assert!(matches!(ws.recv().await, Inbound::Refused(PROTOCOL_ERROR, _)));
    peer.write_all(b"anything at all").await.unwrap();
    assert!(matches!(ws.recv().await, Inbound::Control));
    drop(peer);
    assert!(matches!(ws.recv().await, Inbound::Closed(_)));
}

#[tokio::test]
async fn bytes_received_with_the_upgrade_request_are_decoded() {
    let (io, _peer) = tokio::io::duplex(1024);
    let mut ws = WebSocket::new(io, 1024, &text(true, b"[2]"));
    match ws.recv().await {
        Inbound::Data { bytes, binary: false } => assert_eq!(&bytes[..], b"[2]"),
        _ => panic!("expected the text frame"),
    }
}

/// A socket that takes at most `step` bytes per write, vectored or not, and records them.
struct Trickle {
    step: usize,
    vectored: bool,
    written: Vec<u8>,
}

impl AsyncRead for Trickle {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.step);
        self.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut n = 0;
        for buf in bufs {
            let take = buf.len().min(self.step - n);
            self.written.extend_from_slice(&buf[..take]);
            n += take;
            if n == self.step {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn partial_writes_resume_where_they_stopped() {
    for vectored in [true, false] {
        // Small frames go out copied into one write, large ones (over `COPY_MAX`) vectored.
        for (step, size) in [1, 3, 7, 200, 10_000].into_iter().flat_map(|step| [(step, 7), (step, 37)]) {
            let mut ws = WebSocket::new(Trickle { step, vectored, written: Vec::new() }, 1024, b"");
            let mut expected = Vec::new();
            for i in 0..200usize {
                let payload = Bytes::from(vec![i as u8; i * size]);
                expected.extend(server_frame(OP_BINARY, &payload));
                assert!(ws.feed(Outbound::Data(payload), true).await);
            }
            assert!(ws.flush().await);
            assert_eq!(ws.io.written, expected, "step {step}, vectored {vectored}");
            assert!(ws.out.is_empty() && ws.out.chunk.capacity() == 0 && ws.out.earlier.is_none());
        }
    }
}

#[tokio::test]
async fn nothing_is_read_while_pongs_wait_for_the_socket() {
    // A peer that sends pings and never reads: once the pipe toward it is full, the transport
    // stops reading, so what it holds stays one pong, whatever the peer sends.
    let (server, mut peer) = tokio::io::duplex(1024);
    let mut ws = WebSocket::new(server, 1024, b"");
    let ping = frame(true, OP_PING, &[b'p'; 125]);
    let flood: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 200).collect();
    let writer = tokio::spawn(async move {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), peer.write_all(&flood)).await;
        peer
    });
    let mut answered = 0;
    while let Ok(Inbound::Control) =
        tokio::time::timeout(std::time::Duration::from_millis(200), ws.recv()).await
    {
        answered += 1;
    }
    assert!(answered < 40, "{answered} pings taken while their pongs could not be written");
    assert!(ws.out.chunk.len() - ws.out.offset <= 127 + 127, "one pong or two waiting, no more");
    let _peer = writer.await.unwrap();
}
