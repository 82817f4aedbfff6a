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
/// joining again replaces the entry (a profile update). `leave` and `evict_node` each report
/// only what they removed themselves, so that two nodes removing the same entry at once never
/// both announce it. Implementations for several nodes also expire the entries of a node that
/// stopped (no zombies).
pub trait Presence: Send + Sync + 'static {
    /// Adds or updates a connection under `key`.
    fn join(&self, key: &str, conn: &str, info: Bytes) -> BackendFuture<'_, ()>;
    /// Removes a connection from `key`; whether it was there.
    fn leave(&self, key: &str, conn: &str) -> BackendFuture<'_, bool>;
    /// The connections under `key`.
    fn list(&self, key: &str) -> BackendFuture<'_, Vec<PresenceEntry>>;
    /// Removes every entry, under every key, of the connections of `node` (see
    /// [`node_of`](crate::node_of)); returns them with their keys.
    fn evict_node(&self, node: &str) -> BackendFuture<'_, Vec<(String, PresenceEntry)>>;
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

    fn leave(&self, key: &str, conn: &str) -> BackendFuture<'_, bool> {
        let mut keys = self.keys.lock();
        let mut was = false;
        if let Some(entries) = keys.get_mut(key) {
            let before = entries.len();
            entries.retain(|e| e.conn != conn);
            was = entries.len() < before;
            if entries.is_empty() {
                keys.remove(key);
            }
        }
        Box::pin(std::future::ready(Ok(was)))
    }

    fn list(&self, key: &str) -> BackendFuture<'_, Vec<PresenceEntry>> {
        let list = self.keys.lock().get(key).cloned().unwrap_or_default();
        Box::pin(std::future::ready(Ok(list)))
    }

    fn evict_node(&self, node: &str) -> BackendFuture<'_, Vec<(String, PresenceEntry)>> {
        let mut evicted = Vec::new();
        self.keys.lock().retain(|key, entries| {
            entries.retain(|e| {
                let theirs = crate::node_of(&e.conn) == Some(node);
                if theirs {
                    evicted.push((key.clone(), e.clone()));
                }
                !theirs
            });
            !entries.is_empty()
        });
        Box::pin(std::future::ready(Ok(evicted)))
    }
}
