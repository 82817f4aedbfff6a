//! Topic names (protocol section 5).

use std::fmt;
use std::sync::Arc;

/// A validated topic name: `/`-separated segments of `[A-Za-z0-9_.:@-]+`, at most 255 bytes.
///
/// Cloning is cheap (the name is shared).
///
/// ```
/// use switchboard_protocol::Topic;
/// let t = Topic::new("todo/list1234/item42").unwrap();
/// assert_eq!(t.segments().collect::<Vec<_>>(), ["todo", "list1234", "item42"]);
/// assert!(t.is_under("todo"));
/// assert!(!t.is_under("to"));
/// assert!(Topic::new("a//b").is_err());
/// assert!(Topic::new("a b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

/// Why a topic name is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The name is empty or longer than 255 bytes.
    #[error("a topic name has 1 to 255 bytes")]
    Length,
    /// A segment is empty or has a character outside `[A-Za-z0-9_.:@-]`.
    #[error("a topic name is `/`-separated segments of [A-Za-z0-9_.:@-]+")]
    Segment,
}

impl Topic {
    /// The largest topic name, in bytes.
    pub const MAX_LEN: usize = 255;

    /// The topic, if `name` is valid.
    ///
    /// # Errors
    /// [`TopicError`] says what is wrong with the name.
    pub fn new(name: &str) -> Result<Self, TopicError> {
        Self::validate(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// Checks a topic name (also used for unsubscribe prefixes, which follow the same rule).
    ///
    /// # Errors
    /// [`TopicError`] says what is wrong with the name.
    pub fn validate(name: &str) -> Result<(), TopicError> {
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(TopicError::Length);
        }
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'))
        };
        if name.split('/').all(segment_ok) { Ok(()) } else { Err(TopicError::Segment) }
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, shared (a clone of the topic's own allocation, not a copy).
    #[must_use]
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }

    /// The `/`-separated segments.
    pub fn segments(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// Whether the topic equals `prefix` or lies under `prefix/`.
    #[must_use]
    pub fn is_under(&self, prefix: &str) -> bool {
        match self.0.strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Topic {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Topic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Topic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Topic::new(&name).map_err(serde::de::Error::custom)
    }
}
