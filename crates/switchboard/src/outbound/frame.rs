//! Encode once, share the bytes: a message for many recipients, encoded at most once per format.

use std::sync::OnceLock;

use bytes::Bytes;
use switchboard_protocol::{Format, RawPayload, encode};

/// `[kind, payload]` for many connections. The first JSON recipient encodes it for JSON, the
/// first MessagePack recipient for MessagePack; everyone else gets a clone of those bytes.
pub(crate) struct SharedFrame {
    pub(crate) kind: String,
    pub(crate) payload: RawPayload,
    encoded: [OnceLock<Option<Bytes>>; 2],
}

impl SharedFrame {
    pub(crate) fn new(kind: &str, payload: RawPayload) -> Self {
        Self { kind: kind.to_owned(), payload, encoded: Default::default() }
    }

    pub(crate) fn bytes(&self, format: Format) -> Option<Bytes> {
        self.encoded[format.index()]
            .get_or_init(|| match encode(format, &self.kind, &self.payload, None) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::warn!(kind = %self.kind, %format, error = %e, "a message cannot be encoded");
                    None
                }
            })
            .clone()
    }
}

/// A payload built per format on first use (deliveries whose envelope differs per recipient,
/// such as acknowledged ones, still share the payload).
pub(crate) struct PerFormat<T>([OnceLock<T>; 2]);

impl<T> Default for PerFormat<T> {
    fn default() -> Self {
        Self([OnceLock::new(), OnceLock::new()])
    }
}

impl<T> PerFormat<T> {
    pub(crate) fn get(&self, format: Format, make: impl FnOnce() -> T) -> &T {
        self.0[format.index()].get_or_init(make)
    }
}
