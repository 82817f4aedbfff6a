//! What can be configured: every key, its default, and why. Plain data; `config` loads and
//! checks it, the other modules read it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard::CapPolicy;

/// The whole configuration of the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Development mode: `{"name": N}` identifies anyone as user N.
    pub dev: bool,
    /// Key of the HTTP API (`Authorization: Bearer KEY`); no key, no API.
    pub api_key: Option<String>,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Origins allowed to open the WebSocket endpoint; empty: the request's own host only.
    pub allowed_origins: Vec<String>,
    /// Extra CA certificates (PEM) trusted for outbound `https` (proxy calls, the JWKS URL),
    /// besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Serve `https`/`wss` with these files.
    pub tls: Option<TlsSettings>,
    /// Limits of the HTTP layer (handshakes, headers).
    pub http: HttpSettings,
    /// Limits of the HTTP API.
    pub api: ApiSettings,
    /// Where and how `/metrics` is served.
    pub metrics: MetricsSettings,
    /// Framework limits (every field of `switchboard::Config`).
    pub limits: Limits,
    /// JWT identification settings (namespaces with `identify = "jwt"`).
    pub jwt: Option<JwtSettings>,
    /// Proxy identification and forwarding settings.
    pub proxy: Option<ProxySettings>,
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, NamespaceSettings>,
    /// Redis: servers on the same Redis form one cluster. None: in-memory, one server.
    pub redis: Option<RedisSettings>,
    /// What happens between SIGTERM and the end.
    pub shutdown: ShutdownSettings,
    /// Lifecycle events POSTed to the application (a signed webhook). None: no events.
    pub events: Option<EventsSettings>,
    /// Publications from the application's database (transactional outbox).
    pub outbox: OutboxSettings,
}

/// The default address: loopback, so that nothing is exposed unless asked for.
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 8080));

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            dev: false,
            api_key: None,
            log_format: LogFormat::Text,
            allowed_origins: Vec::new(),
            ca_file: None,
            tls: None,
            http: HttpSettings::default(),
            api: ApiSettings::default(),
            metrics: MetricsSettings::default(),
            limits: Limits::default(),
            jwt: None,
            proxy: None,
            namespaces: BTreeMap::new(),
            redis: None,
            shutdown: ShutdownSettings::default(),
            events: None,
            outbox: OutboxSettings::default(),
        }
    }
}

impl Settings {
    /// The framework's configuration: `[limits]`, the namespaces' own rate limits, and the
    /// connection limits of `[http]`.
    pub(crate) fn to_config(&self) -> switchboard::Config {
        let mut c = self.limits.to_config();
        for (name, ns) in &self.namespaces {
            if let Some(rate) = ns.rate {
                c.namespace_rate_limits.insert(name.clone(), rate.to_limits());
            }
        }
        c.connection_limits = self.http.connection_limits();
        c
    }
}

/// Shutdown: SIGTERM turns `/readyz` to 503 at once, the listener keeps accepting for
/// `drain_delay_ms` (so that load balancers stop sending new clients here), then every
/// connection is closed with 1001.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ShutdownSettings {
    /// Milliseconds between SIGTERM and closing the connections; default
    /// [`DRAIN_DELAY_MS`] in production, 0 in development mode.
    pub drain_delay_ms: Option<u64>,
}

/// The production default of `shutdown.drain_delay_ms`: longer than a load balancer's usual
/// health-check interval times its failure threshold is best; 5 s suits checks every 1–2 s.
pub(crate) const DRAIN_DELAY_MS: u64 = 5000;

impl ShutdownSettings {
    /// The delay in force: the configured one, else 5 s in production and none in development
    /// mode (nobody balances a development server).
    pub(crate) fn drain_delay(&self, dev: bool) -> Duration {
        Duration::from_millis(self.drain_delay_ms.unwrap_or(if dev { 0 } else { DRAIN_DELAY_MS }))
    }
}

