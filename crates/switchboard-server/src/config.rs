//! Loading the configuration: defaults < TOML file < `SWITCHBOARD_*` environment < command-line
//! flags, layered with figment so that a bad value is reported with its key and its source; then
//! the checks that need no file: development mode only when asked for, a way to identify users,
//! secrets long enough, limits that can work.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use serde::Serialize;

use crate::origin::Origins;
use crate::settings::{
    EventsSettings, IdentifyMode, JwtSettings, LogFormat, Publish, Settings, Subscribe, dev_namespaces,
};

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

impl Overrides {
    /// Whether a flag other than `--listen` and `--log-format` was given: those two alone do
    /// not make a configuration.
    fn configures(&self) -> bool {
        self.dev.is_some() || self.redis.is_some()
    }
}

/// `--redis URL`: the `redis.url` key alone.
#[derive(Debug, Serialize)]
pub(crate) struct RedisUrl {
    pub url: String,
}

/// A configuration error, already phrased with key and source, one line each.
#[derive(Debug)]
pub(crate) struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// How development mode came about, if it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevMode {
    /// Production: a configuration that identifies users.
    Off,
    /// No configuration at all (the README's `cargo run --release`).
    ZeroConfig,
    /// Asked for: `--dev`, `dev = true` or `SWITCHBOARD_DEV=true`.
    Asked,
}

/// The loaded configuration.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub settings: Settings,
    /// Development mode and why.
    pub dev: DevMode,
    /// The allowed origins, parsed.
    pub origins: Origins,
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
pub(crate) const TOP_LEVEL_KEYS: [&str; 18] = [
    "listen",
    "dev",
    "api_key",
    "log_format",
    "allowed_origins",
    "ca_file",
    "tls",
    "http",
    "api",
    "metrics",
    "limits",
    "jwt",
    "proxy",
    "namespaces",
    "redis",
    "shutdown",
    "events",
    "outbox",
];

fn is_setting(var: &str) -> bool {
    let top = var.split("__").next().unwrap_or_default().to_ascii_lowercase();
    TOP_LEVEL_KEYS.contains(&top.as_str())
}

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
    let env_given = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .any(|k| k.strip_prefix("SWITCHBOARD_").is_some_and(is_setting));
    let listen_configured = figment.clone().merge(env.clone()).find_value("listen").is_ok();
    figment = figment.merge(env).merge(Serialized::defaults(overrides));
    let mut settings: Settings = figment
        .extract()
        .map_err(|e| ConfigError(e.into_iter().map(|e| format!("invalid configuration: {e}")).collect()))?;
    // Development mode only when asked for: no configuration at all, or --dev / dev = true.
    let dev = if settings.dev {
        DevMode::Asked
    } else if file.is_none() && !env_given && !overrides.configures() {
        DevMode::ZeroConfig
    } else {
        DevMode::Off
    };
    let mut errors = Vec::new();
    if dev != DevMode::Off {
        settings.dev = true;
        if settings.namespaces.is_empty() {
            settings.namespaces = dev_namespaces();
        }
        // Development mode stays on loopback unless --listen says otherwise: a `listen` from
        // the file or the environment alone must not expose it.
        if overrides.listen.is_none() && listen_configured && !settings.listen.ip().is_loopback() {
            errors.push(format!(
                "invalid configuration: development mode listens on loopback only, unless --listen \
                 says otherwise: {} for key `listen` in {} is not a loopback address",
                settings.listen,
                source_of(&figment, "listen")
            ));
        }
    } else if settings.namespaces.is_empty() {
        errors.push(
            "invalid configuration: no namespace is configured, so no user can identify: add \
             [namespaces.main] with identify = \"jwt\" (and [jwt]) or \"proxy\" (and \
             proxy.identify_url), or run with --dev for development mode"
                .to_owned(),
        );
    }
    let origins = match Origins::parse(&settings.allowed_origins) {
        Ok(o) => o,
        Err(e) => {
            errors.push(format!(
                "invalid configuration: {e} for key `allowed_origins` in {}",
                source_of(&figment, "allowed_origins")
            ));
            Origins::default()
        }
    };
    check(&figment, &settings, &mut errors);
    if errors.is_empty() { Ok(Loaded { settings, dev, origins }) } else { Err(ConfigError(errors)) }
}

