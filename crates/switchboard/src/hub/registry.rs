//! The registry of this node's connections: by id, and by user. Its one owner is the hub's
//! core; connections enter it when their task starts (`session::run`) and leave it when it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use switchboard_core::NodeId;

use crate::base::sharded::Sharded;
use crate::conn::ConnShared;

/// See the module's documentation.
pub(crate) struct Registry {
    /// Local connections by id.
    conns: Sharded<Arc<ConnShared>>,
    /// Local identified connections by user.
    users: Sharded<Vec<Arc<ConnShared>>>,
    /// This node's id: the prefix of its connection ids.
    node: NodeId,
    /// The next connection's number.
    next_conn: AtomicU64,
}

impl Registry {
    pub(crate) fn new(node: NodeId) -> Self {
        Self { conns: Sharded::new(64), users: Sharded::new(64), node, next_conn: AtomicU64::new(1) }
    }

    /// A new connection id, unique in the cluster: `NODE.N`.
    pub(crate) fn new_conn_id(&self) -> Arc<str> {
        let n = self.next_conn.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n:x}", self.node).into()
    }

    /// The node a connection id belongs to.
    pub(crate) fn node_of(conn: &str) -> Option<&str> {
        conn.rsplit_once('.').map(|(node, _)| node)
    }

    pub(crate) fn insert(&self, conn: &Arc<ConnShared>) {
        self.conns.shard(&conn.id).write().insert(conn.id.clone(), conn.clone());
    }

    pub(crate) fn remove(&self, id: &str) {
        self.conns.shard(id).write().remove(id);
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<ConnShared>> {
        self.conns.shard(id).read().get(id).cloned()
    }

    /// Connections now.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Runs `f` on every connection, one shard's copy at a time (no lock held while `f` runs).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<ConnShared>)) {
        for shard in self.conns.shards() {
            let conns: Vec<_> = shard.read().values().cloned().collect();
            conns.iter().for_each(&mut f);
        }
    }

    /// A connection for which `pred` holds, if any.
    pub(crate) fn find(&self, pred: impl Fn(&ConnShared) -> bool) -> Option<Arc<ConnShared>> {
        self.conns.shards().iter().find_map(|shard| shard.read().values().find(|c| pred(c)).cloned())
    }

    pub(crate) fn add_user(&self, user: &Arc<str>, conn: &Arc<ConnShared>) {
        self.users.shard(user).write().entry(user.clone()).or_default().push(conn.clone());
    }

    pub(crate) fn remove_user(&self, user: &str, conn: &str) {
        let mut shard = self.users.shard(user).write();
        if let Some(list) = shard.get_mut(user) {
            list.retain(|c| &*c.id != conn);
            if list.is_empty() {
                shard.remove(user);
            }
        }
    }

    /// A user's local connections.
    pub(crate) fn user_conns(&self, user: &str) -> Vec<Arc<ConnShared>> {
        self.users.shard(user).read().get(user).cloned().unwrap_or_default()
    }

    /// Runs `f` on each of a user's local connections under the shard's read lock (`f` must only
    /// queue); returns for how many it returned true.
    pub(crate) fn count_user_conns(&self, user: &str, f: impl Fn(&Arc<ConnShared>) -> bool) -> usize {
        self.users.shard(user).read().get(user).map_or(0, |local| local.iter().filter(|c| f(c)).count())
    }

    /// Users with a local connection now.
    pub(crate) fn users_len(&self) -> usize {
        self.users.len()
    }

    /// Every user with a local connection, and how many each has.
    pub(crate) fn users(&self) -> Vec<(Arc<str>, usize)> {
        self.users
            .shards()
            .iter()
            .flat_map(|s| s.read().iter().map(|(u, c)| (u.clone(), c.len())).collect::<Vec<_>>())
            .collect()
    }
}
