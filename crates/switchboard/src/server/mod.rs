//! The server: building it ([`Server`]), running it ([`Switchboard`]): on its own listener
//! (`serve.rs`), mounted in an axum `Router` (`router.rs`), or on connections another stack
//! upgraded; shutting it down. Only this layer spawns connection tasks.

pub(crate) mod admission;
#[cfg(feature = "autobahn")]
pub mod echo;
pub(crate) mod limits;
mod router;
mod serve;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::Either;
use http::HeaderMap;
use switchboard_core::Backends;
use switchboard_protocol::Format;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use self::admission::{Addresses, Admission};
use crate::app::handler::{Handler, erase};
use crate::app::namespace::{DEFAULT_NAMESPACE, Namespace, NsRuntime, ReplyHandler};
use crate::base::throttle::{self, Kind};
use crate::config::Config;
use crate::conn::{ConnShared, pass};
use crate::error::{AddressRefused, BuildError, IntoReply};
use crate::hub::Hub;
use crate::hub::core::Parts;
use crate::hub::events::{Delivery, EventParts, EventSink};
use crate::hub::hooks::{DirectMessageEvent, DmAudit, Lifecycle, LifecycleEvent, LifecycleHook};
use crate::hub::topics::settings::SettingsTable;
use crate::io::transport::Transport;
use crate::io::upgrade::{Rejection, UpgradeHook, UpgradeRequest, negotiate};
use crate::io::ws::WebSocket;
use crate::session::limits::Limits;
use crate::session::run;
use crate::session::runtime::{RequestDone, RequestHook, Runtime};

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
    request_done: Option<RequestHook>,
    lifecycle: Option<Lifecycle>,
    lifecycle_hook: Option<LifecycleHook>,
    event_sink: Option<(Arc<dyn EventSink>, Delivery)>,
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
            lifecycle: None,
            lifecycle_hook: None,
            event_sink: None,
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

    /// Which lifecycle events this server emits (default, once a hook or a sink is set: all of
    /// them, for every namespace and topic). See [`Lifecycle`].
    ///
    /// ```
    /// use switchboard::{EventKind, Lifecycle, Server};
    /// let server = Server::new().lifecycle(
    ///     Lifecycle::new()
    ///         .kinds([EventKind::UserOnline, EventKind::UserOffline, EventKind::Occupied, EventKind::Vacated])
    ///         .topics(["chat/{room}"]),
    /// );
    /// ```
    #[must_use]
    pub fn lifecycle(mut self, events: Lifecycle) -> Self {
        self.lifecycle = Some(events);
        self
    }

    /// Called with every lifecycle event this node emits, at once, on the task where it happens
    /// (keep it cheap: hand it to a channel). In-process and best effort: the events of a node
    /// that crashes are not repeated here; for delivery at least once, across crashes, use
    /// [`Server::deliver_events`].
    ///
    /// ```
    /// use switchboard::{LifecycleEvent, Server};
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// let server = Server::new().on_lifecycle(move |event: &LifecycleEvent| {
    ///     let _ = tx.send(event.clone());
    /// });
    /// ```
    #[must_use]
    pub fn on_lifecycle(mut self, hook: impl Fn(&LifecycleEvent) + Send + Sync + 'static) -> Self {
        self.lifecycle_hook = Some(Arc::new(hook));
        self
    }

    /// Delivers lifecycle events to `sink` at least once, in order per user: each event is
    /// written to the backends' event log (`Backends::events`) before the client is told (or,
    /// for what already happened, with retries), and delivered in batches by the node holding
    /// the lease of its partition, retried with backoff until the sink takes it. With Redis
    /// backends a survivor delivers a crashed node's backlog, and announces the disconnects of
    /// its connections; in memory, what was not delivered is lost if the process crashes.
    ///
    /// ```
    /// use switchboard::{Delivery, DeliveryError, Event, EventSink, Server};
    /// use futures_util::future::BoxFuture;
    ///
    /// struct Log;
    /// impl EventSink for Log {
    ///     fn deliver<'a>(&'a self, batch: &'a [Event]) -> BoxFuture<'a, Result<(), DeliveryError>> {
    ///         Box::pin(async move {
    ///             batch.iter().for_each(|e| println!("{} {:?}", e.id, e.event));
    ///             Ok(())
    ///         })
    ///     }
    /// }
    /// let server = Server::new().deliver_events(Log, Delivery::new());
    /// ```
    #[must_use]
    pub fn deliver_events(mut self, sink: impl EventSink, delivery: Delivery) -> Self {
        self.event_sink = Some((Arc::new(sink), delivery));
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
            namespaces.push(Namespace::new(DEFAULT_NAMESPACE));
        }
        let mut seen = std::collections::HashSet::new();
        for ns in &namespaces {
            if !seen.insert(ns.name.clone()) {
                return Err(BuildError::DuplicateNamespace(ns.name.to_string()));
            }
        }
        let compiled: Vec<NsRuntime<S>> = namespaces.iter().map(Namespace::compile).collect();
        let settings = compiled
            .iter()
            .flat_map(|ns| ns.topics.iter().map(|r| (r.pattern.clone(), r.options.settings)))
            .collect();
        let limits =
            Limits::new(&self.config, compiled.iter().map(|ns| &*ns.name), self.backends.limiter.clone());
        let connection_limits = self.config.connection_limits.clone();
        let hub = Hub::start(Parts {
            config: Arc::new(self.config),
            backends: self.backends,
            settings: SettingsTable::new(settings),
            dm_audit: self.dm_audit,
            events: match (self.lifecycle, self.lifecycle_hook, self.event_sink) {
                (_, None, None) => None,
                (filter, hook, sink) => Some(EventParts { filter: filter.unwrap_or_default(), hook, sink }),
            },
        })
        .await?;
        let addresses = connection_limits
            .is_on()
            .then(|| Addresses::new(connection_limits, hub.core().counters().clone()));
        Ok(Switchboard {
            addresses,
            runtime: Arc::new(Runtime {
                hub,
                state: self.state,
                namespaces: compiled,
                public: self.public.into_iter().collect(),
                upgrade_hook: self.upgrade_hook,
                request_done: self.request_done,
                limits,
            }),
        })
    }
}

