//! The HTTP API for backends under `/api` (see `docs/http-api.openapi.yaml`), plus `/metrics`,
//! `/healthz` and `/readyz`.
//!
//! The key is checked before a body is read (a caller without it cannot make the server buffer
//! anything), bodies are bounded (`api.max_body_bytes`), payloads that reach clients by the
//! clients' own message limit (`limits.max_message_size`), batches by `api.max_batch_commands`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use switchboard::{CloseCode, HistoryQuery, Hub, HubError, PublishOptions, RequestError};

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
    /// Largest request body.
    pub max_body: usize,
    /// Commands per batch.
    pub max_batch: usize,
    /// Largest payload delivered to clients (their own inbound limit).
    pub max_payload: usize,
    /// `/metrics` needs the key.
    pub metrics_need_key: bool,
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
            HubError::Encode(m) | HubError::Invalid(m) => Self::bad_request(m),
            HubError::NoHistory => {
                Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "the topic keeps no history")
            }
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

fn too_large(what: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "LIMIT", what)
}

/// Reads a body of at most `api.max_body_bytes` (call after [`authorize`]).
async fn read_body(api: &Api, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = api.max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let over = || too_large(format!("the body is larger than api.max_body_bytes ({limit} bytes)"));
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(over());
    }
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit)).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(over()),
        Err(_) => Err(ApiError::bad_request("the body could not be read")),
    }
}

/// A payload for clients must fit their own message limit.
fn check_payload(api: &Api, payload: &Value) -> Result<(), ApiError> {
    let size = serde_json::to_vec(payload).map_or(usize::MAX, |v| v.len());
    if size > api.max_payload {
        return Err(too_large(format!(
            "the payload ({size} bytes) is larger than limits.max_message_size ({} bytes)",
            api.max_payload
        )));
    }
    Ok(())
}

/// The credentials of `Authorization: Bearer KEY`; the scheme in any case (RFC 9110 §11.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credentials) = value.split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

fn authorize(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = bearer(headers);
    match (&api.key, given) {
        (Some(key), Some(given)) if constant_eq(key.as_bytes(), given.as_bytes()) => Ok(()),
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
    History(HistoryCmd),
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
    /// Idempotency key: published once per topic history.
    #[serde(default)]
    key: Option<String>,
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

/// `GET /api/history?topic=T&limit=N&since_epoch=E&since_seq=N` (or `{"op": "history", "topic",
/// "limit"?, "since"?: {"epoch", "seq"}}` in a batch).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryCmd {
    topic: String,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    since: Option<Since>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Since {
    epoch: String,
    seq: u64,
}

/// The query string of `GET /api/history` (flat: `since_epoch` and `since_seq` go together).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryParams {
    topic: String,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    since_epoch: Option<String>,
    #[serde(default)]
    since_seq: Option<u64>,
}

impl TryFrom<HistoryParams> for HistoryCmd {
    type Error = ApiError;
    fn try_from(p: HistoryParams) -> Result<Self, ApiError> {
        let since = match (p.since_epoch, p.since_seq) {
            (Some(epoch), Some(seq)) => Some(Since { epoch, seq }),
            (None, None) => None,
            _ => return Err(ApiError::bad_request("give both since_epoch and since_seq, or neither")),
        };
        Ok(Self { topic: p.topic, limit: p.limit, since })
    }
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
            check_payload(api, &c.data)?;
            let mut options = PublishOptions::new();
            if let Some(event) = c.event {
                options = options.event(event);
            }
            if let Some(key) = c.key {
                options = options.key(key);
            }
            Ok(json!({ "seq": api.hub.publish_with(&c.topic, &c.data, options).await? }))
        }
        Command::Send(c) => {
            check_payload(api, &c.payload)?;
            let delivered = match (&c.user, &c.conn) {
                (Some(user), None) => api.hub.send_to_user(user, &c.kind, &c.payload).await?,
                (None, Some(conn)) => api.hub.send_to_conn(conn, &c.kind, &c.payload).await?,
                _ => return Err(ApiError::bad_request("give exactly one of `user`, `conn`")),
            };
            Ok(json!({ "delivered": delivered }))
        }
        Command::Broadcast(c) => {
            check_payload(api, &c.payload)?;
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
            check_payload(api, &c.payload)?;
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
        Command::History(c) => {
            let mut query = HistoryQuery::new();
            if let Some(limit) = c.limit {
                query = query.limit(limit);
            }
            if let Some(Since { epoch, seq }) = c.since {
                query = query.since(epoch, seq);
            }
            let reply = api.hub.history(&c.topic, query).await?;
            serde_json::to_value(reply)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "FAILED", e.to_string()))
        }
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
        async fn $name(State(api): Shared, request: Request) -> Response {
            let (parts, body) = request.into_parts();
            if let Err(e) = authorize(&api, &parts.headers) {
                return e.into_response();
            }
            let command = match read_body(&api, &parts.headers, body).await {
                Ok(bytes) => parse(&bytes).map(Command::$variant),
                Err(e) => Err(e),
            };
            run(&api, &parts.headers, command).await
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

async fn history(
    State(api): Shared,
    headers: HeaderMap,
    query: Result<Query<HistoryParams>, QueryRejection>,
) -> Response {
    let command = query
        .map_err(|e| {
            ApiError::bad_request(format!("?topic= is required; limit and since_seq are integers ({e})"))
        })
        .and_then(|Query(q)| HistoryCmd::try_from(q))
        .map(Command::History);
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

async fn batch(State(api): Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(e) = authorize(&api, &parts.headers) {
        return e.into_response();
    }
    let batch: Batch = match read_body(&api, &parts.headers, body).await.and_then(|b| parse(&b)) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if batch.commands.len() > api.max_batch {
        return too_large(format!(
            "{} commands in one batch: at most api.max_batch_commands ({})",
            batch.commands.len(),
            api.max_batch
        ))
        .into_response();
    }
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

async fn metrics_page(State(api): Shared, headers: HeaderMap) -> Response {
    if api.metrics_need_key
        && let Err(e) = authorize(&api, &headers)
    {
        return e.into_response();
    }
    crate::metrics::update(&api.hub).await;
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

/// `/metrics` alone (for `metrics.listen`).
pub(crate) fn metrics_router(api: Arc<Api>) -> Router {
    Router::new().route("/metrics", get(metrics_page)).with_state(api)
}

/// The `/api` routes and the operational endpoints; `/metrics` too unless `metrics_elsewhere`.
pub(crate) fn router(api: Arc<Api>, metrics_elsewhere: bool) -> Router {
    let router = Router::new();
    let router = if metrics_elsewhere { router } else { router.route("/metrics", get(metrics_page)) };
    router
        .route("/api/publish", post(publish))
        .route("/api/send", post(send))
        .route("/api/broadcast", post(broadcast))
        .route("/api/disconnect", post(disconnect))
        .route("/api/request", post(request))
        .route("/api/presence", get(presence))
        .route("/api/history", get(history))
        .route("/api/directory", get(directory))
        .route("/api/info", get(server_info))
        .route("/api/batch", post(batch))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert_eq!(bearer(&with("Bearer k")), Some("k"));
        assert_eq!(bearer(&with("bearer k")), Some("k"));
        assert_eq!(bearer(&with("BEARER  k ")), Some("k"));
        assert_eq!(bearer(&with("Basic k")), None);
        assert_eq!(bearer(&with("Bearerk")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
