//! Run: `cargo run -p switchboard-examples --example chat [-- 127.0.0.1:8090]`
//!
//! Chat rooms with presence and direct messages, with no chat-specific server code beyond the
//! rules: who may enter which room, what a room keeps, and an audit line per direct message.
//!
//! ```text
//! → ["~hello", {"identity": {"name": "ada"}}, 1]          identify (no password in this demo)
//! → ["~sub", {"topic": "room/lobby"}, 2]                  enter a room: `~presence` diffs follow
//! → ["~pub", {"topic": "room/lobby", "event": "say", "data": {"text": "hi"}}, 3]
//! → ["~who", {"topic": "room/lobby"}, 4]                  who is in the room
//! → ["~who", {}, 5]                                       everyone online (the directory)
//! → ["~dm", {"to": {"alias": "bob"}, "data": {"text": "psst"}}, 6]
//! → ["~status", {"available": false}, 7]                  leave the directory, refuse DMs
//! → ["roll", {"room": "lobby"}, 8]                        the server publishes a dice roll
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use switchboard::{
    Accept, CapPolicy, Config, Error, Hub, Namespace, Payload, Server, State, TopicOptions, TopicParams, User,
};

#[derive(Clone, Default)]
struct Chat {
    /// Source of the dice rolls (a counter keeps the example free of a random-number crate).
    rolls: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct Hello {
    name: String,
}

/// Accepts any name of 1 to 32 characters; the name is the user and the public alias.
async fn identify(Payload(Hello { name }): Payload<Hello>) -> Result<Accept, Error> {
    if name.is_empty() || name.chars().count() > 32 {
        return Err(Error::not_authorized("a name has 1 to 32 characters"));
    }
    Ok(Accept::user(name.as_str())
        .alias(name.as_str())
        .public(&json!({ "status": "here to chat" }))
        .welcome(&json!({ "rooms": ["lobby", "rust", "staff"] })))
}

/// `room/staff` is for the user `admin` only; every other room is open.
async fn may_enter(User(user): User, params: TopicParams) -> Result<(), Error> {
    match params.get("room") {
        Some("staff") if &*user != "admin" => Err(Error::forbidden("staff only")),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct Roll {
    room: String,
}

/// A server-side publication into a room: the delivery has no `from`.
async fn roll(
    hub: Hub,
    User(user): User,
    State(chat): State<Chat>,
    Payload(Roll { room }): Payload<Roll>,
) -> Result<serde_json::Value, Error> {
    let n = chat.rolls.fetch_add(1, Ordering::Relaxed) % 6 + 1;
    let seq =
        hub.publish(&format!("room/{room}"), Some("roll"), &json!({ "user": &*user, "rolled": n })).await?;
    Ok(json!({ "rolled": n, "seq": seq }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".to_owned());

    let mut config = Config::default();
    // At most 3 tabs per name; a fourth `~hello` is answered LIMIT and closed with 4502.
    config.conn_per_user = Some((3, CapPolicy::RefuseNew));
    config.heartbeat = Duration::from_secs(15);

    let rooms = TopicOptions::new()
        .subscribe_if(may_enter)
        .clients_publish()
        .presence(true)
        // The last 50 messages of the past hour, for clients that reconnect with `since`.
        .history(50, Some(Duration::from_secs(3600)));
    let board = Server::with_state(Chat::default())
        .config(config)
        .namespace(Namespace::new("main").identify(identify).on("roll", roll).topic("room/{room}", rooms))
        .on_direct_message(|dm| {
            tracing::info!(from = ?dm.from.alias, to = %dm.to_conn, "direct message");
        })
        .build()
        .await
        .expect("a valid server");

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let serving = tokio::spawn(board.clone().serve(listener));
    tokio::signal::ctrl_c().await?;
    board.shutdown().await;
    serving.await.expect("the server task")
}
