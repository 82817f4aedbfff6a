//! Error types: decoding frames, encoding values, and the `~err` body.

use crate::RawPayload;
use crate::codes;

/// Why a frame is not a valid message. Its text is the close reason the server sends with 4501
/// (or 1009 for [`DecodeError::TooBig`]): short, for people, with no internal detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is larger than the message limit.
    #[error("message too big")]
    TooBig,
    /// The frame is not well-formed JSON (or MessagePack).
    #[error("malformed {0}")]
    Syntax(&'static str),
    /// The frame is not an array of one to three elements.
    #[error("a message is an array of one to three elements")]
    NotArray,
    /// The type is not a non-empty string of at most 128 bytes.
    #[error("the type must be a string of 1 to 128 bytes")]
    BadType,
    /// The id is not an integer between 1 and 2^53 − 1.
    #[error("the id must be an integer from 1 to 2^53-1")]
    BadId,
    /// A text frame on a MessagePack connection, or a binary frame on a JSON one.
    #[error("{0} frame on a {1} connection")]
    WrongFrame(&'static str, &'static str),
    /// A payload did not decode into the expected type (a `BAD_REQUEST`, not a protocol error).
    #[error("{0}")]
    Payload(String),
}

/// A value could not be encoded (for example a MessagePack map with non-string keys sent to a
/// JSON connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode: {0}")]
pub struct EncodeError(pub String);

impl From<serde_json::Error> for EncodeError {
    fn from(e: serde_json::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<rmp_serde::encode::Error> for EncodeError {
    fn from(e: rmp_serde::encode::Error) -> Self {
        Self(e.to_string())
    }
}

/// The payload of a `~err` reply: `{"code": CODE, "message": TEXT, "data"?: any}`.
///
/// ```
/// use switchboard_protocol::{ErrorBody, codes};
/// let e = ErrorBody::new(codes::NOT_FOUND, "no such event");
/// assert_eq!(e.code, "NOT_FOUND");
/// ```
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// An upper-case code (`[A-Z][A-Z0-9_]*`): one of [`codes`] or the application's own.
    pub code: String,
    /// Text for people; never a stack trace, a file path or internal state.
    pub message: String,
    /// Optional structured detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawPayload>,
}

impl ErrorBody {
    /// An error with a code and a message. A code that is not `[A-Z][A-Z0-9_]*` becomes
    /// `FAILED`, so that a careless application never breaks the protocol.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let mut code = code.into();
        if !codes::is_valid(&code) {
            codes::FAILED.clone_into(&mut code);
        }
        Self { code, message: message.into(), data: None }
    }

    /// Adds structured detail.
    #[must_use]
    pub fn with_data(mut self, data: RawPayload) -> Self {
        self.data = Some(data);
        self
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorBody {}
