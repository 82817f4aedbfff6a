//! Every error type of the crate, and how results become replies.
//!
//! | type | who returns it |
//! |---|---|
//! | [`Error`] | handlers, filters and hooks: it becomes the `~err` reply |
//! | [`SendError`] | queuing a message for a connection ([`Conn::send`](crate::Conn::send)) |
//! | [`RequestError`] | a request to a client ([`Conn::request`](crate::Conn::request), [`Hub::request`](crate::Hub::request)) |
//! | [`HubError`] | the [`Hub`](crate::Hub)'s operations |
//! | [`BuildError`] | [`Server::build`](crate::Server::build) |
//! | [`AddressRefused`] | [`Switchboard::admit`](crate::Switchboard::admit): a connection beyond the limits of its address |
//!
//! Codes always come from [`switchboard_protocol::codes`].

use std::borrow::Cow;

use serde::Serialize;
use switchboard_protocol::{DecodeError, ErrorBody, Format, RawPayload, codes};

/// An error a handler, filter or hook returns: it becomes the `~err` reply
/// `{"code", "message", "data"?}`.
///
/// Only what is put here reaches the client; build it with a code and a message written for
/// people. Unexpected failures should use [`Error::failed`], which says nothing internal.
///
/// ```
/// use switchboard::Error;
/// let e = Error::new("TEAPOT", "I'm a teapot");
/// assert_eq!(e.code(), "TEAPOT");
/// let e = Error::forbidden("not your list").with_data(&serde_json::json!({"list": 7}));
/// assert_eq!(e.code(), "FORBIDDEN");
/// ```
#[derive(Debug, Clone)]
pub struct Error {
    code: Cow<'static, str>,
    message: Cow<'static, str>,
    data: Option<RawPayload>,
}

impl Error {
    /// An error with an application code (`[A-Z][A-Z0-9_]*`; anything else becomes `FAILED`).
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        let code = code.into();
        let code = if codes::is_valid(&code) { code } else { Cow::Borrowed(codes::FAILED) };
        Self { code, message: message.into(), data: None }
    }

    /// `BAD_REQUEST`: the payload did not decode or validate.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(codes::BAD_REQUEST, message)
    }

    /// `FORBIDDEN`: a filter or an authorization hook said no.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(codes::FORBIDDEN, message)
    }

    /// `NOT_AUTHORIZED`: identification refused.
    pub fn not_authorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(codes::NOT_AUTHORIZED, message)
    }

    /// `NOT_FOUND`: no such event, procedure, namespace or target.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(codes::NOT_FOUND, message)
    }

    /// `UNAVAILABLE`: the target is offline or not available.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(codes::UNAVAILABLE, message)
    }

    /// `LIMIT`: a per-connection limit was reached.
    pub fn limit(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(codes::LIMIT, message)
    }

    /// `TIMEOUT`: something did not answer in time.
    pub fn timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(codes::TIMEOUT, message)
    }

    /// `FAILED` with a generic message: for failures whose details must stay on the server.
    #[must_use]
    pub fn failed() -> Self {
        Self::new(codes::FAILED, "the request failed")
    }

    /// Adds structured detail (serialized as JSON; an unserializable value is dropped).
    #[must_use]
    pub fn with_data<T: Serialize + ?Sized>(mut self, data: &T) -> Self {
        self.data = RawPayload::json(data).ok();
        self
    }

    /// The code.
    #[must_use]
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The detail, if any.
    #[must_use]
    pub fn data(&self) -> Option<&RawPayload> {
        self.data.as_ref()
    }

    /// The `~err` body.
    #[must_use]
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody { code: self.code.to_string(), message: self.message.to_string(), data: self.data.clone() }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<ErrorBody> for Error {
    fn from(e: ErrorBody) -> Self {
        Self { data: e.data, ..Self::new(e.code, e.message) }
    }
}

/// A payload that did not decode: `BAD_REQUEST` with a message that reveals nothing of the
/// decoder (its detail goes to the log at debug). Prefer [`Error::invalid_payload`], which names
/// the message and what it expects.
impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        tracing::debug!(error = %e, "a payload did not decode");
        Self::bad_request("the payload is not valid")
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Remote(body) => body.into(),
            RequestError::Timeout => Self::timeout("the peer did not answer in time"),
            RequestError::Disconnected => Self::unavailable("the peer disconnected"),
            RequestError::NotFound => Self::not_found("no such connection"),
            RequestError::Backend(_) => Self::unavailable("the request could not be delivered"),
        }
    }
}

