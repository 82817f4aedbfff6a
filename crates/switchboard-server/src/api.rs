//! The HTTP API for backends under `/api` (see `docs/http-api.openapi.yaml`), plus `/metrics`,
//! `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use switchboard::{CloseCode, Hub, HubError, RequestError};

/// What the API handlers share.
pub(crate) struct Api {
    /// The hub: sends, publishes, requests, kicks.
    pub hub: Hub,
    /// The API key; `None` disables the API.
    pub key: Option<String>,
    /// Prometheus exposition.
    pub metrics: PrometheusHandle,
    /// False once shutdown began.
    pub ready: Arc<AtomicBool>,
}

/// An API error: status and `{"error": {"code", "message", "data"?}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    data: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.to_owned(), message: message.into(), data: None }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }
    fn body(&self) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        json!({ "error": e })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, "application/json")], self.body().to_string()).into_response()
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Topic(m) => Self::bad_request(m),
            HubError::NotFound => Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such connection"),
            HubError::Encode(m) => Self::bad_request(m),
            other => Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", other.to_string()),
        }
    }
}

fn ok(value: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

fn authorize(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&api.key, given) {
        (Some(key), Some(given)) if constant_eq(key.as_bytes(), given.trim().as_bytes()) => Ok(()),
        (None, _) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "NOT_AUTHENTICATED",
            "the HTTP API is disabled: no API key is configured",
        )),
        _ => Err(ApiError::new(StatusCode::UNAUTHORIZED, "NOT_AUTHENTICATED", "missing or wrong API key")),
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One API command; the batch endpoint takes a list of them, tagged by `op`.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Command {
    Publish(PublishCmd),
    Send(SendCmd),
    Broadcast(BroadcastCmd),
    Disconnect(DisconnectCmd),
    Request(RequestCmd),
    Presence(PresenceCmd),
    Directory,
    Info,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishCmd {
    topic: String,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    data: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendCmd {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    conn: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BroadcastCmd {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    except: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisconnectCmd {
    user: String,
    #[serde(default = "kicked")]
    code: u16,
    #[serde(default)]
    reason: Option<String>,
}

fn kicked() -> u16 {
    CloseCode::KICKED.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestCmd {
    conn: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PresenceCmd {
    topic: String,
}

async fn peers(api: &Api, topic: Option<&str>) -> Result<Value, ApiError> {
    let peers = match topic {
        Some(topic) => api.hub.presence(topic).await,
        None => api.hub.directory().await,
    }
    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", e.to_string()))?;
    Ok(json!({ "peers": peers }))
}

/// Runs one command.
async fn execute(api: &Api, command: Command) -> Result<Value, ApiError> {
    metrics::counter!("switchboard_api_commands_total").increment(1);
    match command {
        Command::Publish(c) => {
            Ok(json!({ "seq": api.hub.publish(&c.topic, c.event.as_deref(), &c.data).await? }))
        }
        Command::Send(c) => {
            let delivered = match (&c.user, &c.conn) {
                (Some(user), None) => api.hub.send_to_user(user, &c.kind, &c.payload).await?,
                (None, Some(conn)) => api.hub.send_to_conn(conn, &c.kind, &c.payload).await?,
                _ => return Err(ApiError::bad_request("give exactly one of `user`, `conn`")),
            };
            Ok(json!({ "delivered": delivered }))
        }
        Command::Broadcast(c) => {
            let delivered = api.hub.broadcast(&c.kind, &c.payload, c.except.as_deref()).await?;
            Ok(json!({ "delivered": delivered }))
        }
        Command::Disconnect(c) => {
            if !(4000..5000).contains(&c.code) && c.code != 1000 && c.code != 1001 {
                return Err(ApiError::bad_request("code: 1000, 1001 or 4000–4999"));
            }
            let reason = c.reason.as_deref().unwrap_or("disconnected by the server");
            Ok(json!({ "disconnected": api.hub.disconnect_user(&c.user, CloseCode(c.code), reason).await? }))
        }
        Command::Request(c) => {
            let timeout = Duration::from_millis(c.timeout_ms.unwrap_or(10_000).clamp(1, 300_000));
            match api.hub.request(&c.conn, &c.kind, &c.payload, timeout).await {
                Ok(answer) => {
                    let result: Value = answer.decode().unwrap_or(Value::Null);
                    Ok(json!({ "result": result }))
                }
                Err(RequestError::Remote(body)) => {
                    let mut e = ApiError::new(StatusCode::BAD_GATEWAY, &body.code, body.message.clone());
                    e.data = body.data.as_ref().and_then(|d| d.decode().ok());
                    Err(e)
                }
                Err(RequestError::Timeout) => Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "TIMEOUT",
                    "the client did not answer in time",
                )),
                Err(RequestError::NotFound) => {
                    Err(ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such connection"))
                }
                Err(RequestError::Disconnected) => Err(ApiError::new(
                    StatusCode::GONE,
                    "DISCONNECTED",
                    "the connection closed while waiting",
                )),
                Err(e) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", e.to_string())),
            }
        }
        Command::Presence(c) => peers(api, Some(&c.topic)).await,
        Command::Directory => peers(api, None).await,
        Command::Info => info(api).await,
    }
}

async fn info(api: &Api) -> Result<Value, ApiError> {
    let cluster = api.hub.cluster_stats().await?;
    let mut info = serde_json::to_value(cluster).unwrap_or_else(|_| json!({}));
    info["node"] = json!(api.hub.node());
    info["uptime_ms"] = json!(u64::try_from(api.hub.stats().uptime.as_millis()).unwrap_or(u64::MAX));
    Ok(info)
}

type Shared = State<Arc<Api>>;

async fn run(api: &Api, headers: &HeaderMap, command: Result<Command, ApiError>) -> Response {
    let result = match authorize(api, headers) {
        Ok(()) => match command {
            Ok(c) => execute(api, c).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => ok(&v),
        Err(e) => e.into_response(),
    }
}

macro_rules! post_route {
    ($name:ident, $variant:ident) => {
        async fn $name(State(api): Shared, headers: HeaderMap, body: Bytes) -> Response {
            run(&api, &headers, parse(&body).map(Command::$variant)).await
        }
    };
}

post_route!(publish, Publish);
post_route!(send, Send);
post_route!(broadcast, Broadcast);
post_route!(disconnect, Disconnect);
post_route!(request, Request);

async fn presence(
    State(api): Shared,
    headers: HeaderMap,
    query: Result<Query<PresenceCmd>, QueryRejection>,
) -> Response {
    let command =
        query.map(|Query(q)| Command::Presence(q)).map_err(|_| ApiError::bad_request("?topic= is required"));
    run(&api, &headers, command).await
}

async fn directory(State(api): Shared, headers: HeaderMap) -> Response {
    run(&api, &headers, Ok(Command::Directory)).await
}

async fn server_info(State(api): Shared, headers: HeaderMap) -> Response {
    run(&api, &headers, Ok(Command::Info)).await
}

#[derive(Deserialize)]
struct Batch {
    commands: Vec<Value>,
}

async fn batch(State(api): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = authorize(&api, &headers) {
        return e.into_response();
    }
    let batch: Batch = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut results = Vec::with_capacity(batch.commands.len());
    for command in batch.commands {
        let outcome = match serde_json::from_value::<Command>(command) {
            Ok(c) => execute(&api, c).await,
            Err(e) => Err(ApiError::bad_request(format!("invalid command: {e}"))),
        };
        results.push(match outcome {
            Ok(v) => json!({ "ok": v }),
            Err(e) => e.body(),
        });
    }
    ok(&json!({ "results": results }))
}

async fn metrics_page(State(api): Shared) -> Response {
    crate::metrics::update(&api.hub);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], api.metrics.render()).into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(api): Shared) -> Response {
    if api.ready.load(Ordering::Acquire) {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    }
}

/// The `/api` routes and the operational endpoints.
pub(crate) fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/publish", post(publish))
        .route("/api/send", post(send))
        .route("/api/broadcast", post(broadcast))
        .route("/api/disconnect", post(disconnect))
        .route("/api/request", post(request))
        .route("/api/presence", get(presence))
        .route("/api/directory", get(directory))
        .route("/api/info", get(server_info))
        .route("/api/batch", post(batch))
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(api)
}
