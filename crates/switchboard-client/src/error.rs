//! Errors and stop reasons: what a call returns ([`ClientError`]), why a connection could not
//! be made or was lost and whether retrying can fix it ([`ConnectionError`]), and why the
//! client stopped ([`CloseReason`]). The bottom layer: it uses nothing else in the crate.

use std::fmt;
use std::time::Duration;

use switchboard_protocol::{CloseCode, DecodeError, EncodeError, ErrorBody, RawPayload, codes};

/// Why a request, a subscription or another client operation failed.
///
/// Every variant maps to an upper-case protocol code ([`ClientError::code`]): the server's own
/// code for [`ClientError::Server`] (`NOT_FOUND`, `FORBIDDEN`, `TEAPOT`…), the connection
/// error's code for [`ClientError::Connect`] (`NOT_AUTHORIZED` for a refused identification),
/// and `TIMEOUT`, `DISCONNECTED`, `LIMIT` or `BAD_REQUEST` for failures found on the client side.
///
/// ```
/// use std::time::Duration;
/// use switchboard_client::{ClientError, ErrorBody};
///
/// let e = ClientError::Timeout(Duration::from_secs(5));
/// assert_eq!(e.code(), "TIMEOUT");
///
/// let e = ClientError::Server(ErrorBody::new("TEAPOT", "I'm a teapot"));
/// assert_eq!(e.code(), "TEAPOT");
/// assert_eq!(e.to_string(), "TEAPOT: I'm a teapot");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The peer answered `~err` to a call.
    #[error("{0}")]
    Server(ErrorBody),
    /// The client could not connect, for a reason that retrying cannot fix, and stopped
    /// (returned by [`ClientBuilder::connect`](crate::ClientBuilder::connect) and
    /// [`Client::ready`](crate::Client::ready)). Its code is the connection error's:
    /// `NOT_AUTHORIZED` (or the server's other code) for a refused identification.
    ///
    /// ```
    /// use switchboard_client::{ClientError, ConnectionError};
    /// let refused =
    ///     ConnectionError::Refused { code: "NOT_AUTHORIZED".into(), message: "bad password".into() };
    /// let e = ClientError::Connect(refused);
    /// assert_eq!(e.code(), "NOT_AUTHORIZED");
    /// assert_eq!(e.to_string(), "identification refused: NOT_AUTHORIZED: bad password");
    /// ```
    #[error("{0}")]
    Connect(ConnectionError),
    /// No reply within the request's timeout (code `TIMEOUT`). The timeout counts from the
    /// call, including the time spent in the offline buffer.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The connection dropped after the request was sent and before its reply arrived
    /// (code `DISCONNECTED`). The request may or may not have run on the server.
    #[error("the connection dropped while waiting for the reply")]
    Disconnected,
    /// The client is closed and sends nothing more (code `DISCONNECTED`).
    #[error("the client is closed: {0}")]
    Closed(CloseReason),
    /// The client is offline and its offline buffer is full (code `LIMIT`).
    #[error("the offline buffer is full ({0} messages)")]
    BufferFull(usize),
    /// A value could not be encoded (code `BAD_REQUEST`).
    #[error("cannot encode: {0}")]
    Encode(String),
    /// A payload could not be decoded into the requested type (code `BAD_REQUEST`).
    #[error("cannot decode: {0}")]
    Decode(String),
    /// An argument is not valid: a topic name, a message type, a publish key (code
    /// `BAD_REQUEST`).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl ClientError {
    /// The protocol code of this error.
    ///
    /// ```
    /// use switchboard_client::ClientError;
    /// assert_eq!(ClientError::Disconnected.code(), "DISCONNECTED");
    /// assert_eq!(ClientError::BufferFull(8).code(), "LIMIT");
    /// ```
    #[must_use]
    pub fn code(&self) -> &str {
        match self {
            Self::Server(body) => &body.code,
            Self::Connect(e) => e.code(),
            Self::Timeout(_) => codes::TIMEOUT,
            Self::Disconnected | Self::Closed(_) => codes::DISCONNECTED,
            Self::BufferFull(_) => codes::LIMIT,
            Self::Encode(_) | Self::Decode(_) | Self::Invalid(_) => codes::BAD_REQUEST,
        }
    }

    /// The `~err` body when the peer sent one.
    ///
    /// ```
    /// use switchboard_client::{ClientError, ErrorBody};
    /// let e = ClientError::Server(ErrorBody::new("NOT_FOUND", "no such procedure"));
    /// assert_eq!(e.body().unwrap().message, "no such procedure");
    /// assert!(ClientError::Disconnected.body().is_none());
    /// ```
    #[must_use]
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Self::Server(body) => Some(body),
            _ => None,
        }
    }

    /// The structured detail (`data`) of a `~err`, if any.
    ///
    /// ```
    /// use switchboard_client::{ClientError, ErrorBody, RawPayload};
    /// let body = ErrorBody::new("NOT_FOUND", "no handler").with_data(RawPayload::json(&"x").unwrap());
    /// let e = ClientError::Server(body);
    /// assert_eq!(e.data().unwrap().decode::<String>().unwrap(), "x");
    /// ```
    #[must_use]
    pub fn data(&self) -> Option<&RawPayload> {
        self.body().and_then(|b| b.data.as_ref())
    }

    /// The connection error behind this error: the one that stopped the client
    /// ([`ClientError::Connect`], or [`ClientError::Closed`] with
    /// [`CloseReason::Failed`] or [`CloseReason::GaveUp`]).
    ///
    /// ```
    /// use switchboard_client::{ClientError, CloseReason, ConnectionError};
    /// let e = ClientError::Closed(CloseReason::Failed(ConnectionError::Http { status: 404 }));
    /// assert_eq!(e.connection_error(), Some(&ConnectionError::Http { status: 404 }));
    /// assert!(ClientError::Disconnected.connection_error().is_none());
    /// ```
    #[must_use]
    pub fn connection_error(&self) -> Option<&ConnectionError> {
        match self {
            Self::Connect(e) => Some(e),
            Self::Closed(reason) => reason.error(),
            _ => None,
        }
    }

    /// Whether this is a `TIMEOUT`, from the client's clock or from the server.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_client::ClientError;
    /// assert!(ClientError::Timeout(Duration::from_millis(10)).is_timeout());
    /// ```
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        self.code() == codes::TIMEOUT
    }
}

