//! Request ids and message types.

use std::fmt;
use std::sync::Arc;

/// The largest request id: 2^53 − 1, the largest integer a JavaScript number holds exactly.
pub const MAX_ID: u64 = (1 << 53) - 1;

/// A request id, 1 ≤ id ≤ 2^53 − 1 (protocol section 2).
///
/// ```
/// use switchboard_protocol::Id;
/// assert!(Id::new(0).is_none());
/// assert_eq!(Id::new(42).unwrap().get(), 42);
/// assert!(Id::new(1 << 53).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u64);

impl Id {
    /// The id, if `value` is in the protocol's range.
    #[must_use]
    pub const fn new(value: u64) -> Option<Self> {
        if value >= 1 && value <= MAX_ID { Some(Self(value)) } else { None }
    }

    /// The id as an integer.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(d)?;
        Id::new(value).ok_or_else(|| serde::de::Error::custom("id out of range"))
    }
}

/// Slots of [`RECENT`].
const RECENT_SLOTS: usize = 16;

thread_local! {
    /// The types this thread made last, by a hash of their first and last byte: a peer sends
    /// few distinct types, and decoding one then shares its text instead of allocating a copy
    /// per message. At most 16 types (≤ 2.5 KiB) per thread.
    static RECENT: std::cell::RefCell<[Option<MessageType>; RECENT_SLOTS]> =
        const { std::cell::RefCell::new([const { None }; RECENT_SLOTS]) };
}

/// A message type: a non-empty string of at most 128 bytes (protocol section 2).
///
/// Types beginning with `~` are reserved for the protocol. Cloning is cheap.
///
/// ```
/// use switchboard_protocol::MessageType;
/// let t = MessageType::new("chat.send").unwrap();
/// assert!(!t.is_reserved());
/// assert!(MessageType::new("").is_none());
/// assert!(MessageType::new(&"x".repeat(129)).is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageType(Arc<str>);

impl MessageType {
    /// The largest type, in bytes.
    pub const MAX_LEN: usize = 128;

    /// The type, if `name` is non-empty and at most 128 bytes.
    #[must_use]
    pub fn new(name: &str) -> Option<Self> {
        if !Self::is_valid(name) {
            return None;
        }
        let hash = usize::from(name.as_bytes()[0] ^ name.as_bytes()[name.len() - 1]);
        // `try_with`: a thread being torn down just allocates.
        let shared = RECENT.try_with(|recent| {
            let mut recent = recent.borrow_mut();
            let slot = &mut recent[hash % RECENT_SLOTS];
            match slot {
                Some(kind) if *kind.0 == *name => kind.clone(),
                _ => slot.insert(Self(Arc::from(name))).clone(),
            }
        });
        Some(shared.unwrap_or_else(|_| Self(Arc::from(name))))
    }

    /// Whether `name` is a valid message type.
    #[must_use]
    pub fn is_valid(name: &str) -> bool {
        !name.is_empty() && name.len() <= Self::MAX_LEN
    }

    /// The type as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the type is reserved for the protocol (begins with `~`).
    #[must_use]
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with('~')
    }
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for MessageType {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}
