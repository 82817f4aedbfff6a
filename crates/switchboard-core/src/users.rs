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
pub struct Registration {
    /// Connections the caller must close (policy `EvictOldest`), oldest first.
    pub evicted: Vec<ConnRef>,
}

/// The users → connections registry, cluster-wide.
///
/// **Guarantees**: `register` checks and applies the cap atomically, so two nodes registering
/// at once never both exceed it; evicted connections are already removed from the registry when
/// it returns. `connections` lists a user's connections in registration order.
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
    fn unregister(&self, user: &str, conn: &str) -> BackendFuture<'_, ()>;
    /// The user's connections, oldest first.
    fn connections(&self, user: &str) -> BackendFuture<'_, Vec<ConnRef>>;

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
        if let Some(conns) = Conns::from_vec(conns) {
            users.insert(key, conns);
        }
        Box::pin(std::future::ready(Ok(Registration { evicted })))
    }

    fn unregister(&self, user: &str, conn: &str) -> BackendFuture<'_, ()> {
        let mut users = self.users.lock();
        if let Some((key, conns)) = users.remove_entry(user) {
            let mut conns = conns.into_vec();
            conns.retain(|c| &*c.conn != conn);
            if let Some(conns) = Conns::from_vec(conns) {
                users.insert(key, conns);
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn connections(&self, user: &str) -> BackendFuture<'_, Vec<ConnRef>> {
        let list = self.users.lock().get(user).map(|c| c.as_slice().to_vec()).unwrap_or_default();
        Box::pin(std::future::ready(Ok(list)))
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
