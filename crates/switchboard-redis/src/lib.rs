//! # switchboard-redis
//!
//! The Redis backend of Switchboard: several servers on one Redis behave as one. It implements the
//! four contracts of [`switchboard_core`] and nothing else — it never sees a socket, a handler or a
//! protocol message.
//!
//! ```no_run
//! # async fn run() -> Result<(), switchboard_redis::ConnectError> {
//! use switchboard_redis::{RedisBackends, RedisOptions};
//! let backends = RedisBackends::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
//! // Server::builder().backends(backends) ...
//! # let _ = backends;
//! # Ok(()) }
//! ```
//!
//! Key names below use `P` for [`RedisOptions::prefix`]; `{…}` in a key is a literal Redis hash
//! tag (`sb:h:{chat/lobby}:m`), so that the keys of one topic, presence key or user stay together.
//!
//! | contract | Redis data | notes |
//! |---|---|---|
//! | [`Broker`](switchboard_core::Broker) | pub/sub: `P:t:TOPIC` per topic (subscribed only while the node has local subscribers), `P:n:NODE` per node, `P:b` for broadcasts | one dedicated pub/sub connection read by one task, in arrival order; reconnects and resubscribes by itself; publishes on a multiplexed connection (concurrent callers are pipelined); `send` to a node nobody listens for is `NoSuchNode` |
//! | [`History`](switchboard_core::History) | per topic a hash `P:h:{TOPIC}:m` (epoch, seq) and a stream `P:h:{TOPIC}:s` with entry ids `SEQ-1` | every call is one Lua script, so sequence numbers are consecutive across nodes; exact `MAXLEN`; TTL per entry (filtered on read, and the keys expire after inactivity); a lost hash means a new epoch |
//! | [`Presence`](switchboard_core::Presence) | per key a sorted set `P:p:{KEY}:z` (join order), hashes `…:i` (conn → info) and `…:w` (conn → owner) | entries of an owner whose heartbeat expired are dropped when read, and swept |
//! | [`Users`](switchboard_core::Users) | per user a sorted set `P:u:{USER}:z` (registration order) and a hash `…:h` (conn → owner and node) | the cap and its policy are applied by one Lua script; connections of dead owners neither count nor are listed |
//!
//! ## Liveness
//!
//! Each [`RedisBackends::connect`] is one *owner*: it refreshes `P:alive:OWNER` every
//! [`RedisOptions::heartbeat`] with a TTL of [`RedisOptions::owner_ttl`]. Presence and user entries
//! record their owner; reading them drops (and deletes) the entries of owners whose heartbeat is
//! gone, and every owner periodically sweeps the entries of dead owners, so a crashed node leaves
//! no zombies. When an owner finds its own heartbeat key missing (Redis restarted or flushed, or it
//! was cut off for longer than the TTL) it writes its live entries again.
//!
//! ## Failures
//!
//! Every Redis failure is [`BackendError::Unavailable`](switchboard_core::BackendError); nothing
//! here panics on a Redis error. A publication that cannot reach Redis is an error to the caller.
//! Publications sent while a node's subscription connection is down are lost for that node
//! (at-most-once); history sequence numbers let the framework and clients see the gap.
//!
//! ## Not supported
//!
//! Redis Cluster (sharded pub/sub, `SSUBSCRIBE`/`SPUBLISH`): keys of one topic or user already
//! share a hash tag, but the liveness checks read other owners' heartbeat keys from inside
//! scripts, which a cluster would refuse. Use one Redis (with replicas/Sentinel in front if needed).

mod broker;
mod conn;
mod core;
mod history;
mod presence;
mod scripts;
mod users;

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::Backends;

/// Settings of the Redis backend.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prefix of every key and channel (default `"sb"`), so that several clusters, or tests, share
    /// one Redis.
    pub prefix: String,
    /// How long one Redis operation may take before it fails with `Unavailable` (default 3 s).
    pub timeout: Duration,
    /// How long connecting to Redis may take (default 2 s).
    pub connect_timeout: Duration,
    /// How often this process refreshes its heartbeat key (default 5 s).
    pub heartbeat: Duration,
    /// How long the heartbeat key lives: entries of a process silent for that long are dropped
    /// (default 15 s).
    pub owner_ttl: Duration,
    /// A topic's history (epoch and sequence number) untouched for that long is dropped: its epoch
    /// changes when it comes back (default 10 minutes, like the in-memory history).
    pub stream_idle: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "sb".to_owned(),
            timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
            heartbeat: Duration::from_secs(5),
            owner_ttl: Duration::from_secs(15),
            stream_idle: Duration::from_secs(600),
        }
    }
}

impl RedisOptions {
    /// Sets the key and channel prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the per-operation timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long connecting to Redis may take.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the heartbeat interval and the TTL after which a silent process's entries go.
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration, ttl: Duration) -> Self {
        self.heartbeat = interval;
        self.owner_ttl = ttl.max(interval + Duration::from_millis(1));
        self
    }

    /// Sets how long an untouched topic history is kept.
    #[must_use]
    pub fn stream_idle(mut self, idle: Duration) -> Self {
        self.stream_idle = idle;
        self
    }
}

/// Connecting to Redis failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// Redis did not answer.
    #[error("Redis is unreachable: {0}")]
    Unreachable(String),
    /// The options cannot work with this Redis (e.g. a prefix with `{` or `}` on a cluster).
    #[error("invalid Redis options: {0}")]
    InvalidOptions(String),
}

/// Builds [`Backends`] on Redis.
#[derive(Debug)]
pub struct RedisBackends;

impl RedisBackends {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`) and returns the four backends.
    ///
    /// Fails if Redis does not answer now; afterwards the backends reconnect by themselves.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] if the URL is invalid or Redis is unreachable.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Backends, ConnectError> {
        let target = conn::Target::parse(url)?;
        if target.is_cluster() && options.prefix.contains(['{', '}']) {
            return Err(ConnectError::InvalidOptions(
                "on a Redis Cluster the prefix must not contain '{' or '}' (it is part of every hash tag)"
                    .to_owned(),
            ));
        }
        let core = core::Core::connect(&target, options).await?;
        let broker = broker::RedisBroker::start(&target, core.clone()).await?;
        Ok(Backends {
            broker: Arc::new(broker),
            history: Arc::new(history::RedisHistory::new(core.clone())),
            presence: Arc::new(presence::RedisPresence::new(core.clone())),
            users: Arc::new(users::RedisUsers::new(core)),
        })
    }
}
