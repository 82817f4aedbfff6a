//! Server settings: every limit of protocol section 9, the timers, and the limits that keep
//! abusers in check (handshakes, rates, connections per address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

pub use switchboard_core::{CapPolicy, Rate};

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
    /// In a cluster, how long a node may stay silent before the others declare it dead and
    /// clean up after it: its connections leave topic presence and the directory (announced
    /// once, by one survivor) and the user registry (default 5 s). A node beats every fifth of
    /// it. A node that was only slow learns it was declared dead and closes its connections with
    /// 4000, so that they reconnect and register again.
    pub node_timeout: Duration,
    /// How often a node checks, for every topic it has subscribers of, that it missed no
    /// publication (its position in history against what it delivered): a missed tail is
    /// filled from history or, where history cannot fill it, signalled (default 2 s). A lost
    /// broker connection triggers the same check at once when it is back.
    pub position_check: Duration,
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
    /// Rate limits of every namespace (and of connections not identified yet), unless
    /// [`namespace_rate_limits`](Self::namespace_rate_limits) names the namespace (default: none;
    /// [`RateLimits::public_endpoint`] for a public endpoint).
    pub rate_limits: RateLimits,
    /// Rate limits of particular namespaces, by name, instead of [`rate_limits`](Self::rate_limits).
    pub namespace_rate_limits: HashMap<String, RateLimits>,
    /// Connections per source address (default: none;
    /// [`ConnectionLimits::public_endpoint`] for a public endpoint).
    pub connection_limits: ConnectionLimits,
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
            node_timeout: Duration::from_secs(5),
            position_check: Duration::from_secs(2),
            read_buffer_size: 4096,
            handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_handshakes: 1024,
            rate_limits: RateLimits::default(),
            namespace_rate_limits: HashMap::new(),
            connection_limits: ConnectionLimits::default(),
        }
    }
}

/// Rate limits: token buckets per connection and per user (cluster-wide, through the
/// [`RateLimiter`](crate::core::RateLimiter) backend), for messages, publications (`~pub`) and
/// subscriptions (`~sub`). `None` is no limit. Every message a client sends counts as a message
/// (except its replies to the server's requests); a `~pub` also counts as a publication, a `~sub`
/// as a subscription.
///
/// Beyond a limit, a request is answered `RATE_LIMITED` with `{"retry_after_ms": N}`; an event
/// gets at most one id-less `["~err", {"code": "RATE_LIMITED", …}]` per second; a connection that
/// goes on regardless, [`close_after`](Self::close_after) refused messages in a row, is closed
/// with 4501 (protocol error: it ignored `RATE_LIMITED`; a code of the 4500 range, so that the
/// client does not reconnect at once into the same limits).
///
/// ```
/// use switchboard::{Config, Rate, RateLimits};
/// let mut config = Config::default();
/// config.rate_limits = RateLimits::public_endpoint();
/// config.rate_limits.publications = Some(Rate::new(5, 10));
/// // The `admin` namespace: no limits.
/// config.namespace_rate_limits.insert("admin".into(), RateLimits::default());
/// assert!(config.rate_limits.is_on());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimits {
    /// Messages of one connection.
    pub messages: Option<Rate>,
    /// Publications of one connection.
    pub publications: Option<Rate>,
    /// Subscriptions of one connection.
    pub subscriptions: Option<Rate>,
    /// Messages of one user, all connections on every node together.
    pub user_messages: Option<Rate>,
    /// Publications of one user, every node together.
    pub user_publications: Option<Rate>,
    /// Subscriptions of one user, every node together.
    pub user_subscriptions: Option<Rate>,
    /// Messages refused in a row after which the connection is closed with 4501 (0: never).
    pub close_after: u32,
}

