//! The HTTP API: every call is checked against connected WebSocket clients.

mod common;

use common::{Client, KEY, api, config, http, start_with};
use serde_json::json;

async fn dev_server() -> common::Server {
    start_with(&config("dev", "dev = true"), &[], &[]).await
}

#[tokio::test]
async fn the_key_is_required() {
    let server = dev_server().await;
    let body = json!({"topic": "room/a", "data": 1});
    let (status, text) = http(server.addr, "POST", "/api/publish", None, Some(&body)).await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["error"]["code"],
        "NOT_AUTHENTICATED"
    );
    let (status, _) = http(server.addr, "POST", "/api/publish", Some("wrong"), Some(&body)).await;
    assert_eq!(status, 401);
    let (status, _) = http(server.addr, "GET", "/api/info", Some(KEY), None).await;
    assert_eq!(status, 200);
    let (status, text) =
        http(server.addr, "POST", "/api/publish", Some(KEY), Some(&json!({"nope": 1}))).await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test]
async fn publish_send_broadcast_reach_the_clients() {
    let server = dev_server().await;
    let addr = server.addr;
    let (mut ada, _) = Client::identified(addr, json!({"name": "ada"})).await;
    let (mut ada2, _) = Client::identified(addr, json!({"name": "ada"})).await;
    let (mut bob, _) = Client::identified(addr, json!({"name": "bob"})).await;

    bob.call("~sub", json!({"topic": "room/lobby"})).await.unwrap();
    let r = api(
        addr,
        "POST",
        "/api/publish",
        Some(json!({"topic": "room/lobby", "event": "say", "data": {"text": "hi"}})),
    )
    .await;
    assert_eq!(r["seq"], 1);
    let msg = bob.expect("~msg").await;
    assert_eq!(msg[1]["topic"], "room/lobby");
    assert_eq!(msg[1]["event"], "say");
    assert_eq!(msg[1]["data"]["text"], "hi");

    let r =
        api(addr, "POST", "/api/send", Some(json!({"user": "ada", "type": "notice", "payload": 7}))).await;
    assert_eq!(r["delivered"], 2);
    assert_eq!(ada.expect("notice").await[1], 7);
    assert_eq!(ada2.expect("notice").await[1], 7);

    let r = api(addr, "POST", "/api/send", Some(json!({"conn": bob.conn, "type": "direct", "payload": "x"})))
        .await;
    assert_eq!(r["delivered"], 1);
    assert_eq!(bob.expect("direct").await[1], "x");

    let r =
        api(addr, "POST", "/api/broadcast", Some(json!({"type": "tick", "payload": 1, "except": ada2.conn})))
            .await;
    assert_eq!(r["delivered"], 2);
    assert_eq!(ada.expect("tick").await[1], 1);
    assert_eq!(bob.expect("tick").await[1], 1);
    // ada2 was excepted: the next thing it sees is what we send it now.
    api(addr, "POST", "/api/send", Some(json!({"conn": ada2.conn, "type": "marker", "payload": null}))).await;
    loop {
        let next = ada2.next().await.unwrap();
        assert_ne!(next[0], "tick", "ada2 was excepted");
        if next[0] == "marker" {
            break;
        }
    }

    let (status, text) =
        http(addr, "POST", "/api/send", Some(KEY), Some(&json!({"type": "x", "payload": 1}))).await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test]
