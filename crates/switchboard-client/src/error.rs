//! The client's error type: every failure carries a protocol code.

use std::time::Duration;

use switchboard_protocol::{DecodeError, EncodeError, ErrorBody, Payload, codes};

use crate::state::CloseReason;

/// Why a request, a subscription or another client operation failed.
///
/// Every variant maps to an upper-case protocol code ([`ClientError::code`]): the server's own
/// code for [`ClientError::Server`] (`NOT_FOUND`, `FORBIDDEN`, `TEAPOT`…), and `TIMEOUT`,
/// `DISCONNECTED`, `LIMIT` or `BAD_REQUEST` for failures found on the client side.
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
    /// The peer answered `~err` (the server for a call, or a handshake refusal).
    #[error("{0}")]
    Server(ErrorBody),
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
    /// An argument is not valid: a topic name, a message type (code `BAD_REQUEST`).
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
    /// use switchboard_client::{ClientError, ErrorBody, Payload};
    /// let body = ErrorBody::new("NOT_FOUND", "no handler").with_data(Payload::json(&"x").unwrap());
    /// let e = ClientError::Server(body);
    /// assert_eq!(e.data().unwrap().decode::<String>().unwrap(), "x");
    /// ```
    #[must_use]
    pub fn data(&self) -> Option<&Payload> {
        self.body().and_then(|b| b.data.as_ref())
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
    }
}
