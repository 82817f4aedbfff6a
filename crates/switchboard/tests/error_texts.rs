//! Replies reveal nothing of how the server is built (issue 16: clients read "expected struct
//! Hello", "JSON error: …", "invalid type: …"): a payload that does not decode is a `BAD_REQUEST`
//! whose message names the message and what it expects; the decoder's own words go to the log.

mod common;

use common::{Client, main_ns, serve};
use serde_json::{Value, json};
use switchboard::{Config, Error, Payload, Server, TopicOptions};

#[derive(serde::Deserialize)]
struct Add {
    a: f64,
    b: f64,
}

async fn add(Payload(Add { a, b }): Payload<Add>) -> Result<f64, Error> {
    Ok(a + b)
}

/// Whether a message shows the decoder's internals.
fn reveals(message: &str) -> bool {
    ["expected struct", "invalid type", "JSON error", "missing field", "at line", "unknown variant", "Base64"]
        .iter()
        .any(|w| message.contains(w))
}

fn message(reply: Result<Value, Value>) -> String {
    let e = reply.expect_err("refused");
    assert_eq!(e["code"], "BAD_REQUEST", "{e}");
    e["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn payloads_that_do_not_decode_are_refused_in_words_for_people() {
    let ns = main_ns().on("add", add).topic("room/{x}", TopicOptions::new().clients_publish());
    let board = Server::new().config(Config::default()).namespace(ns).build().await.unwrap();
    let addr = serve(&board).await;

    let mut c = Client::connect(addr).await;
    let m = message(c.call("~hello", json!("just a string")).await);
    assert_eq!(m, "the payload of ~hello is not valid: an object {ns?, identity?, meta?} is expected");
    let m = message(c.call("~hello", json!({"ns": 7})).await);
    assert!(!reveals(&m), "{m}");

    let (mut c, _) = Client::identified(addr, "ada").await;
    let m = message(c.call("add", json!({"a": "one", "b": 2})).await);
    assert_eq!(m, "the payload of add is not valid");
    let m = message(c.call("~refresh", json!([1, 2])).await);
    assert_eq!(m, "the payload of ~refresh is not valid: an object {identity} is expected");
    for (kind, payload) in [
        ("~sub", json!({"topic": 7})),
        ("~pub", json!({"topic": "room/a", "echo": "yes"})),
        ("~status", json!({"available": "maybe"})),
        ("~dm", json!({"to": 3})),
        ("~who", json!({"topic": []})),
    ] {
        let m = message(c.call(kind, payload).await);
        assert!(!reveals(&m), "{kind}: {m}");
    }
}
