//! The HTTP upgrade: what the application sees of it, and its allow/deny hook.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use http::{HeaderMap, StatusCode, Uri};
use switchboard_protocol::Format;

/// What the HTTP upgrade request said. Identify hooks and handlers see it through
/// [`Conn::upgrade_request`](crate::Conn::upgrade_request) or the `Arc<UpgradeRequest>` extractor.
///
/// ```
/// use switchboard::UpgradeRequest;
/// let mut req = UpgradeRequest::default();
/// req.headers.insert("cookie", "sid=abc; theme=dark".parse().unwrap());
/// assert_eq!(req.cookie("theme"), Some("dark"));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The request's headers. On connections upgraded by
    /// [`Switchboard::serve`](crate::Switchboard::serve), those of the handshake itself
    /// (`Connection`, `Upgrade`, `Sec-WebSocket-Key`, `-Version`, `-Extensions`) are dropped once
    /// the upgrade hook has seen them, to save memory per connection.
    pub headers: HeaderMap,
    /// The request's URI (path and query).
    pub uri: Uri,
    /// The peer's address, when the server knows it.
    pub remote_addr: Option<SocketAddr>,
}

impl UpgradeRequest {
    /// A request with these parts.
    #[must_use]
    pub fn new(headers: HeaderMap, uri: Uri, remote_addr: Option<SocketAddr>) -> Self {
        Self { headers, uri, remote_addr }
    }

    /// A header's value, if present and text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Origin` header.
    #[must_use]
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }

    /// A cookie's value.
    #[must_use]
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// A query parameter (undecoded).
    #[must_use]
    pub fn query(&self, name: &str) -> Option<&str> {
        self.uri
            .query()?
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// The upgrade hook's refusal: the HTTP status (and body text) answered instead of upgrading.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The status, e.g. 403.
    pub status: StatusCode,
    /// Text for the response body.
    pub message: String,
}

impl Rejection {
    /// A refusal with a status and a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
}

pub(crate) type UpgradeHook = std::sync::Arc<
    dyn Fn(std::sync::Arc<UpgradeRequest>) -> BoxFuture<'static, Result<(), Rejection>> + Send + Sync,
>;

/// Picks the codec from `Sec-WebSocket-Protocol`: none offered → JSON (no header in the
/// response); the first known one in the client's order; offered but none known → `None`
/// (the upgrade is refused with 400).
pub(crate) fn negotiate(headers: &HeaderMap) -> Option<(Format, bool)> {
    let mut offered = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .peekable();
    if offered.peek().is_none() {
        return Some((Format::Json, false));
    }
    offered.find_map(Format::from_subprotocol).map(|f| (f, true))
}
