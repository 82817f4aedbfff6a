//! The [`ClientBuilder`], and [`Client::builder`]: configure, then start the connection task.
//! The top layer: it knows the client and everything the client is made of.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use switchboard_protocol::{ErrorBody, Format, RawPayload};

use crate::backoff::Backoff;
use crate::client::Client;
use crate::config::{BoxError, Config};
use crate::error::ClientError;
use crate::handlers::{RequestFn, request_fn};
#[cfg(feature = "tls")]
use crate::tls::{TlsConnector, TlsOptions};
use crate::transport::{Connector, WsConnector};

type HandlerFactory = Box<dyn FnOnce(Format) -> RequestFn + Send>;

impl Client {
    /// A builder for a client of the server at `url`: `ws://host:port/ws`, or `wss://…` (with
    /// the `tls` feature, on by default).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), switchboard_client::ClientError> {
    /// let client = switchboard_client::Client::builder("ws://127.0.0.1:8080/ws").connect().await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }
}

/// Configures and starts a [`Client`] ([`Client::builder`]).
///
/// Defaults: namespace `main` (the server's default), no identity, JSON, [`Backoff::default`],
/// requests time out after 10 s, connections after 10 s, heartbeat as the server says, 256
/// messages of offline buffer; for `wss://`, the system's root certificates.
///
/// ```no_run
/// use std::time::Duration;
/// use switchboard_client::{Client, Format};
///
/// # async fn demo() -> Result<(), switchboard_client::ClientError> {
/// let client = Client::builder("ws://127.0.0.1:8080/ws")
///     .namespace("main")
///     .identity(&serde_json::json!({"user": "alice", "password": "pw-alice"}))
///     .meta(&serde_json::json!({"device": "cli"}))
///     .format(Format::MsgPack)
///     .request_timeout(Duration::from_secs(5))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `connect` or `start`"]
pub struct ClientBuilder {
    config: Config,
    handlers: Vec<(String, HandlerFactory)>,
    challenge: Option<HandlerFactory>,
    /// Extra CAs, or a whole rustls configuration, for `wss://`.
    #[cfg(feature = "tls")]
    tls: TlsOptions,
    /// Faults injected into the links (tests).
    #[cfg(feature = "test-util")]
    faults: Option<crate::testing::Faults>,
    /// A fake transport (unit tests).
    #[cfg(test)]
    connector: Option<Arc<dyn Connector>>,
    error: Option<ClientError>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.config.url)
            .field("namespace", &self.config.namespace)
            .field("format", &self.config.format)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// A builder for the server at `url` (`ws://host:port/ws` or `wss://host/ws`); the same as
    /// [`Client::builder`].
    ///
    /// ```
    /// let builder = switchboard_client::ClientBuilder::new("ws://127.0.0.1:8080/ws");
    /// # let _ = builder;
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            config: Config::new(url.into()),
            handlers: Vec::new(),
            challenge: None,
            #[cfg(feature = "tls")]
            tls: TlsOptions::default(),
            #[cfg(feature = "test-util")]
            faults: None,
            #[cfg(test)]
            connector: None,
            error: None,
        }
    }

    /// The namespace to join (`ns` of `~hello`).
    ///
    /// ```
    /// let b = switchboard_client::Client::builder("ws://h/ws").namespace("admin");
    /// # let _ = b;
    /// ```
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.config.namespace = Some(ns.into());
        self
    }

    /// Free client data sent with every `~hello` (`meta`): device, version…
    ///
    /// ```
    /// let b = switchboard_client::Client::builder("ws://h/ws").meta(&serde_json::json!({"v": "1.2"}));
    /// # let _ = b;
    /// ```
    pub fn meta<T: Serialize + ?Sized>(mut self, meta: &T) -> Self {
        match RawPayload::json(meta) {
            Ok(p) => self.config.meta = Some(p),
            Err(e) => self.error = Some(e.into()),
        }
        self
    }

    /// A fixed identity (credentials) for every `~hello`. For credentials that expire, use
    /// [`ClientBuilder::identity_provider`].
    ///
    /// ```
    /// let b = switchboard_client::Client::builder("ws://h/ws")
    ///     .identity(&serde_json::json!({"user": "alice", "password": "pw-alice"}));
    /// # let _ = b;
    /// ```
    pub fn identity<T: Serialize + ?Sized>(mut self, identity: &T) -> Self {
        match RawPayload::json(identity) {
            Ok(p) => {
                self.config.identity = Some(Arc::new(move || {
                    let p = p.clone();
                    Box::pin(async move { Ok(p) })
                }));
            }
            Err(e) => self.error = Some(e.into()),
        }
        self
    }

    /// Computes the identity before every `~hello`: at the first connection and again at
    /// every reconnection, so that an expired token is replaced by a fresh one. When the
    /// provider fails, the attempt counts as failed and the client retries after its backoff.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    ///
    /// let n = Arc::new(AtomicU32::new(0));
    /// let b = switchboard_client::Client::builder("ws://h/ws").identity_provider(move || {
    ///     let n = Arc::clone(&n);
    ///     async move {
    ///         let token = format!("token-{}", n.fetch_add(1, Ordering::Relaxed));
    ///         Ok::<_, std::io::Error>(serde_json::json!({ "token": token }))
    ///     }
    /// });
    /// # let _ = b;
    /// ```
    pub fn identity_provider<F, Fut, T, E>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize,
        E: Into<BoxError>,
    {
        let provider = Arc::new(provider);
        self.config.identity = Some(Arc::new(move || {
            let fut = provider();
            Box::pin(async move {
                let identity = fut.await.map_err(Into::into)?;
                Ok(RawPayload::json(&identity)?)
            })
        }));
        self
    }

    /// Answers the server's `~challenge` during identification: the handler gets the quest
    /// and returns the answer (or an error, which gives up).
    ///
    /// ```
    /// use switchboard_client::ErrorBody;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Quest { nonce: String }
    ///
    /// let b = switchboard_client::Client::builder("ws://h/ws")
    ///     .identity(&serde_json::json!({"user": "alice", "challenge": true}))
    ///     .on_challenge(|q: Quest| async move { Ok::<_, ErrorBody>(q.nonce.chars().rev().collect::<String>()) });
    /// # let _ = b;
    /// ```
    pub fn on_challenge<Q, A, F, Fut>(mut self, handler: F) -> Self
    where
        Q: DeserializeOwned + Send + 'static,
        A: Serialize + Send + 'static,
        F: Fn(Q) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<A, ErrorBody>> + Send + 'static,
    {
        self.challenge = Some(Box::new(move |format| request_fn(format, handler)));
        self
    }

    /// Handles the server's requests of type `name` from the first connection on (see
    /// [`Client::on_request`] for handlers added later). The payload is decoded into `T`
    /// (`BAD_REQUEST` when it does not fit); the result or the error is the reply.
    ///
    /// ```
    /// use switchboard_client::ErrorBody;
    /// let b = switchboard_client::Client::builder("ws://h/ws")
    ///     .on_request("confirm", |question: String| async move { Ok::<_, ErrorBody>(!question.is_empty()) });
    /// # let _ = b;
    /// ```
    pub fn on_request<T, R, F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ErrorBody>> + Send + 'static,
    {
        self.handlers.push((name.to_owned(), Box::new(move |format| request_fn(format, handler))));
        self
    }

    /// The encoding: [`Format::Json`] (default, text frames) or [`Format::MsgPack`] (binary).
    ///
    /// ```
    /// let b = switchboard_client::Client::builder("ws://h/ws").format(switchboard_client::Format::MsgPack);
    /// # let _ = b;
    /// ```
    pub fn format(mut self, format: Format) -> Self {
        self.config.format = format;
        self
    }

    /// The reconnection policy.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_client::Backoff;
    /// let b = switchboard_client::Client::builder("ws://h/ws").backoff(Backoff {
    ///     initial: Duration::from_millis(200),
    ///     max: Duration::from_secs(10),
    ///     max_attempts: Some(20),
    /// });
    /// # let _ = b;
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// The timeout of requests made without one (default 10 s). It counts from the call,
    /// time spent waiting in the offline buffer included.
    ///
    /// ```
    /// let b = switchboard_client::Client::builder("ws://h/ws").request_timeout(std::time::Duration::from_secs(3));
    /// # let _ = b;
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Bound on opening the socket, on the handshake, and on writing (default 10 s).
    ///
    /// ```
    /// let b = switchboard_client::Client::builder("ws://h/ws").connect_timeout(std::time::Duration::from_secs(3));
    /// # let _ = b;
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// The `~ping` period (default: the server's `heartbeat` from the welcome). When nothing
    /// arrives for two periods the link is taken for dead and the client reconnects.
    /// `Duration::ZERO` disables the heartbeat.
    ///
    /// ```
    /// let b = switchboard_client::Client::builder("ws://h/ws").heartbeat(std::time::Duration::from_secs(2));
    /// # let _ = b;
    /// ```
    pub fn heartbeat(mut self, period: Duration) -> Self {
        self.config.heartbeat = Some(period);
        self
    }

    /// How many requests and events wait while offline (default 256). Beyond, calls fail
    /// at once with `LIMIT`; 0 makes every call fail while offline.
    ///
    /// ```
    /// let b = switchboard_client::Client::builder("ws://h/ws").offline_buffer(1024);
    /// # let _ = b;
    /// ```
    pub fn offline_buffer(mut self, messages: usize) -> Self {
        self.config.offline_buffer = messages;
        self
    }

    /// Trusts the CA certificates of this PEM text (one or more `-----BEGIN CERTIFICATE-----`
    /// blocks) for `wss://`, besides the system's root certificates: for a server whose
    /// certificate a private CA signed. May be called more than once. A text without a
    /// certificate stops the client at its first `wss://` connection with
    /// [`ConnectionError::Tls`](crate::ConnectionError::Tls).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/switchboard/ca.pem")?;
    /// let client = switchboard_client::Client::builder("wss://switchboard.internal/ws")
    ///     .tls_ca_pem(ca)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.tls.extra_roots.push(pem.as_ref().to_vec());
        self
    }

    /// Uses this rustls configuration for `wss://` instead of the default one (the system's
    /// roots plus [`ClientBuilder::tls_ca_pem`]): client certificates, pinned roots, another
    /// crypto provider… [`rustls`](crate::rustls) is re-exported, so that the configuration is
    /// of the version this crate uses.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use switchboard_client::rustls;
    ///
    /// # fn demo(my_roots: rustls::RootCertStore) {
    /// let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    /// let config = rustls::ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()
    ///     .unwrap()
    ///     .with_root_certificates(my_roots) // only these: no system roots
    ///     .with_no_client_auth();
    /// let builder =
    ///     switchboard_client::Client::builder("wss://example.com/ws").tls_config(Arc::new(config));
    /// # let _ = builder;
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls.custom = Some(config);
        self
    }

    /// Injects faults into the links of this client (tests of reconnection and recovery).
    ///
    /// ```
    /// use switchboard_client::testing::Faults;
    /// let faults = Faults::new();
    /// let b = switchboard_client::Client::builder("ws://h/ws").faults(&faults);
    /// # let _ = b;
    /// ```
    #[cfg(feature = "test-util")]
    pub fn faults(mut self, faults: &crate::testing::Faults) -> Self {
        self.faults = Some(faults.clone());
        self
    }

    #[cfg(test)]
    pub(crate) fn connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connector = Some(connector);
        self
    }

    /// The transport: tokio-tungstenite (with TLS when built with it), or the unit tests'
    /// fake, with the faults of the integration tests around it.
    fn make_connector(&mut self) -> Arc<dyn Connector> {
        #[cfg(feature = "tls")]
        let real = WsConnector::new(TlsConnector::new(std::mem::take(&mut self.tls)));
        #[cfg(not(feature = "tls"))]
        let real = WsConnector::new();
        #[allow(unused_mut)]
        let mut connector: Arc<dyn Connector> = Arc::new(real);
        #[cfg(test)]
        if let Some(fake) = self.connector.take() {
            connector = fake;
        }
        #[cfg(feature = "test-util")]
        if let Some(faults) = &self.faults {
            connector = faults.wrap(connector);
        }
        connector
    }

    /// Starts the client in the background and returns at once, in state
    /// [`State::Connecting`](crate::State::Connecting); calls made before it is ready wait
    /// in the offline buffer. Must be called within a tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), switchboard_client::ClientError> {
    /// let client = switchboard_client::Client::builder("ws://127.0.0.1:8080/ws").start()?;
    /// client.ready().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Encode`] when the identity or the meta could not be encoded.
    pub fn start(mut self) -> Result<Client, ClientError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let connector = self.make_connector();
        let mut config = self.config;
        let format = config.format;
        config.challenge = self.challenge.map(|f| f(format));
        let handlers = self.handlers.into_iter().map(|(name, f)| (name, f(format))).collect();
        Ok(Client::spawn(config, handlers, connector))
    }

    /// Starts the client and waits until it is ready (identified).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), switchboard_client::ClientError> {
    /// let client = switchboard_client::Client::builder("ws://127.0.0.1:8080/ws").connect().await?;
    /// assert!(client.state().is_ready());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Connect`] as soon as an error that retrying cannot fix stops the client
    /// (its [`ConnectionError`](crate::ConnectionError), also kept in the state): a URL that
    /// is not `ws://` or `wss://`, a TLS failure, an HTTP 4xx (but 408 and 429) at the upgrade,
    /// a refused identification (code `NOT_AUTHORIZED`, or the server's other code), a close
    /// code of 4500 and above. [`ClientError::Closed`] with [`CloseReason::GaveUp`] when the
    /// backoff's `max_attempts` is reached. While errors that retrying may fix go on (the
    /// server cannot be reached, HTTP 503…), the client keeps trying: bound the wait with
    /// `tokio::time::timeout` or `max_attempts`, and read the error retried in
    /// [`State::Reconnecting`](crate::State::Reconnecting).
    ///
    /// [`CloseReason::GaveUp`]: crate::CloseReason::GaveUp
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use switchboard_client::{Client, ConnectionError};
    /// let err = Client::builder("ws://127.0.0.1:8080/wrong-path").connect().await.unwrap_err();
    /// assert_eq!(err.connection_error(), Some(&ConnectionError::Http { status: 404 }));
    /// # }
    /// ```
    pub async fn connect(self) -> Result<Client, ClientError> {
        let client = self.start()?;
        client.ready().await?;
        Ok(client)
    }
}
