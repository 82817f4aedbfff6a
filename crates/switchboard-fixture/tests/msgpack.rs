//! Conformance: the `switchboard.v1.msgpack` subprotocol (protocol.md §1, §2): the same
//! messages as MessagePack in binary frames, and the framing errors of both codecs.
//!
//! Readings of protocol.md used here:
//! - "the same structure": a message is a MessagePack array; `type` is a MessagePack *str*
//!   (a *bin* type is a wrong element type → 4501); an id may use any MessagePack integer
//!   encoding (a uint16-encoded 5 is the id 5).
//! - "One frame carries exactly one message": a binary frame holding a valid message
//!   followed by more bytes is a protocol error (4501).
//! - JSON and MessagePack connections interoperate: what one sends reaches the other with the
//!   same structure.

mod common;

use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn hello_and_requests_over_msgpack() {
    let fx = Fixture::start();
    let mut c = Client::connect_msgpack(&fx).await;
    let w = c.identify("alice").await;
    assert_keys(&w, &["conn", "user", "ns", "data", "heartbeat"]);
    assert_eq!(w["user"], "alice");
    assert_eq!(w["ns"], "main");
    assert_eq!(w["data"], json!({"hello": "alice"}));
    assert_eq!(w["heartbeat"], 5000);
    let me = c.ok("whoami", Value::Null).await;
    assert_eq!(me, json!({"user": "alice", "conn": w["conn"], "ns": "main"}));
    assert_eq!(num(&c.ok("add", json!({"a": 2, "b": 40})).await), 42.0);
    let e = c.err("fail", Value::Null).await;
    assert_error_shape(&e);
    assert_eq!(e["code"], "TEAPOT");
    assert_eq!(e["message"], "I'm a teapot");
    c.err_code("add", json!({"a": "x", "b": 1}), "BAD_REQUEST").await;
    c.err_code("echo", json!({"forbidden": true}), "FORBIDDEN").await;
}

#[tokio::test]
async fn values_round_trip_over_msgpack() {
    let fx = Fixture::start();
    let mut c = Client::user_msgpack(&fx, "alice").await;
    for p in [
        Value::Null,
        json!(true),
        json!(0),
        json!(127),
        json!(128),
        json!(65_536),
        json!(-1),
        json!(-40_000),
        json!(MAX_ID),
        json!(2.5),
        json!("héllo ✓"),
        json!([1, [2, [3]]]),
        json!({"k": {"nested": [null, false, "s"]}}),
    ] {
        assert_eq!(c.ok("echo", p.clone()).await, p);
    }
}

#[tokio::test]
async fn anonymous_rules_over_msgpack() {
    let fx = Fixture::start();
    let mut c = Client::connect_msgpack(&fx).await;
    c.sync().await;
    assert_eq!(c.ok("status", Value::Null).await, json!({"ok": true}));
    c.err_code("echo", json!(1), "NOT_AUTHENTICATED").await;
}

#[tokio::test]
async fn unhandled_event_push_over_msgpack() {
    let fx = Fixture::start();
    let mut c = Client::user_msgpack(&fx, "alice").await;
    c.event("nope", json!(1)).await;
    let m = c.wait_type("~err").await;
    assert_eq!(m.as_array().map(Vec::len), Some(2));
    assert_code(&m[1], "NOT_FOUND");
    assert_eq!(m[1]["data"], json!({"type": "nope"}));
}

#[tokio::test]
async fn any_integer_encoding_is_an_id() {
    let fx = Fixture::start();
    let mut c = Client::user_msgpack(&fx, "alice").await;
    // ["~ping", nil, 5] with 5 as uint16 (0xcd 0x00 0x05).
    let mut frame = vec![0x93, 0xa5];
    frame.extend_from_slice(b"~ping");
    frame.extend_from_slice(&[0xc0, 0xcd, 0x00, 0x05]);
    c.send_binary(frame).await;
    assert_eq!(c.reply(5).await, json!(["~ok", null, 5]));
    // ... and as uint64 (0xcf).
    let mut frame = vec![0x93, 0xa5];
    frame.extend_from_slice(b"~ping");
    frame.extend_from_slice(&[0xc0, 0xcf, 0, 0, 0, 0, 0, 0, 0, 6]);
    c.send_binary(frame).await;
    assert_eq!(c.reply(6).await, json!(["~ok", null, 6]));
}

#[tokio::test]
async fn ask_over_msgpack() {
    let fx = Fixture::start();
    let mut c = Client::user_msgpack(&fx, "alice").await;
    let ask = c.request("ask", json!({"type": "q", "payload": {"x": 1}, "timeout_ms": 3000})).await;
    let m = c.wait_type("q").await;
    let sid = msg_id(&m).expect("server request id");
    assert_eq!(m, json!(["q", {"x": 1}, sid]));
    c.send(&json!(["~ok", [1, 2], sid])).await;
    assert_eq!(c.reply(ask).await, json!(["~ok", [1, 2], ask]));
}

