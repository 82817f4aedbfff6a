//! Identification beyond the fixture: credential expiry (4003) and `~refresh`, the `refuse_new`
//! policy, per-connection filters, filter order across `extends`, the direct-message audit hook,
//! and hub requests that time out.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, serve};
use parking_lot::Mutex;
use serde_json::{Value, json};
use switchboard::{Accept, CapPolicy, Config, Conn, Error, Namespace, Payload, RawPayload, Server, Session};

#[derive(serde::Deserialize)]
struct Creds {
    user: String,
    #[serde(default)]
    ttl_ms: Option<u64>,
    #[serde(default)]
    tag: String,
}

async fn identify(Payload(c): Payload<Creds>) -> Result<Accept, Error> {
    if c.user.is_empty() {
        return Err(Error::not_authorized("no user"));
    }
    let mut accept = Accept::user(c.user.clone()).alias(c.user).session(c.tag);
    if let Some(ms) = c.ttl_ms {
        accept = accept.expires_in(Duration::from_millis(ms));
    }
    Ok(accept)
}

async fn tag(Session(tag): Session<String>) -> Result<String, Error> {
    Ok((*tag).clone())
}

async fn lock(conn: Conn) {
    conn.add_filter(|kind, _| if kind.as_str() == "tag" { Err(Error::forbidden("locked")) } else { Ok(()) });
}

async fn moving(conn: Conn) {
    conn.redirect("ws://other.example/ws", "moving you");
}

fn ns() -> Namespace {
    Namespace::new("main").identify(identify).on("tag", tag).on("lock", lock).on("move", moving)
}

async fn hello(addr: std::net::SocketAddr, identity: Value) -> (Client, Result<Value, Value>) {
    let mut c = Client::connect(addr).await;
    let r = c.call("~hello", json!({ "identity": identity })).await;
    (c, r)
}

#[tokio::test]
async fn expired_credentials_close_with_4003_unless_refreshed() {
    let board = Server::new().namespace(ns()).build().await.unwrap();
    let addr = serve(&board).await;

    let (mut expiring, r) = hello(addr, json!({"user": "ada", "ttl_ms": 300, "tag": "first"})).await;
    r.unwrap();
    // Bob's first credentials last long enough for the refresh on a slow machine too.
    let bob_hello = tokio::time::Instant::now();
    let (mut refreshed, r) = hello(addr, json!({"user": "bob", "ttl_ms": 1500, "tag": "first"})).await;
    r.unwrap();
    let welcome = refreshed
        .call("~refresh", json!({"identity": {"user": "bob", "ttl_ms": 10_000, "tag": "second"}}))
        .await;
    assert_eq!(welcome.unwrap()["user"], "bob", "~refresh answers with the welcome");
    assert_eq!(
        refreshed.call("tag", json!(null)).await,
        Ok(json!("second")),
        "the session follows the refresh"
    );
    let other = refreshed.call("~refresh", json!({"identity": {"user": "mallory"}})).await.unwrap_err();
    assert_eq!(other["code"], "NOT_AUTHORIZED", "a refresh cannot change the user");
    let bad = refreshed.call("~refresh", json!({"identity": {"user": ""}})).await.unwrap_err();
    assert_eq!(bad["code"], "NOT_AUTHORIZED");

    let (code, _) = expiring.closed().await;
    assert_eq!(code, 4003);
    assert_eq!(expiring.expect(|m| m[0] == "~bye").await[1]["code"], 4003);
    // Past the first credentials' expiry.
    tokio::time::sleep_until(bob_hello + Duration::from_millis(1800)).await;
    assert_eq!(refreshed.call("~ping", json!(null)).await, Ok(json!(null)), "the refreshed one lives on");
}

#[tokio::test]
async fn refuse_new_answers_limit_and_closes_4502() {
    let mut config = Config::default();
    config.conn_per_user = Some((1, CapPolicy::RefuseNew));
    let board = Server::new().config(config).namespace(ns()).build().await.unwrap();
    let addr = serve(&board).await;
    let (mut first, r) = hello(addr, json!({"user": "ada"})).await;
    r.unwrap();
    let (mut second, r) = hello(addr, json!({"user": "ada"})).await;
    assert_eq!(r.unwrap_err()["code"], "LIMIT");
    assert_eq!(second.closed().await.0, 4502);
    assert_eq!(first.call("~ping", json!(null)).await, Ok(json!(null)), "the existing connection stays");
    assert_eq!(board.hub().user_connections("ada").await.unwrap().len(), 1);
}