/// Lifecycle events (`connect`, `disconnect`, `subscribe`, …) delivered at least once to the
/// application's backend: JSON batches POSTed to `url`, signed with HMAC-SHA256 (`secret`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsSettings {
    /// Where batches are POSTed (`http://` or `https://`).
    pub url: String,
    /// The HMAC-SHA256 key of the `Switchboard-Signature` header (at least 32 bytes).
    pub secret: String,
    /// Secrets being retired (each at least 32 bytes): every one adds a `v1=` signature after
    /// `secret`'s, so that a backend still verifying with an old secret accepts the requests
    /// while the secret rotates (the steps are in docs/events.md).
    #[serde(default)]
    pub previous_secrets: Vec<String>,
    /// Which kinds (default: every kind).
    #[serde(default = "all_kinds")]
    pub kinds: Vec<switchboard::EventKind>,
    /// Connection events of these namespaces only (default: all).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Topic events (subscribe, unsubscribe, occupied, vacated) of topics matching these
    /// patterns only (default: all).
    #[serde(default)]
    pub topics: Vec<String>,
    /// Events per request, at most.
    #[serde(default = "default_events_batch")]
    pub max_batch: usize,
    /// How long a batch waits for more events before it is sent.
    #[serde(default = "default_events_wait")]
    pub max_wait_ms: u64,
    /// How long one request may take (then it is retried).
    #[serde(default = "default_events_timeout")]
    pub timeout_ms: u64,
    /// The first backoff after a failed request (doubling, with jitter)…
    #[serde(default = "default_events_retry_min")]
    pub retry_min_ms: u64,
    /// …up to this.
    #[serde(default = "default_events_retry_max")]
    pub retry_max_ms: u64,
}

fn all_kinds() -> Vec<switchboard::EventKind> {
    switchboard::EventKind::ALL.to_vec()
}

fn default_events_batch() -> usize {
    100
}

fn default_events_wait() -> u64 {
    20
}

fn default_events_timeout() -> u64 {
    5000
}

fn default_events_retry_min() -> u64 {
    100
}

fn default_events_retry_max() -> u64 {
    5000
}

/// `https`/`wss` from PEM files, re-read on SIGHUP and when they change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSettings {
    /// The certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the files' modification times are checked (0: only on SIGHUP).
    #[serde(default = "default_reload_secs")]
    pub reload_interval_secs: u64,
}

fn default_reload_secs() -> u64 {
    10
}

/// Limits of the HTTP layer: what a connection may cost before it sent a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpSettings {
    /// Time from accepting a connection to its first complete request head (TLS handshake
    /// included); also the time allowed for each later request head.
    pub handshake_timeout_ms: u64,
    /// Largest request head (request line and headers), bytes; larger is answered 431.
    pub max_header_bytes: usize,
    /// Connections still in their handshake (TLS or first request head) at once; beyond it new
    /// connections are closed at once.
    pub max_handshakes: usize,
    /// Connections open at once from one address (0: no limit).
    pub max_connections_per_address: usize,
    /// New connections from one address (`per_second = 0`: no limit).
    pub new_connections_per_address: RateSetting,
    /// Proxies (addresses or CIDR networks) whose `Forwarded` / `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        let public = switchboard::ConnectionLimits::public_endpoint();
        Self {
            handshake_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            max_handshakes: 1024,
            max_connections_per_address: public.per_address.unwrap_or(0),
            new_connections_per_address: public.new_per_address.into(),
            trusted_proxies: public.trusted_proxies.iter().map(ToString::to_string).collect(),
        }
    }
}

impl HttpSettings {
    /// The framework's connection limits (the trusted proxies checked by `config::check`).
    pub(crate) fn connection_limits(&self) -> switchboard::ConnectionLimits {
        let mut limits = switchboard::ConnectionLimits::default();
        limits.per_address =
            (self.max_connections_per_address > 0).then_some(self.max_connections_per_address);
        limits.new_per_address = self.new_connections_per_address.rate();
        limits.trusted_proxies = self.trusted_proxies.iter().filter_map(|p| p.parse().ok()).collect();
        limits
    }
}

