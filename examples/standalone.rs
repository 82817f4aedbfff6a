//! Run: `cargo run -p switchboard-examples --example standalone [-- 127.0.0.1:8080]`
//!
//! A server on its own listener: identification with a password, one request (`add`), one
//! topic that the server publishes to every second (`ticks`, with history for recovery) and a
//! topic clients publish to (`notes/{name}`). Ctrl-C shuts it down gracefully (close 1001).
//!
//! Try it with any WebSocket client on `ws://127.0.0.1:8080/ws`:
//!
//! ```text
//! → ["~hello", {"identity": {"user": "ada", "password": "pw-ada"}}, 1]
//! ← ["~ok", {"conn": "…", "user": "ada", "ns": "main", "data": {"hello": "ada"}, "heartbeat": 25000}, 1]
//! → ["add", {"a": 1, "b": 2}, 2]
//! ← ["~ok", 3.0, 2]
//! → ["~sub", {"topic": "ticks"}, 3]
//! ← ["~ok", {"topic": "ticks", "epoch": "…", "seq": 7, "recovered": false}, 3]
//! ← ["~msg", {"topic": "ticks", "event": "tick", "data": {"n": 8}, "seq": 8}]
//! ```

use std::time::Duration;

use serde::Deserialize;
use switchboard::{Accept, Error, Hub, Namespace, Payload, Server, TopicOptions};

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

/// The identify hook: its payload is the `identity` of `~hello`.
async fn identify(Payload(login): Payload<Login>) -> Result<Accept, Error> {
    // A real server checks a password hash or a token here.
    if login.password == format!("pw-{}", login.user) {
        Ok(Accept::user(login.user.as_str()).welcome(&serde_json::json!({ "hello": login.user })))
    } else {
        Err(Error::not_authorized("wrong user or password"))
    }
}

#[derive(Deserialize)]
struct Add {
    a: f64,
    b: f64,
}

/// A request handler: `["add", {"a": 1, "b": 2}, id]` → `["~ok", 3.0, id]`.
async fn add(Payload(Add { a, b }): Payload<Add>) -> Result<f64, Error> {
    Ok(a + b)
}

/// Publishes `{"n": N}` on `ticks` every second, from outside any handler.
async fn ticker(hub: Hub) {
    let mut n = 0_u64;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        n += 1;
        if let Err(e) = hub.publish("ticks", Some("tick"), &serde_json::json!({ "n": n })).await {
            tracing::warn!(error = %e, "tick not published");
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_owned());

    let main = Namespace::new("main")
        .identify(identify)
        .on("add", add)
        // Only the server publishes; the last 100 ticks stay for recovery (`~sub` with `since`).
        .topic("ticks", TopicOptions::new().history(100, None))
        // Any identified client may publish here.
        .topic("notes/{name}", TopicOptions::new().clients_publish().history(20, None));
    let board = Server::new().namespace(main).build().await.expect("a valid server");

    tokio::spawn(ticker(board.hub()));

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let serving = tokio::spawn(board.clone().serve(listener));

    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    // Stops accepting, lets running handlers finish, closes every connection with 1001.
    board.shutdown().await;
    serving.await.expect("the server task")?;
    Ok(())
}