fn check(figment: &Figment, s: &Settings, errors: &mut Vec<String>) {
    let mut err = |key: &str, what: String| {
        errors.push(format!("invalid configuration: {what} for key `{key}` in {}", source_of(figment, key)));
    };
    if s.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        err("api_key", "an empty API key (give a long random one, or none to disable the API)".into());
    }
    if s.metrics.require_key && s.api_key.is_none() {
        err("metrics.require_key", "`/metrics` behind the API key needs api_key".into());
    }
    if s.http.handshake_timeout_ms == 0 {
        err("http.handshake_timeout_ms", "0 (give a deadline, e.g. 10000)".into());
    }
    if s.http.max_header_bytes < 8192 {
        err("http.max_header_bytes", format!("{} is under the minimum of 8192", s.http.max_header_bytes));
    }
    if s.http.max_handshakes == 0 {
        err("http.max_handshakes", "0 would refuse every connection".into());
    }
    for proxy in &s.http.trusted_proxies {
        if let Err(e) = proxy.parse::<switchboard::IpRange>() {
            err("http.trusted_proxies", e);
        }
    }
    if s.api.max_batch_commands == 0 || s.api.max_body_bytes == 0 {
        err("api", "max_batch_commands and max_body_bytes must be at least 1".into());
    }
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
    if let Some(jwt) = &s.jwt {
        for (key, what) in check_jwt(jwt) {
            err(key, what);
        }
    }
    if let Some(events) = &s.events {
        for (key, what) in check_events(events, s) {
            err(&key, what);
        }
    }
    for (key, what) in crate::outbox::check(&s.outbox, s.redis.as_ref()) {
        err(&key, what);
    }
    if let Some(proxy) = &s.proxy {
        for (key, url) in [
            ("proxy.identify_url", &proxy.identify_url),
            ("proxy.forward_url", &proxy.forward_url),
            ("proxy.authorize_url", &proxy.authorize_url),
        ] {
            if let Some(url) = url
                && let Err(e) = http_url(url)
            {
                err(key, e);
            }
        }
    }
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn http_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!("`{url}` is not an http:// or https:// URL")),
    }
}

/// What is wrong with `[events]`: `(key, problem)`.
fn check_events(events: &EventsSettings, s: &Settings) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, what: String| problems.push((format!("events.{key}"), what));
    if let Err(e) = http_url(&events.url) {
        problem("url", e);
    }
    let short = |secret: &str| {
        format!(
            "a secret of {} bytes: give at least {MIN_EVENTS_SECRET} random bytes (e.g. `openssl rand -hex 32`)",
            secret.len()
        )
    };
    if events.secret.len() < MIN_EVENTS_SECRET {
        problem("secret", short(&events.secret));
    }
    for old in &events.previous_secrets {
        if old.len() < MIN_EVENTS_SECRET {
            problem("previous_secrets", short(old));
        } else if *old == events.secret {
            problem(
                "previous_secrets",
                "the current secret again: list only the ones being retired".to_owned(),
            );
        }
    }
    if events.kinds.is_empty() {
        problem("kinds", "no kind: name some (connect, disconnect, …) or remove [events]".to_owned());
    }
    for ns in &events.namespaces {
        if !s.namespaces.contains_key(ns) {
            problem("namespaces", format!("unknown namespace `{ns}`"));
        }
    }
    for pattern in &events.topics {
        if let Err(e) = topic_pattern(pattern) {
            problem("topics", e);
        }
    }
    if !(1..=MAX_EVENTS_BATCH).contains(&events.max_batch) {
        problem("max_batch", format!("{} is not in 1..={MAX_EVENTS_BATCH}", events.max_batch));
    }
    if events.max_wait_ms > 60_000 {
        problem("max_wait_ms", format!("{} is over a minute", events.max_wait_ms));
    }
    if events.timeout_ms == 0 {
        problem("timeout_ms", "0 (give a deadline, e.g. 5000)".to_owned());
    }
    if events.retry_min_ms == 0 || events.retry_max_ms < events.retry_min_ms {
        problem("retry_min_ms", "retry_min_ms must be at least 1 and at most retry_max_ms".to_owned());
    }
    problems
}

/// The shortest `events.secret` (bytes): as HS256 keys.
const MIN_EVENTS_SECRET: usize = 32;
/// The largest `events.max_batch`.
const MAX_EVENTS_BATCH: usize = 10_000;

/// A topic pattern: `/`-separated non-empty segments, each a literal or `{name}`.
fn topic_pattern(pattern: &str) -> Result<(), String> {
    for segment in pattern.split('/') {
        let param = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        let ok = match param {
            Some(name) => !name.is_empty() && !name.contains(['{', '}']),
            None => !segment.is_empty() && !segment.contains(['{', '}']),
        };
        if !ok {
            return Err(format!("`{pattern}` is not a topic pattern (segments like `room` or `{{name}}`)"));
        }
    }
    Ok(())
}

