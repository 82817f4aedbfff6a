//! The configuration that the connection task runs with, fixed when the client starts (the
//! [`ClientBuilder`](crate::ClientBuilder) fills it).

use std::sync::Arc;
use std::time::Duration;

use switchboard_protocol::{Format, RawPayload};

use crate::backoff::Backoff;
use crate::handlers::RequestFn;
use crate::transport::BoxFuture;

/// An error of the identity provider.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Produces the identity of the next `~hello`.
pub(crate) type IdentityFn = Arc<dyn Fn() -> BoxFuture<'static, Result<RawPayload, BoxError>> + Send + Sync>;

/// Everything the connection task needs to know, fixed at start.
pub(crate) struct Config {
    /// The server's WebSocket URL (`ws://host:port/ws`); a `~bye.jump` replaces it.
    pub(crate) url: String,
    /// The namespace of `~hello` (`None`: the server's default, `main`).
    pub(crate) namespace: Option<String>,
    /// The `meta` of `~hello`.
    pub(crate) meta: Option<RawPayload>,
    /// Called before every `~hello`, so that credentials can be renewed between connections.
    pub(crate) identity: Option<IdentityFn>,
    /// Answers `~challenge`.
    pub(crate) challenge: Option<RequestFn>,
    /// JSON or MessagePack.
    pub(crate) format: Format,
    /// Delays between connection attempts.
    pub(crate) backoff: Backoff,
    /// The timeout of a request that has none of its own.
    pub(crate) request_timeout: Duration,
    /// Bound on opening the socket, on the handshake, and on writing a batch of frames.
    pub(crate) connect_timeout: Duration,
    /// The `~ping` period; `None` takes the server's `heartbeat`; zero disables.
    pub(crate) heartbeat: Option<Duration>,
    /// How many messages wait while offline before calls fail with `LIMIT`.
    pub(crate) offline_buffer: usize,
}

impl Config {
    /// The defaults, for the server at `url`.
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            namespace: None,
            meta: None,
            identity: None,
            challenge: None,
            format: Format::Json,
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            heartbeat: None,
            offline_buffer: 256,
        }
    }
}
