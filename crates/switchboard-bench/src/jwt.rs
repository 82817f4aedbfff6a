//! HS256 tokens: the load generator signs, `bench-switchboard` verifies.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The shared secret of the bench (a benchmark, not a deployment).
pub const SECRET: &str = "switchboard-bench-secret";

/// The claims the bench uses.
#[derive(Serialize, Deserialize)]
struct Claims {
    /// The user.
    sub: String,
    /// Expiry (seconds since the epoch).
    exp: u64,
}

/// Signs a token for `user`, valid for a day.
pub fn token(secret: &str, user: &str) -> String {
    let exp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
            + 86_400;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Claims { sub: user.to_owned(), exp },
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing does not fail")
}

/// Verifies tokens (HS256, `exp` required).
#[derive(Clone)]
pub struct Verifier {
    /// The key.
    key: DecodingKey,
    /// HS256 only.
    validation: Validation,
}

impl Verifier {
    /// A verifier for `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation: Validation::new(Algorithm::HS256),
        }
    }

    /// The token's user, if the token is valid.
    pub fn verify(&self, token: &str) -> Option<String> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).ok().map(|t| t.claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = token(SECRET, "u42");
        assert_eq!(Verifier::new(SECRET).verify(&t).as_deref(), Some("u42"));
        assert_eq!(Verifier::new("other").verify(&t), None);
    }
}
