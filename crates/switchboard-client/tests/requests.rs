//! Requests and events both ways against the real fixture, in JSON and MessagePack.

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, connect, within};
use serde_json::{Value, json};
use switchboard_client::{CallOptions, ClientError, ErrorBody, Format, RawPayload};

#[derive(serde::Serialize)]
struct Add {
    a: f64,
    b: f64,
}

#[tokio::test]
async fn typed_results_and_error_codes() {
    common::init_tracing();
    let fx = Fixture::start();
    for format in Format::ALL {
        let c = connect(&fx, "alice", format).await;
        let echoed: Value = within(c.call("echo", &json!({"x": [1, "two", null]}))).await.unwrap();
        assert_eq!(echoed, json!({"x": [1, "two", null]}));
        let sum: f64 = within(c.call("add", &Add { a: 1.5, b: 2.0 })).await.unwrap();
        assert_eq!(sum, 3.5);
        let raw =
            within(c.request("echo", RawPayload::json(&[1, 2]).unwrap(), CallOptions::new())).await.unwrap();
        assert_eq!(raw.decode::<Vec<u8>>().unwrap(), [1, 2]);

        let code = |r: Result<Value, ClientError>| r.unwrap_err().code().to_owned();
        assert_eq!(code(within(c.call("add", &json!({"a": "1", "b": 2}))).await), "BAD_REQUEST");
        let teapot = within(c.call::<Value, _>("fail", &())).await.unwrap_err();
        assert_eq!(teapot.code(), "TEAPOT");
        assert_eq!(teapot.body().unwrap().message, "I'm a teapot");
        assert_eq!(code(within(c.call("panic", &())).await), "FAILED");
        assert_eq!(code(within(c.call("no-such-procedure", &())).await), "NOT_FOUND");
        assert_eq!(code(within(c.call("echo", &json!({"forbidden": true}))).await), "FORBIDDEN");
        // A typed reply that does not fit is a client-side BAD_REQUEST.
        let wrong: Result<u32, _> = within(c.call("echo", &"text")).await;
        assert!(matches!(wrong, Err(ClientError::Decode(_))), "{wrong:?}");
        // The public event answers as a request too; the connection lived through the panic.
        let status: Value = within(c.call("status", &())).await.unwrap();
        assert_eq!(status, json!({"ok": true}));
    }
}

#[tokio::test]
async fn a_request_times_out_and_the_connection_lives_on() {
    let fx = Fixture::start();
    let c = connect(&fx, "alice", Format::Json).await;
    let started = Instant::now();
    let opts = CallOptions::new().timeout(Duration::from_millis(200));
    let err = within(c.call_with::<Value, _>("sleep", &json!({"ms": 2000}), opts)).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    assert_eq!(err.code(), "TIMEOUT");
    assert!(started.elapsed() < Duration::from_millis(1500));
    let slept: Value = within(c.call("sleep", &json!({"ms": 50}))).await.unwrap();
    assert_eq!(slept, Value::Null);
    assert!(c.state().is_ready());
}

#[tokio::test]
async fn one_handle_serves_many_tasks() {
    let fx = Fixture::start();
    let c = connect(&fx, "alice", Format::MsgPack).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.call::<f64, _>("add", &Add { a: f64::from(i), b: 1.0 }).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(within(t).await.unwrap().unwrap(), i as f64 + 1.0);
    }
}

#[tokio::test]
async fn server_requests_reach_handlers() {
    let fx = Fixture::start();
    for format in Format::ALL {
        let c = connect(&fx, "alice", format).await;
        c.on_request("question", |q: String| async move { Ok::<_, ErrorBody>(format!("answer to {q}")) });
        c.on_request("refuse", |_: Value| async move { Err::<(), _>(ErrorBody::new("NOPE", "not today")) });
        c.on_request("slow", |_: Value| async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, ErrorBody>(())
        });
        let answer: String =
            within(c.call("ask", &json!({"type": "question", "payload": "life"}))).await.unwrap();
        assert_eq!(answer, "answer to life");
        let refused = within(c.call::<Value, _>("ask", &json!({"type": "refuse", "payload": null}))).await;
        assert_eq!(refused.unwrap_err().body().unwrap().code, "NOPE");
        // A request the client has no handler for is answered NOT_FOUND.
        let unknown = within(c.call::<Value, _>("ask", &json!({"type": "mystery", "payload": 1}))).await;
        assert_eq!(unknown.unwrap_err().code(), "NOT_FOUND");
        let bad = within(c.call::<Value, _>("ask", &json!({"type": "question", "payload": 42}))).await;
        assert_eq!(bad.unwrap_err().code(), "BAD_REQUEST");
        let slow =
            within(c.call::<Value, _>("ask", &json!({"type": "slow", "payload": null, "timeout_ms": 200})))
                .await;
        assert_eq!(slow.unwrap_err().code(), "TIMEOUT");
    }
}

#[tokio::test]
async fn events_both_ways() {
    let fx = Fixture::start();
    let alice = connect(&fx, "alice", Format::Json).await;
    let bob = connect(&fx, "bob", Format::MsgPack).await;
    let mut bob_news = bob.events_named("news");
    let mut bob_all = bob.events();
    let mut alice_all = alice.events();

    // shout: to every identified connection but the sender.
    let _: Value = within(alice.call("shout", &json!({"type": "news", "payload": {"n": 1}}))).await.unwrap();
    let news = within(bob_news.recv()).await.unwrap();
    assert_eq!((news.name.as_str(), news.decode::<Value>().unwrap()), ("news", json!({"n": 1})));
    assert_eq!(within(bob_all.recv()).await.unwrap().name, "news");

    // tell: to every connection of a user.
    let bob2 = connect(&fx, "bob", Format::Json).await;
    let mut bob2_notes = bob2.events_named("note");
    let told: Value =
        within(alice.call("tell", &json!({"user": "bob", "type": "note", "payload": "hi"}))).await.unwrap();
    assert_eq!(told, json!({"delivered": 2}));
    assert_eq!(within(bob2_notes.recv()).await.unwrap().decode::<String>().unwrap(), "hi");

    // An event the server has no handler for comes back as a NOT_FOUND push.
    within(alice.emit("nobody-listens", &1)).await.unwrap();
    let push = within(alice_all.recv()).await.unwrap();
    assert_eq!(push.name, "~err");
    let body: ErrorBody = push.payload.decode().unwrap();
    assert_eq!(body.code, "NOT_FOUND");
    // An event with a handler (the public `status`) is accepted silently.
    within(alice.emit("status", &())).await.unwrap();
    let _: Value = within(alice.call("echo", &1)).await.unwrap();
    assert!(alice_all.try_recv().is_none(), "no error for a handled event");
}
