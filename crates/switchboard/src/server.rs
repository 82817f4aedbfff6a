//! The server: building it, serving it on its own listener, mounting it in an axum `Router`,
//! accepting already-upgraded connections, shutting it down.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::Either;
use http::StatusCode;
use switchboard_core::Backends;
use switchboard_protocol::{Format, Payload as RawPayload};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::cluster::NodeSink;
use crate::conn::ConnShared;
use crate::handler::{Erased, erase};
use crate::hub::{Counters, HubInner, Sharded};
use crate::namespace::NsRuntime;
use crate::presence::{DirectMessageEvent, DmAudit};
use crate::transport::Transport;
use crate::upgrade::{UpgradeHook, negotiate};
use crate::{Config, Error, Handler, Hub, IntoReply, Namespace, Rejection, RequestDone, UpgradeRequest};

type ReplyHandler<S> = Erased<S, Result<RawPayload, Error>>;

/// Builds a Switchboard server.
///
/// ```no_run
/// use switchboard::{Accept, Error, Namespace, Payload, Server};
///
/// async fn identify(Payload(name): Payload<String>) -> Result<Accept, Error> {
///     Ok(Accept::user(name))
/// }
/// async fn echo(Payload(v): Payload<serde_json::Value>) -> Result<serde_json::Value, Error> {
///     Ok(v)
/// }
///
/// # async fn run() -> std::io::Result<()> {
/// let board = Server::new()
///     .namespace(Namespace::new("main").identify(identify).on("echo", echo))
///     .build()
///     .await
///     .expect("valid configuration");
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// board.serve(listener).await
/// # }
/// ```
pub struct Server<S = ()> {
    config: Config,
    state: S,
    namespaces: Vec<Namespace<S>>,
    public: Vec<(String, ReplyHandler<S>)>,
    upgrade_hook: Option<UpgradeHook>,
    backends: Backends,
    dm_audit: Option<DmAudit>,
    request_done: Option<crate::session::RequestHook>,
}

impl Server<()> {
    /// A server without application state.
    #[must_use]
    pub fn new() -> Self {
        Self::with_state(())
    }
}

impl Default for Server<()> {
    fn default() -> Self {
        Self::new()
    }
}

/// The configuration cannot make a server.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two namespaces have the same name.
    #[error("namespace {0:?} is declared twice")]
    DuplicateNamespace(String),
    /// The broker refused this node.
    #[error("backend: {0}")]
    Backend(String),
}