impl From<HubError> for Error {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Encode(_) => Error::bad_request("the payload cannot be encoded"),
            HubError::Backend(_) => Error::unavailable("the operation could not be completed"),
            HubError::Topic(m) => Error::bad_request(m),
            HubError::NotFound => Error::not_found("no such connection"),
            HubError::NoHistory => Error::not_found("the topic keeps no history"),
            HubError::Indeterminate(_) => {
                Error::timeout("the outcome is unknown: retry with the same key to publish it at most once")
            }
            HubError::Invalid(m) => Error::bad_request(m),
        }
    }
}

/// Why a message could not be queued for a connection.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed or closing.
    #[error("connection closed")]
    Closed,
    /// The connection's queue overflowed: it is being closed with 4002.
    #[error("slow consumer")]
    SlowConsumer,
    /// The payload could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Why a request to a client failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The client answered with an error.
    #[error("{0}")]
    Remote(ErrorBody),
    /// The client did not answer in time.
    #[error("timed out")]
    Timeout,
    /// The connection closed before the answer.
    #[error("disconnected")]
    Disconnected,
    /// No such connection.
    #[error("no such connection")]
    NotFound,
    /// The request could not reach the connection's node.
    #[error("backend: {0}")]
    Backend(String),
}

/// Why a hub operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The payload could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// A backend (broker, history, presence, users) failed: the operation did not happen or
    /// did not reach every node.
    #[error("backend: {0}")]
    Backend(String),
    /// The topic name is not valid.
    #[error("invalid topic: {0}")]
    Topic(String),
    /// No such connection.
    #[error("no such connection")]
    NotFound,
    /// The topic keeps no history.
    #[error("the topic keeps no history")]
    NoHistory,
    /// A backend did not answer in time: the operation may or may not have happened (a
    /// publication may be retried safely with its idempotency key).
    #[error("backend outcome unknown: {0}")]
    Indeterminate(String),
    /// An argument is not valid (the message says which).
    #[error("invalid: {0}")]
    Invalid(String),
}

/// The configuration cannot make a server.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two namespaces have the same name.
    #[error("namespace {0:?} is declared twice")]
    DuplicateNamespace(String),
    /// The broker refused this node.
    #[error("backend: {0}")]
    Backend(String),
}

/// What a request handler returns: converted into the `~ok` result or the `~err` body.
///
/// Implemented for `Result<T, E>` where `T: Serialize` and `E: Into<Error>`, for `()`
/// (replies `null`), [`RawPayload`], `serde_json::Value`, [`Error`] (replies the error), and the
/// plain values a handler computes: `String`, `&'static str`, `bool`, the integers, `f32`,
/// `f64`, `Option<T>` (`None` replies `null`) and `Vec<T>` of serializable `T`.
///
/// ```
/// use switchboard::{Namespace, Payload};
///
/// async fn version() -> &'static str {
///     "1.0"
/// }
/// async fn add(Payload((a, b)): Payload<(i64, i64)>) -> i64 {
///     a + b
/// }
/// async fn greet(Payload(name): Payload<String>) -> String {
///     format!("hello, {name}")
/// }
/// async fn find(Payload(n): Payload<u32>) -> Option<u32> {
///     (n < 10).then_some(n)
/// }
/// let ns: Namespace = Namespace::new("main").on("version", version).on("add", add).on("greet", greet).on("find", find);
/// ```
pub trait IntoReply: Send {
    /// The reply's payload in `format`, or the error to reply.
    ///
    /// # Errors
    /// The handler's error, or `FAILED` when the value does not serialize.
    fn into_reply(self, format: Format) -> Result<RawPayload, Error>;
}

fn encode<T: Serialize + ?Sized>(format: Format, value: &T) -> Result<RawPayload, Error> {
    RawPayload::encode(format, value).map_err(|e| {
        tracing::error!(error = %e, "a handler's result does not serialize");
        Error::failed()
    })
}

impl<T: Serialize + Send, E: Into<Error> + Send> IntoReply for Result<T, E> {
    fn into_reply(self, format: Format) -> Result<RawPayload, Error> {
        match self {
            Ok(value) => encode(format, &value),
            Err(e) => Err(e.into()),
        }
    }
}

impl IntoReply for () {
    fn into_reply(self, _: Format) -> Result<RawPayload, Error> {
        Ok(RawPayload::null())
    }
}

impl IntoReply for RawPayload {
    fn into_reply(self, _: Format) -> Result<RawPayload, Error> {
        Ok(self)
    }
}

