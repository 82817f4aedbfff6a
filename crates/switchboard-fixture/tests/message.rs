//! Conformance: message framing and validation (protocol.md §2).
//!
//! Readings of protocol.md used here:
//! - Every malformed frame is tested on a fresh connection, because the first one closes it
//!   (4501 with a non-empty reason that "says what was wrong").
//! - An id of `null` or `1.0` is left untested: the contract does not say whether they are
//!   "no id" / "the integer 1" or invalid.
//! - A request to a type with no handler is answered `~err` `NOT_FOUND` (§4, "exactly one
//!   `~ok` or `~err` reply"; `NOT_FOUND` = "no such event, procedure"); only the event form is
//!   specified to carry `data: {"type": name}`, so the request form's `data` is not checked.

mod common;

use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn reply_has_exactly_type_result_id() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let id = c.request("echo", json!({"x": [1, 2, 3]})).await;
    assert_eq!(c.reply(id).await, json!(["~ok", {"x": [1, 2, 3]}, id]));
    let id = c.request("fail", Value::Null).await;
    let r = c.reply(id).await;
    assert_eq!(r[0], "~err");
    assert_eq!(r[2], id);
    assert_error_shape(&r[1]);
}

#[tokio::test]
async fn one_element_message_is_an_event_with_null_payload() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.send_text(r#"["no.such.event"]"#).await;
    let m = c.wait_type("~err").await;
    assert_eq!(m.as_array().map(Vec::len), Some(2), "a push has no id: {m}");
    assert_eq!(m[0], "~err");
    assert_code(&m[1], "NOT_FOUND");
    assert_eq!(m[1]["data"], json!({"type": "no.such.event"}));
    c.sync().await;
}

#[tokio::test]
async fn smallest_and_largest_ids_are_accepted() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    for id in [1u64, 2, 1000, MAX_ID - 1, MAX_ID] {
        c.send(&json!(["echo", id, id])).await;
        let r = c.wait_for("echo reply", |m| is_reply(m, id)).await;
        assert_eq!(r, json!(["~ok", id, id]));
    }
}

#[tokio::test]
async fn type_of_128_bytes_is_valid() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let t = "t".repeat(128);
    c.send(&json!([t, null, 5])).await;
    let r = c.reply(5).await;
    assert_eq!(r[0], "~err");
    assert_code(&r[1], "NOT_FOUND");
    // A multi-byte type of exactly 128 bytes (64 two-byte characters) is valid too.
    let t = "é".repeat(64);
    assert_eq!(t.len(), 128);
    c.send(&json!([t, null, 6])).await;
    let r = c.reply(6).await;
    assert_code(&r[1], "NOT_FOUND");
}

#[tokio::test]
async fn request_with_no_handler_is_not_found() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.err_code("no.such.procedure", json!({}), "NOT_FOUND").await;
    c.sync().await;
}

#[tokio::test]
async fn payloads_round_trip_exactly() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    for p in [
        Value::Null,
        json!(true),
        json!(0),
        json!(-17),
        json!(3.25),
        json!(9007199254740991u64),
        json!(""),
        json!("héllo ✓ 🎉 \u{0000} \"quoted\" \\"),
        json!([]),
        json!({}),
        json!({"nested": {"a": [1, {"b": null}], "c": "d"}}),
    ] {
        assert_eq!(c.ok("echo", p.clone()).await, p);
    }
}

/// The malformed frames: (what, frame).
fn malformed() -> Vec<(&'static str, Message)> {
    let t = |s: &str| Message::Text(s.to_string().into());
    vec![
        ("not JSON", t("hello")),
        ("truncated JSON", t(r#"["echo", "#)),
        ("an object", t(r#"{"type": "echo", "id": 1}"#)),
        ("a string", t(r#""echo""#)),
        ("a number", t("42")),
        ("null", t("null")),
        ("an empty array", t("[]")),
        ("four elements", t(r#"["echo", null, 1, 2]"#)),
        ("a numeric type", t(r#"[1, null, 1]"#)),
        ("a null type", t(r#"[null]"#)),
        ("an array type", t(r#"[["echo"], null, 1]"#)),
        ("an empty type", t(r#"["", null, 1]"#)),
        ("a type of 129 bytes", t(&format!(r#"["{}", null, 1]"#, "t".repeat(129)))),
        ("id 0", t(r#"["echo", null, 0]"#)),
        ("a negative id", t(r#"["echo", null, -1]"#)),
        ("id 2^53", t(r#"["echo", null, 9007199254740992]"#)),
        ("a huge id", t(r#"["echo", null, 1e300]"#)),
        ("a fractional id", t(r#"["echo", null, 1.5]"#)),
        ("a string id", t(r#"["echo", null, "1"]"#)),
        ("an object id", t(r#"["echo", null, {"id": 1}]"#)),
        ("a binary frame on a JSON connection", Message::Binary(br#"["~ping",null,1]"#.to_vec().into())),
    ]
}

async fn check_malformed_closes(identified: bool) {
    let fx = Fixture::start();
    let mut failures = Vec::new();
    for (what, frame) in malformed() {
        let mut c = Client::connect(&fx).await;
        if identified {
            c.identify("alice").await;
        }
        c.send_frame(frame).await;
        match c.try_close_within(WAIT).await {
            Ok((4501, reason)) if !reason.is_empty() => {}
            Ok((code, reason)) => {
                failures.push(format!("{what}: closed with {code} {reason:?}, expected 4501 with a reason"))
            }
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    // The server is unaffected.
    let mut c = Client::user(&fx, "bob").await;
    assert_eq!(c.ok("echo", json!("still here")).await, json!("still here"));
    assert!(failures.is_empty(), "malformed frames not closed with 4501:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn malformed_frames_close_identified_connections_with_4501() {
    check_malformed_closes(true).await;
}

#[tokio::test]
async fn malformed_frames_close_anonymous_connections_with_4501() {
    check_malformed_closes(false).await;
}

#[tokio::test]
async fn protocol_error_does_not_affect_other_connections() {
    let fx = Fixture::start();
    let mut a = Client::user(&fx, "alice").await;
    let mut b = Client::user(&fx, "bob").await;
    a.send_text("this is not a message").await;
    a.expect_close_code(4501).await;
    assert_eq!(b.ok("echo", json!(1)).await, json!(1));
    assert_eq!(b.ok("whoami", Value::Null).await["user"], "bob");
}