#[tokio::test]
async fn json_and_msgpack_connections_interoperate() {
    let fx = Fixture::start();
    let mut mp = Client::user_msgpack(&fx, "mp").await;
    let mut js = Client::user(&fx, "js").await;
    let payload = json!({"n": -3, "f": 0.5, "s": "ß", "l": [true, null]});

    mp.ok("tell", json!({"user": "js", "type": "hey", "payload": payload})).await;
    assert_eq!(js.wait_type("hey").await, json!(["hey", payload]));
    js.ok("tell", json!({"user": "mp", "type": "ho", "payload": payload})).await;
    assert_eq!(mp.wait_type("ho").await, json!(["ho", payload]));

    mp.ok("~sub", json!({"topic": "chat/mixed"})).await;
    let r = js.ok("~pub", json!({"topic": "chat/mixed", "data": payload})).await;
    let m = mp.wait_type("~msg").await;
    assert_eq!(
        m,
        json!(["~msg", {
            "topic": "chat/mixed",
            "data": payload,
            "seq": r["seq"],
            "from": {"conn": js.conn, "user": "js"},
        }])
    );
}

/// Opens an identified msgpack connection, sends `frame` and returns the close code and
/// reason.
async fn close_after_binary(fx: &Fixture, frame: Vec<u8>) -> (u16, String) {
    let mut c = Client::user_msgpack(fx, "alice").await;
    // The server may stop reading an oversized frame part-way: the close is what counts.
    c.send_frame_lossy(Message::Binary(frame.into())).await;
    c.expect_close().await
}

#[tokio::test]
async fn malformed_msgpack_frames_close_4501() {
    let fx = Fixture::start();
    let str5 = |s: &str| {
        let mut v = vec![0xa0 | s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    };
    let mut ping_then_more = vec![0x93];
    ping_then_more.extend(str5("~ping"));
    ping_then_more.extend([0xc0, 0x01, 0x93]);
    ping_then_more.extend(str5("~ping"));
    ping_then_more.extend([0xc0, 0x02]);
    let mut bin_type = vec![0x93, 0xc4, 0x05];
    bin_type.extend_from_slice(b"~ping");
    bin_type.extend([0xc0, 0x01]);
    let mut id_zero = vec![0x93];
    id_zero.extend(str5("~ping"));
    id_zero.extend([0xc0, 0x00]);
    let mut id_neg = vec![0x93];
    id_neg.extend(str5("~ping"));
    id_neg.extend([0xc0, 0xff]);
    let mut id_float = vec![0x93];
    id_float.extend(str5("~ping"));
    id_float.extend([0xc0, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]); // 1.5
    let mut id_too_big = vec![0x93];
    id_too_big.extend(str5("~ping"));
    id_too_big.extend([0xc0, 0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 0]); // 2^53
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty frame", vec![]),
        ("never-used byte 0xc1", vec![0xc1]),
        ("truncated array", vec![0x93, 0xa5, b'~']),
        ("a map", mp_encode(&json_to_mp(&json!({"type": "~ping"})))),
        ("a string", mp_encode(&json_to_mp(&json!("~ping")))),
        ("an empty array", vec![0x90]),
        ("an integer type", mp_encode(&json_to_mp(&json!([1, null, 1])))),
        ("a bin type", bin_type),
        ("id 0", id_zero),
        ("id -1", id_neg),
        ("id 1.5", id_float),
        ("id 2^53", id_too_big),
        ("four elements", mp_encode(&json_to_mp(&json!(["~ping", null, 1, 2])))),
        ("two messages in one frame", ping_then_more),
    ];
    let mut failures = Vec::new();
    for (what, frame) in cases {
        let (code, reason) = close_after_binary(&fx, frame).await;
        if code != 4501 || reason.is_empty() {
            failures.push(format!("{what}: closed {code} {reason:?}"));
        }
    }
    assert!(failures.is_empty(), "expected 4501:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn text_frame_on_msgpack_connection_closes_4501() {
    let fx = Fixture::start();
    let mut c = Client::user_msgpack(&fx, "alice").await;
    c.send_text(r#"["~ping",null,1]"#).await;
    let reason = c.expect_close_code(4501).await;
    assert!(!reason.is_empty());
    // Anonymous too.
    let mut c = Client::connect_msgpack(&fx).await;
    c.send_text(r#"["~ping",null,1]"#).await;
    c.expect_close_code(4501).await;
}

#[tokio::test]
async fn binary_frame_on_json_connection_closes_4501() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.send_binary(mp_encode(&json_to_mp(&json!(["~ping", null, 1])))).await;
    let reason = c.expect_close_code(4501).await;
    assert!(!reason.is_empty());
}

#[tokio::test]
async fn oversized_msgpack_frame_closes_1009() {
    let fx = Fixture::start();
    let big = "x".repeat(70_000);
    let (code, reason) = close_after_binary(&fx, mp_encode(&json_to_mp(&json!(["echo", big, 1])))).await;
    assert_eq!(code, 1009, "reason {reason:?}");
}

#[tokio::test]
async fn unknown_subprotocol_is_refused_with_400() {
    let fx = Fixture::start();
    assert_eq!(upgrade_status(&fx.url(), &["switchboard.v1.cbor"]).await, 400);
    assert_eq!(upgrade_status(&fx.url(), &["msgpack"]).await, 400);
}
