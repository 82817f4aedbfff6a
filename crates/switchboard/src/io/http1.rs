//! HTTP/1.1 for the upgrade of [`Switchboard::serve`](crate::Switchboard::serve): read a request
//! head with `httparse`, check it as axum's `WebSocketUpgrade` does, answer 101 or refuse. No
//! hyper connection stays behind an upgraded socket. (The order of the checks, with the server's
//! own between them, is in `server::serve`.)

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Most headers accepted (beyond: 431).
const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) get: bool,
    pub(crate) head: bool,
    http11: bool,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    /// Bytes of the head in the buffer; what follows is already WebSocket.
    pub(crate) len: usize,
}

/// A refusal: status and body.
pub(crate) type Refusal = (StatusCode, &'static str);

/// Parses a request head; `Ok(None)` while incomplete.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => {
            return Err((StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers"));
        }
        Err(_) => return Err((StatusCode::BAD_REQUEST, "malformed HTTP request")),
    };
    let bad = (StatusCode::BAD_REQUEST, "malformed HTTP request");
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| bad)?;
        headers.append(name, value);
    }
    let uri = Uri::try_from(req.path.ok_or(bad)?).map_err(|_| bad)?;
    let method = req.method.ok_or(bad)?;
    Ok(Some(Head {
        get: method == "GET",
        head: method == "HEAD",
        http11: req.version == Some(1),
        uri,
        headers,
        len,
    }))
}

/// Reads the request head (at most `max` bytes, beyond which it is refused with 431); the
/// buffer holds it and whatever followed. `Ok(None)`: the peer left.
pub(crate) async fn read_head(
    tcp: &mut TcpStream,
    max: usize,
) -> std::io::Result<Option<Result<(Head, Vec<u8>), Refusal>>> {
    let mut buf = Vec::new();
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() >= max {
                return Ok(Some(Err((
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request head too large",
                ))));
            }
            buf.resize((buf.len() * 2).max(1024).min(max), 0);
        }
        let n = tcp.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(None);
        }
        filled += n;
        match parse(&buf[..filled]) {
            Ok(None) => {}
            Ok(Some(head)) => {
                buf.truncate(filled);
                return Ok(Some(Ok((head, buf))));
            }
            Err(refusal) => return Ok(Some(Err(refusal))),
        }
    }
}

/// Whether a comma-separated header has `token` (any case).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a header's (first) value is `value` (any case).
fn is(headers: &HeaderMap, name: header::HeaderName, value: &str) -> bool {
    headers.get(name).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// Headers that only drive the handshake itself.
pub(crate) const HANDSHAKE_HEADERS: [header::HeaderName; 5] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_EXTENSIONS,
];

/// Answers a refused request and closes the connection (giving up at `deadline`).
pub(crate) async fn refuse(
    tcp: &mut TcpStream,
    status: StatusCode,
    body: &str,
    extra: &str,
    deadline: tokio::time::Instant,
) {
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    );
    let _ = tokio::time::timeout_at(deadline, async {
        if tcp.write_all(response.as_bytes()).await.is_ok() {
            let _ = tcp.shutdown().await;
        }
    })
    .await;
}

/// The checks of axum's `WebSocketUpgrade` on a request head, in its order: the
/// `Sec-WebSocket-Accept` value to answer, or the refusal.
pub(crate) fn check_upgrade(head: &Head) -> Result<String, Refusal> {
    if !head.get {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "Request method must be `GET`"));
    }
    if !head.http11 {
        return Err((StatusCode::UPGRADE_REQUIRED, NOT_UPGRADABLE));
    }
    let accept = check_request(&http::Method::GET, http::Version::HTTP_11, &head.headers, None)?;
    Ok(accept.expect("HTTP/1.1 has a key"))
}

/// What a refused upgrade of a connection that cannot be upgraded says.
pub(crate) const NOT_UPGRADABLE: &str =
    "WebSocket request couldn't be upgraded since no upgrade state was present";