/// A token bucket: `per_second` back every second, at most `burst` at once; `per_second = 0`
/// is no limit.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateSetting {
    /// Tokens back per second (0: no limit).
    pub per_second: u32,
    /// Most at once (at least 1; default: one second's worth).
    #[serde(default)]
    pub burst: u32,
}

impl RateSetting {
    pub(crate) fn rate(self) -> Option<switchboard::Rate> {
        (self.per_second > 0)
            .then(|| switchboard::Rate::new(self.per_second, self.burst.max(self.per_second)))
    }
}

impl From<Option<switchboard::Rate>> for RateSetting {
    fn from(rate: Option<switchboard::Rate>) -> Self {
        rate.map_or_else(Self::default, |r| Self { per_second: r.per_second, burst: r.burst })
    }
}

/// Rate limits of messages, per connection and per user (`[limits.rate]`, and per namespace
/// `[namespaces.NAME.rate]`). Defaults: `switchboard::RateLimits::public_endpoint()`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RateSettings {
    /// Messages of one connection.
    pub messages: RateSetting,
    /// Publications (`~pub`) of one connection.
    pub publications: RateSetting,
    /// Subscriptions (`~sub`) of one connection.
    pub subscriptions: RateSetting,
    /// Messages of one user, every connection on every node.
    pub user_messages: RateSetting,
    /// Publications of one user.
    pub user_publications: RateSetting,
    /// Subscriptions of one user.
    pub user_subscriptions: RateSetting,
    /// Messages refused in a row before the connection is closed with 4501 (0: never).
    pub close_after: u32,
}

impl Default for RateSettings {
    fn default() -> Self {
        let l = switchboard::RateLimits::public_endpoint();
        Self {
            messages: l.messages.into(),
            publications: l.publications.into(),
            subscriptions: l.subscriptions.into(),
            user_messages: l.user_messages.into(),
            user_publications: l.user_publications.into(),
            user_subscriptions: l.user_subscriptions.into(),
            close_after: l.close_after,
        }
    }
}

impl RateSettings {
    pub(crate) fn to_limits(self) -> switchboard::RateLimits {
        let mut l = switchboard::RateLimits::default();
        l.messages = self.messages.rate();
        l.publications = self.publications.rate();
        l.subscriptions = self.subscriptions.rate();
        l.user_messages = self.user_messages.rate();
        l.user_publications = self.user_publications.rate();
        l.user_subscriptions = self.user_subscriptions.rate();
        l.close_after = self.close_after;
        l
    }
}

/// Limits of the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApiSettings {
    /// Largest request body of any API call, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Commands in one `/api/batch` (413 beyond).
    pub max_batch_commands: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self { max_body_bytes: 1024 * 1024, max_batch_commands: 100 }
    }
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MetricsSettings {
    /// Serve `/metrics` on this address (plain HTTP) instead of the main listener.
    pub listen: Option<SocketAddr>,
    /// Require the API key (`Authorization: Bearer`) for `/metrics`.
    pub require_key: bool,
}

/// The Redis backends (`switchboard-redis`), for running several servers as one.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisSettings {
    /// `redis[s]://[:PASSWORD@]HOST:PORT[/DB]` (one Redis), or
    /// `redis[s]+cluster://HOST:PORT[,HOST:PORT…]` (Redis Cluster seed nodes); `rediss` is TLS.
    pub url: String,
    /// Prefix of every key and channel, so that several clusters share one Redis.
    #[serde(default = "default_redis_prefix")]
    pub prefix: String,
    /// How long one Redis operation may take before it fails.
    #[serde(default = "default_redis_timeout_ms")]
    pub timeout_ms: u64,
    /// CA certificates (PEM) that sign the Redis servers' certificates (`rediss://`); without
    /// it, the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

fn default_redis_prefix() -> String {
    switchboard_redis::RedisOptions::default().prefix
}

fn default_redis_timeout_ms() -> u64 {
    ms(switchboard_redis::RedisOptions::default().timeout)
}