impl From<ErrorBody> for ClientError {
    fn from(body: ErrorBody) -> Self {
        Self::Server(body)
    }
}

impl From<EncodeError> for ClientError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e.0)
    }
}

impl From<DecodeError> for ClientError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e.to_string())
    }
}

/// Why a connection could not be made, or why it ended, and whether retrying can fix it
/// ([`ConnectionError::is_fatal`]).
///
/// A fatal error stops the client at once: [`State::Closed`](crate::State::Closed) with
/// [`CloseReason::Failed`], and `connect`/`ready` return it as [`ClientError::Connect`]. Any
/// other error is retried after the backoff delay, and the state says which error it retries
/// ([`State::Reconnecting`](crate::State::Reconnecting)).
///
/// | error | retried? |
/// |---|---|
/// | [`InvalidUrl`](Self::InvalidUrl): not `ws://` or `wss://` | no |
/// | [`TlsUnavailable`](Self::TlsUnavailable): `wss://` without the `tls` feature | no |
/// | [`Tls`](Self::Tls): TLS configuration, or a certificate that is not trusted | no |
/// | [`Http`](Self::Http) 408, 429 and 5xx at the upgrade | yes |
/// | [`Http`](Self::Http), any other status (404, 401, 403, 400, a redirect…) | no |
/// | [`Refused`](Self::Refused) `TIMEOUT`, `UNAVAILABLE`, `RATE_LIMITED`, `FAILED` | yes |
/// | [`Refused`](Self::Refused), any other code (`NOT_AUTHORIZED`, `NOT_FOUND`, `LIMIT`…) | no |
/// | [`Closed`](Self::Closed) 1001, 1005, 1006, 1011–1014, 4000–4499 | yes |
/// | [`Closed`](Self::Closed), any other code (1000, 1009, 4500–4999…) | no |
/// | [`Network`](Self::Network), [`Identity`](Self::Identity) | yes |
///
/// ```
/// use switchboard_client::ConnectionError;
/// assert!(ConnectionError::Http { status: 404 }.is_fatal());
/// assert!(!ConnectionError::Http { status: 503 }.is_fatal());
/// assert!(ConnectionError::Closed { code: 4503, reason: "kicked".into() }.is_fatal());
/// assert!(!ConnectionError::Network("connection refused".into()).is_fatal());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The URL is not a `ws://` or `wss://` URL with a host (code `BAD_REQUEST`).
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `wss://` URL, but this build of the crate has no TLS: enable its `tls` feature (on by
    /// default) (code `BAD_REQUEST`).
    #[error("{url}: wss:// needs the `tls` feature of switchboard-client")]
    TlsUnavailable {
        /// The URL.
        url: String,
    },
    /// TLS failed (code `DISCONNECTED`): its configuration (an extra CA that is not a PEM
    /// certificate, no root certificate at all) or the server's certificate (not signed by a
    /// trusted CA, expired, for another name), or the server refused the TLS handshake.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server answered the WebSocket upgrade with this HTTP status instead of 101 (code
    /// `DISCONNECTED`): a wrong path (404), a proxy that wants credentials (401, 403), a
    /// server that is overloaded or restarting (503).
    #[error("the server answered the WebSocket upgrade with HTTP {status}")]
    Http {
        /// The HTTP status.
        status: u16,
    },
    /// The server refused the identification (`~err` to `~hello`); the code is the server's
    /// (`NOT_AUTHORIZED`, `NOT_FOUND` for an unknown namespace, `LIMIT`…).
    #[error("identification refused: {code}: {message}")]
    Refused {
        /// The server's code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server closed the connection with this close code (the code of its `~bye`, when it
    /// sent one before the link dropped) (code `DISCONNECTED`).
    #[error("{}", closed_text(*code, reason))]
    Closed {
        /// The WebSocket close code.
        code: u16,
        /// The close reason, for people.
        reason: String,
    },
    /// The network (code `DISCONNECTED`): the server could not be reached, the link dropped,
    /// timed out, or went silent (no frame for two heartbeat periods).
    #[error("{0}")]
    Network(String),
    /// The identity provider failed (code `DISCONNECTED`); it is asked again at the next
    /// attempt.
    #[error("the identity provider failed: {0}")]
    Identity(String),
}

fn closed_text(code: u16, reason: &str) -> String {
    if reason.is_empty() {
        format!("the server closed the connection with {code}")
    } else {
        format!("the server closed the connection with {code} ({reason})")
    }
}

impl ConnectionError {
    /// Whether retrying cannot fix this error, so the client stops (the table of
    /// [`ConnectionError`]).
    ///
    /// ```
    /// use switchboard_client::ConnectionError;
    /// assert!(!ConnectionError::Http { status: 429 }.is_fatal());
    /// assert!(ConnectionError::Tls("invalid peer certificate: UnknownIssuer".into()).is_fatal());
    /// ```
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::InvalidUrl { .. } | Self::TlsUnavailable { .. } | Self::Tls(_) => true,
            Self::Http { status } => !matches!(status, 408 | 429 | 500..=599),
            Self::Refused { code, .. } => !matches!(
                code.as_str(),
                codes::TIMEOUT | codes::UNAVAILABLE | codes::RATE_LIMITED | codes::FAILED
            ),
            Self::Closed { code, .. } => !CloseCode(*code).reconnects(),
            Self::Network(_) | Self::Identity(_) => false,
        }
    }

    /// The protocol code: the server's for [`ConnectionError::Refused`], `BAD_REQUEST` for a
    /// URL the client cannot use, `DISCONNECTED` otherwise.
    ///
    /// ```
    /// use switchboard_client::ConnectionError;
    /// let refused = ConnectionError::Refused { code: "NOT_AUTHORIZED".into(), message: "no".into() };
    /// assert_eq!(refused.code(), "NOT_AUTHORIZED");
    /// assert_eq!(ConnectionError::Http { status: 404 }.code(), "DISCONNECTED");
    /// ```
    #[must_use]
    pub fn code(&self) -> &str {
        match self {
            Self::Refused { code, .. } => code,
            Self::InvalidUrl { .. } | Self::TlsUnavailable { .. } => codes::BAD_REQUEST,
            _ => codes::DISCONNECTED,
        }
    }

    /// The WebSocket close code, for [`ConnectionError::Closed`].
    ///
    /// ```
    /// use switchboard_client::ConnectionError;
    /// assert_eq!(ConnectionError::Closed { code: 4503, reason: String::new() }.close_code(), Some(4503));
    /// ```
    #[must_use]
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Self::Closed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Why a client stopped (the reason of [`State::Closed`](crate::State::Closed)).
///
/// ```
/// use switchboard_client::{CloseReason, ConnectionError};
/// let r = CloseReason::Failed(ConnectionError::Closed { code: 4503, reason: "kicked".into() });
/// assert_eq!(r.to_string(), "the server closed the connection with 4503 (kicked)");
/// assert_eq!(r.close_code(), Some(4503));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The application called [`Client::close`](crate::Client::close), or dropped every handle.
    Requested,
    /// An error that retrying cannot fix ([`ConnectionError::is_fatal`]): a refused
    /// identification, a close code of 4500 and above, an HTTP 4xx at the upgrade, a TLS
    /// failure, a URL that is not `ws://` or `wss://`…
    Failed(ConnectionError),
    /// The reconnection policy's `max_attempts` consecutive attempts failed.
    GaveUp {
        /// How many attempts were made since the last `Ready`.
        attempts: u32,
        /// What went wrong with the last one.
        last_error: ConnectionError,
    },
}

