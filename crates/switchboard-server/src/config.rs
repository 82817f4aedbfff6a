//! The configuration: defaults < TOML file < `SWITCHBOARD_*` environment < command-line flags,
//! layered with figment so that a bad value is reported with its key and its source.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
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
}

/// The Redis backends (`switchboard-redis`), for running several servers as one.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisSettings {
    /// `redis://[:PASSWORD@]HOST:PORT[/DB]` (one Redis, with its replicas or Sentinel), or
    /// `redis+cluster://HOST:PORT[,HOST:PORT…]` (Redis Cluster seed nodes).
    pub url: String,
    /// Prefix of every key and channel, so that several clusters share one Redis.
    #[serde(default = "default_redis_prefix")]
    pub prefix: String,
    /// How long one Redis operation may take before it fails.
    #[serde(default = "default_redis_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_redis_prefix() -> String {
    switchboard_redis::RedisOptions::default().prefix
}

fn default_redis_timeout_ms() -> u64 {
    ms(switchboard_redis::RedisOptions::default().timeout)
}

impl RedisSettings {
    /// The backend options.
    pub(crate) fn options(&self) -> switchboard_redis::RedisOptions {
        let mut o = switchboard_redis::RedisOptions::default();
        o.prefix.clone_from(&self.prefix);
        o.timeout = Duration::from_millis(self.timeout_ms);
        o
    }
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
    /// Largest inbound message in bytes.
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

fn ms(v: Duration) -> u64 {
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

/// JWT identification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtSettings {
    /// `HS256`, `RS256` or `ES256`.
    pub algorithm: String,
    /// HS256 shared secret.
    pub secret: Option<String>,
    /// RS256/ES256 PEM public key file.
    pub public_key_file: Option<PathBuf>,
    /// RS256/ES256 JWKS file (keys picked by `kid`).
    pub jwks_file: Option<PathBuf>,
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
    /// Clock leeway in seconds.
    #[serde(default)]
    pub leeway_secs: u64,
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

impl JwtSettings {
    /// The algorithm, or what is wrong with it.
    pub(crate) fn algorithm(&self) -> Result<jsonwebtoken::Algorithm, String> {
        match self.algorithm.to_ascii_uppercase().as_str() {
            "HS256" => Ok(jsonwebtoken::Algorithm::HS256),
            "RS256" => Ok(jsonwebtoken::Algorithm::RS256),
            "ES256" => Ok(jsonwebtoken::Algorithm::ES256),
            other => Err(format!("unsupported algorithm `{other}` (HS256, RS256, ES256)")),
        }
    }

    /// Which settings the algorithm needs, without reading any file.
    fn check(&self) -> Result<(), String> {
        match self.algorithm()? {
            jsonwebtoken::Algorithm::HS256 if self.secret.is_none() => Err("HS256 needs jwt.secret".into()),
            jsonwebtoken::Algorithm::HS256 => Ok(()),
            _ if self.public_key_file.is_some() == self.jwks_file.is_some() => {
                Err("RS256/ES256 need exactly one of jwt.public_key_file, jwt.jwks_file".into())
            }
            _ => Ok(()),
        }
    }
}

fn proxy_timeout() -> u64 {
    5000
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            dev: false,
            api_key: None,
            log_format: LogFormat::Text,
            limits: Limits::default(),
            jwt: None,
            proxy: None,
            namespaces: BTreeMap::new(),
            redis: None,
        }
    }
}

/// The zero-configuration namespace: `main`, dev identification, chat rooms, the directory.
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
    };
    BTreeMap::from([("main".to_owned(), main)])
}

/// Command-line values that override everything.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisUrl>,
}

/// `--redis URL`: the `redis.url` key alone.
#[derive(Debug, Serialize)]
pub(crate) struct RedisUrl {
    pub url: String,
}

/// A configuration error, already phrased with key and source.
#[derive(Debug)]
pub(crate) struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// The loaded configuration and whether development mode was implied by its absence.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub settings: Settings,
    /// No file, no environment, no namespaces: the zero-config development default.
    pub zero_config: bool,
}

fn source_of(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(m) => match &m.source {
            Some(s) => format!("{} {s}", m.name),
            None => m.name.to_string(),
        },
        None => "defaults".to_owned(),
    }
}

/// The top-level keys, the only ones read from `SWITCHBOARD_*` variables.
const TOP_LEVEL_KEYS: [&str; 9] =
    ["listen", "dev", "api_key", "log_format", "limits", "jwt", "proxy", "namespaces", "redis"];