/// A running server. Cheap to clone.
pub struct Switchboard<S = ()> {
    runtime: Arc<Runtime<S>>,
    /// Connections per source address, when limited (`admission.rs`).
    addresses: Option<Arc<Addresses>>,
}

impl<S> Clone for Switchboard<S> {
    fn clone(&self) -> Self {
        Self { runtime: self.runtime.clone(), addresses: self.addresses.clone() }
    }
}

impl<S: Clone + Send + Sync + 'static> Switchboard<S> {
    /// The hub: reach connections, users and topics from anywhere.
    #[must_use]
    pub fn hub(&self) -> Hub {
        self.runtime.hub.clone()
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
        router::router(self.clone())
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
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        serve::serve(&self, listener).await;
        self.closed().await;
        Ok(())
    }

    /// Runs a connection that was already upgraded to WebSocket by another stack (hyper,
    /// tower, …), speaking `format` (see [`subprotocol`]). The HTTP handshake, including the
    /// upgrade hook's decision, is the caller's, and so are the limits of
    /// [`Config::connection_limits`] (call [`Switchboard::admit`] when accepting, and keep the
    /// admission as long as the connection). Returns at once; the connection runs in its own
    /// task.
    pub async fn accept<IO>(&self, io: IO, request: UpgradeRequest, format: Format)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ws = WebSocket::new(io, self.runtime.hub.core().config().max_message_size, b"");
        self.spawn(ws, format, Arc::new(request), Admission::default());
    }

    /// Runs a connection in a task of its own (unless shutting down), holding its place among
    /// its address's connections until it ends.
    fn spawn<T: Transport>(
        &self,
        transport: T,
        format: Format,
        request: Arc<UpgradeRequest>,
        admission: Admission,
    ) {
        let running = self.runtime.hub.core().running();
        if running.shutdown.is_cancelled() {
            return;
        }
        let future = connection(self.runtime.clone(), transport, format, request);
        if admission.is_pending() {
            running.tracker.spawn(future);
        } else {
            running.tracker.spawn(async move {
                let _place = admission;
                future.await;
            });
        }
    }

    /// Shuts down: stops accepting, lets running handlers finish (up to
    /// [`Config::shutdown_grace`]), closes every connection with 1001, and waits for them.
    pub async fn shutdown(&self) {
        let hub = &self.runtime.hub;
        hub.core().running().shutdown.cancel();
        // A connection registered after this saw the token cancelled (`session::run`).
        hub.core().registry().for_each(|conn| conn.shut_down());
        self.closed().await;
        hub.stop().await;
    }

    /// Logs an upgrade the hook refused (at most one line per second, with how many were not).
    fn upgrade_refused(&self, rejection: &Rejection) {
        if let Some(suppressed) = throttle::global(Kind::UpgradeRefused) {
            tracing::warn!(status = %rejection.status, reason = %rejection.message, suppressed, "upgrade refused");
        }
    }

    async fn closed(&self) {
        let tracker = &self.runtime.hub.core().running().tracker;
        tracker.close();
        tracker.wait().await;
    }
}

