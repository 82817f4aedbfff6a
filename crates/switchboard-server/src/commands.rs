//! What reads the files a configuration names (certificates, keys, CA files), shared by the
//! server and the subcommands `checkconfig` and `gentoken` (as Centrifugo offers them).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use crate::client::AppClient;
use crate::config::{DevMode, Loaded};
use crate::jwt::Verifier;
use crate::outbox;
use crate::settings::Settings;
use crate::tls;

/// The configuration's files, read and checked.
pub(crate) struct Parts {
    /// The server's certificate, when `[tls]` is given.
    pub tls: Option<Arc<tls::Certificate>>,
    /// The client for proxy calls and the JWKS URL.
    pub client: AppClient,
    /// The JWT verifier, when `[jwt]` is given.
    pub jwt: Option<Arc<Verifier>>,
    /// `redis.ca_file`'s certificates.
    pub redis_ca: Option<Vec<u8>>,
    /// The lifecycle events' webhook, when `[events]` is given.
    pub webhook: Option<crate::webhook::Webhook>,
    /// `[outbox]`'s sources.
    pub outbox: outbox::Prepared,
}

/// Reads every file the settings name; the error names the setting and the file.
pub(crate) fn prepare(s: &Settings) -> Result<Parts, String> {
    let tls = match &s.tls {
        Some(t) => Some(tls::Certificate::load(&t.cert_file, &t.key_file).map_err(|e| format!("tls: {e}"))?),
        None => None,
    };
    let client_tls = tls::client_config(s.ca_file.as_deref()).map_err(|e| format!("ca_file: {e}"))?;
    let timeout = Duration::from_millis(s.proxy.as_ref().map_or(5000, |p| p.timeout_ms));
    let webhook = s.events.as_ref().map(|e| crate::webhook::Webhook::new(e, client_tls.clone()));
    let client = AppClient::new(timeout, client_tls);
    let jwt = s.jwt.as_ref().map(|j| Verifier::new(j, &client)).transpose()?.map(Arc::new);
    let redis_ca = match s.redis.as_ref().and_then(|r| r.ca_file.as_ref()) {
        Some(file) => {
            let pem = std::fs::read(file)
                .map_err(|e| format!("redis.ca_file: cannot read {}: {e}", file.display()))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!("redis.ca_file: no PEM certificate in {}", file.display()));
            }
            Some(pem)
        }
        None => None,
    };
    let outbox = outbox::prepare(&s.outbox, s.redis.as_ref())?;
    Ok(Parts { tls, client, jwt, redis_ca, webhook, outbox })
}

/// A URL without its password, for logs and summaries.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// `checkconfig`: the summary of a configuration whose files were all read.
pub(crate) fn summary(loaded: &Loaded, parts: &Parts) -> String {
    let s = &loaded.settings;
    let mut lines = vec!["configuration ok".to_owned()];
    let scheme = if s.tls.is_some() { "https/wss" } else { "http/ws" };
    lines.push(format!("  listen: {} ({scheme}, WebSocket at {})", s.listen, s.limits.path));
    if let Some(t) = &s.tls {
        let reload = match t.reload_interval_secs {
            0 => "on SIGHUP".to_owned(),
            n => format!("on SIGHUP and when changed (checked every {n} s)"),
        };
        lines.push(format!("  tls: {} + {}, reloaded {reload}", t.cert_file.display(), t.key_file.display()));
    }
    lines.push(format!(
        "  development mode: {}",
        match loaded.dev {
            DevMode::Off => "off",
            DevMode::ZeroConfig => "ON (no configuration given)",
            DevMode::Asked => "ON (asked for)",
        }
    ));
    let namespaces: Vec<String> = s
        .namespaces
        .iter()
        .map(|(name, ns)| {
            let extends = if ns.extends.is_empty() {
                String::new()
            } else {
                format!(", extends {}", ns.extends.join(" "))
            };
            format!("{name} ({:?}{extends}, {} topic patterns)", ns.identify, ns.topics.len()).to_lowercase()
        })
        .collect();
    lines.push(format!("  namespaces: {}", namespaces.join(", ")));
    if let Some(jwt) = &parts.jwt {
        lines.push(format!("  jwt: {}", jwt.describe()));
    }
    if let Some(p) = &s.proxy {
        let urls: Vec<String> =
            [("identify", &p.identify_url), ("forward", &p.forward_url), ("authorize", &p.authorize_url)]
                .iter()
                .filter_map(|(k, u)| u.as_ref().map(|u| format!("{k} {}", redact(u))))
                .collect();
        lines.push(format!("  proxy: {} (timeout {} ms)", urls.join(", "), p.timeout_ms));
    }
    lines.push(format!("  allowed origins: {}", loaded.origins.describe()));
    lines.push(match &s.api_key {
        Some(_) => format!(
            "  api: on (key set), bodies ≤ {} bytes, batches ≤ {} commands, payloads ≤ {} bytes",
            s.api.max_body_bytes, s.api.max_batch_commands, s.limits.max_message_size
        ),
        None => "  api: off (no api_key)".to_owned(),
    });
    lines.push(format!(
        "  metrics: /metrics on {}, {}",
        s.metrics.listen.map_or("the main listener".to_owned(), |a| a.to_string()),
        if s.metrics.require_key { "behind the API key" } else { "public" }
    ));
    lines.push(format!(
        "  http: handshake deadline {} ms, request heads ≤ {} bytes, ≤ {} handshakes at once",
        s.http.handshake_timeout_ms, s.http.max_header_bytes, s.http.max_handshakes
    ));
    lines.push(match &s.redis {
        Some(r) => format!(
            "  redis: {} (prefix {}{})",
            redact(&r.url),
            r.prefix,
            if parts.redis_ca.is_some() { ", own CA" } else { "" }
        ),
        None => "  redis: none (in memory, one server)".to_owned(),
    });
    if let Some(e) = &s.events {
        let or_all = |list: &[String]| if list.is_empty() { "all".to_owned() } else { list.join(" ") };
        let kinds: Vec<String> = e
            .kinds
            .iter()
            .map(|k| {
                serde_json::to_value(k).map(|v| v.as_str().unwrap_or("?").to_owned()).unwrap_or_default()
            })
            .collect();
        lines.push(format!(
            "  events: POST to {} (signed{}), kinds {}, namespaces {}, topics {}, batches ≤ {} events or {} ms, timeout {} ms, retries {}…{} ms",
            redact(&e.url),
            match e.previous_secrets.len() {
                0 => String::new(),
                n => format!(" also with {n} previous secret{}", if n == 1 { "" } else { "s" }),
            },
            if kinds.len() == switchboard::EventKind::ALL.len() { "all".to_owned() } else { kinds.join(" ") },
            or_all(&e.namespaces),
            or_all(&e.topics),
            e.max_batch,
            e.max_wait_ms,
            e.timeout_ms,
            e.retry_min_ms,
            e.retry_max_ms
        ));
    } else {
        lines.push("  events: none".to_owned());
    }
    lines.extend(outbox::describe(&parts.outbox));
    lines.join("\n")
}