/// Log output format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every field of [`switchboard::Config`]; durations in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
    /// WebSocket endpoint path.
    pub path: String,
    /// Largest inbound message in bytes (and largest publication through the HTTP API).
    pub max_message_size: usize,
    /// Time to identify after the upgrade.
    pub identify_timeout_ms: u64,
    /// Subscriptions per connection.
    pub max_subscriptions: usize,
    /// Handlers of one connection running at once.
    pub max_inflight: usize,
    /// Bytes queued for one connection before closing it (4002).
    pub max_queue_bytes: usize,
    /// WebSocket ping interval.
    pub heartbeat_ms: u64,
    /// Cap on one user's connections (0: none).
    pub conn_per_user: usize,
    /// What happens beyond the cap.
    pub conn_policy: Policy,
    /// Resend interval of acknowledged deliveries.
    pub ack_timeout_ms: u64,
    /// Resends of an unacknowledged delivery.
    pub max_resends: u32,
    /// Unacknowledged deliveries one connection may hold.
    pub max_pending_acks: usize,
    /// Default timeout of requests to clients.
    pub request_timeout_ms: u64,
    /// How long shutdown waits for running handlers.
    pub shutdown_grace_ms: u64,
    /// Socket read buffer per connection.
    pub read_buffer_size: usize,
    /// Rate limits of every namespace without its own `rate`.
    pub rate: RateSettings,
}

/// `conn_per_user` policy.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Policy {
    /// Close the oldest connection with 4502.
    EvictOldest,
    /// Refuse the new connection.
    RefuseNew,
}

pub(crate) fn ms(v: Duration) -> u64 {
    u64::try_from(v.as_millis()).unwrap_or(u64::MAX)
}

impl Default for Limits {
    fn default() -> Self {
        let c = switchboard::Config::default();
        Self {
            path: c.path,
            max_message_size: c.max_message_size,
            identify_timeout_ms: ms(c.identify_timeout),
            max_subscriptions: c.max_subscriptions,
            max_inflight: c.max_inflight,
            max_queue_bytes: c.max_queue_bytes,
            heartbeat_ms: ms(c.heartbeat),
            conn_per_user: 0,
            conn_policy: Policy::EvictOldest,
            ack_timeout_ms: ms(c.ack_timeout),
            max_resends: c.max_resends,
            max_pending_acks: c.max_pending_acks,
            request_timeout_ms: ms(c.request_timeout),
            shutdown_grace_ms: ms(c.shutdown_grace),
            read_buffer_size: c.read_buffer_size,
            rate: RateSettings::default(),
        }
    }
}

impl Limits {
    /// The framework's configuration.
    pub(crate) fn to_config(&self) -> switchboard::Config {
        let mut c = switchboard::Config::default();
        c.path.clone_from(&self.path);
        c.max_message_size = self.max_message_size;
        c.identify_timeout = Duration::from_millis(self.identify_timeout_ms);
        c.max_subscriptions = self.max_subscriptions;
        c.max_inflight = self.max_inflight;
        c.max_queue_bytes = self.max_queue_bytes;
        c.heartbeat = Duration::from_millis(self.heartbeat_ms);
        c.conn_per_user = (self.conn_per_user > 0).then(|| {
            let policy = match self.conn_policy {
                Policy::EvictOldest => CapPolicy::EvictOldest,
                Policy::RefuseNew => CapPolicy::RefuseNew,
            };
            (self.conn_per_user, policy)
        });
        c.ack_timeout = Duration::from_millis(self.ack_timeout_ms);
        c.max_resends = self.max_resends;
        c.max_pending_acks = self.max_pending_acks;
        c.request_timeout = Duration::from_millis(self.request_timeout_ms);
        c.shutdown_grace = Duration::from_millis(self.shutdown_grace_ms);
        c.read_buffer_size = self.read_buffer_size;
        c.rate_limits = self.rate.to_limits();
        c
    }
}

/// How a namespace identifies connections.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum IdentifyMode {
    /// `{"name": N}` → user N (development mode only).
    Dev,
    /// A JWT (see `[jwt]`).
    Jwt,
    /// The application decides over HTTP (see `[proxy]`).
    Proxy,
    /// Everyone is accepted without a user.
    Anonymous,
}

