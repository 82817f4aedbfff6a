//! What the four backends share: the command connection, key names, this process's heartbeat
//! (its liveness as an *owner* of presence and user entries), the sweeping of dead owners, and
//! the local copy of this owner's entries that is written again when Redis lost them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use switchboard_core::{BackendError, NodeId};

use crate::{ConnectError, RedisOptions, scripts};

/// Key and channel names. Keys of one topic, presence key or user share a hash tag (`{…}`).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn topic_channel(&self, topic: &str) -> Vec<u8> {
        format!("{}:t:{topic}", self.prefix).into_bytes()
    }

    pub(crate) fn node_channel(&self, node: &str) -> Vec<u8> {
        format!("{}:n:{node}", self.prefix).into_bytes()
    }

    pub(crate) fn broadcast_channel(&self) -> Vec<u8> {
        format!("{}:b", self.prefix).into_bytes()
    }

    /// `{prefix}:alive:` — the heartbeat key of an owner follows.
    pub(crate) fn alive_prefix(&self) -> String {
        format!("{}:alive:", self.prefix)
    }

    /// `{prefix}:o:` — the set of an owner's entries follows.
    pub(crate) fn owned_prefix(&self) -> String {
        format!("{}:o:", self.prefix)
    }

    pub(crate) fn owners(&self) -> String {
        format!("{}:owners", self.prefix)
    }

    /// The base of a presence key's Redis keys (`:z` order, `:i` info, `:w` owner, `:n` counter).
    pub(crate) fn presence(&self, key: &str) -> String {
        format!("{}:p:{{{key}}}", self.prefix)
    }

    /// The base of a user's keys (`:z` order, `:h` owner and node, `:n` counter).
    pub(crate) fn user(&self, user: &str) -> String {
        format!("{}:u:{{{user}}}", self.prefix)
    }

    /// The base of a topic's history keys (`:m` epoch and seq, `:s` stream).
    pub(crate) fn history(&self, topic: &str) -> String {
        format!("{}:h:{{{topic}}}", self.prefix)
    }
}

/// How an entry is named in its owner's set: kind, key length, key, connection.
pub(crate) fn member(kind: char, key: &str, conn: &str) -> String {
    format!("{kind}{}:{key}{conn}", key.len())
}

/// This owner's live entries, written again if Redis loses them.
#[derive(Default)]
struct Mirror {
    next: u64,
    presence: HashMap<(String, String), (u64, Bytes)>,
    users: HashMap<(String, String), (u64, NodeId)>,
}

pub(crate) struct Core {
    /// Commands (multiplexed; reconnects by itself).
    pub(crate) conn: ConnectionManager,
    pub(crate) keys: Keys,
    /// This process's owner id (random), the name of its heartbeat key.
    pub(crate) owner: String,
    pub(crate) options: RedisOptions,
    mirror: Mutex<Mirror>,
    /// Entry writes take it shared; rewriting lost entries takes it exclusively, so that a leave
    /// racing with the rewrite cannot be undone by it.
    gate: tokio::sync::RwLock<()>,
}

pub(crate) fn unavailable(e: &redis::RedisError) -> BackendError {
    BackendError::Unavailable(format!("redis: {e}"))
}

