//! Conformance: the `~challenge` step of the handshake (protocol.md §3.3, appendix A).
//!
//! Readings of protocol.md used here:
//! - The challenge is a server request `["~challenge", {"nonce": HEX}, sid]` with a valid id
//!   (1 ≤ sid ≤ 2^53−1) and a non-empty hex nonce; two challenges get different nonces.
//! - The fixture does not say what welcome data a challenged user gets, so only `user`,
//!   `ns` and the welcome's keys are checked.
//! - A wrong answer, a non-string answer, or the client giving up with `~err` means the
//!   identification is refused: `NOT_AUTHORIZED` for the `~hello`, then close 4500.
//! - A challenge that is never answered is covered by the identification timeout: 4504.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Sends the challenge `~hello` for `user` and returns (hello id, sid, nonce).
async fn start_challenge(c: &mut Client, user: &str) -> (u64, u64, String) {
    let hello = c.request("~hello", json!({"identity": {"user": user, "challenge": true}})).await;
    let ch = c.wait_type("~challenge").await;
    let arr = ch.as_array().expect("array");
    assert_eq!(arr.len(), 3, "the challenge is a request: {ch}");
    let sid = msg_id(&ch).unwrap_or_else(|| panic!("challenge id: {ch}"));
    assert!((1..=MAX_ID).contains(&sid), "challenge id in range: {ch}");
    assert_keys(&ch[1], &["nonce"]);
    let nonce = ch[1]["nonce"].as_str().unwrap_or_else(|| panic!("nonce is a string: {ch}")).to_string();
    assert!(!nonce.is_empty() && nonce.chars().all(|c| c.is_ascii_hexdigit()), "nonce is HEX: {nonce:?}");
    (hello, sid, nonce)
}

#[tokio::test]
async fn correct_answer_is_accepted() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let (hello, sid, nonce) = start_challenge(&mut c, "bob").await;
    let answer = hmac_hex("secret-bob", &nonce);
    c.send(&json!(["~ok", answer, sid])).await;
    let w = c.result(hello).await.expect("accepted");
    assert_keys(&w, &["conn", "user", "ns", "data", "heartbeat"]);
    assert_eq!(w["user"], "bob");
    assert_eq!(w["ns"], "main");
    assert_eq!(w["heartbeat"], 5000);
    let me = c.ok("whoami", Value::Null).await;
    assert_eq!(me["user"], "bob");
    assert_eq!(me["conn"], w["conn"]);
}

#[tokio::test]
async fn nonces_differ() {
    let fx = Fixture::start();
    let mut a = Client::connect(&fx).await;
    let mut b = Client::connect(&fx).await;
    let (_, _, n1) = start_challenge(&mut a, "bob").await;
    let (_, _, n2) = start_challenge(&mut b, "bob").await;
    assert_ne!(n1, n2, "two challenges with the same nonce");
}

async fn refused_after(answer: Value, user: &str) {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let (hello, sid, _nonce) = start_challenge(&mut c, user).await;
    c.send(&json!(["~ok", answer, sid])).await;
    let e = c.result(hello).await.expect_err("refused");
    assert_code(&e, "NOT_AUTHORIZED");
    c.expect_close_code(4500).await;
}

#[tokio::test]
async fn wrong_answer_is_refused_then_closed_4500() {
    refused_after(json!("00".repeat(32)), "bob").await;
}

#[tokio::test]
async fn non_string_answer_is_refused() {
    refused_after(json!({"answer": 1}), "bob").await;
}

#[tokio::test]
async fn answer_under_another_users_key_is_refused() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let (hello, sid, nonce) = start_challenge(&mut c, "bob").await;
    c.send(&json!(["~ok", hmac_hex("secret-alice", &nonce), sid])).await;
    let e = c.result(hello).await.expect_err("refused");
    assert_code(&e, "NOT_AUTHORIZED");
    c.expect_close_code(4500).await;
}

#[tokio::test]
async fn answer_for_another_nonce_is_refused() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let (hello, sid, nonce) = start_challenge(&mut c, "bob").await;
    let other = format!("{nonce}00");
    c.send(&json!(["~ok", hmac_hex("secret-bob", &other), sid])).await;
    let e = c.result(hello).await.expect_err("refused");
    assert_code(&e, "NOT_AUTHORIZED");
    c.expect_close_code(4500).await;
}

#[tokio::test]
async fn giving_up_is_refused() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let (hello, sid, _) = start_challenge(&mut c, "bob").await;
    c.send(&json!(["~err", {"code": "CANCELLED", "message": "no key"}, sid])).await;
    let e = c.result(hello).await.expect_err("refused");
    assert_code(&e, "NOT_AUTHORIZED");
    c.expect_close_code(4500).await;
}

#[tokio::test]
async fn unanswered_challenge_hits_the_identification_timeout() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let _ = start_challenge(&mut c, "bob").await;
    let (code, reason) = c.expect_close_within(Duration::from_secs(8)).await;
    assert_eq!(code, 4504, "close reason {reason:?}");
}
