//! JWT identification: HS* with a secret; RS*, PS*, ES*, EdDSA with a PEM public key, a JWKS
//! file or a JWKS URL. `exp`, `nbf` and `iat` are checked with `jwt.leeway_secs` of clock
//! leeway; `sub` is required.
//!
//! What a refused client is told is only [`Refusal::message`]: "the token is not valid", or
//! "the token has expired" (the one thing a client can act on — fetch a new token — and nothing
//! an attacker learns: the signature was good and the expiry is written in the token itself).
//! Which check failed is logged at debug level.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use crate::client::AppClient;
use crate::jwks::{KeySet, RemoteKeys};
use crate::settings::JwtSettings;

/// Where the keys come from.
enum Keys {
    /// One key for every token.
    One(DecodingKey),
    /// A key set read from a file; the token's `kid` picks the key.
    Set(KeySet),
    /// A key set fetched from a URL.
    Remote(Arc<RemoteKeys>),
}

/// Checks tokens and reads their claims.
pub(crate) struct Verifier {
    /// Keys to check signatures with.
    keys: Keys,
    /// Algorithm, issuer, audience, leeway.
    validation: Validation,
    /// Claim names for alias, public data and groups.
    pub(crate) claims: ClaimNames,
    /// How often a JWKS URL is fetched again.
    refresh: Duration,
}

/// Configurable claim names.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClaimNames {
    /// Claim holding the alias.
    pub alias: Option<String>,
    /// Claim holding the public data.
    pub public: Option<String>,
    /// Claim holding the topics to join.
    pub groups: Option<String>,
}

/// What a valid token says.
#[derive(Debug)]
pub(crate) struct Identity {
    /// `sub`.
    pub user: String,
    /// The alias claim.
    pub alias: Option<String>,
    /// The public data claim.
    pub public: Option<Value>,
    /// Topics to join.
    pub groups: Vec<String>,
    /// Time left until `exp`.
    pub expires_in: Option<Duration>,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Signature good, `exp` passed.
    Expired,
    /// Anything else; the detail is for the server's log only.
    Invalid(String),
}

impl Refusal {
    /// What the client is told.
    pub(crate) fn message(&self) -> &'static str {
        match self {
            Self::Expired => "the token has expired",
            Self::Invalid(_) => "the token is not valid",
        }
    }

    /// What the log says.
    pub(crate) fn detail(&self) -> &str {
        match self {
            Self::Expired => "expired",
            Self::Invalid(d) => d,
        }
    }
}

fn read(path: &std::path::Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

/// The public key of a PEM file, for an asymmetric algorithm.
fn pem_key(algorithm: Algorithm, pem: &[u8]) -> Result<DecodingKey, jsonwebtoken::errors::Error> {
    match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        _ => DecodingKey::from_rsa_pem(pem),
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl Verifier {
    /// Builds a verifier from checked settings (`config`), reading key files; a JWKS URL is not
    /// fetched until [`Verifier::start`]. The error names the setting.
    pub(crate) fn new(s: &JwtSettings, client: &AppClient) -> Result<Self, String> {
        let algorithm = s.algorithm.0;
        let keys = if s.algorithm.min_secret_len().is_some() {
            let secret = s.secret.as_deref().ok_or("jwt.secret: missing")?;
            Keys::One(DecodingKey::from_secret(secret.as_bytes()))
        } else if let Some(file) = &s.public_key_file {
            let key = pem_key(algorithm, &read(file, "jwt.public_key_file")?)
                .map_err(|e| format!("jwt.public_key_file: not a {algorithm:?} public key (PEM): {e}"))?;
            Keys::One(key)
        } else if let Some(file) = &s.jwks_file {
            let set =
                KeySet::parse(&read(file, "jwt.jwks_file")?).map_err(|e| format!("jwt.jwks_file: {e}"))?;
            if set.len() == 0 {
                return Err(format!("jwt.jwks_file: no usable key in {}", file.display()));
            }
            Keys::Set(set)
        } else if let Some(url) = &s.jwks_url {
            Keys::Remote(RemoteKeys::new(url, client.clone(), Duration::from_secs(s.jwks_min_refresh_secs)))
        } else {
            return Err(format!("jwt: {algorithm:?} needs public_key_file, jwks_file or jwks_url"));
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = s.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["sub"]);
        validation.validate_aud = s.audience.is_some();
        if let Some(aud) = &s.audience {
            validation.set_audience(&[aud]);
        }
        if let Some(iss) = &s.issuer {
            validation.set_issuer(&[iss]);
        }
        let claims = ClaimNames {
            alias: s.alias_claim.clone(),
            public: s.public_claim.clone(),
            groups: s.groups_claim.clone(),
        };
        Ok(Self { keys, validation, claims, refresh: Duration::from_secs(s.jwks_refresh_secs) })
    }

    /// Fetches a JWKS URL now and keeps it fresh (nothing to do for other key sources).
    pub(crate) async fn start(&self) {
        if let Keys::Remote(remote) = &self.keys {
            remote.start(self.refresh).await;
        }
    }

    /// A short description for `checkconfig`.
    pub(crate) fn describe(&self) -> String {
        let source = match &self.keys {
            Keys::One(_) => "one key".to_owned(),
            Keys::Set(set) => format!("a JWKS file of {} keys", set.len()),
            Keys::Remote(_) => format!("a JWKS URL fetched every {} s", self.refresh.as_secs()),
        };
        format!("{:?} with {source}, leeway {} s", self.validation.algorithms[0], self.validation.leeway)
    }

    /// Checks `token` and reads the identity it carries.
    pub(crate) async fn verify(&self, token: &str) -> Result<Identity, Refusal> {
        let invalid = |what: String| Refusal::Invalid(what);
        let owned;
        let key = match &self.keys {
            Keys::One(key) => key,
            Keys::Set(_) | Keys::Remote(_) => {
                let header = decode_header(token).map_err(|e| invalid(format!("header: {e}")))?;
                let kid = header.kid.as_deref();
                let found = match &self.keys {
                    Keys::Set(set) => set.find(kid),
                    Keys::Remote(remote) => remote.find(kid).await,
                    Keys::One(_) => None,
                };
                owned = found.ok_or_else(|| invalid(format!("no key for kid {kid:?}")))?;
                &owned
            }
        };
        let data =
            decode::<Map<String, Value>>(token, key, &self.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => Refusal::Expired,
                _ => invalid(e.to_string()),
            })?;
        let claims = data.claims;
        match claims.get("iat") {
            None => {}
            Some(Value::Number(n))
                if n.as_f64().is_some_and(|iat| iat <= (now() + self.validation.leeway) as f64) => {}
            Some(other) => return Err(invalid(format!("iat {other} is in the future or not a number"))),
        }
        let text = |name: &Option<String>| {
            name.as_ref().and_then(|n| claims.get(n)).and_then(Value::as_str).map(str::to_owned)
        };
        let user = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("`sub` is not a non-empty string".to_owned()))?
            .to_owned();
        let groups = self
            .claims
            .groups
            .as_ref()
            .and_then(|n| claims.get(n))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let expires_in = claims.get("exp").and_then(Value::as_u64).map(|exp| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            Duration::from_secs(exp).saturating_sub(now).max(Duration::from_millis(100))
        });
        Ok(Identity {
            alias: text(&self.claims.alias),
            public: self.claims.public.as_ref().and_then(|n| claims.get(n)).cloned(),
            user,
            groups,
            expires_in,
        })
    }
}
