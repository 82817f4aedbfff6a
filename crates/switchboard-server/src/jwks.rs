//! JSON Web Key Sets: read once from a file, or fetched from a URL and cached by `kid`.
//!
//! A URL is fetched at start, again every `jwt.jwks_refresh_secs`, and again when a token names
//! a `kid` the cache does not know (the issuer rotated its keys) — at most once per
//! `jwt.jwks_min_refresh_secs`, so tokens with made-up `kid`s cannot make the server hammer the
//! issuer. A failed fetch keeps the keys it had.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use tokio::time::Instant;

use crate::client::AppClient;

/// Keys by `kid`, and the key for tokens without one (when the set has exactly one key).
#[derive(Default)]
pub(crate) struct KeySet {
    /// Keys that have a `kid`.
    by_kid: HashMap<String, DecodingKey>,
    /// The set's only key, for tokens that name none.
    only: Option<DecodingKey>,
}

impl KeySet {
    /// The usable signing keys of a JWKS (keys for encryption, or of unknown types, are skipped).
    pub(crate) fn parse(json: &[u8]) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| format!("not a JWKS: {e}"))?;
        Ok(Self::from_set(&set))
    }

    fn from_set(set: &JwkSet) -> Self {
        let usable: Vec<(&Jwk, DecodingKey)> = set
            .keys
            .iter()
            .filter(|k| !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .filter_map(|k| match DecodingKey::from_jwk(k) {
                Ok(key) => Some((k, key)),
                Err(e) => {
                    tracing::warn!(kid = ?k.common.key_id, error = %e, "JWKS: a key is not usable; skipped");
                    None
                }
            })
            .collect();
        let only = if usable.len() == 1 { Some(usable[0].1.clone()) } else { None };
        let by_kid =
            usable.into_iter().filter_map(|(k, key)| Some((k.common.key_id.clone()?, key))).collect();
        Self { by_kid, only }
    }

    /// The key for a token's `kid`.
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<DecodingKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None => self.only.clone(),
        }
    }

    /// How many keys.
    pub(crate) fn len(&self) -> usize {
        self.by_kid.len().max(usize::from(self.only.is_some()))
    }
}

/// A JWKS fetched from a URL.
pub(crate) struct RemoteKeys {
    /// Where from.
    url: String,
    /// The HTTP(S) client.
    client: AppClient,
    /// The keys of the last good fetch.
    keys: RwLock<Arc<KeySet>>,
    /// When the last fetch started (held while fetching, so concurrent misses fetch once).
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Fetches for an unknown `kid` at most this often.
    min_interval: Duration,
}

impl RemoteKeys {
    /// Nothing fetched yet: see [`RemoteKeys::start`].
    pub(crate) fn new(url: &str, client: AppClient, min_interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            url: url.to_owned(),
            client,
            keys: RwLock::new(Arc::new(KeySet::default())),
            last_fetch: tokio::sync::Mutex::new(None),
            min_interval,
        })
    }

    /// Fetches the keys now (a failure is logged: tokens are refused until a fetch succeeds) and
    /// every `every` from then on, while `self` lives.
    pub(crate) async fn start(self: &Arc<Self>, every: Duration) {
        self.fetch(None).await;
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(keys) = weak.upgrade() else { return };
                keys.fetch(None).await;
            }
        });
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The key for `kid`, fetching the set again if it is unknown and the last fetch is older
    /// than the minimum interval.
    pub(crate) async fn find(&self, kid: Option<&str>) -> Option<DecodingKey> {
        if let Some(key) = self.current().find(kid) {
            return Some(key);
        }
        if self.fetch(Some(self.min_interval)).await {
            return self.current().find(kid);
        }
        None
    }

    /// Fetches the set unless one started less than `unless_within` ago; whether it fetched
    /// successfully.
    async fn fetch(&self, unless_within: Option<Duration>) -> bool {
        let mut last = self.last_fetch.lock().await;
        if let (Some(within), Some(at)) = (unless_within, *last)
            && at.elapsed() < within
        {
            return false;
        }
        *last = Some(Instant::now());
        let fetched =
            self.client.get(&self.url).await.map_err(|e| e.to_string()).and_then(|json| {
                serde_json::from_value::<JwkSet>(json).map_err(|e| format!("not a JWKS: {e}"))
            });
        match fetched {
            Ok(set) => {
                let set = KeySet::from_set(&set);
                tracing::debug!(url = %self.url, keys = set.len(), "JWKS fetched");
                *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
                true
            }
            Err(e) => {
                tracing::error!(url = %self.url, error = %e, "cannot fetch the JWKS; keeping the keys it had");
                false
            }
        }
    }
}