/// One namespace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamespaceSettings {
    /// Namespaces whose handlers and topics this one inherits.
    #[serde(default)]
    pub extends: Vec<String>,
    /// Identification mode.
    pub identify: IdentifyMode,
    /// Whether `~info` is allowed.
    #[serde(default)]
    pub allow_info: bool,
    /// Event and request names forwarded to the application (`[proxy] forward_url`).
    #[serde(default)]
    pub forward: Vec<String>,
    /// Topic patterns (`room/{name}`) and their options.
    #[serde(default)]
    pub topics: BTreeMap<String, TopicSettings>,
    /// Rate limits of this namespace, instead of `[limits.rate]`.
    #[serde(default)]
    pub rate: Option<RateSettings>,
}

/// Who may subscribe.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Subscribe {
    /// Any identified connection.
    Anyone,
    /// Nobody: server-side joins only (groups).
    Nobody,
    /// Only the user named by the pattern's parameter `owner_param`.
    OwnUser,
    /// The application decides (`proxy.authorize_url`).
    Proxy,
}

/// Who may publish.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Publish {
    /// Clients with `~pub` (and the server).
    Clients,
    /// Only the server (HTTP API).
    Server,
    /// Clients, where the application allows it (`proxy.authorize_url`).
    Proxy,
}

/// One topic pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicSettings {
    #[serde(default = "anyone")]
    /// Who may subscribe.
    pub subscribe: Subscribe,
    /// The parameter naming the owner, for `subscribe = "own-user"`.
    #[serde(default = "user_param")]
    pub owner_param: String,
    #[serde(default = "server")]
    /// Who may publish.
    pub publish: Publish,
    /// Publications kept for recovery (0: none).
    #[serde(default)]
    pub history: usize,
    /// Lifetime of a kept publication in seconds (0: unlimited).
    #[serde(default)]
    pub history_ttl_secs: u64,
    #[serde(default)]
    /// Topic presence on.
    pub presence: bool,
    #[serde(default)]
    /// Deliveries acknowledged and resent.
    pub acknowledged: bool,
}

fn anyone() -> Subscribe {
    Subscribe::Anyone
}
fn server() -> Publish {
    Publish::Server
}
fn user_param() -> String {
    "user".to_owned()
}

/// A JWT signature algorithm, read case-insensitively (`HS256`, `rs256`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct JwtAlgorithm(pub jsonwebtoken::Algorithm);

/// Every algorithm the server verifies, in the spelling of RFC 7518.
pub(crate) const JWT_ALGORITHMS: &str =
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

impl TryFrom<String> for JwtAlgorithm {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        JWT_ALGORITHMS
            .split(", ")
            .find(|known| known.eq_ignore_ascii_case(name.trim()))
            .and_then(|known| known.parse().ok())
            .map(Self)
            .ok_or_else(|| format!("unknown algorithm `{name}` (one of {JWT_ALGORITHMS})"))
    }
}

impl JwtAlgorithm {
    /// The shortest HMAC secret in bytes, for `HS*`: the hash's output size (RFC 7518 §3.2).
    pub(crate) fn min_secret_len(self) -> Option<usize> {
        use jsonwebtoken::Algorithm::{HS256, HS384, HS512};
        match self.0 {
            HS256 => Some(32),
            HS384 => Some(48),
            HS512 => Some(64),
            _ => None,
        }
    }
}

/// JWT identification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtSettings {
    /// The one algorithm tokens must be signed with.
    pub algorithm: JwtAlgorithm,
    /// HS* shared secret (at least the hash's size: 32, 48 or 64 bytes).
    pub secret: Option<String>,
    /// Asymmetric algorithms: a PEM public key file.
    pub public_key_file: Option<PathBuf>,
    /// Asymmetric algorithms: a JWKS file (keys picked by `kid`).
    pub jwks_file: Option<PathBuf>,
    /// Asymmetric algorithms: a JWKS URL (`https://…`), cached by `kid`.
    pub jwks_url: Option<String>,
    /// How often the JWKS URL is fetched again.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// A token with an unknown `kid` fetches the JWKS URL again, at most this often.
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh_secs: u64,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Required `aud`, if any.
    pub audience: Option<String>,
    /// Claim holding the alias.
    #[serde(default)]
    pub alias_claim: Option<String>,
    /// Claim holding the public data.
    #[serde(default)]
    pub public_claim: Option<String>,
    /// Claim holding a list of topics to join.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Clock leeway in seconds for `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_jwks_refresh() -> u64 {
    300
}
fn default_jwks_min_refresh() -> u64 {
    10
}
fn default_leeway() -> u64 {
    30
}

