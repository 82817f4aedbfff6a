//! Conformance: the `~hello` handshake and the anonymous state (protocol.md §3, appendix A).
//!
//! Readings of protocol.md used here:
//! - The welcome payload has exactly the keys `conn`, `user`, `ns`, `data`, `heartbeat`, and
//!   the fixture's heartbeat is 5 s, so `heartbeat` is 5000.
//! - "Anything else is answered (when it has an id) with `NOT_AUTHENTICATED`" includes
//!   requests to types that have no handler at all, and reserved requests like `~sub`.
//! - "otherwise ignored": an anonymous event (no id) gets nothing back, not even the
//!   `NOT_FOUND` push that identified connections get for unhandled events.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::HashSet;

#[tokio::test]
async fn anonymous_connection_may_ping() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let id = c.request("~ping", Value::Null).await;
    assert_eq!(c.reply(id).await, json!(["~ok", null, id]));
}

#[tokio::test]
async fn anonymous_connection_may_use_the_public_event() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    assert_eq!(c.ok("status", Value::Null).await, json!({"ok": true}));
    // And identified connections too.
    let mut d = Client::user(&fx, "alice").await;
    assert_eq!(d.ok("status", json!({})).await, json!({"ok": true}));
}

#[tokio::test]
async fn anonymous_requests_are_not_authenticated() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    for (t, p) in [
        ("echo", json!("x")),
        ("whoami", Value::Null),
        ("add", json!({"a": 1, "b": 2})),
        ("no.such.procedure", json!({})),
        ("~sub", json!({"topic": "chat/room"})),
        ("~unsub", json!({})),
        ("~pub", json!({"topic": "chat/room", "data": 1})),
        ("~who", json!({})),
        ("~status", json!({"available": false})),
        ("~dm", json!({"to": {"alias": "bob"}, "data": 1})),
        ("~info", json!({})),
    ] {
        let e = c.err(t, p).await;
        assert_code(&e, "NOT_AUTHENTICATED");
    }
    // The connection is still open and still anonymous.
    c.sync().await;
    c.err_code("echo", json!(1), "NOT_AUTHENTICATED").await;
}

#[tokio::test]
async fn anonymous_events_are_ignored() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    c.event("echo", json!({"x": 1})).await;
    c.event("no.such.event", json!(null)).await;
    c.event("whoami", json!(null)).await;
    c.sync().await;
    c.expect_silence().await;
    // Still usable: it can identify.
    c.identify("alice").await;
}

#[tokio::test]
async fn hello_with_password_is_accepted() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let w = c.hello(json!({"identity": {"user": "alice", "password": "pw-alice"}})).await.expect("welcome");
    assert_keys(&w, &["conn", "user", "ns", "data", "heartbeat"]);
    assert!(w["conn"].as_str().is_some_and(|s| !s.is_empty()), "conn: {w}");
    assert_eq!(w["user"], "alice");
    assert_eq!(w["ns"], "main");
    assert_eq!(w["data"], json!({"hello": "alice"}));
    assert_eq!(w["heartbeat"], 5000);
    // Now identified: handlers run.
    assert_eq!(c.ok("echo", json!(42)).await, json!(42));
}

#[tokio::test]
async fn hello_with_explicit_main_namespace_and_meta() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let w = c
        .hello(json!({
            "ns": "main",
            "identity": password_identity("bob"),
            "meta": {"device": "test-suite", "version": [1, 2, 3]},
        }))
        .await
        .expect("welcome");
    assert_eq!(w["user"], "bob");
    assert_eq!(w["ns"], "main");
    assert_eq!(w["data"], json!({"hello": "bob"}));
}

#[tokio::test]
async fn whoami_matches_the_welcome() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let w = c.identify("carol").await;
    let me = c.ok("whoami", Value::Null).await;
    assert_keys(&me, &["user", "conn", "ns"]);
    assert_eq!(me["user"], "carol");
    assert_eq!(me["conn"], w["conn"]);
    assert_eq!(me["ns"], "main");
}

#[tokio::test]
async fn conn_is_unique_per_connection() {
    let fx = Fixture::start();
    let mut seen = HashSet::new();
    let mut clients = Vec::new();
    // Two connections per user: conn_per_user (3) is not reached.
    for u in ["u1", "u1", "u2", "u2", "u3", "u3"] {
        let c = Client::user(&fx, u).await;
        assert!(seen.insert(c.conn.clone()), "conn {} given twice", c.conn);
        clients.push(c);
    }
}

#[tokio::test]
async fn wrong_credentials_are_not_authorized_then_closed_4500() {
    let fx = Fixture::start();
    for identity in [
        json!({"user": "alice", "password": "wrong"}),
        json!({"user": "alice", "password": "pw-bob"}),
        json!({"user": "alice"}),
        json!({"password": "pw-alice"}),
        json!("alice"),
        json!(null),
    ] {
        let mut c = Client::connect(&fx).await;
        let e = c.hello(json!({"identity": identity})).await.expect_err("refused");
        assert_code(&e, "NOT_AUTHORIZED");
        c.expect_close_code(4500).await;
    }
    // A ~hello without any identity is refused too.
    let mut c = Client::connect(&fx).await;
    let e = c.hello(json!({})).await.expect_err("refused");
    assert_code(&e, "NOT_AUTHORIZED");
    c.expect_close_code(4500).await;
}

#[tokio::test]
async fn unknown_namespace_is_not_found_and_stays_anonymous() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let e = c
        .hello(json!({"ns": "nope", "identity": password_identity("alice")}))
        .await
        .expect_err("unknown namespace");
    assert_code(&e, "NOT_FOUND");
    // Still open, still anonymous.
    c.err_code("echo", json!(1), "NOT_AUTHENTICATED").await;
    // And it may still identify.
    let w = c.identify("alice").await;
    assert_eq!(w["ns"], "main");
    assert_eq!(c.ok("echo", json!(2)).await, json!(2));
}

#[tokio::test]
async fn second_hello_is_already_identified() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let w = c.identify("alice").await;
    let e = c.hello(json!({"identity": password_identity("alice")})).await.expect_err("second hello");
    assert_code(&e, "ALREADY_IDENTIFIED");
    let e = c
        .hello(json!({"identity": password_identity("bob")}))
        .await
        .expect_err("second hello as someone else");
    assert_code(&e, "ALREADY_IDENTIFIED");
    // Still alice, same connection.
    let me = c.ok("whoami", Value::Null).await;
    assert_eq!(me["user"], "alice");
    assert_eq!(me["conn"], w["conn"]);
}
