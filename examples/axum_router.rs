//! Run: `cargo run -p switchboard-examples --example axum_router [-- 127.0.0.1:3000]`
//!
//! Switchboard mounted into an existing axum `Router`, next to ordinary HTTP routes. The
//! application logs users in over HTTP (`POST /login/NAME` sets a `sid` cookie); the
//! upgrade hook refuses WebSocket upgrades from foreign origins (403) and without a known
//! session cookie (401); the identify hook then accepts the connection as the cookie's user,
//! with no credentials in `~hello`.
//!
//! ```text
//! curl -i -X POST http://127.0.0.1:3000/login/ada     # Set-Cookie: sid=…
//! # then open ws://127.0.0.1:3000/ws with that cookie and send ["~hello", {}, 1]
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use switchboard::{
    Accept, Conn, Error, FromRef, Namespace, Rejection, Server, State, TopicOptions, UpgradeRequest, User,
};

/// Logged-in sessions: cookie value → user. Shared by the HTTP routes and the WebSocket hooks.
#[derive(Clone, Default)]
struct Sessions(Arc<Mutex<HashMap<String, String>>>);

impl Sessions {
    fn user(&self, sid: &str) -> Option<String> {
        self.0.lock().expect("not poisoned").get(sid).cloned()
    }
}

/// The application state of the Switchboard server (handlers extract parts of it).
#[derive(Clone)]
struct App {
    sessions: Sessions,
    motd: Arc<str>,
}

impl FromRef<App> for Sessions {
    fn from_ref(app: &App) -> Self {
        app.sessions.clone()
    }
}

const ALLOWED_ORIGINS: &[&str] = &["http://127.0.0.1:3000", "http://localhost:3000"];

/// Runs before the WebSocket handshake: refuse foreign origins and anonymous visitors.
async fn check_upgrade(sessions: Sessions, req: Arc<UpgradeRequest>) -> Result<(), Rejection> {
    // Browsers always send Origin; other clients may not (they are not subject to CSRF).
    if let Some(origin) = req.origin()
        && !ALLOWED_ORIGINS.contains(&origin)
    {
        return Err(Rejection::forbidden("origin not allowed"));
    }
    match req.cookie("sid") {
        Some(sid) if sessions.user(sid).is_some() => Ok(()),
        _ => Err(Rejection::new(StatusCode::UNAUTHORIZED, "log in first")),
    }
}

/// The identify hook: the user comes from the session cookie of the upgrade request, so
/// `["~hello", {}, id]` is enough.
async fn identify(
    req: Arc<UpgradeRequest>,
    State(sessions): State<Sessions>,
    State(app): State<App>,
) -> Result<Accept, Error> {
    let user = req
        .cookie("sid")
        .and_then(|sid| sessions.user(sid))
        .ok_or_else(|| Error::not_authorized("the session expired"))?;
    Ok(Accept::user(user.as_str()).alias(user.as_str()).welcome(&serde_json::json!({ "motd": &*app.motd })))
}

async fn whoami(User(user): User, conn: Conn) -> Result<serde_json::Value, Error> {
    Ok(serde_json::json!({ "user": &*user, "conn": conn.id() }))
}

/// An ordinary axum route: creates a session and sets its cookie.
async fn login(AxumState(sessions): AxumState<Sessions>, Path(user): Path<String>) -> impl IntoResponse {
    let sid = format!("{:032x}", rand_u128());
    sessions.0.lock().expect("not poisoned").insert(sid.clone(), user);
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, format!("sid={sid}; HttpOnly; SameSite=Strict; Path=/"))])
}

/// Good enough for a demo; use a real random source for session ids.
fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, RandomState};
    let s = RandomState::new();
    (u128::from(s.hash_one(1_u8)) << 64) | u128::from(s.hash_one(2_u8))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3000".to_owned());

    let sessions = Sessions::default();
    let app_state = App { sessions: sessions.clone(), motd: Arc::from("welcome to the axum example") };
    let hook_sessions = sessions.clone();
    let board = Server::with_state(app_state)
        .on_upgrade(move |req| check_upgrade(hook_sessions.clone(), req))
        .namespace(
            Namespace::new("main")
                .identify(identify)
                .on("whoami", whoami)
                .topic("chat/{room}", TopicOptions::new().clients_publish().presence(true)),
        )
        .build()
        .await
        .expect("a valid server");

    // The application's own router; Switchboard's adds the `/ws` route (Config::path).
    let app = axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/login/{user}", post(login))
        .with_state(sessions)
        .merge(board.router());

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    // Small realtime messages should not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let shutdown = {
        let board = board.clone();
        async move {
            let _ = tokio::signal::ctrl_c().await;
            // Closes WebSockets with 1001 (upgrades are answered 503 meanwhile), then axum stops.
            board.shutdown().await;
        }
    };
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