impl<S: Clone + Send + Sync + 'static> Server<S> {
    /// A server whose handlers can extract `State<T>` for any `T: FromRef<S>`.
    pub fn with_state(state: S) -> Self {
        Self {
            config: Config::default(),
            state,
            namespaces: Vec::new(),
            public: Vec::new(),
            upgrade_hook: None,
            backends: Backends::memory(),
            dm_audit: None,
            request_done: None,
        }
    }

    /// Settings (limits, timers, path).
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds a namespace. Without any, the server has an anonymous `main` namespace.
    #[must_use]
    pub fn namespace(mut self, namespace: Namespace<S>) -> Self {
        self.namespaces.push(namespace);
        self
    }

    /// A public event or request: allowed before identification, in every namespace (a
    /// namespace handler of the same name takes precedence once identified).
    #[must_use]
    pub fn public<H, T>(mut self, name: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        H::Output: IntoReply,
        T: 'static,
    {
        self.public.push((name.to_owned(), erase(handler, |out, format| out.into_reply(format))));
        self
    }

    /// The upgrade hook: sees the HTTP request (headers, cookies, origin, remote address) and
    /// allows it (`Ok(())`) or refuses it with a status.
    ///
    /// ```
    /// use switchboard::{Rejection, Server};
    /// let server = Server::new().on_upgrade(|req| async move {
    ///     match req.origin() {
    ///         Some("https://example.com") | None => Ok(()),
    ///         Some(_) => Err(Rejection::forbidden("origin not allowed")),
    ///     }
    /// });
    /// ```
    #[must_use]
    pub fn on_upgrade<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Arc<UpgradeRequest>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Rejection>> + Send + 'static,
    {
        self.upgrade_hook = Some(Arc::new(move |req| Box::pin(hook(req))));
        self
    }

    /// Runs the server on other backends (e.g. Redis, for a cluster). Default: in memory.
    #[must_use]
    pub fn backends(mut self, backends: Backends) -> Self {
        self.backends = backends;
        self
    }

    /// Called after each delivered direct message (an audit log, say).
    #[must_use]
    pub fn on_direct_message(mut self, audit: impl Fn(&DirectMessageEvent) + Send + Sync + 'static) -> Self {
        self.dm_audit = Some(Arc::new(audit));
        self
    }

    /// Called after every request (a message with an id) that a handler or a reserved message
    /// answered: its type, how long it took, and the error code if it failed. For latency
    /// histograms; keep it cheap, it runs on the connection's task.
    ///
    /// ```
    /// use switchboard::Server;
    /// let server = Server::new().on_request_done(|done| {
    ///     println!("{} took {:?} ({:?})", done.kind, done.duration, done.error);
    /// });
    /// ```
    #[must_use]
    pub fn on_request_done(mut self, hook: impl Fn(&RequestDone<'_>) + Send + Sync + 'static) -> Self {
        self.request_done = Some(Arc::new(hook));
        self
    }

    /// Builds the server and joins its backends. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`BuildError`] for duplicate namespaces or a broker that refuses the node.
    pub async fn build(self) -> Result<Switchboard<S>, BuildError> {
        let mut namespaces = self.namespaces;
        if namespaces.is_empty() {
            namespaces.push(Namespace::new(crate::identify::DEFAULT_NAMESPACE));
        }
        let mut seen = std::collections::HashSet::new();
        for ns in &namespaces {
            if !seen.insert(ns.name.clone()) {
                return Err(BuildError::DuplicateNamespace(ns.name.to_string()));
            }
        }
        let compiled: Vec<NsRuntime<S>> = namespaces.iter().map(Namespace::compile).collect();
        let topic_settings = compiled
            .iter()
            .flat_map(|ns| ns.topics.iter().map(|r| (r.pattern.clone(), r.options.settings)))
            .collect();
        let node: Arc<str> = format!("{:08x}", rand::random::<u32>()).into();
        let config = Arc::new(self.config);
        let hub = Arc::new_cyclic(|me| HubInner {
            me: me.clone(),
            node: node.clone(),
            config: config.clone(),
            backends: self.backends,
            conns: Sharded::new(64),
            users: Sharded::new(64),
            topics: crate::fanout::Topics::new(),
            topic_settings,
            timers: crate::housekeeping::Timers::default(),
            started: tokio::time::Instant::now(),
            next_conn: std::sync::atomic::AtomicU64::new(1),
            stats: Counters::default(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            dm_audit: self.dm_audit,
            request_done: self.request_done,
            relayed: parking_lot::Mutex::new(HashMap::new()),
        });
        hub.backends
            .broker
            .attach(node, Arc::new(NodeSink(Arc::downgrade(&hub))))
            .await
            .map_err(|e| BuildError::Backend(e.to_string()))?;
        hub.backends
            .presence
            .join(crate::info::NODES, &hub.node, bytes::Bytes::from_static(b"{}"))
            .await
            .map_err(|e| BuildError::Backend(e.to_string()))?;
        tokio::spawn(crate::housekeeping::run(Arc::downgrade(&hub)));
        Ok(Switchboard {
            inner: Arc::new(ServerInner {
                hub: Hub { inner: hub },
                state: self.state,
                namespaces: compiled,
                public: self.public.into_iter().collect(),
                upgrade_hook: self.upgrade_hook,
            }),
        })
    }
}

pub(crate) struct ServerInner<S> {
    pub(crate) hub: Hub,
    pub(crate) state: S,
    pub(crate) namespaces: Vec<NsRuntime<S>>,
    pub(crate) public: crate::handler::NameMap<ReplyHandler<S>>,
    pub(crate) upgrade_hook: Option<UpgradeHook>,
}

/// A running server. Cheap to clone.
pub struct Switchboard<S = ()> {
    inner: Arc<ServerInner<S>>,
}

impl<S> Clone for Switchboard<S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<S: Clone + Send + Sync + 'static> Switchboard<S> {
    /// The hub: reach connections, users and topics from anywhere.
    #[must_use]
    pub fn hub(&self) -> Hub {
        self.inner.hub.clone()
    }

    /// An axum `Router` serving the WebSocket endpoint at [`Config::path`]; merge or nest it
    /// into an application's router.
    ///
    /// ```no_run
    /// # async fn demo(board: switchboard::Switchboard) {
    /// let app = axum::Router::new()
    ///     .route("/health", axum::routing::get(|| async { "ok" }))
    ///     .merge(board.router());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
    /// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
    ///     .await
    ///     .unwrap();
    /// # }
    /// ```
    pub fn router(&self) -> axum::Router {
        let path = self.inner.hub.inner.config.path.clone();
        axum::Router::new().route(&path, get(upgrade::<S>)).with_state(self.inner.clone())
    }

    /// Serves the endpoint on `listener` until [`Switchboard::shutdown`] is called; returns once
    /// every connection has closed.
    ///
    /// This path does its own HTTP/1.1 upgrade and runs Switchboard's own WebSocket
    /// implementation, which holds no buffers while a connection is idle; it answers only the
    /// endpoint (404 elsewhere) and HTTP/1.1 (no HTTP/2 WebSocket). To serve other routes, or
    /// over HTTP/2, mount [`Switchboard::router`] in an axum application instead.
    ///
    /// # Errors
    /// None today: failed accepts are logged and retried, as `axum::serve` does.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let hub = &self.inner.hub.inner;
        let token = hub.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                () = token.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Small frames must not wait for Nagle's algorithm: replies are latency-bound.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "could not set TCP_NODELAY");
            }
            let board = self.clone();
            let token = token.clone();
            hub.tracker.spawn(async move {
                tokio::select! {
                    () = token.cancelled() => {}
                    () = crate::http1::handshake(board, tcp, remote) => {}
                }
            });
        }
        drop(listener);
        self.closed().await;
        Ok(())
    }

    /// Runs a connection that was already upgraded to WebSocket by another stack (hyper,
    /// tower, …), speaking `format` (see [`subprotocol`]). The HTTP handshake, including the
    /// upgrade hook's decision, is the caller's. Returns at once; the connection runs in its own
    /// task.
    pub async fn accept<IO>(&self, io: IO, request: UpgradeRequest, format: Format)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ws = crate::ws::WebSocket::new(io, self.inner.hub.inner.config.max_message_size, b"");
        self.spawn(ws, format, Arc::new(request));
    }

    pub(crate) fn inner(&self) -> &Arc<ServerInner<S>> {
        &self.inner
    }

    pub(crate) fn spawn<T: Transport>(&self, transport: T, format: Format, request: Arc<UpgradeRequest>) {
        let hub = &self.inner.hub.inner;
        if hub.shutdown.is_cancelled() {
            return;
        }
        let future = connection(self.inner.clone(), transport, format, request);
        hub.tracker.spawn(future);
    }

    /// Shuts down: stops accepting, lets running handlers finish (up to
    /// [`Config::shutdown_grace`]), closes every connection with 1001, and waits for them.
    pub async fn shutdown(&self) {
        let hub = &self.inner.hub.inner;
        hub.shutdown.cancel();
        // A connection registered after this loop saw the token cancelled (`session::run`).
        for shard in hub.conns.shards() {
            for conn in shard.read().values() {
                conn.shut_down();
            }
        }
        self.closed().await;
        let _ = hub.backends.presence.leave(crate::info::NODES, &hub.node).await;
        let _ = hub.backends.broker.detach(&hub.node).await;
    }

    async fn closed(&self) {
        let hub = &self.inner.hub.inner;
        hub.tracker.close();
        hub.tracker.wait().await;
    }
}

