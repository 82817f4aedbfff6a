//! What an identify hook answers to accept a connection.

use std::any::Any;
use std::sync::Arc;

use serde::Serialize;
use switchboard_protocol::RawPayload;

/// What an identify hook answers to accept a connection.
///
/// ```
/// use switchboard::Accept;
/// let accept = Accept::user("ada")
///     .welcome(&serde_json::json!({"hello": "ada"}))
///     .alias("ada")
///     .public(&serde_json::json!({"since": 2024}))
///     .session(42_u32);
/// ```
#[derive(Clone, Default)]
pub struct Accept {
    pub(crate) user: Option<Arc<str>>,
    pub(crate) welcome: RawPayload,
    pub(crate) alias: Option<Arc<str>>,
    pub(crate) available: bool,
    pub(crate) public: RawPayload,
    pub(crate) session: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) expires_in: Option<std::time::Duration>,
    pub(crate) groups: Vec<String>,
}

impl Accept {
    /// Accepts as `user`.
    pub fn user(user: impl Into<Arc<str>>) -> Self {
        Self { user: Some(user.into()), available: true, ..Self::default() }
    }

    /// Accepts without a user (anonymous namespaces).
    #[must_use]
    pub fn anonymous() -> Self {
        Self { available: true, ..Self::default() }
    }

    /// The welcome payload (`data` of the `~hello` reply). Unserializable values become `null`.
    #[must_use]
    pub fn welcome<T: Serialize + ?Sized>(mut self, data: &T) -> Self {
        self.welcome = RawPayload::json(data).unwrap_or_default();
        self
    }

    /// The public alias (shows in the directory when available).
    #[must_use]
    pub fn alias(mut self, alias: impl Into<Arc<str>>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// Availability for direct messages and the directory (default true).
    #[must_use]
    pub fn available(mut self, available: bool) -> Self {
        self.available = available;
        self
    }

    /// Immutable public data shown with the alias.
    #[must_use]
    pub fn public<T: Serialize + ?Sized>(mut self, data: &T) -> Self {
        self.public = RawPayload::json(data).unwrap_or_default();
        self
    }

    /// The credentials expire after `ttl` (a token's `exp`, say): unless a `~refresh` is accepted
    /// before then, the connection is closed with 4003 and the client reconnects with fresh
    /// credentials.
    #[must_use]
    pub fn expires_in(mut self, ttl: std::time::Duration) -> Self {
        self.expires_in = Some(ttl);
        self
    }

    /// Topics (groups) the server puts the connection in right after the welcome, without
    /// permission checks, as [`Hub::join`](crate::Hub::join) would. An invalid topic name is
    /// skipped with a warning.
    #[must_use]
    pub fn join(mut self, topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.groups.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Server-side session data, read by handlers with [`Session<T>`](crate::Session).
    #[must_use]
    pub fn session<T: Send + Sync + 'static>(mut self, data: T) -> Self {
        self.session = Some(Arc::new(data));
        self
    }
}
