//! Conformance: transport (protocol.md §1, appendix A process behaviour).
//!
//! Readings of protocol.md used here:
//! - "endpoint path `/ws`": an upgrade on another path is refused with a 4xx HTTP status.
//! - "exits cleanly on SIGTERM": the process exits with status 0, and the connections it
//!   closes while shutting down get close code 1001 ("server going away (shutdown, restart)",
//!   §8), possibly after a `~bye`.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite;

#[tokio::test]
async fn no_subprotocol_gets_json() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    assert_eq!(c.protocol(), None, "no subprotocol was offered, none may be selected");
    assert_eq!(c.codec(), Codec::Json);
    c.send_text(r#"["~ping",null,1]"#).await;
    let r = c.next().await;
    assert_eq!(r, json!(["~ok", null, 1]));
}

#[tokio::test]
async fn json_subprotocol_is_selected() {
    let fx = Fixture::start();
    let mut c = Client::connect_with(&fx, &[JSON_PROTOCOL]).await;
    assert_eq!(c.protocol(), Some(JSON_PROTOCOL));
    c.send_text(r#"["~ping",null,7]"#).await;
    assert_eq!(c.next().await, json!(["~ok", null, 7]));
}

#[tokio::test]
async fn msgpack_subprotocol_is_selected() {
    let fx = Fixture::start();
    let mut c = Client::connect_with(&fx, &[MSGPACK_PROTOCOL]).await;
    assert_eq!(c.protocol(), Some(MSGPACK_PROTOCOL));
    assert_eq!(c.codec(), Codec::Msgpack);
    // The client's reader rejects text frames on a msgpack connection, so this also checks
    // that the reply comes as a binary frame.
    c.sync().await;
}

#[tokio::test]
async fn a_known_subprotocol_among_unknown_ones_is_selected() {
    let fx = Fixture::start();
    let mut c = Client::connect_with(&fx, &["chat.v9", JSON_PROTOCOL]).await;
    assert_eq!(c.protocol(), Some(JSON_PROTOCOL));
    c.sync().await;
    let mut c = Client::connect_with(&fx, &["x-unknown", MSGPACK_PROTOCOL]).await;
    assert_eq!(c.protocol(), Some(MSGPACK_PROTOCOL));
    c.sync().await;
}

#[tokio::test]
async fn only_unknown_subprotocols_are_refused_with_400() {
    let fx = Fixture::start();
    assert_eq!(upgrade_status(&fx.url(), &["chat.v9"]).await, 400);
    assert_eq!(upgrade_status(&fx.url(), &["a", "switchboard.v2.json"]).await, 400);
    // The server is still fine afterwards.
    let mut c = Client::connect(&fx).await;
    c.sync().await;
}

#[tokio::test]
async fn upgrade_on_another_path_is_refused() {
    let fx = Fixture::start();
    let url = format!("ws://{}/not-ws", fx.addr());
    match try_connect(&url, &[]).await {
        Ok(_) => panic!("upgrade on /not-ws succeeded; the endpoint is /ws"),
        Err(tungstenite::Error::Http(resp)) => {
            let s = resp.status().as_u16();
            assert!((400..500).contains(&s), "status {s} for /not-ws");
        }
        Err(e) => panic!("upgrade on /not-ws failed without an HTTP status: {e}"),
    }
}

#[tokio::test]
async fn one_frame_carries_one_message() {
    // Two messages packed in one frame are not a message (the first element is not a
    // string): protocol error.
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.send_text(r#"[["~ping",null,1],["~ping",null,2]]"#).await;
    let reason = c.expect_close_code(4501).await;
    assert!(!reason.is_empty(), "the close reason says what was wrong");
}

#[tokio::test]
async fn many_messages_in_many_frames() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(c.request("echo", json!({"i": i})).await);
    }
    for (i, id) in ids.into_iter().enumerate() {
        assert_eq!(c.reply(id).await, json!(["~ok", {"i": i}, id]));
    }
}

#[tokio::test]
async fn sigterm_closes_connections_with_1001_and_exits_cleanly() {
    let mut fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.sync().await;
    let stopper = tokio::task::spawn_blocking(move || {
        let status = fx.terminate();
        (fx, status)
    });
    let (code, reason) = c.expect_close_within(Duration::from_secs(10)).await;
    let (_fx, status) = stopper.await.expect("terminate task");
    assert_eq!(code, 1001, "close code on shutdown (reason {reason:?})");
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}
