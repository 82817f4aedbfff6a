//! Presence: who is in a topic, and the directory.

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::BackendFuture;

/// One connection present under a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceEntry {
    /// The connection id.
    pub conn: String,
    /// The framework's encoding of its public profile.
    pub info: Bytes,
}

/// Who is present under a key (a topic name, or the framework's directory key).
///
/// **Guarantees**: `list` returns each joined and not yet left connection once, in join order;
/// joining again replaces the entry (a profile update). Implementations for several nodes expire
/// the entries of a node that stopped (no zombies).
pub trait Presence: Send + Sync + 'static {
    /// Adds or updates a connection under `key`.
    fn join(&self, key: &str, conn: &str, info: Bytes) -> BackendFuture<'_, ()>;
    /// Removes a connection from `key`.
    fn leave(&self, key: &str, conn: &str) -> BackendFuture<'_, ()>;
    /// The connections under `key`.
    fn list(&self, key: &str) -> BackendFuture<'_, Vec<PresenceEntry>>;
}

/// In-memory presence.
#[derive(Default)]
pub struct MemoryPresence {
    keys: Mutex<HashMap<String, Vec<PresenceEntry>>>,
}

impl MemoryPresence {
    /// Empty presence.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys have at least one entry (for leak tests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.lock().len()
    }

    /// Whether no key has an entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Presence for MemoryPresence {
    fn join(&self, key: &str, conn: &str, info: Bytes) -> BackendFuture<'_, ()> {
        let mut keys = self.keys.lock();
        let entries = keys.entry(key.to_owned()).or_default();
        match entries.iter_mut().find(|e| e.conn == conn) {
            Some(e) => e.info = info,
            None => entries.push(PresenceEntry { conn: conn.to_owned(), info }),
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn leave(&self, key: &str, conn: &str) -> BackendFuture<'_, ()> {
        let mut keys = self.keys.lock();
        if let Some(entries) = keys.get_mut(key) {
            entries.retain(|e| e.conn != conn);
            if entries.is_empty() {
                keys.remove(key);
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn list(&self, key: &str) -> BackendFuture<'_, Vec<PresenceEntry>> {
        let list = self.keys.lock().get(key).cloned().unwrap_or_default();
        Box::pin(std::future::ready(Ok(list)))
    }
}