impl RateLimits {
    /// Limits for a public endpoint, generous for any interactive client:
    ///
    /// | limit | per connection | per user |
    /// |---|---|---|
    /// | messages | 100/s, bursts of 200 | 300/s, bursts of 600 |
    /// | publications | 20/s, bursts of 50 | 50/s, bursts of 100 |
    /// | subscriptions | 20/s, bursts of 200 | 50/s, bursts of 400 |
    ///
    /// and a connection is closed after 200 refused messages in a row.
    #[must_use]
    pub fn public_endpoint() -> Self {
        Self {
            messages: Some(Rate::new(100, 200)),
            publications: Some(Rate::new(20, 50)),
            subscriptions: Some(Rate::new(20, 200)),
            user_messages: Some(Rate::new(300, 600)),
            user_publications: Some(Rate::new(50, 100)),
            user_subscriptions: Some(Rate::new(50, 400)),
            close_after: 200,
        }
    }

    /// Whether any limit is set.
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.messages.is_some()
            || self.publications.is_some()
            || self.subscriptions.is_some()
            || self.user_messages.is_some()
            || self.user_publications.is_some()
            || self.user_subscriptions.is_some()
    }
}

/// Limits on connections per source address, checked when a connection is accepted (by
/// [`Switchboard::serve`](crate::Switchboard::serve), [`Switchboard::router`](crate::Switchboard::router),
/// and any accept loop that calls [`Switchboard::admit`](crate::Switchboard::admit)). Beyond them the
/// connection is refused: closed at once, or answered 429 where the request was read.
///
/// An IPv4 address counts alone; an IPv6 address counts with its /64 network (what one host
/// usually has). A connection from a [trusted proxy](Self::trusted_proxies) counts for the
/// client that `Forwarded` or `X-Forwarded-For` names (the nearest address in it that is not a
/// trusted proxy itself); those headers are ignored from anyone else.
///
/// ```
/// use switchboard::{ConnectionLimits, IpRange, Rate};
/// let mut limits = ConnectionLimits::public_endpoint();
/// limits.trusted_proxies = vec!["10.0.0.0/8".parse::<IpRange>().unwrap()];
/// limits.new_per_address = Some(Rate::new(5, 20));
/// assert_eq!(limits.per_address, Some(256));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Connections open at once from one address (in their handshake or upgraded).
    pub per_address: Option<usize>,
    /// New connections from one address (a token bucket).
    pub new_per_address: Option<Rate>,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers are believed.
    pub trusted_proxies: Vec<IpRange>,
}

impl ConnectionLimits {
    /// Limits for a public endpoint: 256 connections open per address (offices and mobile
    /// carriers put many clients behind one), 20 new ones per second with bursts of 100; a proxy
    /// on the same host (loopback: `127.0.0.0/8`, `::1`) is trusted, so that behind a local nginx
    /// or Caddy every client counts for itself, not all of them for 127.0.0.1.
    #[must_use]
    pub fn public_endpoint() -> Self {
        Self {
            per_address: Some(256),
            new_per_address: Some(Rate::new(20, 100)),
            trusted_proxies: vec![IpRange::LOOPBACK_V4, IpRange::LOOPBACK_V6],
        }
    }

    /// Whether any limit is set.
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.per_address.is_some() || self.new_per_address.is_some()
    }
}

/// A range of IP addresses: one address, or a network in CIDR notation (`10.0.0.0/8`,
/// `fd00::/8`).
///
/// ```
/// use switchboard::IpRange;
/// let range: IpRange = "192.168.0.0/16".parse().unwrap();
/// assert!(range.contains("192.168.4.2".parse().unwrap()));
/// assert!(!range.contains("10.0.0.1".parse().unwrap()));
/// assert!("::1".parse::<IpRange>().unwrap().contains("::1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<IpRange>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// `127.0.0.0/8`.
    pub const LOOPBACK_V4: Self =
        Self { network: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)), prefix: 8 };
    /// `::1`.
    pub const LOOPBACK_V6: Self = Self { network: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), prefix: 128 };

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 address).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (address, prefix) = match s.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr =
            address.trim().parse().map_err(|_| format!("`{s}` is not an IP address or a network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be a number from 0 to {max}"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}
