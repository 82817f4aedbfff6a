//! `Switchboard::serve`'s own HTTP/1.1 upgrade and WebSocket, over raw sockets: the HTTP
//! answers, the handshake, control frames, fragmentation and RFC 6455 violations.

mod common;

use std::net::SocketAddr;

use common::WAIT;
use switchboard::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Sends `raw`, returns the response head (and leaves the socket after it).
async fn exchange(addr: SocketAddr, raw: &[u8]) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(raw).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut byte)).await.unwrap().unwrap();
        assert_eq!(n, 1, "the server closed before the end of its answer: {head:?}");
        head.push(byte[0]);
    }
    (tcp, String::from_utf8(head).unwrap())
}

async fn status(addr: SocketAddr, raw: &str) -> u16 {
    let (_, head) = exchange(addr, raw.as_bytes()).await;
    head[9..12].parse().unwrap()
}

/// A masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1, 2, 3, 4];
    assert!(payload.len() < 126);
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one (unmasked, short) server frame: its first byte and payload.
async fn read_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0; 2];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut head)).await.unwrap().unwrap();
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = usize::from(head[1]);
    assert!(len < 126);
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await.unwrap();
    (head[0], payload)
}

#[tokio::test]
async fn http_answers_match_the_router() {
    let (_board, addr) = common::simple_server(Config::default()).await;
    assert_eq!(status(addr, &request("/other", "")).await, 404);
    assert_eq!(status(addr, "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").await, 405);
    assert_eq!(status(addr, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await, 400);
    assert_eq!(status(addr, &request("/ws", "").replace("Version: 13", "Version: 8")).await, 400);
    assert_eq!(status(addr, &request("/ws", "").replace("Sec-WebSocket-Key", "X-Key")).await, 400);
    assert_eq!(status(addr, &request("/ws", "Sec-WebSocket-Protocol: chat.v9\r\n")).await, 400);
    assert_eq!(status(addr, "NOT HTTP\r\n\r\n").await, 400);
    let (_, head) = exchange(
        addr,
        request("/ws?x=1", "Sec-WebSocket-Protocol: x, switchboard.v1.msgpack\r\n").as_bytes(),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    assert!(head.contains("sec-websocket-protocol: switchboard.v1.msgpack\r\n"), "{head}");
    let (_, head) = exchange(addr, request("/ws", "").as_bytes()).await;
    assert!(!head.contains("sec-websocket-protocol"), "none offered, none chosen: {head}");
}

#[tokio::test]
async fn pings_fragments_and_a_frame_sent_with_the_request() {
    let (_board, addr) = common::simple_server(Config::default()).await;
    let mut raw = request("/ws", "").into_bytes();
    raw.extend(frame(0x81, br#"["~ping",null,1]"#));
    let (mut tcp, _) = exchange(addr, &raw).await;
    assert_eq!(read_frame(&mut tcp).await, (0x81, br#"["~ok",null,1]"#.to_vec()));
    // A ping between the fragments of a text message: the pong comes first.
    let mut raw = frame(0x01, br#"["~pi"#);
    raw.extend(frame(0x89, b"hi"));
    raw.extend(frame(0x00, "ng\",\"é".as_bytes()));
    raw.extend(frame(0x80, br#"",2]"#));
    tcp.write_all(&raw).await.unwrap();
    assert_eq!(read_frame(&mut tcp).await, (0x8A, b"hi".to_vec()));
    assert_eq!(read_frame(&mut tcp).await, (0x81, br#"["~ok",null,2]"#.to_vec()));
    // A close is answered with the same code.
    tcp.write_all(&frame(0x88, &4000u16.to_be_bytes())).await.unwrap();
    assert_eq!(read_frame(&mut tcp).await, (0x88, 4000u16.to_be_bytes().to_vec()));
}

#[tokio::test]
async fn violations_close_with_1002_and_oversized_messages_with_1009() {
    let mut config = Config::default();
    config.max_message_size = 100;
    let (_board, addr) = common::simple_server(config).await;
    for bad in [frame(0xC1, b"[]"), frame(0x83, b""), frame(0x80, b"x"), vec![0x81, 0x02, b'[', b']']] {
        let (mut tcp, _) = exchange(addr, request("/ws", "").as_bytes()).await;
        tcp.write_all(&bad).await.unwrap();
        let (first, payload) = read_frame(&mut tcp).await;
        assert_eq!((first, &payload[..2]), (0x88, &1002u16.to_be_bytes()[..]), "{bad:?}");
    }
    let (mut tcp, _) = exchange(addr, request("/ws", "").as_bytes()).await;
    // Only the header of a 1,000-byte frame: refused before its payload.
    tcp.write_all(&[0x81, 0x80 | 126, 0x03, 0xE8, 1, 2, 3, 4]).await.unwrap();
    let (first, payload) = read_frame(&mut tcp).await;
    assert_eq!((first, &payload[..2]), (0x88, &1009u16.to_be_bytes()[..]));
}
