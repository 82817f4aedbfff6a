//! Conformance: users and their connections (protocol.md §6, appendix A `conn_per_user`,
//! `tell`, `kick`).
//!
//! Readings of protocol.md used here:
//! - `conn_per_user` 3 with `evict_oldest`: the 4th successful `~hello` of a user closes that
//!   user's oldest connection (by identification order) with 4502; the new one is welcomed.
//!   Anonymous connections and other users do not count.
//! - `tell`'s `delivered` counts the connections reached. Once a client has closed its
//!   connection the server notices asynchronously, so the count is polled until it drops
//!   (with a deadline; never "eventually, maybe").
//! - `kick`'s reply payload is not specified; only that it is `~ok`.
//! - A kick is not a ban: the user may identify again afterwards.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

async fn delivered_to(sender: &mut Client, user: &str) -> u64 {
    let r = sender.ok("tell", json!({"user": user, "type": "count", "payload": null})).await;
    r["delivered"].as_u64().unwrap_or_else(|| panic!("tell reply {r}"))
}

/// Polls `tell` until it reports `want` deliveries to `user`, for at most [`WAIT`].
async fn await_delivered(sender: &mut Client, user: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = delivered_to(sender, user).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tell to {user} still reports {got} deliveries, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn fourth_connection_evicts_the_oldest_with_4502() {
    let fx = Fixture::start();
    let mut a1 = Client::user(&fx, "alice").await;
    let mut a2 = Client::user(&fx, "alice").await;
    let mut a3 = Client::user(&fx, "alice").await;
    for c in [&mut a1, &mut a2, &mut a3] {
        c.sync().await;
    }
    let mut a4 = Client::user(&fx, "alice").await;
    a1.expect_close_code(4502).await;
    for c in [&mut a2, &mut a3, &mut a4] {
        assert_eq!(c.ok("echo", json!("alive")).await, json!("alive"));
    }
    // The next one evicts the next oldest.
    let mut a5 = Client::user(&fx, "alice").await;
    a2.expect_close_code(4502).await;
    for c in [&mut a3, &mut a4, &mut a5] {
        c.sync().await;
    }
    assert_eq!(delivered_to(&mut a3, "alice").await, 3);
}

#[tokio::test]
async fn the_cap_is_per_user_and_ignores_anonymous_connections() {
    let fx = Fixture::start();
    let mut anon = Vec::new();
    for _ in 0..4 {
        anon.push(Client::connect(&fx).await);
    }
    let mut alice = Vec::new();
    let mut bob = Vec::new();
    for _ in 0..3 {
        alice.push(Client::user(&fx, "alice").await);
        bob.push(Client::user(&fx, "bob").await);
    }
    for c in alice.iter_mut().chain(bob.iter_mut()).chain(anon.iter_mut()) {
        c.sync().await;
    }
    assert_eq!(delivered_to(&mut alice[0], "alice").await, 3);
    assert_eq!(delivered_to(&mut alice[0], "bob").await, 3);
}

#[tokio::test]
async fn tell_counts_the_connections_reached() {
    let fx = Fixture::start();
    let mut sender = Client::user(&fx, "sender").await;
    assert_eq!(delivered_to(&mut sender, "dave").await, 0);
    let mut d1 = Client::user(&fx, "dave").await;
    assert_eq!(delivered_to(&mut sender, "dave").await, 1);
    let d2 = Client::user(&fx, "dave").await;
    assert_eq!(delivered_to(&mut sender, "dave").await, 2);
    let mut d3 = Client::user(&fx, "dave").await;
    assert_eq!(delivered_to(&mut sender, "dave").await, 3);
    d2.close().await;
    await_delivered(&mut sender, "dave", 2).await;
    // Each remaining connection got every `count` event sent while it was connected.
    let got1 = d1.collect_for(QUIET, |m| ty(m) == "count").await;
    let got3 = d3.collect_for(QUIET, |m| ty(m) == "count").await;
    assert!(got1.len() >= 3, "d1 got {got1:?}");
    assert!(!got3.is_empty(), "d3 got {got3:?}");
    for m in got1.iter().chain(got3.iter()) {
        assert_eq!(m, &json!(["count", null]));
    }
}

async fn root(fx: &Fixture) -> Client {
    let mut c = Client::connect(fx).await;
    c.hello(json!({"ns": "admin", "identity": {"user": "root", "password": "pw-root"}}))
        .await
        .expect("root accepted in admin");
    c
}

#[tokio::test]
async fn kick_closes_all_of_a_users_connections_with_4503() {
    let fx = Fixture::start();
    let mut a1 = Client::user(&fx, "alice").await;
    let mut a2 = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let mut r = root(&fx).await;
    r.ok("kick", json!({"user": "alice"})).await;
    a1.expect_close_code(4503).await;
    a2.expect_close_code(4503).await;
    // Others live on.
    assert_eq!(bob.ok("echo", json!(1)).await, json!(1));
    assert_eq!(r.ok("echo", json!(2)).await, json!(2));
    await_delivered(&mut bob, "alice", 0).await;
    // Not a ban.
    let mut again = Client::user(&fx, "alice").await;
    assert_eq!(again.ok("whoami", Value::Null).await["user"], "alice");
}

#[tokio::test]
async fn kick_reaches_main_and_admin_connections_alike() {
    let fx = Fixture::start();
    let mut r1 = root(&fx).await;
    let mut root_in_main = Client::user(&fx, "root").await;
    let mut r2 = root(&fx).await;
    // Every connection of user "root" is closed, the kicker's own included (whether its
    // reply makes it out before the close is not specified, so it is not awaited).
    r2.request("kick", json!({"user": "root"})).await;
    root_in_main.expect_close_code(4503).await;
    r1.expect_close_code(4503).await;
    r2.expect_close_code(4503).await;
}
