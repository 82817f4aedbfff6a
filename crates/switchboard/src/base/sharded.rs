//! A map from ids to values, split into shards so that unrelated keys do not contend.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use super::ordered::{RwLock, UNRANKED};

/// One shard: a map behind its own lock.
pub(crate) type Shard<V, const RANK: u8> = RwLock<HashMap<Arc<str>, V>, RANK>;

/// See the module's documentation. The shards' locks have rank `RANK` (see `ordered.rs`).
pub(crate) struct Sharded<V, const RANK: u8 = UNRANKED> {
    shards: Box<[Shard<V, RANK>]>,
    hasher: RandomState,
}

impl<V, const RANK: u8> Sharded<V, RANK> {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    /// The shard `key` lives in.
    pub(crate) fn shard(&self, key: &str) -> &Shard<V, RANK> {
        &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()]
    }

    pub(crate) fn shards(&self) -> &[Shard<V, RANK>] {
        &self.shards
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}