/// The checks of an opening handshake (RFC 6455 §4.2.1 over HTTP/1.1, RFC 8441 over HTTP/2), in
/// the order and with the answers of axum's `WebSocketUpgrade`: over HTTP/1.1 the
/// `Sec-WebSocket-Accept` value to answer, over HTTP/2 none (`protocol` is the request's
/// `:protocol` pseudo-header); or the refusal.
pub(crate) fn check_request(
    method: &http::Method,
    version: http::Version,
    headers: &HeaderMap,
    protocol: Option<&str>,
) -> Result<Option<String>, Refusal> {
    let key = if version <= http::Version::HTTP_11 {
        if method != http::Method::GET {
            return Err((StatusCode::METHOD_NOT_ALLOWED, "Request method must be `GET`"));
        }
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err((StatusCode::BAD_REQUEST, "Connection header did not include 'upgrade'"));
        }
        if !is(headers, header::UPGRADE, "websocket") {
            return Err((StatusCode::BAD_REQUEST, "`Upgrade` header did not include 'websocket'"));
        }
        Some(
            headers
                .get(header::SEC_WEBSOCKET_KEY)
                .ok_or((StatusCode::BAD_REQUEST, "`Sec-WebSocket-Key` header missing"))?,
        )
    } else {
        if method != http::Method::CONNECT {
            return Err((StatusCode::METHOD_NOT_ALLOWED, "Request method must be `CONNECT`"));
        }
        if protocol != Some("websocket") {
            return Err((StatusCode::BAD_REQUEST, "`:protocol` pseudo-header did not include 'websocket'"));
        }
        None
    };
    if !is(headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err((StatusCode::BAD_REQUEST, "`Sec-WebSocket-Version` header did not include '13'"));
    }
    Ok(key.map(|key| derive_accept_key(key.as_bytes())))
}

/// Answers 101 Switching Protocols (naming `protocol`, the subprotocol, if the client offered
/// one); `false` if the peer is gone.
pub(crate) async fn switch(tcp: &mut TcpStream, accept: &str, protocol: Option<&str>) -> bool {
    let protocol = protocol.map(|p| format!("sec-websocket-protocol: {p}\r\n")).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: {accept}\r\n{protocol}\r\n",
    );
    tcp.write_all(response.as_bytes()).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::upgrade::UpgradeRequest;
    use super::*;

    #[test]
    fn a_head_and_what_follows_it() {
        let raw = b"GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n\x81";
        let head = parse(raw).unwrap().unwrap();
        assert!(head.get && head.http11);
        assert_eq!(head.uri.path(), "/ws");
        assert_eq!(head.uri.query(), Some("x=1"));
        assert_eq!(head.len, raw.len() - 1);
        assert!(has_token(&head.headers, header::CONNECTION, "upgrade"));
        assert!(is(&head.headers, header::UPGRADE, "websocket"));
        assert!(parse(&raw[..20]).unwrap().is_none());
    }

    #[test]
    fn malformed_heads_are_refused() {
        assert_eq!(parse(b"GET /ws HTTP/1.1\r\nbad header\r\n\r\n").unwrap_err().0, StatusCode::BAD_REQUEST);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let raw = format!("GET /ws HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(raw.as_bytes()).unwrap_err().0, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn the_handshake_headers_are_not_kept() {
        let raw = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nCookie: a=1\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\nCookie: b=2\r\nSec-WebSocket-Protocol: switchboard.v1.json\r\n\r\n";
        let head = parse(raw).unwrap().unwrap();
        let kept = UpgradeRequest::without(&head.headers, &HANDSHAKE_HEADERS, &head.uri, None);
        let headers = kept.headers();
        let names: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host", "cookie", "sec-websocket-protocol"]);
        assert_eq!(kept.cookie("b"), Some("2"));
    }

    #[test]
    fn the_accept_key_of_rfc_6455() {
        assert_eq!(derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