#[tokio::test]
async fn per_connection_filters_apply_to_that_connection_only() {
    let board = Server::new().namespace(ns()).build().await.unwrap();
    let addr = serve(&board).await;
    let (mut locked, _) = hello(addr, json!({"user": "ada", "tag": "t"})).await;
    let (mut free, _) = hello(addr, json!({"user": "bob", "tag": "t"})).await;
    locked.call("lock", json!(null)).await.unwrap();
    assert_eq!(locked.call("tag", json!(null)).await.unwrap_err()["code"], "FORBIDDEN");
    assert_eq!(free.call("tag", json!(null)).await, Ok(json!("t")));
}

async fn parent_filter(raw: RawPayload) -> Result<(), Error> {
    if raw.decode::<String>().ok().as_deref() == Some("a") { Err(Error::new("PARENT", "a")) } else { Ok(()) }
}

async fn child_filter(raw: RawPayload) -> Result<(), Error> {
    match raw.decode::<String>().ok().as_deref() {
        Some("a" | "b") => Err(Error::new("CHILD", "a or b")),
        _ => Ok(()),
    }
}

async fn echo(raw: RawPayload) -> RawPayload {
    raw
}

#[tokio::test]
async fn inherited_filters_run_before_the_namespaces_own() {
    let parent = Namespace::new("main").identify(identify).filter(parent_filter).on("echo", echo);
    let child = Namespace::new("child").extends(&parent).filter(child_filter);
    let board = Server::new().namespace(parent).namespace(child).build().await.unwrap();
    let addr = serve(&board).await;
    let mut c = Client::connect(addr).await;
    c.call("~hello", json!({"ns": "child", "identity": {"user": "ada"}})).await.unwrap();
    assert_eq!(c.call("echo", json!("a")).await.unwrap_err()["code"], "PARENT");
    assert_eq!(c.call("echo", json!("b")).await.unwrap_err()["code"], "CHILD");
    assert_eq!(c.call("echo", json!("c")).await, Ok(json!("c")), "inherited handler");
}

#[tokio::test]
async fn direct_messages_reach_the_audit_hook() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let board = Server::new()
        .namespace(ns())
        .on_direct_message({
            let seen = seen.clone();
            move |dm| {
                seen.lock().push((
                    dm.from.alias.clone(),
                    dm.to_user.clone(),
                    dm.data.decode::<Value>().unwrap(),
                ))
            }
        })
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let (mut ada, _) = hello(addr, json!({"user": "ada"})).await;
    let (mut bob, _) = hello(addr, json!({"user": "bob"})).await;
    ada.call("~dm", json!({"to": {"alias": "bob"}, "data": {"text": "hi"}})).await.unwrap();
    bob.expect(|m| m[0] == "~dm").await;
    assert_eq!(*seen.lock(), [(Some("ada".to_owned()), Some("bob".to_owned()), json!({"text": "hi"}))]);
}

#[tokio::test]
async fn hub_requests_time_out_and_report_client_errors() {
    let board = Server::new().namespace(ns()).build().await.unwrap();
    let addr = serve(&board).await;
    let (mut ada, r) = hello(addr, json!({"user": "ada"})).await;
    let conn = r.unwrap()["conn"].as_str().unwrap().to_owned();
    let hub = board.hub();
    let silent = hub.request(&conn, "question", &json!(1), Duration::from_millis(200)).await;
    assert!(matches!(silent, Err(switchboard::RequestError::Timeout)), "{silent:?}");
    let asking = tokio::spawn({
        let hub = hub.clone();
        let conn = conn.clone();
        async move { hub.request(&conn, "question", &json!(2), Duration::from_secs(3)).await }
    });
    let q = ada.expect(|m| m[0] == "question" && m[1] == 2).await;
    ada.send(json!(["~err", {"code": "NOPE", "message": "no"}, q[2]])).await;
    match asking.await.unwrap() {
        Err(switchboard::RequestError::Remote(body)) => assert_eq!(body.code, "NOPE"),
        other => panic!("{other:?}"),
    }
    let missing = hub.request("nobody.1", "question", &json!(3), Duration::from_millis(100)).await;
    assert!(matches!(missing, Err(switchboard::RequestError::NotFound)), "{missing:?}");
}

#[tokio::test]
async fn redirect_sends_bye_with_jump_then_4000() {
    let board = Server::new().namespace(ns()).build().await.unwrap();
    let addr = serve(&board).await;
    let (mut c, _) = hello(addr, json!({"user": "ada"})).await;
    c.send(json!(["move", null])).await;
    assert_eq!(c.closed().await.0, 4000);
    let bye = c.expect(|m| m[0] == "~bye").await;
    assert_eq!(bye[1], json!({"code": 4000, "reason": "moving you", "jump": "ws://other.example/ws"}));
}