impl Core {
    pub(crate) async fn connect(
        client: redis::Client,
        options: RedisOptions,
    ) -> Result<Arc<Self>, ConnectError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            options.connect_timeout * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| ConnectError::Unreachable("timed out".to_owned()))?
        .map_err(|e| ConnectError::Unreachable(e.to_string()))?;
        let core = Arc::new(Self {
            conn,
            keys: Keys::new(&options.prefix),
            owner: format!("{:016x}", rand::random::<u64>()),
            options,
            mirror: Mutex::new(Mirror::default()),
            gate: tokio::sync::RwLock::new(()),
        });
        core.beat().await.map_err(|e| ConnectError::Unreachable(e.to_string()))?;
        tokio::spawn(heartbeat(Arc::downgrade(&core)));
        Ok(core)
    }

    /// Runs one Redis operation under the configured timeout.
    pub(crate) async fn run<T>(
        &self,
        f: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BackendError> {
        match tokio::time::timeout(self.options.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(BackendError::Unavailable("redis: timed out".to_owned())),
        }
    }

    /// Shared access for entry writes (see `gate`).
    pub(crate) async fn write_gate(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    fn millis(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Refreshes the heartbeat; returns whether the key was still there.
    async fn beat(&self) -> Result<bool, BackendError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(format!("{}{}", self.keys.alive_prefix(), self.owner))
            .arg(1)
            .arg("PX")
            .arg(Self::millis(self.options.owner_ttl))
            .arg("GET")
            .cmd("SADD")
            .arg(self.keys.owners())
            .arg(&self.owner)
            .ignore();
        let (previous,): (Option<String>,) = self.run(pipe.query_async(&mut conn)).await?;
        Ok(previous.is_some())
    }

    /// Removes the entries of owners whose heartbeat expired.
    async fn sweep(&self) -> Result<u64, BackendError> {
        let mut conn = self.conn.clone();
        let mut call = scripts::SWEEP.prepare_invoke();
        call.key(self.keys.owners()).arg(self.keys.prefix()).arg(500);
        self.run(call.invoke_async(&mut conn)).await
    }

    pub(crate) fn remember_presence(&self, key: &str, conn: &str, info: Bytes) {
        let mut m = self.mirror.lock();
        m.next += 1;
        let next = m.next;
        let entry = m.presence.entry((key.to_owned(), conn.to_owned())).or_insert((next, Bytes::new()));
        entry.1 = info;
    }

    pub(crate) fn forget_presence(&self, key: &str, conn: &str) {
        self.mirror.lock().presence.remove(&(key.to_owned(), conn.to_owned()));
    }

    pub(crate) fn remember_user(&self, user: &str, conn: &str, node: NodeId) {
        let mut m = self.mirror.lock();
        m.next += 1;
        let next = m.next;
        m.users.insert((user.to_owned(), conn.to_owned()), (next, node));
    }

    pub(crate) fn forget_user(&self, user: &str, conn: &str) {
        self.mirror.lock().users.remove(&(user.to_owned(), conn.to_owned()));
    }

    /// Writes this owner's entries again (Redis lost them, or another owner swept them while
    /// this one was cut off).
    async fn rewrite(&self) -> Result<usize, BackendError> {
        let _gate = self.gate.write().await;
        let (mut presence, mut users) = {
            let m = self.mirror.lock();
            let p: Vec<_> =
                m.presence.iter().map(|((k, c), (n, i))| (*n, k.clone(), c.clone(), i.clone())).collect();
            let u: Vec<_> =
                m.users.iter().map(|((u, c), (n, node))| (*n, u.clone(), c.clone(), node.clone())).collect();
            (p, u)
        };
        presence.sort_by_key(|e| e.0);
        users.sort_by_key(|e| e.0);
        let count = presence.len() + users.len();
        for (_, key, conn, info) in presence {
            crate::presence::write_join(self, &key, &conn, &info).await?;
        }
        for (_, user, conn, node) in users {
            crate::users::write_register(self, &user, &conn, &node, None).await?;
        }
        Ok(count)
    }
}

async fn heartbeat(weak: Weak<Core>) {
    let interval = match weak.upgrade() {
        Some(core) => core.options.heartbeat,
        None => return,
    };
    // A rewrite is owed when the heartbeat was found missing and rewriting failed.
    let mut owed = false;
    loop {
        tokio::time::sleep(interval).await;
        let Some(core) = weak.upgrade() else { return };
        match core.beat().await {
            Ok(present) => {
                if !present || owed {
                    if !present {
                        tracing::warn!(owner = %core.owner, "heartbeat key was gone: writing this node's entries again");
                    }
                    match core.rewrite().await {
                        Ok(n) => {
                            owed = false;
                            tracing::debug!(entries = n, "entries written again");
                        }
                        Err(e) => {
                            owed = true;
                            tracing::warn!(error = %e, "could not write this node's entries again");
                        }
                    }
                }
                match core.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(entries = n, "swept entries of dead nodes"),
                    Err(e) => tracing::warn!(error = %e, "could not sweep dead nodes"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let k = Keys::new("sb");
        assert_eq!(k.topic_channel("chat/a"), b"sb:t:chat/a");
        assert_eq!(k.node_channel("n1"), b"sb:n:n1");
        assert_eq!(k.broadcast_channel(), b"sb:b");
        assert_eq!(k.presence("~directory"), "sb:p:{~directory}");
        assert_eq!(k.user("ada"), "sb:u:{ada}");
        assert_eq!(k.history("chat/a"), "sb:h:{chat/a}");
        // The sweep script parses KIND LEN ':' KEY CONN; a key may contain ':' and digits.
        assert_eq!(member('p', "chat:1/a", "c.7"), "p8:chat:1/ac.7");
        assert_eq!(member('u', "", "c"), "u0:c");
    }
}