async fn requests_reach_a_connection_and_return_its_answer() {
    let server = dev_server().await;
    let addr = server.addr;
    let (mut ada, _) = Client::identified(addr, json!({"name": "ada"})).await;
    let conn = ada.conn.clone();
    let call = tokio::spawn(async move {
        api(
            addr,
            "POST",
            "/api/request",
            Some(json!({"conn": conn, "type": "confirm", "payload": {"q": 1}, "timeout_ms": 5000})),
        )
        .await
    });
    let req = ada.expect("confirm").await;
    assert_eq!(req[1]["q"], 1);
    ada.send(json!(["~ok", {"yes": true}, req[2]])).await;
    assert_eq!(call.await.unwrap()["result"]["yes"], true);

    // The client's error comes back as the API's error.
    let conn = ada.conn.clone();
    let call = tokio::spawn(async move {
        http(
            addr,
            "POST",
            "/api/request",
            Some(KEY),
            Some(&json!({"conn": conn, "type": "confirm", "timeout_ms": 5000})),
        )
        .await
    });
    let req = ada.expect("confirm").await;
    ada.send(json!(["~err", {"code": "NOPE", "message": "no"}, req[2]])).await;
    let (status, text) = call.await.unwrap();
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("NOPE"), "{text}");

    // Nobody answers: TIMEOUT.
    let conn = ada.conn.clone();
    let (status, text) = http(
        addr,
        "POST",
        "/api/request",
        Some(KEY),
        Some(&json!({"conn": conn, "type": "ignored", "timeout_ms": 100})),
    )
    .await;
    assert_eq!(status, 504, "{text}");
    let (status, _) =
        http(addr, "POST", "/api/request", Some(KEY), Some(&json!({"conn": "nobody", "type": "x"}))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn disconnect_closes_every_connection_of_the_user() {
    let server = dev_server().await;
    let addr = server.addr;
    let (mut a1, _) = Client::identified(addr, json!({"name": "mallory"})).await;
    let (mut a2, _) = Client::identified(addr, json!({"name": "mallory"})).await;
    let r = api(addr, "POST", "/api/disconnect", Some(json!({"user": "mallory"}))).await;
    assert_eq!(r["disconnected"], 2);
    assert_eq!(a1.closed().await, Some(4503));
    assert_eq!(a2.closed().await, Some(4503));
    let (status, _) =
        http(addr, "POST", "/api/disconnect", Some(KEY), Some(&json!({"user": "x", "code": 77}))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn presence_directory_info_and_batch() {
    let server = dev_server().await;
    let addr = server.addr;
    let (mut ada, _) = Client::identified(addr, json!({"name": "ada"})).await;
    let (mut bob, _) = Client::identified(addr, json!({"name": "bob"})).await;
    ada.call("~sub", json!({"topic": "room/lobby"})).await.unwrap();

    let r = api(addr, "GET", "/api/presence?topic=room/lobby", None).await;
    let peers = r["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "{r}");
    assert_eq!(peers[0]["alias"], "ada");

    let r = api(addr, "GET", "/api/directory", None).await;
    let mut aliases: Vec<_> =
        r["peers"].as_array().unwrap().iter().map(|p| p["alias"].as_str().unwrap().to_owned()).collect();
    aliases.sort();
    assert_eq!(aliases, ["ada", "bob"]);

    let r = api(addr, "GET", "/api/info", None).await;
    assert_eq!(r["connections"], 2, "{r}");
    assert_eq!(r["users"], 2, "{r}");
    assert!(r["messages_in"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(r["connections_total"], 2, "{r}");
    assert!(r["node"].is_string() && r["uptime_ms"].is_u64(), "{r}");

    let r = api(
        addr,
        "POST",
        "/api/batch",
        Some(json!({"commands": [
            {"op": "publish", "topic": "room/lobby", "data": "one"},
            {"op": "send", "user": "bob", "type": "hey", "payload": 2},
            {"op": "broadcast", "type": "all", "payload": 3},
            {"op": "presence", "topic": "room/lobby"},
            {"op": "directory"},
            {"op": "info"},
            {"op": "nonsense"},
        ]})),
    )
    .await;
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    assert_eq!(results[0]["ok"]["seq"], 1);
    assert_eq!(results[1]["ok"]["delivered"], 1);
    assert_eq!(results[2]["ok"]["delivered"], 2);
    assert_eq!(results[3]["ok"]["peers"].as_array().unwrap().len(), 1);
    assert_eq!(results[4]["ok"]["peers"].as_array().unwrap().len(), 2);
    assert_eq!(results[5]["ok"]["connections"], 2);
    assert_eq!(results[6]["error"]["code"], "BAD_REQUEST");
    assert_eq!(ada.expect("~msg").await[1]["data"], "one");
    assert_eq!(bob.expect("hey").await[1], 2);
    assert_eq!(ada.expect("all").await[1], 3);
    assert_eq!(bob.expect("all").await[1], 3);
}

#[tokio::test]
async fn history_reads_what_a_topic_kept() {
    let server = dev_server().await;
    let addr = server.addr;
    // Behind the key like every /api route (checked before the query).
    let (status, _) = http(addr, "GET", "/api/history?topic=room/h", None, None).await;
    assert_eq!(status, 401);
    let (status, _) = http(addr, "GET", "/api/history?nope=1", None, None).await;
    assert_eq!(status, 401);

    // A topic with history and no publication yet: an empty list, seq 0.
    let r = api(addr, "GET", "/api/history?topic=room/h", None).await;
    assert_eq!(r["topic"], "room/h");
    assert_eq!(r["seq"], 0);
    assert_eq!(r["publications"], json!([]));
    let epoch = r["epoch"].as_str().unwrap().to_owned();

    // A client publishes too: `from` is kept.
    let (mut ada, _) = Client::identified(addr, json!({"name": "ada"})).await;
    ada.call("~pub", json!({"topic": "room/h", "data": "by ada"})).await.unwrap();
    for i in 2..=5 {
        api(addr, "POST", "/api/publish", Some(json!({"topic": "room/h", "event": "n", "data": i}))).await;
    }
    let r = api(addr, "GET", "/api/history?topic=room/h", None).await;
    assert_eq!(r["epoch"], epoch.as_str());
    assert_eq!(r["seq"], 5);
    let seqs: Vec<_> =
        r["publications"].as_array().unwrap().iter().map(|p| p["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "oldest first: {r}");
    assert_eq!(r["publications"][0]["data"], "by ada");
    assert_eq!(r["publications"][0]["from"]["user"], "ada");
    assert_eq!(r["publications"][1]["event"], "n");
    assert_eq!(r["publications"][1]["data"], 2);
    assert!(r["publications"][1].get("from").is_none(), "server publications have no `from`: {r}");

    // The newest `limit`, oldest first.
    let r = api(addr, "GET", "/api/history?topic=room/h&limit=2", None).await;
    let seqs: Vec<_> =
        r["publications"].as_array().unwrap().iter().map(|p| p["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [4, 5]);
    // After a position, oldest first, at most `limit`: paging forward.
    let r =
        api(addr, "GET", &format!("/api/history?topic=room/h&since_epoch={epoch}&since_seq=1&limit=2"), None)
            .await;
    let seqs: Vec<_> =
        r["publications"].as_array().unwrap().iter().map(|p| p["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [2, 3]);
    assert_eq!(r["seq"], 5);
    // Another epoch: nothing, and the current epoch.
    let r =
        api(addr, "GET", "/api/history?topic=room/h&since_epoch=0000000000000000&since_seq=1", None).await;
    assert_eq!(r["publications"], json!([]));
    assert_eq!(r["epoch"], epoch.as_str());

    // Errors: no history (404 NOT_FOUND), limit 0, half a `since`, a bad topic, no topic (400).
    for (path, status, code) in [
        ("/api/history?topic=group/x", 404, "NOT_FOUND"),
        ("/api/history?topic=room/h&limit=0", 400, "BAD_REQUEST"),
        ("/api/history?topic=room/h&since_seq=1", 400, "BAD_REQUEST"),
        ("/api/history?topic=room/h&limit=lots", 400, "BAD_REQUEST"),
        ("/api/history?topic=bad%20topic", 400, "BAD_REQUEST"),
        ("/api/history", 400, "BAD_REQUEST"),
    ] {
        let (got, text) = http(addr, "GET", path, Some(KEY), None).await;
        assert_eq!(got, status, "{path}: {text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["code"], code, "{path}: {text}");
    }

    // In a batch, with `since` as an object.
    let r = api(
        addr,
        "POST",
        "/api/batch",
        Some(json!({"commands": [
            {"op": "history", "topic": "room/h", "limit": 1},
            {"op": "history", "topic": "room/h", "since": {"epoch": epoch, "seq": 4}},
            {"op": "history", "topic": "group/x"},
        ]})),
    )
    .await;
    assert_eq!(r["results"][0]["ok"]["publications"][0]["seq"], 5, "{r}");
    assert_eq!(r["results"][1]["ok"]["publications"][0]["seq"], 5, "{r}");
    assert_eq!(r["results"][2]["error"]["code"], "NOT_FOUND", "{r}");
}

#[tokio::test]
async fn a_publish_key_publishes_once() {
    let server = dev_server().await;
    let addr = server.addr;
    let (mut bob, _) = Client::identified(addr, json!({"name": "bob"})).await;
    bob.call("~sub", json!({"topic": "room/k"})).await.unwrap();
    let body = json!({"topic": "room/k", "data": {"order": 7}, "key": "order-7"});
    let first = api(addr, "POST", "/api/publish", Some(body.clone())).await;
    let again = api(addr, "POST", "/api/publish", Some(body)).await;
    assert_eq!(first["seq"], 1);
    assert_eq!(again["seq"], 1, "a repeat answers the first one's seq");
    // In a batch too: the same key again, and a new one.
    let r = api(
        addr,
        "POST",
        "/api/batch",
        Some(json!({"commands": [
            {"op": "publish", "topic": "room/k", "data": {"order": 7}, "key": "order-7"},
            {"op": "publish", "topic": "room/k", "data": {"order": 8}, "key": "order-8"},
            {"op": "publish", "topic": "room/k", "data": 0, "key": ""},
            {"op": "publish", "topic": "room/k", "data": 0, "key": "k".repeat(65)},
        ]})),
    )
    .await;
    assert_eq!(r["results"][0]["ok"]["seq"], 1, "{r}");
    assert_eq!(r["results"][1]["ok"]["seq"], 2, "{r}");
    assert_eq!(r["results"][2]["error"]["code"], "BAD_REQUEST", "{r}");
    assert_eq!(r["results"][3]["error"]["code"], "BAD_REQUEST", "{r}");
    // bob got each publication once.
    assert_eq!(bob.expect("~msg").await[1]["data"]["order"], 7);
    assert_eq!(bob.expect("~msg").await[1]["data"]["order"], 8);
    let (status, text) = http(
        addr,
        "POST",
        "/api/publish",
        Some(KEY),
        Some(&json!({"topic": "room/k", "data": 1, "key": "k".repeat(65)})),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let history = api(addr, "GET", "/api/history?topic=room/k", None).await;
    assert_eq!(history["publications"].as_array().unwrap().len(), 2, "{history}");
}
