//! The HTTP upgrade: what the application sees of it, and its allow/deny hook.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use switchboard_protocol::Format;

/// What the HTTP upgrade request said. Identify hooks and handlers see it through
/// [`Conn::upgrade_request`](crate::Conn::upgrade_request) or the `Arc<UpgradeRequest>` extractor.
///
/// Every connection keeps its request for its whole life, so the URI and the headers are kept
/// compactly (one allocation holding their bytes) and read by [`uri`](Self::uri),
/// [`query`](Self::query), [`header`](Self::header), [`header_values`](Self::header_values),
/// [`cookie`](Self::cookie) and [`origin`](Self::origin); [`headers`](Self::headers) rebuilds an
/// `http::HeaderMap` when one is needed.
///
/// ```
/// use switchboard::UpgradeRequest;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("cookie", "sid=abc; theme=dark".parse().unwrap());
/// let req = UpgradeRequest::new(headers, "/ws?v=2".parse().unwrap(), None);
/// assert_eq!(req.cookie("theme"), Some("dark"));
/// assert_eq!(req.header("Cookie"), Some("sid=abc; theme=dark"));
/// assert_eq!(req.query("v"), Some("2"));
/// assert_eq!(req.uri().path(), "/ws");
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The URI as text, then a line break, then the headers: `name:value\n` for each, in order,
    /// names in lower case (a URI and a value have no line break, a name has no `:`, so the
    /// separators are unambiguous). On connections upgraded
    /// by [`Switchboard::serve`](crate::Switchboard::serve), those of the handshake itself
    /// (`Connection`, `Upgrade`, `Sec-WebSocket-Key`, `-Version`, `-Extensions`) are dropped
    /// once the upgrade hook has seen them.
    head: Box<[u8]>,
    /// The peer's address, when the server knows it.
    pub remote_addr: Option<SocketAddr>,
}

impl UpgradeRequest {
    /// A request with these parts (copied into the compact form).
    #[must_use]
    #[allow(clippy::needless_pass_by_value)] // By value as ever: callers need not change.
    pub fn new(headers: HeaderMap, uri: Uri, remote_addr: Option<SocketAddr>) -> Self {
        Self::from_parts(&headers, &uri, remote_addr)
    }

    /// A request with these parts, the headers copied.
    pub(crate) fn from_parts(headers: &HeaderMap, uri: &Uri, remote_addr: Option<SocketAddr>) -> Self {
        Self { head: compact(uri, headers, |_| true), remote_addr }
    }

    /// The same request without the headers named in `drop`.
    pub(crate) fn without(
        headers: &HeaderMap,
        drop: &[HeaderName],
        uri: &Uri,
        remote_addr: Option<SocketAddr>,
    ) -> Self {
        Self { head: compact(uri, headers, |name| !drop.contains(name)), remote_addr }
    }

    /// Replaces the headers.
    pub fn set_headers(&mut self, headers: &HeaderMap) {
        self.head = compact(&self.uri(), headers, |_| true);
    }

    /// The request's URI (path and query), parsed from the kept text on each call.
    #[must_use]
    pub fn uri(&self) -> Uri {
        std::str::from_utf8(self.split().0).ok().and_then(|uri| Uri::try_from(uri).ok()).unwrap_or_default()
    }

    /// The headers as an `http::HeaderMap` (a copy, built on each call).
    #[must_use]
    pub fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.entries().count());
        for (name, value) in self.entries() {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                map.append(name, value);
            }
        }
        map
    }

    /// Every value of a header (any case), in order, as bytes.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.entries().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// A header's (first) value, if present and text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).next().and_then(text)
    }

    /// The `Origin` header.
    #[must_use]
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }

    /// A cookie's value.
    #[must_use]
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.header_values("cookie")
            .filter_map(text)
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// A query parameter (undecoded).
    #[must_use]
    pub fn query(&self, name: &str) -> Option<&str> {
        let uri = std::str::from_utf8(self.split().0).ok()?;
        uri.split_once('?')?
            .1
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The URI's text and the headers' lines.
    fn split(&self) -> (&[u8], &[u8]) {
        let end = self.head.iter().position(|b| *b == b'\n').unwrap_or(self.head.len());
        (&self.head[..end], self.head.get(end + 1..).unwrap_or_default())
    }

    /// `(name, value)` of every header, in order.
    fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.split().1.split(|b| *b == b'\n').filter(|line| !line.is_empty()).map(|line| {
            let colon = line.iter().position(|b| *b == b':').unwrap_or(line.len());
            (&line[..colon], line.get(colon + 1..).unwrap_or_default())
        })
    }
}

impl std::fmt::Debug for UpgradeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<_> =
            self.entries().map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))).collect();
        f.debug_struct("UpgradeRequest")
            .field("headers", &headers)
            .field("uri", &self.uri())
            .field("remote_addr", &self.remote_addr)
            .finish()
    }
}

/// The URI and the headers `keep` keeps, in the compact form of [`UpgradeRequest`].
fn compact(uri: &Uri, headers: &HeaderMap, keep: impl Fn(&HeaderName) -> bool) -> Box<[u8]> {
    let uri = uri.to_string();
    let kept = || headers.iter().filter(|(name, _)| keep(name));
    let len =
        uri.len() + 1 + kept().map(|(name, value)| name.as_str().len() + value.len() + 2).sum::<usize>();
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(uri.as_bytes());
    bytes.push(b'\n');
    for (name, value) in kept() {
        bytes.extend_from_slice(name.as_str().as_bytes());
        bytes.push(b':');
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(b'\n');
    }
    bytes.into_boxed_slice()
}

/// A value as text, as [`HeaderValue::to_str`] sees it (visible ASCII and tabs).
fn text(value: &[u8]) -> Option<&str> {
    if value.iter().all(|b| *b == b'\t' || (0x20..0x7f).contains(b)) {
        std::str::from_utf8(value).ok()
    } else {
        None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compact_request_reads_like_the_original() {
        let mut headers = HeaderMap::new();
        headers.append("host", "example.com".parse().unwrap());
        headers.append("cookie", "a=1; b=2".parse().unwrap());
        headers.append("x-bin", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        headers.append("cookie", "c=3".parse().unwrap());
        headers.append("x-colon", "a: b".parse().unwrap());
        let uri: Uri = "/ws?token=abc&v=2".parse().unwrap();
        let req = UpgradeRequest::new(headers.clone(), uri.clone(), None);
        assert_eq!(req.uri(), uri);
        assert_eq!(req.query("token"), Some("abc"));
        assert_eq!(req.query("v"), Some("2"));
        assert_eq!(req.query("w"), None);
        assert_eq!(req.header("HOST"), Some("example.com"));
        assert_eq!(req.header("cookie"), Some("a=1; b=2"), "the first value");
        assert_eq!(req.cookie("c"), Some("3"), "cookies of every value");
        assert_eq!(req.header("x-bin"), None, "not text");
        assert_eq!(req.header_values("x-bin").next(), Some("café".as_bytes()));
        assert_eq!(req.header("x-colon"), Some("a: b"));
        assert_eq!(req.header("missing"), None);
        assert_eq!(req.headers(), headers);
        let dropped = UpgradeRequest::without(&headers, &[http::header::COOKIE], &uri, None);
        assert_eq!(dropped.cookie("a"), None);
        assert_eq!(dropped.header("host"), Some("example.com"));
        let empty = UpgradeRequest::default();
        assert_eq!(empty.uri(), Uri::default());
        assert_eq!(empty.header("host"), None);
        assert!(empty.headers().is_empty());
    }
}