/// What is wrong with the JWT settings, without reading a file: `(key, problem)`.
fn check_jwt(jwt: &JwtSettings) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let sources = [jwt.public_key_file.is_some(), jwt.jwks_file.is_some(), jwt.jwks_url.is_some()];
    let given = sources.iter().filter(|g| **g).count();
    match jwt.algorithm.min_secret_len() {
        Some(min) => {
            match jwt.secret.as_deref() {
                None => problems.push(("jwt.secret", format!("{:?} needs a secret", jwt.algorithm.0))),
                Some("") => problems.push(("jwt.secret", "an empty secret".to_owned())),
                Some(s) if s.len() < min => problems.push((
                    "jwt.secret",
                    format!(
                        "a secret of {} bytes: {:?} needs at least {min} random bytes",
                        s.len(),
                        jwt.algorithm.0
                    ),
                )),
                Some(_) => {}
            }
            if given > 0 {
                problems.push((
                    "jwt",
                    "public_key_file, jwks_file and jwks_url are for asymmetric algorithms".to_owned(),
                ));
            }
        }
        None => {
            if jwt.secret.is_some() {
                problems.push((
                    "jwt.secret",
                    format!("a secret is for HS algorithms, not {:?}", jwt.algorithm.0),
                ));
            }
            if given != 1 {
                problems.push((
                    "jwt",
                    format!(
                        "{:?} needs exactly one of public_key_file, jwks_file, jwks_url",
                        jwt.algorithm.0
                    ),
                ));
            }
        }
    }
    if let Some(url) = &jwt.jwks_url
        && let Err(e) = http_url(url)
    {
        problems.push(("jwt.jwks_url", e));
    }
    if jwt.jwks_min_refresh_secs == 0 || jwt.jwks_refresh_secs == 0 {
        problems.push(("jwt", "jwks_refresh_secs and jwks_min_refresh_secs must be at least 1".to_owned()));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_example_is_a_valid_configuration() {
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n").expect("an example") + "```toml\n".len();
        let example = &readme[start..start + readme[start..].find("```").expect("closed")];
        let figment = Figment::from(Toml::string(example));
        let settings: Settings = figment.extract().expect("valid example");
        assert_eq!(settings.namespaces["admin"].extends, ["main"]);
        assert_eq!(settings.namespaces["main"].topics["private/{user}"].subscribe, Subscribe::OwnUser);
        assert_eq!(settings.limits.to_config().conn_per_user, Some((5, switchboard::CapPolicy::EvictOldest)));
        let mut errors = Vec::new();
        check(&figment, &settings, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn secrets_are_checked_by_algorithm() {
        let jwt = |alg: &str, secret: Option<&str>| JwtSettings {
            algorithm: crate::settings::JwtAlgorithm::try_from(alg.to_owned()).unwrap(),
            secret: secret.map(str::to_owned),
            public_key_file: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_secs: 300,
            jwks_min_refresh_secs: 10,
            issuer: None,
            audience: None,
            alias_claim: None,
            public_claim: None,
            groups_claim: None,
            leeway_secs: 30,
        };
        let long = "k".repeat(64);
        assert!(check_jwt(&jwt("HS256", Some(&long[..32]))).is_empty());
        assert_eq!(check_jwt(&jwt("HS256", Some(&long[..31])))[0].0, "jwt.secret");
        assert_eq!(check_jwt(&jwt("HS256", Some("")))[0].0, "jwt.secret");
        assert_eq!(check_jwt(&jwt("HS256", None))[0].0, "jwt.secret");
        assert!(!check_jwt(&jwt("HS384", Some(&long[..47]))).is_empty());
        assert!(check_jwt(&jwt("HS512", Some(&long))).is_empty());
        assert!(!check_jwt(&jwt("RS256", None)).is_empty(), "a key source is needed");
        let mut rs = jwt("RS256", None);
        rs.jwks_url = Some("ftp://keys".into());
        assert_eq!(check_jwt(&rs)[0].0, "jwt.jwks_url");
        rs.jwks_url = Some("https://auth.example.com/jwks.json".into());
        assert!(check_jwt(&rs).is_empty());
    }

    #[test]
    fn only_configuration_keys_count_as_settings() {
        assert!(is_setting("API_KEY"));
        assert!(is_setting("JWT__SECRET"));
        assert!(is_setting("LISTEN"));
        assert!(!is_setting("ARTIFACTS"));
        assert!(!is_setting("FIXTURE"));
        assert!(!is_setting(""));
    }
}