/// Accept errors that concern one connection only (as `axum::serve` classifies them).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

fn connection<S: Clone + Send + Sync + 'static, T: Transport>(
    server: Arc<ServerInner<S>>,
    mut transport: T,
    format: Format,
    request: Arc<UpgradeRequest>,
) -> impl Future<Output = ()> + Send + 'static {
    let hub = &server.hub.inner;
    let id = hub.new_conn_id();
    let span = tracing::debug_span!("conn", conn = %id);
    let (conn, rx) = ConnShared::new(id, format, hub.config.clone(), request, hub.now_ms());
    if transport.share_socket(&conn) {
        let session = crate::session::run(server, transport, conn.clone(), rx);
        Either::Right(crate::direct::WhileWriting { conn, session }.instrument(span))
    } else {
        Either::Left(crate::session::run(server, transport, conn, rx).instrument(span))
    }
}

/// The codec a client asked for in `Sec-WebSocket-Protocol` (JSON when it named none); `None`
/// when it offered only unknown subprotocols (answer 400). For servers that do the HTTP
/// upgrade themselves before [`Switchboard::accept`].
#[must_use]
pub fn subprotocol(headers: &http::HeaderMap) -> Option<Format> {
    negotiate(headers).map(|(f, _)| f)
}

async fn upgrade<S: Clone + Send + Sync + 'static>(
    State(server): State<Arc<ServerInner<S>>>,
    req: Request,
) -> Response {
    let hub = &server.hub.inner;
    let (mut parts, _body) = req.into_parts();
    if hub.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let Some((format, named)) = negotiate(&parts.headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "unknown subprotocol: use switchboard.v1.json or switchboard.v1.msgpack",
        )
            .into_response();
    };
    let remote = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let request = Arc::new(UpgradeRequest::from_parts(&parts.headers, &parts.uri, remote));
    if let Some(hook) = &server.upgrade_hook
        && let Err(rejection) = hook(request.clone()).await
    {
        tracing::warn!(status = %rejection.status, reason = %rejection.message, "upgrade refused");
        return (rejection.status, rejection.message).into_response();
    }
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let config = &hub.config;
    let ws = ws
        .read_buffer_size(config.read_buffer_size)
        .max_message_size(config.max_message_size)
        .max_frame_size(config.max_message_size);
    let ws = if named { ws.protocols([format.subprotocol()]) } else { ws };
    let board = Switchboard { inner: server.clone() };
    ws.on_upgrade(move |socket| async move {
        board.spawn(crate::transport::AxumSocket::new(socket), format, request);
    })
}