/// Proxy identification and forwarding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProxySettings {
    /// Where `~hello` is POSTed.
    pub identify_url: Option<String>,
    /// Where forwarded events and requests are POSTed.
    pub forward_url: Option<String>,
    /// Where subscriptions and publications of topics with `subscribe`/`publish = "proxy"` are
    /// POSTed for authorization.
    pub authorize_url: Option<String>,
    /// Upgrade request headers passed along.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Timeout of one call in milliseconds.
    #[serde(default = "proxy_timeout")]
    pub timeout_ms: u64,
}

fn proxy_timeout() -> u64 {
    5000
}

/// The development namespace: `main`, dev identification, chat rooms, the directory.
pub(crate) fn dev_namespaces() -> BTreeMap<String, NamespaceSettings> {
    let room = TopicSettings {
        subscribe: Subscribe::Anyone,
        owner_param: user_param(),
        publish: Publish::Clients,
        history: 100,
        history_ttl_secs: 0,
        presence: true,
        acknowledged: false,
    };
    let main = NamespaceSettings {
        extends: Vec::new(),
        identify: IdentifyMode::Dev,
        allow_info: false,
        forward: Vec::new(),
        topics: BTreeMap::from([("room/{name}".to_owned(), room)]),
        rate: None,
    };
    BTreeMap::from([("main".to_owned(), main)])
}

// ---- The transactional outbox (src/outbox, docs/outbox.md) ----

/// `[outbox]`: publications that the application writes into its own database, in the same
/// transaction as its business change, and that this server publishes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct OutboxSettings {
    /// `[outbox.postgres]`: rows of a PostgreSQL table.
    pub postgres: Option<PostgresOutboxSettings>,
    /// `[outbox.redis]`: entries of a Redis stream.
    pub redis: Option<RedisOutboxSettings>,
}

/// `[outbox.postgres]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresOutboxSettings {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=require]`; `sslmode=require` is TLS
    /// with the server's certificate verified (system roots, or `ca_file`).
    pub url: String,
    /// The outbox table (`name` or `schema.name`).
    #[serde(default = "default_outbox_table")]
    pub table: String,
    /// Where bad rows are moved with their reason [default: the table's name + `_failed`].
    #[serde(default)]
    pub failed_table: Option<String>,
    /// The `LISTEN` channel that the table's insert trigger notifies.
    #[serde(default = "default_outbox_table")]
    pub channel: String,
    /// Rows fetched, published and deleted at once.
    #[serde(default = "default_outbox_batch")]
    pub batch: usize,
    /// How often the table is read without a notification (the safety net of `LISTEN`), and
    /// how often a standby server tries to become the consumer.
    #[serde(default = "default_outbox_poll_ms")]
    pub poll_interval_ms: u64,
    /// CA certificates (PEM) that sign the database's certificate, for `sslmode=require`;
    /// without it, the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[outbox.redis]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisOutboxSettings {
    /// `redis[s]://[:PASSWORD@]HOST:PORT[/DB]` [default: `redis.url`, the cluster's Redis].
    #[serde(default)]
    pub url: Option<String>,
    /// The stream the application adds entries to (`XADD`).
    #[serde(default = "default_outbox_stream")]
    pub stream: String,
    /// The consumer group of the Switchboard servers.
    #[serde(default = "default_outbox_group")]
    pub group: String,
    /// This server's consumer name in the group [default: `HOST-PID`].
    #[serde(default)]
    pub consumer: Option<String>,
    /// Where bad entries go, with their reason [default: the stream's name + `:dead`].
    #[serde(default)]
    pub dead_letter: Option<String>,
    /// The key of the lease that lets one server at a time read [default: the stream's name +
    /// `:lease`].
    #[serde(default)]
    pub lease_key: Option<String>,
    /// Lifetime of the lease: how long a crashed consumer holds the stream up.
    #[serde(default = "default_outbox_lease_ms")]
    pub lease_ms: u64,
    /// Entries read, published and acknowledged at once.
    #[serde(default = "default_outbox_batch")]
    pub batch: usize,
    /// How long one blocking read waits, and how often a standby server tries to take the lease.
    #[serde(default = "default_outbox_poll_ms")]
    pub poll_interval_ms: u64,
    /// Whether published entries are deleted from the stream (`XDEL`) once acknowledged.
    #[serde(default = "yes")]
    pub delete_acked: bool,
    /// CA certificates (PEM) for `rediss://` [default: `redis.ca_file` when the URL is the
    /// cluster's, else the system's roots].
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_outbox_table() -> String {
    "switchboard_outbox".to_owned()
}
fn default_outbox_stream() -> String {
    "switchboard:outbox".to_owned()
}
fn default_outbox_group() -> String {
    "switchboard".to_owned()
}
fn default_outbox_batch() -> usize {
    500
}
fn default_outbox_poll_ms() -> u64 {
    1000
}
fn default_outbox_lease_ms() -> u64 {
    10_000
}
fn yes() -> bool {
    true
}