impl CloseReason {
    /// The connection error that stopped the client, if one did.
    ///
    /// ```
    /// use switchboard_client::{CloseReason, ConnectionError};
    /// assert!(CloseReason::Requested.error().is_none());
    /// let r = CloseReason::Failed(ConnectionError::Http { status: 404 });
    /// assert_eq!(r.error(), Some(&ConnectionError::Http { status: 404 }));
    /// ```
    #[must_use]
    pub fn error(&self) -> Option<&ConnectionError> {
        match self {
            Self::Requested => None,
            Self::Failed(e) | Self::GaveUp { last_error: e, .. } => Some(e),
        }
    }

    /// The WebSocket close code, when the server closed.
    ///
    /// ```
    /// use switchboard_client::CloseReason;
    /// assert_eq!(CloseReason::Requested.close_code(), None);
    /// ```
    #[must_use]
    pub fn close_code(&self) -> Option<u16> {
        self.error().and_then(ConnectionError::close_code)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Requested => f.write_str("closed by the application"),
            Self::Failed(e) => e.fmt(f),
            Self::GaveUp { attempts, last_error } => {
                write!(f, "gave up after {attempts} attempts (last: {last_error})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_every_variant() {
        let closed = ClientError::Closed(CloseReason::Requested);
        assert_eq!(closed.code(), "DISCONNECTED");
        assert_eq!(ClientError::Encode("x".into()).code(), "BAD_REQUEST");
        assert_eq!(ClientError::Decode("x".into()).code(), "BAD_REQUEST");
        assert_eq!(ClientError::Invalid("x".into()).code(), "BAD_REQUEST");
        let server_timeout = ClientError::Server(ErrorBody::new("TIMEOUT", "peer did not answer"));
        assert!(server_timeout.is_timeout());
        let url = ConnectionError::InvalidUrl { url: "http://h/ws".into(), reason: "scheme".into() };
        assert_eq!(ClientError::Connect(url).code(), "BAD_REQUEST");
        let tls = ConnectionError::TlsUnavailable { url: "wss://h/ws".into() };
        assert_eq!(tls.code(), "BAD_REQUEST");
        assert_eq!(ClientError::Connect(ConnectionError::Tls("x".into())).code(), "DISCONNECTED");
    }

    #[test]
    fn what_retrying_cannot_fix_is_fatal() {
        let fatal = |e: ConnectionError| e.is_fatal();
        for status in [400, 401, 403, 404, 410, 426, 200, 301, 302] {
            assert!(fatal(ConnectionError::Http { status }), "HTTP {status}");
        }
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(!fatal(ConnectionError::Http { status }), "HTTP {status}");
        }
        for code in [1000, 1009, 4500, 4501, 4502, 4503, 4504, 4999] {
            assert!(fatal(ConnectionError::Closed { code, reason: String::new() }), "close {code}");
        }
        for code in [1001, 1005, 1006, 1011, 1012, 1013, 1014, 4000, 4001, 4002, 4003, 4499] {
            assert!(!fatal(ConnectionError::Closed { code, reason: String::new() }), "close {code}");
        }
        let refused = |code: &str| ConnectionError::Refused { code: code.into(), message: String::new() };
        for code in ["NOT_AUTHORIZED", "NOT_FOUND", "LIMIT", "TEAPOT"] {
            assert!(fatal(refused(code)), "{code}");
        }
        for code in ["TIMEOUT", "UNAVAILABLE", "RATE_LIMITED", "FAILED"] {
            assert!(!fatal(refused(code)), "{code}");
        }
        assert!(fatal(ConnectionError::Tls("bad certificate".into())));
        assert!(fatal(ConnectionError::TlsUnavailable { url: "wss://h".into() }));
        assert!(fatal(ConnectionError::InvalidUrl { url: "http://h".into(), reason: String::new() }));
        assert!(!fatal(ConnectionError::Network("reset".into())));
        assert!(!fatal(ConnectionError::Identity("token service down".into())));
    }

    #[test]
    fn the_stop_reason_keeps_the_error() {
        let e = ConnectionError::Refused { code: "NOT_AUTHORIZED".into(), message: "bad password".into() };
        let closed = ClientError::Closed(CloseReason::Failed(e.clone()));
        assert_eq!(closed.connection_error(), Some(&e));
        let gave_up =
            CloseReason::GaveUp { attempts: 3, last_error: ConnectionError::Network("refused".into()) };
        assert_eq!(gave_up.to_string(), "gave up after 3 attempts (last: refused)");
        assert_eq!(
            CloseReason::Failed(e).to_string(),
            "identification refused: NOT_AUTHORIZED: bad password"
        );
    }
}