/// Loads the configuration from all layers and checks it.
pub(crate) fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Loaded, ConfigError> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        if !file.exists() {
            return Err(ConfigError(vec![format!("configuration file {} does not exist", file.display())]));
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    // Only the configuration's own keys: other SWITCHBOARD_* variables (tooling's) are not ours.
    let env = Env::prefixed("SWITCHBOARD_").split("__").filter(|key| {
        let top = key.as_str().split('.').next().unwrap_or_default().to_ascii_lowercase();
        TOP_LEVEL_KEYS.contains(&top.as_str())
    });
    figment = figment.merge(env).merge(Serialized::defaults(overrides));
    let mut settings: Settings = figment
        .extract()
        .map_err(|e| ConfigError(e.into_iter().map(|e| format!("invalid configuration: {e}")).collect()))?;
    // No file, no namespaces, no identification settings: the development default. A
    // configuration that says something but no namespace is a mistake, unless --dev asks for
    // the development namespaces explicitly.
    let zero_config = file.is_none()
        && settings.namespaces.is_empty()
        && settings.jwt.is_none()
        && settings.proxy.is_none();
    if settings.namespaces.is_empty() {
        if !zero_config && !settings.dev {
            return Err(ConfigError(vec![
                "invalid configuration: no namespace configured for key `namespaces` (add \
                 [namespaces.main], or run with --dev for the development defaults)"
                    .to_owned(),
            ]));
        }
        settings.dev = true;
        settings.namespaces = dev_namespaces();
    }
    check(&figment, &settings)?;
    Ok(Loaded { settings, zero_config })
}

fn check(figment: &Figment, s: &Settings) -> Result<(), ConfigError> {
    let mut errors = Vec::new();
    let mut err = |key: &str, what: String| {
        errors.push(format!("invalid configuration: {what} for key `{key}` in {}", source_of(figment, key)));
    };
    for (name, ns) in &s.namespaces {
        let key = format!("namespaces.{name}");
        for parent in &ns.extends {
            if !s.namespaces.contains_key(parent) || parent == name {
                err(&format!("{key}.extends"), format!("unknown namespace `{parent}`"));
            }
        }
        match ns.identify {
            IdentifyMode::Dev if !s.dev => {
                err(&format!("{key}.identify"), "`dev` identification needs development mode (--dev)".into());
            }
            IdentifyMode::Jwt if s.jwt.is_none() => {
                err(&format!("{key}.identify"), "`jwt` identification needs a [jwt] section".into());
            }
            IdentifyMode::Proxy if s.proxy.as_ref().and_then(|p| p.identify_url.as_ref()).is_none() => {
                err(&format!("{key}.identify"), "`proxy` identification needs proxy.identify_url".into());
            }
            _ => {}
        }
        let proxied =
            ns.topics.values().any(|t| t.subscribe == Subscribe::Proxy || t.publish == Publish::Proxy);
        if proxied && s.proxy.as_ref().and_then(|p| p.authorize_url.as_ref()).is_none() {
            err(&format!("{key}.topics"), "`proxy` subscribe/publish needs proxy.authorize_url".into());
        }
        if !ns.forward.is_empty() && s.proxy.as_ref().and_then(|p| p.forward_url.as_ref()).is_none() {
            err(&format!("{key}.forward"), "forwarding needs proxy.forward_url".into());
        }
        for (pattern, topic) in &ns.topics {
            if topic.subscribe == Subscribe::OwnUser
                && !pattern.contains(&format!("{{{}}}", topic.owner_param))
            {
                err(
                    &format!("{key}.topics"),
                    format!("pattern `{pattern}` has no parameter `{{{}}}` (owner_param)", topic.owner_param),
                );
            }
        }
    }
    // The key material (files) is read by `jwt::Verifier::new` when the namespaces are built.
    if let Some(jwt) = &s.jwt
        && let Err(e) = jwt.check()
    {
        err("jwt", e);
    }
    if errors.is_empty() { Ok(()) } else { Err(ConfigError(errors)) }
}

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
    fn the_readme_example_is_a_valid_configuration() {
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n").expect("an example") + "```toml\n".len();
        let example = &readme[start..start + readme[start..].find("```").expect("closed")];
        let settings: Settings = Figment::from(Toml::string(example)).extract().expect("valid example");
        assert_eq!(settings.namespaces["admin"].extends, ["main"]);
        assert_eq!(settings.namespaces["main"].topics["private/{user}"].subscribe, Subscribe::OwnUser);
        assert_eq!(settings.limits.to_config().conn_per_user, Some((5, CapPolicy::EvictOldest)));
    }
}