impl PostgresOutboxSettings {
    /// The table that bad rows are moved to.
    pub(crate) fn failed_table(&self) -> String {
        self.failed_table.clone().unwrap_or_else(|| format!("{}_failed", self.table))
    }
}

impl RedisOutboxSettings {
    /// The dead-letter stream.
    pub(crate) fn dead_letter(&self) -> String {
        self.dead_letter.clone().unwrap_or_else(|| format!("{}:dead", self.stream))
    }

    /// The lease's key.
    pub(crate) fn lease_key(&self) -> String {
        self.lease_key.clone().unwrap_or_else(|| format!("{}:lease", self.stream))
    }
}

// ---- end of the outbox ----

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_map_to_every_config_field() {
        let limits = Limits {
            conn_per_user: 3,
            conn_policy: Policy::RefuseNew,
            heartbeat_ms: 5000,
            ..Limits::default()
        };
        let c = limits.to_config();
        assert_eq!(c.conn_per_user, Some((3, CapPolicy::RefuseNew)));
        assert_eq!(c.heartbeat, Duration::from_secs(5));
        assert_eq!(c.max_message_size, switchboard::Config::default().max_message_size);
        assert_eq!(Limits::default().to_config().conn_per_user, None);
    }

    #[test]
    fn the_drain_delay_defaults_to_5_s_in_production_and_none_in_development() {
        let default = ShutdownSettings::default();
        assert_eq!(default.drain_delay(false), Duration::from_secs(5));
        assert_eq!(default.drain_delay(true), Duration::ZERO);
        let set = ShutdownSettings { drain_delay_ms: Some(1200) };
        assert_eq!(set.drain_delay(false), Duration::from_millis(1200));
        assert_eq!(set.drain_delay(true), Duration::from_millis(1200));
    }

    #[test]
    fn algorithms_are_read_in_any_case_and_unknown_ones_refused() {
        assert_eq!(JwtAlgorithm::try_from("hs256".to_owned()).unwrap().0, jsonwebtoken::Algorithm::HS256);
        assert_eq!(JwtAlgorithm::try_from("EDDSA".to_owned()).unwrap().0, jsonwebtoken::Algorithm::EdDSA);
        for bad in ["none", "HS1", "", "RS256 "] {
            let e = JwtAlgorithm::try_from(bad.to_owned());
            assert!(bad == "RS256 " || e.is_err(), "{bad}");
        }
        assert_eq!(JwtAlgorithm(jsonwebtoken::Algorithm::HS512).min_secret_len(), Some(64));
        assert_eq!(JwtAlgorithm(jsonwebtoken::Algorithm::ES256).min_secret_len(), None);
    }
}
