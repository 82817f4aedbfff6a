//! Conformance: client requests and the fixture's request handlers (protocol.md §4, appendix A).
//!
//! Readings of protocol.md used here:
//! - `add` returns a number equal to a + b; 5 and 5.0 are both accepted.
//! - `fail` → `~err` with exactly code `TEAPOT` and message `"I'm a teapot"`.
//! - `panic` → `FAILED`, and the error message "never contains a stack trace, a file path or
//!   internal state": checked as no `panicked`, `.rs`, `src/` or newline in the message.
//! - The `forbidden` filter applies to requests of the fixture's handlers; its effect on
//!   events and on reserved `~` types is not specified and not tested.
//! - "A handler that awaits does not hold back later frames": a `sleep` of 1.5 s sent before an
//!   `echo` is answered after it (an ordering check, not a timing check).

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn echo_returns_the_payload() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let p = json!({"list": [1, "two", null, {"three": 3.5}], "flag": false});
    assert_eq!(c.ok("echo", p.clone()).await, p);
    assert_eq!(c.ok("echo", Value::Null).await, Value::Null);
}

#[tokio::test]
async fn add_adds_numbers() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    assert_eq!(num(&c.ok("add", json!({"a": 2, "b": 3})).await), 5.0);
    assert_eq!(num(&c.ok("add", json!({"a": -10, "b": 4})).await), -6.0);
    assert_eq!(num(&c.ok("add", json!({"a": 1.5, "b": 2.25})).await), 3.75);
}

#[tokio::test]
async fn add_rejects_non_numbers_with_bad_request() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    for p in [
        json!({"a": "1", "b": 2}),
        json!({"a": 1}),
        json!({"b": 1}),
        json!({"a": null, "b": 1}),
        json!({"a": [1], "b": 1}),
        json!({}),
        json!([1, 2]),
        json!("1+2"),
        Value::Null,
    ] {
        let shown = p.to_string();
        let e = c.err("add", p).await;
        assert_eq!(e["code"], "BAD_REQUEST", "add {shown}: {e}");
    }
    c.sync().await;
}

#[tokio::test]
async fn fail_is_a_teapot() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let e = c.err("fail", Value::Null).await;
    assert_error_shape(&e);
    assert_eq!(e["code"], "TEAPOT");
    assert_eq!(e["message"], "I'm a teapot");
}

#[tokio::test]
async fn panic_is_failed_and_the_connection_lives_on() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let e = c.err_code("panic", Value::Null, "FAILED").await;
    let msg = e["message"].as_str().expect("message");
    for bad in ["panicked", ".rs", "src/", "\n"] {
        assert!(!msg.contains(bad), "the FAILED message leaks internals ({bad:?}): {msg:?}");
    }
    assert_eq!(c.ok("echo", json!("alive")).await, json!("alive"));
    // Twice, and another connection is unaffected.
    c.err_code("panic", json!({}), "FAILED").await;
    let mut d = Client::user(&fx, "bob").await;
    assert_eq!(d.ok("echo", json!(1)).await, json!(1));
    assert_eq!(c.ok("echo", json!(2)).await, json!(2));
}

#[tokio::test]
async fn sleep_returns_null() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    assert_eq!(c.ok("sleep", json!({"ms": 100})).await, Value::Null);
}

#[tokio::test]
async fn an_awaiting_handler_does_not_hold_back_later_frames() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let slow = c.request("sleep", json!({"ms": 1500})).await;
    let fast = c.request("echo", json!("fast")).await;
    let first = c.wait_for("a reply", |m| is_reply(m, slow) || is_reply(m, fast)).await;
    assert_eq!(first, json!(["~ok", "fast", fast]), "the echo sent after a sleep must be answered first");
    assert_eq!(c.reply(slow).await, json!(["~ok", null, slow]));
}

#[tokio::test]
async fn each_request_gets_exactly_one_reply_with_its_id() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let mut ids = Vec::new();
    for i in 0..40u64 {
        // Out-of-order, sparse ids are fine: the client picks them.
        let id = 1000 + i * 7;
        let (t, p) = match i % 4 {
            0 => ("echo", json!(i)),
            1 => ("add", json!({"a": i, "b": 1})),
            2 => ("sleep", json!({"ms": 50})),
            _ => ("fail", Value::Null),
        };
        c.send(&json!([t, p, id])).await;
        ids.push((i, id));
    }
    for (i, id) in ids {
        let r = c.reply(id).await;
        match i % 4 {
            0 => assert_eq!(r, json!(["~ok", i, id])),
            1 => assert_eq!(num(&r[1]), (i + 1) as f64),
            2 => assert_eq!(r, json!(["~ok", null, id])),
            _ => assert_eq!(r[1]["code"], "TEAPOT"),
        }
    }
    // No reply was sent twice.
    c.sync().await;
    c.expect_silence().await;
}

#[tokio::test]
async fn the_forbidden_filter_refuses_requests() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.err_code("echo", json!({"forbidden": true}), "FORBIDDEN").await;
    c.err_code("add", json!({"a": 1, "b": 2, "forbidden": true}), "FORBIDDEN").await;
    c.err_code("whoami", json!({"forbidden": true}), "FORBIDDEN").await;
    // Only `true` triggers it, and only as an object member.
    assert_eq!(c.ok("echo", json!({"forbidden": false})).await, json!({"forbidden": false}));
    assert_eq!(c.ok("echo", json!({"forbidden": "true"})).await, json!({"forbidden": "true"}));
    assert_eq!(c.ok("echo", json!([{"forbidden": true}])).await, json!([{"forbidden": true}]));
    assert_eq!(num(&c.ok("add", json!({"a": 1, "b": 2})).await), 3.0);
}

#[tokio::test]
async fn events_to_handlers_get_no_reply() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.event("echo", json!("x")).await;
    c.event("add", json!({"a": 1, "b": 2})).await;
    c.event("sleep", json!({"ms": 10})).await;
    c.event("whoami", Value::Null).await;
    c.sync().await;
    c.expect_silence().await;
}

#[tokio::test]
async fn requests_with_no_handler_are_not_found() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.err_code("nope", Value::Null, "NOT_FOUND").await;
    c.err_code("Echo", json!("case matters"), "NOT_FOUND").await;
    // `kick` exists only in the admin namespace.
    c.err_code("kick", json!({"user": "bob"}), "NOT_FOUND").await;
}