impl IntoReply for serde_json::Value {
    fn into_reply(self, format: Format) -> Result<RawPayload, Error> {
        encode(format, &self)
    }
}

/// Plain values reply themselves, serialized.
macro_rules! reply_as_value {
    ($($t:ty),* $(,)?) => {$(
        impl IntoReply for $t {
            fn into_reply(self, format: Format) -> Result<RawPayload, Error> {
                encode(format, &self)
            }
        }
    )*};
}

reply_as_value!(String, &'static str, bool, i8, i16, i32, i64, u8, u16, u32, u64, isize, usize, f32, f64);

impl<T: Serialize + Send> IntoReply for Option<T> {
    fn into_reply(self, format: Format) -> Result<RawPayload, Error> {
        encode(format, &self)
    }
}

impl<T: Serialize + Send> IntoReply for Vec<T> {
    fn into_reply(self, format: Format) -> Result<RawPayload, Error> {
        encode(format, &self)
    }
}

impl IntoReply for Error {
    fn into_reply(self, _: Format) -> Result<RawPayload, Error> {
        Err(self)
    }
}

impl Error {
    /// `BAD_REQUEST` for a payload of the message `kind` that did not decode, written for
    /// people: `the payload of KIND is not valid`, then `: EXPECTED is expected` when given. The
    /// decoder's own text (`invalid type: …, expected struct …`) says how the server is built, so
    /// it goes to the log at debug only.
    ///
    /// ```
    /// use switchboard::Error;
    /// let e = Error::invalid_payload("add", Some("an object {a, b} of numbers"));
    /// assert_eq!(e.message(), "the payload of add is not valid: an object {a, b} of numbers is expected");
    /// ```
    #[must_use]
    pub fn invalid_payload(kind: &str, expected: Option<&str>) -> Self {
        match expected {
            Some(expected) => {
                Self::bad_request(format!("the payload of {kind} is not valid: {expected} is expected"))
            }
            None => Self::bad_request(format!("the payload of {kind} is not valid")),
        }
    }

    /// [`Error::invalid_payload`] for a decoding error, logged at debug with the message type.
    pub(crate) fn undecodable(kind: &str, expected: Option<&str>, e: &DecodeError) -> Self {
        tracing::debug!(kind, error = %e, "a payload did not decode");
        Self::invalid_payload(kind, expected)
    }
}

impl Error {
    /// `RATE_LIMITED` with `{"retry_after_ms": N}`: too many messages; try again after
    /// `retry_after`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::Error;
    /// let e = Error::rate_limited(Duration::from_millis(250));
    /// assert_eq!(e.code(), "RATE_LIMITED");
    /// assert_eq!(e.data().unwrap().decode::<serde_json::Value>().unwrap()["retry_after_ms"], 250);
    /// ```
    #[must_use]
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX).max(1);
        Self::new(codes::RATE_LIMITED, format!("too many messages: try again in {ms} ms"))
            .with_data(&serde_json::json!({ "retry_after_ms": ms }))
    }
}

/// Why [`Switchboard::admit`](crate::Switchboard::admit) refused a connection
/// ([`Config::connection_limits`](crate::Config::connection_limits)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressRefused {
    /// As many connections as allowed are open from its address.
    #[error("too many connections from this address")]
    TooMany,
    /// Its address opened new connections too often; the next one is allowed in
    /// `retry_after_ms`.
    #[error("too many new connections from this address")]
    TooOften {
        /// Milliseconds until the address may open one more.
        retry_after_ms: u64,
    },
}

impl AddressRefused {
    /// Seconds to put in `Retry-After` (at least 1).
    #[must_use]
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Self::TooMany => 1,
            Self::TooOften { retry_after_ms } => retry_after_ms.div_ceil(1000).max(1),
        }
    }

    /// A whole HTTP/1.1 response that says so (429, `Retry-After`, `Connection: close`), for an
    /// accept loop to write (without waiting) before it closes the connection.
    ///
    /// ```
    /// let refused = switchboard::AddressRefused::TooOften { retry_after_ms: 1500 };
    /// assert!(refused.response().starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
    /// assert!(refused.response().contains("retry-after: 2\r\n"));
    /// ```
    #[must_use]
    pub fn response(&self) -> String {
        let body = self.to_string();
        format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nretry-after: {}\r\nconnection: close\r\n\r\n{body}",
            body.len(),
            self.retry_after_secs()
        )
    }
}
