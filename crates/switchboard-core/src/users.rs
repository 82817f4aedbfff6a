//! Users → connections, across nodes.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::few::OneOrMany;
use crate::{BackendError, BackendFuture, NodeId};

/// A connection somewhere in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnRef {
    /// The connection id.
    pub conn: NodeId,
    /// The node it is connected to.
    pub node: NodeId,
}

/// What to do when a user already has `conn_per_user` connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapPolicy {
    /// Close the oldest connection(s) with 4502 (the default).
    #[default]
    EvictOldest,
    /// Refuse the new one (`LIMIT`, then 4502).
    RefuseNew,
}

/// The result of registering a connection.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Registration {
    /// Connections the caller must close (policy `EvictOldest`), oldest first.
    pub evicted: Vec<ConnRef>,
    /// The user's connections now, this one included (1: it is the user's first).
    pub connections: usize,
}

/// The result of unregistering a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unregistered {
    /// The connection was registered (and this call removed it).
    pub removed: bool,
    /// The user's connections left.
    pub remaining: usize,
}

/// A user's connections that [`Users::evict_node`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Evicted {
    /// The user.
    pub user: String,
    /// The connections removed.
    pub conns: Vec<NodeId>,
    /// The user's connections left (on other nodes).
    pub remaining: usize,
}

impl Evicted {
    /// What an eviction removed of `user`: `conns`, leaving `remaining` connections.
    #[must_use]
    pub fn new(user: impl Into<String>, conns: Vec<NodeId>, remaining: usize) -> Self {
        Self { user: user.into(), conns, remaining }
    }
}

/// The users → connections registry, cluster-wide.
///
/// **Guarantees**: `register` checks and applies the cap atomically, so two nodes registering
/// at once never both exceed it; evicted connections are already removed from the registry when
/// it returns. `connections` lists a user's connections in registration order. `unregister` and
/// `evict_node` report only what they removed themselves (two nodes removing the same connection
/// at once never both report it), with the count left, so that "the user's last connection went"
/// is seen exactly once.
pub trait Users: Send + Sync + 'static {
    /// Adds `conn` to `user`, applying `cap` (`None`: unlimited).
    ///
    /// Fails with [`BackendError::Limit`] under [`CapPolicy::RefuseNew`] when the user is full.
    fn register(
        &self,
        user: &str,
        conn: ConnRef,
        cap: Option<(usize, CapPolicy)>,
    ) -> BackendFuture<'_, Registration>;
    /// Removes `conn` from `user` (no-op if absent).
    fn unregister(&self, user: &str, conn: &str) -> BackendFuture<'_, Unregistered>;
    /// The user's connections, oldest first.
    fn connections(&self, user: &str) -> BackendFuture<'_, Vec<ConnRef>>;
    /// Removes every connection of `node` (registered with that node), of every user; returns
    /// what it removed itself, per user.
    fn evict_node(&self, node: &str) -> BackendFuture<'_, Vec<Evicted>>;

    /// How many of the user's connections are on nodes other than `node`, if the registry can
    /// tell at once, without I/O (an in-memory registry can); `None` otherwise (the default),
    /// and the caller asks [`Users::connections`]. A hot path (sending to a user) uses it to
    /// skip the future and the list.
    fn remote_count_now(&self, user: &str, node: &str) -> Option<usize> {
        let _ = (user, node);
        None
    }
}

/// In-memory registry.
#[derive(Default)]
pub struct MemoryUsers {
    users: Mutex<HashMap<Box<str>, Conns>>,
}

/// A user's connections (never none in [`MemoryUsers`]).
type Conns = OneOrMany<ConnRef>;

impl MemoryUsers {
    /// Empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many users have a connection (for leak tests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.users.lock().len()
    }

    /// Whether no user has a connection.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Users for MemoryUsers {
    fn register(
        &self,
        user: &str,
        conn: ConnRef,
        cap: Option<(usize, CapPolicy)>,
    ) -> BackendFuture<'_, Registration> {
        let mut users = self.users.lock();
        let (key, mut conns) = match users.remove_entry(user) {
            Some((key, conns)) => (key, conns.into_vec()),
            None => (Box::from(user), Vec::new()),
        };
        let mut evicted = Vec::new();
        if let Some((cap, policy)) = cap {
            let cap = cap.max(1);
            if conns.len() >= cap {
                if policy == CapPolicy::RefuseNew {
                    if let Some(conns) = Conns::from_vec(conns) {
                        users.insert(key, conns);
                    }
                    return Box::pin(std::future::ready(Err(BackendError::Limit)));
                }
                evicted = conns.drain(..=conns.len() - cap).collect();
            }
        }
        conns.push(conn);
        let connections = conns.len();
        if let Some(conns) = Conns::from_vec(conns) {
            users.insert(key, conns);
        }
        Box::pin(std::future::ready(Ok(Registration { evicted, connections })))
    }

    fn unregister(&self, user: &str, conn: &str) -> BackendFuture<'_, Unregistered> {
        let mut users = self.users.lock();
        let mut out = Unregistered::default();
        if let Some((key, conns)) = users.remove_entry(user) {
            let mut conns = conns.into_vec();
            let before = conns.len();
            conns.retain(|c| &*c.conn != conn);
            out = Unregistered { removed: conns.len() < before, remaining: conns.len() };
            if let Some(conns) = Conns::from_vec(conns) {
                users.insert(key, conns);
            }
        }
        Box::pin(std::future::ready(Ok(out)))
    }

    fn connections(&self, user: &str) -> BackendFuture<'_, Vec<ConnRef>> {
        let list = self.users.lock().get(user).map(|c| c.as_slice().to_vec()).unwrap_or_default();
        Box::pin(std::future::ready(Ok(list)))
    }

    fn evict_node(&self, node: &str) -> BackendFuture<'_, Vec<Evicted>> {
        let mut evicted = Vec::new();
        let mut users = self.users.lock();
        let names: Vec<Box<str>> = users.keys().cloned().collect();
        for name in names {
            let Some((key, conns)) = users.remove_entry(&*name) else { continue };
            let (gone, kept): (Vec<ConnRef>, Vec<ConnRef>) =
                conns.into_vec().into_iter().partition(|c| &*c.node == node);
            if !gone.is_empty() {
                let conns = gone.into_iter().map(|c| c.conn).collect();
                evicted.push(Evicted { user: key.to_string(), conns, remaining: kept.len() });
            }
            if let Some(kept) = Conns::from_vec(kept) {
                users.insert(key, kept);
            }
        }
        Box::pin(std::future::ready(Ok(evicted)))
    }

    fn remote_count_now(&self, user: &str, node: &str) -> Option<usize> {
        Some(
            self.users
                .lock()
                .get(user)
                .map_or(0, |conns| conns.as_slice().iter().filter(|c| &*c.node != node).count()),
        )
    }
}
