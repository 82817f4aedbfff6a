//! Server settings: every limit of protocol section 9, and the timers.

use std::time::Duration;

pub use switchboard_core::CapPolicy;

/// Server settings. `Config::default()` gives the protocol's defaults.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{CapPolicy, Config};
/// let mut config = Config::default();
/// config.heartbeat = Duration::from_secs(5);
/// config.conn_per_user = Some((3, CapPolicy::EvictOldest));
/// assert_eq!(config.max_message_size, 64 * 1024);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The WebSocket endpoint path (default `/ws`).
    pub path: String,
    /// Largest inbound message in bytes; larger closes with 1009 (default 64 KiB).
    pub max_message_size: usize,
    /// Time to identify after the upgrade; then close 4504 (default 10 s).
    pub identify_timeout: Duration,
    /// Subscriptions per connection; beyond, `~sub` is answered `LIMIT` (default 128).
    pub max_subscriptions: usize,
    /// Handlers of one connection running at once; beyond, reading pauses (default 64).
    pub max_inflight: usize,
    /// Bytes queued for one connection; beyond, close 4002 (default 1 MiB).
    pub max_queue_bytes: usize,
    /// Interval of WebSocket pings; two silent intervals close with 4001 (default 25 s).
    pub heartbeat: Duration,
    /// Cap on a user's connections and what to do beyond it (default none).
    pub conn_per_user: Option<(usize, CapPolicy)>,
    /// Time to wait for an acknowledgement before resending (default 5 s).
    pub ack_timeout: Duration,
    /// Resends of an unacknowledged delivery (default 5).
    pub max_resends: u32,
    /// Unacknowledged deliveries one connection may hold; beyond, close 4002 (default 1024).
    pub max_pending_acks: usize,
    /// Default timeout of requests the server sends to clients (default 10 s).
    pub request_timeout: Duration,
    /// How long shutdown waits for running handlers before closing anyway (default 10 s).
    pub shutdown_grace: Duration,
    /// Unused: it sized the read buffer of axum's WebSocket on the
    /// [`router`](crate::Switchboard::router) path, which now runs Switchboard's own WebSocket
    /// like every path (no read buffer while idle; a frame's bytes are held only until it is
    /// complete). Kept so that existing configurations still build.
    pub read_buffer_size: usize,
    /// [`serve`](crate::Switchboard::serve): time from accepting a TCP connection to its
    /// complete HTTP upgrade request (and for writing the answer); a connection past it is
    /// closed (default 10 s). The [`router`](crate::Switchboard::router) path's HTTP is the
    /// application's (axum, hyper): give its server the same limits.
    pub handshake_timeout: Duration,
    /// [`serve`](crate::Switchboard::serve): largest upgrade request head (request line and
    /// headers), bytes; larger is answered 431 (default 16 KiB).
    pub max_header_bytes: usize,
    /// [`serve`](crate::Switchboard::serve): connections still in their handshake (accepted,
    /// request head not complete) at once; a connection accepted beyond it is closed at once
    /// (default 1024), so that slow clients cannot hold every descriptor.
    pub max_handshakes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            path: "/ws".to_owned(),
            max_message_size: switchboard_protocol::DEFAULT_MAX_MESSAGE_SIZE,
            identify_timeout: Duration::from_secs(10),
            max_subscriptions: 128,
            max_inflight: 64,
            max_queue_bytes: 1024 * 1024,
            heartbeat: Duration::from_secs(25),
            conn_per_user: None,
            ack_timeout: Duration::from_secs(5),
            max_resends: 5,
            max_pending_acks: 1024,
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            read_buffer_size: 4096,
            handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_handshakes: 1024,
        }
    }
}
