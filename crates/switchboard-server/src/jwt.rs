//! JWT identification: HS256 with a secret, RS256/ES256 with a PEM public key or a JWKS file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use crate::config::JwtSettings;

/// Where the keys come from.
enum Keys {
    /// One key for every token.
    One(DecodingKey),
    /// A key set; the token's `kid` picks the key.
    Set(JwkSet),
}

/// Checks tokens and reads their claims.
pub(crate) struct Verifier {
    /// Keys to check signatures with.
    keys: Keys,
    /// Algorithm, issuer, audience, leeway.
    validation: Validation,
    /// Claim names for alias, public data and groups.
    pub(crate) claims: ClaimNames,
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

fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

impl Verifier {
    /// Builds a verifier from its settings; the error says what is wrong.
    pub(crate) fn new(s: &JwtSettings) -> Result<Self, String> {
        let algorithm = s.algorithm()?;
        let keys = match algorithm {
            Algorithm::HS256 => {
                let secret = s.secret.as_deref().ok_or("HS256 needs jwt.secret")?;
                Keys::One(DecodingKey::from_secret(secret.as_bytes()))
            }
            _ => match (&s.public_key_file, &s.jwks_file) {
                (Some(pem), None) => {
                    let pem = read(pem)?;
                    let key = if algorithm == Algorithm::RS256 {
                        DecodingKey::from_rsa_pem(&pem)
                    } else {
                        DecodingKey::from_ec_pem(&pem)
                    };
                    Keys::One(key.map_err(|e| format!("jwt.public_key_file: {e}"))?)
                }
                (None, Some(jwks)) => {
                    let set: JwkSet = serde_json::from_slice(&read(jwks)?)
                        .map_err(|e| format!("jwt.jwks_file: not a JWKS: {e}"))?;
                    Keys::Set(set)
                }
                _ => return Err("RS256/ES256 need exactly one of jwt.public_key_file, jwt.jwks_file".into()),
            },
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = s.leeway_secs;
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
        Ok(Self { keys, validation, claims })
    }

    /// Checks `token` and reads the identity it carries.
    pub(crate) fn verify(&self, token: &str) -> Result<Identity, String> {
        let owned;
        let key = match &self.keys {
            Keys::One(key) => key,
            Keys::Set(set) => {
                let header = decode_header(token).map_err(|e| format!("invalid token: {e}"))?;
                let jwk = match header.kid.as_deref() {
                    Some(kid) => set.find(kid).ok_or("unknown key id")?,
                    None => set.keys.first().ok_or("empty key set")?,
                };
                owned = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
                &owned
            }
        };
        let data = decode::<Map<String, Value>>(token, key, &self.validation)
            .map_err(|e| format!("invalid token: {e}"))?;
        let claims = data.claims;
        let text = |name: &Option<String>| {
            name.as_ref().and_then(|n| claims.get(n)).and_then(Value::as_str).map(str::to_owned)
        };
        let user = claims.get("sub").and_then(Value::as_str).ok_or("the token has no `sub`")?.to_owned();
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
