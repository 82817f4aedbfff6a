//! The standard error codes of protocol section 4.
//!
//! Codes are upper-case strings (`[A-Z][A-Z0-9_]*`); applications may add their own, checked
//! with [`is_valid`].

/// The payload did not decode or validate.
pub const BAD_REQUEST: &str = "BAD_REQUEST";
/// The connection is not identified yet.
pub const NOT_AUTHENTICATED: &str = "NOT_AUTHENTICATED";
/// Identification was refused.
pub const NOT_AUTHORIZED: &str = "NOT_AUTHORIZED";
/// A filter or an authorization hook said no.
pub const FORBIDDEN: &str = "FORBIDDEN";
/// No such event, procedure, namespace or target.
pub const NOT_FOUND: &str = "NOT_FOUND";
/// The handler failed without an application code (panics included).
pub const FAILED: &str = "FAILED";
/// The handler, or the peer, did not answer in time.
pub const TIMEOUT: &str = "TIMEOUT";
/// Too many messages.
pub const RATE_LIMITED: &str = "RATE_LIMITED";
/// The target is offline or not available.
pub const UNAVAILABLE: &str = "UNAVAILABLE";
/// A per-connection limit was reached (subscriptions, in-flight requests).
pub const LIMIT: &str = "LIMIT";
/// A second `~hello` on an identified connection.
pub const ALREADY_IDENTIFIED: &str = "ALREADY_IDENTIFIED";
/// (Client side) the connection dropped while waiting for a reply.
pub const DISCONNECTED: &str = "DISCONNECTED";

/// Whether `code` has the protocol's shape: `[A-Z][A-Z0-9_]*`.
///
/// ```
/// use switchboard_protocol::codes;
/// assert!(codes::is_valid("TEAPOT"));
/// assert!(codes::is_valid("E_42"));
/// assert!(!codes::is_valid("teapot"));
/// assert!(!codes::is_valid("4XX"));
/// ```
#[must_use]
pub fn is_valid(code: &str) -> bool {
    let mut bytes = code.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z'))
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