/// The signing key of `gentoken`: the HS secret, or a private key file.
fn encoding_key(
    algorithm: Algorithm,
    secret: Option<&str>,
    private_key: Option<&Path>,
) -> Result<EncodingKey, String> {
    if let Some(file) = private_key {
        let pem =
            std::fs::read(file).map_err(|e| format!("--private-key: cannot read {}: {e}", file.display()))?;
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err("--private-key is for asymmetric algorithms; HS tokens use jwt.secret".to_owned());
            }
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            _ => EncodingKey::from_rsa_pem(&pem),
        };
        return key.map_err(|e| format!("--private-key: not a {algorithm:?} private key (PEM): {e}"));
    }
    match secret {
        Some(secret) => Ok(EncodingKey::from_secret(secret.as_bytes())),
        None => Err(format!("{algorithm:?} tokens need the private key: give --private-key FILE")),
    }
}

/// What `gentoken` asks for.
pub(crate) struct TokenRequest<'a> {
    /// `sub`.
    pub user: &'a str,
    /// Seconds until `exp`; 0: no `exp`.
    pub ttl: u64,
    /// For asymmetric algorithms.
    pub private_key: Option<&'a Path>,
    /// The header's `kid`.
    pub kid: Option<&'a str>,
}

/// `gentoken`: a token for `user` that this configuration accepts, and a line describing it.
pub(crate) fn gentoken(s: &Settings, request: &TokenRequest<'_>) -> Result<(String, String), String> {
    let jwt = s.jwt.as_ref().ok_or("gentoken needs a [jwt] section (jwt.algorithm and its key)")?;
    if request.user.is_empty() {
        return Err("--user: an empty user".to_owned());
    }
    let algorithm = jwt.algorithm.0;
    let key = encoding_key(algorithm, jwt.secret.as_deref(), request.private_key)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(request.user));
    claims.insert("iat".into(), json!(now));
    if request.ttl > 0 {
        claims.insert("exp".into(), json!(now + request.ttl));
    }
    if let Some(iss) = &jwt.issuer {
        claims.insert("iss".into(), json!(iss));
    }
    if let Some(aud) = &jwt.audience {
        claims.insert("aud".into(), json!(aud));
    }
    let mut header = Header::new(algorithm);
    header.kid = request.kid.map(str::to_owned);
    let token =
        jsonwebtoken::encode(&header, &Value::Object(claims), &key).map_err(|e| format!("gentoken: {e}"))?;
    let lifetime =
        if request.ttl > 0 { format!("expires in {} s", request.ttl) } else { "never expires".to_owned() };
    Ok((token, format!("{algorithm:?} token for user {:?}, {lifetime}", request.user)))
}
