//! `switchboard-fixture`: a server with exactly the behaviour of `shared/protocol.md`, appendix A,
//! so that clients written against the protocol alone can test themselves against it.
//!
//! ```text
//! switchboard-fixture --listen 127.0.0.1:PORT [--redis redis://HOST:PORT | redis+cluster://HOST:PORT,…]
//! ```
//!
//! With `--redis`, fixtures on the same Redis form one cluster (`switchboard-redis`).
//!
//! Prints `listening on ADDR` once ready, logs to stderr (`RUST_LOG`), exits cleanly on SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard::{
    Accept, CapPolicy, CloseCode, Config, Conn, Error, Hub, Namespace, Payload, RawPayload, Server,
    TopicOptions, TopicParams, User,
};

#[derive(Parser)]
#[command(about = "The Switchboard conformance fixture (protocol.md, appendix A)")]
struct Args {
    /// Address to listen on (port 0 picks a free one; the line `listening on ADDR` tells which).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Redis URL: several fixtures on one Redis form a cluster (`redis://HOST:PORT`, or
    /// `redis+cluster://HOST:PORT,…` for a Redis Cluster).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

#[derive(Deserialize)]
struct Identity {
    user: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    challenge: bool,
}

fn accept(user: &str) -> Accept {
    Accept::user(user).alias(user).welcome(&json!({ "hello": user })).public(&json!({ "since": "fixture" }))
}

fn hmac_hex(key: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn identify(conn: Conn, Payload(id): Payload<Identity>) -> Result<Accept, Error> {
    if id.user.is_empty() {
        return Err(Error::not_authorized("unknown credentials"));
    }
    if id.challenge {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let answer: String = conn.challenge(&json!({ "nonce": nonce })).await?.decode()?;
        if answer == hmac_hex(&format!("secret-{}", id.user), &nonce) {
            return Ok(accept(&id.user));
        }
        return Err(Error::not_authorized("wrong answer"));
    }
    match id.password {
        Some(p) if p == format!("pw-{}", id.user) => Ok(accept(&id.user)),
        _ => Err(Error::not_authorized("unknown credentials")),
    }
}

async fn identify_root(Payload(id): Payload<Identity>) -> Result<Accept, Error> {
    if id.user == "root" && id.password.as_deref() == Some("pw-root") {
        Ok(accept("root"))
    } else {
        Err(Error::not_authorized("admin is for root"))
    }
}

async fn no_forbidden(raw: RawPayload) -> Result<(), Error> {
    match raw.decode::<Value>() {
        Ok(Value::Object(map)) if map.get("forbidden") == Some(&Value::Bool(true)) => {
            Err(Error::forbidden("forbidden by the fixture's filter"))
        }
        _ => Ok(()),
    }
}

async fn echo(raw: RawPayload) -> RawPayload {
    raw
}

async fn add(Payload(args): Payload<Value>) -> Result<Value, Error> {
    let number = |k: &str| args.as_object().and_then(|o| o.get(k)).and_then(Value::as_f64);
    let (Some(a), Some(b)) = (number("a"), number("b")) else {
        return Err(Error::bad_request("add takes {\"a\": number, \"b\": number}"));
    };
    let sum = a + b;
    // Integers stay integers on the wire when they can.
    if sum.fract() == 0.0 && sum.abs() < 9.007_199_254_740_992e15 {
        #[allow(clippy::cast_possible_truncation)]
        return Ok(json!(sum as i64));
    }
    Ok(json!(sum))
}

async fn fail() -> Result<(), Error> {
    Err(Error::new("TEAPOT", "I'm a teapot"))
}

async fn panic() -> Result<(), Error> {
    panic!("the fixture's panic handler panicked, as asked")
}

#[derive(Deserialize)]
struct Sleep {
    ms: u64,
}

async fn sleep(Payload(Sleep { ms }): Payload<Sleep>) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn whoami(conn: Conn) -> Result<Value, Error> {
    Ok(json!({ "user": conn.user().as_deref(), "conn": conn.id(), "ns": conn.namespace().as_deref() }))
}

#[derive(Deserialize)]
struct Ask {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: RawPayload,
    timeout_ms: Option<u64>,
}

async fn ask(conn: Conn, Payload(ask): Payload<Ask>) -> Result<RawPayload, Error> {
    let mut request = conn.request(&ask.kind, &ask.payload);
    if let Some(ms) = ask.timeout_ms {
        request = request.timeout(Duration::from_millis(ms));
    }
    Ok(request.await?)
}

#[derive(Deserialize)]
struct Tell {
    user: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: RawPayload,
}

async fn tell(hub: Hub, Payload(t): Payload<Tell>) -> Result<Value, Error> {
    Ok(json!({ "delivered": hub.send_to_user(&t.user, &t.kind, &t.payload).await? }))
}

#[derive(Deserialize)]
struct Shout {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: RawPayload,
}

async fn shout(hub: Hub, conn: Conn, Payload(s): Payload<Shout>) -> Result<Value, Error> {
    Ok(json!({ "delivered": hub.broadcast(&s.kind, &s.payload, Some(conn.id())).await? }))
}

#[derive(Deserialize)]
struct Join {
    group: String,
}

async fn join(hub: Hub, conn: Conn, Payload(j): Payload<Join>) -> Result<(), Error> {
    Ok(hub.join(conn.id(), &format!("group/{}", j.group)).await?)
}

#[derive(Deserialize)]
struct Publish {
    topic: String,
    event: Option<String>,
    #[serde(default)]
    data: RawPayload,
}

async fn publish(hub: Hub, Payload(p): Payload<Publish>) -> Result<Value, Error> {
    Ok(json!({ "seq": hub.publish(&p.topic, p.event.as_deref(), &p.data).await? }))
}

async fn ack_me(hub: Hub, conn: Conn, Payload(s): Payload<Shout>) -> Result<(), Error> {
    Ok(hub.send_acked(conn.id(), &s.kind, &s.payload).await?)
}

async fn own_private(User(user): User, params: TopicParams) -> Result<(), Error> {
    if params.get("user") == Some(&*user) {
        Ok(())
    } else {
        Err(Error::forbidden("private topic of another user"))
    }
}

#[derive(Deserialize)]
struct Kick {
    user: String,
}

async fn kick(hub: Hub, Payload(k): Payload<Kick>) -> Result<Value, Error> {
    Ok(json!({ "kicked": hub.disconnect_user(&k.user, CloseCode::KICKED, "kicked by an admin").await? }))
}

async fn status() -> Value {
    json!({ "ok": true })
}

fn main_namespace() -> Namespace {
    Namespace::new("main")
        .identify(identify)
        .filter(no_forbidden)
        .on("echo", echo)
        .on("add", add)
        .on("fail", fail)
        .on("panic", panic)
        .on("sleep", sleep)
        .on("whoami", whoami)
        .on("ask", ask)
        .on("tell", tell)
        .on("shout", shout)
        .on("join", join)
        .on("publish", publish)
        .on("ack-me", ack_me)
        .topic("chat/{room}", TopicOptions::new().clients_publish().presence(true).history(100, None))
        .topic("todo/{list}/{item}", TopicOptions::new().history(100, None))
        .topic("private/{user}", TopicOptions::new().subscribe_if(own_private))
        .topic("acked/{x}", TopicOptions::new().acknowledged(true))
        .topic("group/{g}", TopicOptions::new().server_joins_only())
}

fn config() -> Config {
    let mut config = Config::default();
    config.heartbeat = Duration::from_secs(5);
    config.identify_timeout = Duration::from_secs(2);
    config.max_message_size = 64 * 1024;
    config.conn_per_user = Some((3, CapPolicy::EvictOldest));
    config.ack_timeout = Duration::from_millis(300);
    config.max_resends = 5;
    config
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let main = main_namespace();
    let admin =
        Namespace::new("admin").extends(&main).identify(identify_root).on("kick", kick).allow_info(true);
    let mut server = Server::new();
    if let Some(url) = &args.redis {
        let backends =
            switchboard_redis::RedisBackends::connect(url, switchboard_redis::RedisOptions::default())
                .await
                .with_context(|| format!("--redis {url}"))?;
        server = server.backends(backends);
    }
    let board =
        server.config(config()).public("status", status).namespace(main).namespace(admin).build().await?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("bind {}", args.listen))?;
    // Before `listening on`: a SIGTERM right after it must find our handler, not the default
    // action (which would kill the process without closing connections with 1001).
    let stop_signal = shutdown_signal();
    println!("listening on {}", listener.local_addr()?);
    let serving = tokio::spawn(board.clone().serve(listener));
    stop_signal.await;
    tracing::info!("shutting down");
    board.shutdown().await;
    serving.await??;
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now and returns what completes at the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
