//! RFC 6455 to the letter on every socket path (issue 16), with the real session behind it:
//! `serve()` and the axum `router()` answer the same — 1007 for text that is not UTF-8 (was 4501),
//! a 1002 close frame before TCP is dropped for framing violations (the router path dropped TCP
//! without one), and a valid close code such as 1014 answered with itself (the router path
//! answered 1002). Autobahn|Testsuite runs on both paths in `scripts/autobahn.sh`.

mod common;

use std::net::SocketAddr;

use common::raw::{close_frame, frame, upgraded};
use common::simple_server;
use switchboard::Config;
use tokio::io::AsyncWriteExt;

/// Both paths of one server: `serve()`'s address and the router's.
async fn paths() -> [(&'static str, SocketAddr); 2] {
    let (board, serve) = simple_server(Config::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let router = listener.local_addr().unwrap();
    let app = board.router().into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    [("serve()", serve), ("router()", router)]
}

/// Sends `bytes` after the upgrade; the close frame the server answers with.
async fn answer(addr: SocketAddr, bytes: &[u8]) -> Option<(u16, String)> {
    let mut tcp = upgraded(addr).await;
    tcp.write_all(bytes).await.unwrap();
    close_frame(&mut tcp).await
}

fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    frame(0x88, &payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_is_not_utf8_closes_with_1007() {
    for (path, addr) in paths().await {
        let bad_text = frame(0x81, b"[\"~ping\xff\",null]");
        assert_eq!(answer(addr, &bad_text).await.map(|c| c.0), Some(1007), "{path}: a text message");
        let mut fragments = frame(0x01, b"[\"ok");
        fragments.extend(frame(0x80, b"\xc0\xaf\"]"));
        assert_eq!(answer(addr, &fragments).await.map(|c| c.0), Some(1007), "{path}: a fragmented one");
        assert_eq!(
            answer(addr, &close(1000, b"\xff")).await.map(|c| c.0),
            Some(1007),
            "{path}: a close reason"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_violations_get_a_1002_close_frame_before_tcp_is_dropped() {
    let violations: [(&str, Vec<u8>); 9] = [
        ("RSV1", frame(0xC1, b"[]")),
        ("RSV3", frame(0x91, b"[]")),
        ("reserved data opcode", frame(0x83, b"")),
        ("reserved control opcode", frame(0x8B, b"")),
        ("oversized ping", frame(0x89, &[0; 126])),
        ("fragmented ping", frame(0x09, b"")),
        ("continuation without a message", frame(0x80, b"x")),
        ("new message inside a fragmented one", [frame(0x01, b"["), frame(0x81, b"[]")].concat()),
        ("one-byte close payload", frame(0x88, &[3])),
    ];
    for (path, addr) in paths().await {
        for (what, bytes) in &violations {
            assert_eq!(answer(addr, bytes).await.map(|c| c.0), Some(1002), "{path}: {what}");
        }
        // A frame that is not masked.
        assert_eq!(
            answer(addr, &[0x81, 0x02, b'[', b']']).await.map(|c| c.0),
            Some(1002),
            "{path}: unmasked"
        );
        // Close codes that may not appear on the wire.
        for code in [999u16, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert_eq!(
                answer(addr, &close(code, b"")).await.map(|c| c.0),
                Some(1002),
                "{path}: close {code}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_close_codes_are_answered_with_themselves() {
    for (path, addr) in paths().await {
        for code in [1000u16, 1001, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999] {
            assert_eq!(
                answer(addr, &close(code, b"bye")).await.map(|c| c.0),
                Some(code),
                "{path}: close {code}"
            );
        }
    }
}
