//! Conformance: namespaces and `extends` (protocol.md §3, appendix A `admin`).
//!
//! Readings of protocol.md used here:
//! - `admin` has its own identify hook (only root/pw-root) and inherits `main`'s handlers and
//!   its `forbidden` filter; `whoami` there reports `ns: "admin"`.
//! - The admin welcome data is not specified; only `user`, `ns` and the keys are checked.
//! - `kick` exists only in `admin`: `main` answers it `NOT_FOUND`.

mod common;

use common::*;
use serde_json::{Value, json};

async fn root(fx: &Fixture) -> Client {
    let mut c = Client::connect(fx).await;
    let w = c
        .hello(json!({"ns": "admin", "identity": {"user": "root", "password": "pw-root"}}))
        .await
        .expect("root accepted in admin");
    assert_keys(&w, &["conn", "user", "ns", "data", "heartbeat"]);
    assert_eq!(w["user"], "root");
    assert_eq!(w["ns"], "admin");
    assert_eq!(w["heartbeat"], 5000);
    c.conn = w["conn"].as_str().expect("conn").to_string();
    c
}

#[tokio::test]
async fn admin_accepts_only_root() {
    let fx = Fixture::start();
    let _root = root(&fx).await;
    for identity in [
        password_identity("alice"),
        json!({"user": "root", "password": "wrong"}),
        json!({"user": "root", "challenge": true}),
    ] {
        let mut c = Client::connect(&fx).await;
        let id = c.request("~hello", json!({"ns": "admin", "identity": identity})).await;
        // No challenge is expected in admin; if one came, answering it would still not
        // make this a root login with the right password.
        let e = c.result(id).await.expect_err("refused in admin");
        assert_code(&e, "NOT_AUTHORIZED");
        c.expect_close_code(4500).await;
    }
}

#[tokio::test]
async fn admin_inherits_main_handlers() {
    let fx = Fixture::start();
    let mut r = root(&fx).await;
    assert_eq!(r.ok("echo", json!({"a": 1})).await, json!({"a": 1}));
    assert_eq!(num(&r.ok("add", json!({"a": 40, "b": 2})).await), 42.0);
    let e = r.err("fail", Value::Null).await;
    assert_eq!(e["code"], "TEAPOT");
    let me = r.ok("whoami", Value::Null).await;
    assert_eq!(me, json!({"user": "root", "conn": r.conn, "ns": "admin"}));
    assert_eq!(r.ok("status", Value::Null).await, json!({"ok": true}));
}

#[tokio::test]
async fn admin_inherits_main_filter() {
    let fx = Fixture::start();
    let mut r = root(&fx).await;
    r.err_code("echo", json!({"forbidden": true}), "FORBIDDEN").await;
    r.err_code("kick", json!({"user": "x", "forbidden": true}), "FORBIDDEN").await;
}

#[tokio::test]
async fn kick_is_admin_only() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    alice.err_code("kick", json!({"user": "bob"}), "NOT_FOUND").await;
    let mut r = root(&fx).await;
    r.ok("kick", json!({"user": "nobody"})).await;
}

#[tokio::test]
async fn root_in_main_is_a_plain_user() {
    // The main identify hook accepts {"user": U, "password": "pw-" + U} for any U.
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "root").await;
    let me = c.ok("whoami", Value::Null).await;
    assert_eq!(me["ns"], "main");
    c.err_code("kick", json!({"user": "bob"}), "NOT_FOUND").await;
    c.err_code("~info", json!({}), "FORBIDDEN").await;
}

#[tokio::test]
async fn unknown_namespace_then_main() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    for ns in ["nope", "Main", "admin2"] {
        let e = c
            .hello(json!({"ns": ns, "identity": password_identity("alice")}))
            .await
            .expect_err("unknown namespace");
        assert_code(&e, "NOT_FOUND");
    }
    c.err_code("echo", json!(1), "NOT_AUTHENTICATED").await;
    let w = c.identify("alice").await;
    assert_eq!(w["ns"], "main");
}