impl<S: Clone + Send + Sync + 'static> Switchboard<S> {
    /// The accept-time check of [`Config::connection_limits`](crate::Config::connection_limits)
    /// for a connection from `peer`: its [`Admission`] to keep while it lives, or why it is
    /// refused (close it at once, or answer 429 if a response can be written without waiting:
    /// [`AddressRefused::response`]). Counted in [`LimitStats`](crate::LimitStats), atomic (two
    /// connections at once never both pass the last place). A connection from a trusted proxy
    /// is admitted pending: its client is counted at the upgrade.
    /// [`Switchboard::serve`] and [`Switchboard::router`] call it themselves (the router when its
    /// request carries no admission).
    ///
    /// ```no_run
    /// # async fn demo(board: switchboard::Switchboard, listener: tokio::net::TcpListener) {
    /// loop {
    ///     let (tcp, peer) = listener.accept().await.unwrap();
    ///     let admission = match board.admit(peer) {
    ///         Ok(admission) => admission,
    ///         Err(refused) => {
    ///             let _ = tcp.try_write(refused.response().as_bytes());
    ///             continue;
    ///         }
    ///     };
    ///     // … serve `tcp` with `board.router()`, putting `admission` in every request's
    ///     // extensions (hyper: `request.extensions_mut().insert(admission.clone())`).
    /// #   let _ = admission;
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`AddressRefused`]: too many connections open from the address, or new ones too often.
    pub fn admit(&self, peer: SocketAddr) -> Result<Admission, AddressRefused> {
        let Some(addresses) = &self.addresses else { return Ok(Admission::default()) };
        addresses.admit_peer(peer)
    }

    /// At the upgrade: `admission` as the accept loop made it, or, where it is pending (from a
    /// trusted proxy) or missing (an accept loop that does not call [`Switchboard::admit`]), the
    /// place of the client the request names.
    pub(crate) fn admit_request(
        &self,
        admission: Option<Admission>,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
    ) -> Result<Admission, AddressRefused> {
        let Some(addresses) = &self.addresses else { return Ok(Admission::default()) };
        addresses.admit_request(admission, peer, headers)
    }
}

/// A connection's task: its session, inside [`pass::WhileWriting`] where writer passes may
/// write its socket.
fn connection<S: Clone + Send + Sync + 'static, T: Transport>(
    runtime: Arc<Runtime<S>>,
    mut transport: T,
    format: Format,
    request: Arc<UpgradeRequest>,
) -> impl Future<Output = ()> + Send + 'static {
    let hub = runtime.hub.core();
    let id = hub.registry().new_conn_id();
    let span = tracing::debug_span!("conn", conn = %id);
    let (conn, rx) = ConnShared::new(id, format, hub.config().clone(), request, hub.now_ms());
    if let Some(socket) = pass::enable(&conn, &mut transport) {
        let session = run::run(runtime, transport, conn, rx);
        Either::Right(pass::WhileWriting { socket, session }.instrument(span))
    } else {
        Either::Left(run::run(runtime, transport, conn, rx).instrument(span))
    }
}

/// The codec a client asked for in `Sec-WebSocket-Protocol` (JSON when it named none); `None`
/// when it offered only unknown subprotocols (answer 400). For servers that do the HTTP
/// upgrade themselves before [`Switchboard::accept`].
#[must_use]
pub fn subprotocol(headers: &http::HeaderMap) -> Option<Format> {
    negotiate(headers).map(|(f, _)| f)
}
