//! # switchboard-redis
//!
//! The Redis backend of Switchboard: several servers on one Redis, or on one Redis Cluster,
//! behave as one. It implements the contracts of [`switchboard_core`] and nothing else — it
//! never sees a socket, a handler or a protocol message.
//!
//! ```no_run
//! # async fn run() -> Result<(), switchboard_redis::ConnectError> {
//! use switchboard_redis::{RedisBackends, RedisOptions};
//! // One Redis:
//! let backends = RedisBackends::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
//! // A Redis Cluster, given by one or more seed nodes:
//! let backends = RedisBackends::connect(
//!     "redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000",
//!     RedisOptions::default(),
//! )
//! .await?;
//! // Server::builder().backends(backends) ...
//! # let _ = backends;
//! # Ok(()) }
//! ```
//!
//! ## Which Redis
//!
//! - `redis://[user:password@]host:port[/db]` (anything [`redis::Client::open`] takes): one Redis
//!   (with replicas or Sentinel in front if needed). Pub/sub is `SUBSCRIBE`/`PUBLISH`.
//! - `redis+cluster://[user:password@]host:port[,host:port…]`: a Redis Cluster (Redis ≥ 7, for
//!   sharded pub/sub). The seeds are only where to start: the client learns every master from
//!   them and follows slot moves. Pub/sub is sharded (`SSUBSCRIBE`/`SPUBLISH`), so a publication
//!   crosses only the master of its channel's slot; every Lua script touches one slot. The prefix
//!   must not contain `{` or `}`.
//! - `rediss://…` and `rediss+cluster://…`: the same over TLS (rustls; no OpenSSL). The servers'
//!   certificates are checked against the system's roots, or only against
//!   [`RedisOptions::tls_ca`] when it is given (a private CA). Debian's `redis-server` speaks TLS
//!   with `--tls-port` (and `--tls-cluster yes` for a cluster).
//!
//! Both use the same keys and the same code paths; only the pub/sub commands differ.
//!
//! Key names below use `P` for [`RedisOptions::prefix`]; `{…}` in a key is a literal Redis hash
//! tag: all keys of one topic, presence key, user, owner, node or event-log partition share one,
//! so they live in one slot.
//!
//! | contract | Redis data | notes |
//! |---|---|---|
//! | [`Broker`](switchboard_core::Broker) | channels `P:t:TOPIC` per topic (subscribed only while the node has local subscribers), `P:n:NODE` per node, `P:b` for broadcasts | one subscriber connection read by one task, in arrival order; resubscribes by itself after a reconnection (cluster: also when a master drops a channel whose slot moved); publishes in batches, one pipeline per round trip (one Redis), or as concurrent requests pipelined per master (cluster); `send` to a node nobody listens for is `NoSuchNode`; liveness: see below |
//! | [`History`](switchboard_core::History) | per topic a hash `{P:h:TOPIC}:m` (epoch, seq) and a stream `{P:h:TOPIC}:s` with entry ids `SEQ-1` | every call is one Lua script, so sequence numbers are consecutive across nodes; exact `MAXLEN`; TTL per entry (filtered on read, and the keys expire after inactivity); a lost hash means a new epoch |
//! | [`Presence`](switchboard_core::Presence) | per key a sorted set `{P:p:KEY}:z` (join order), hashes `…:i` (conn → info) and `…:w` (conn → owner); per node a set `{P:N:NODE}:p` of its entries (the node named by the connection id, [`node_of`](switchboard_core::node_of)) | `leave` and `evict_node` are one script per key, which reports only what it removed; entries of dead owners are dropped when read, and swept |
//! | [`Users`](switchboard_core::Users) | per user a sorted set `{P:u:USER}:z` (registration order) and a hash `…:h` (conn → owner and node); per node a set `{P:N:NODE}:u` of its registrations | the cap and its policy are applied by one Lua script, which also counts the user's connections; `unregister` and `evict_node` are one script per user, which reports only what it removed and what is left; connections of dead owners neither count against a cap nor are listed |
//! | [`RateLimiter`](switchboard_core::RateLimiter) | per bucket a hash `{P:r:KEY}` (milli-tokens, and when, in Redis's clock) | every take is one Lua script, so nodes never take more than the rate together; a bucket expires once it would be full again |
//! | [`EventLog`](switchboard_core::EventLog) | per partition `N` (0 to [`RedisOptions::event_partitions`] − 1) a stream `{P:ev:N}:s` of the events not delivered yet (fields `k` key, `q` number, `d` data), a counter `{P:ev:N}:q:KEY` per key, the lease `{P:ev:N}:l` | a key's partition is FNV-1a of the key (the same on every node); `append`, `lease` and `commit` are one script each; `read` is `XRANGE` from the stream's head (a commit trims what it delivered, so the head is the committed position; no consumer group); at most [`RedisOptions::event_log_max`] events per partition (then `append` is refused with `Limit`); as durable as Redis's persistence (see below) |
//!
//! ## Node liveness ([`Broker::beat`](switchboard_core::Broker::beat) and the rest)
//!
//! | key | what | written by |
//! |---|---|---|
//! | `{P:N:NODE}:a` | the node is alive (expires after the beat's ttl) | `beat` |
//! | `{P:N:NODE}:k` | the node is tracked: `1` it beat, `2` its cleanup was claimed since it lapsed | `beat`, `claim_dead`; deleted by `forget_dead` and by `detach` of a live node |
//! | `{P:N:NODE}:c` | who holds the claim on its cleanup (expires after the lease) | `claim_dead` (renewed by its holder) |
//! | `{P:N:NODE}:x` | tombstone: its cleanup finished (expires after 10 minutes) | `forget_dead`; deleted by its next beat |
//! | `{P:N:NODE}:v` | its last beat's token and verdict (expires after 10 minutes) | `beat` |
//! | `P:nodes` | the nodes that beat: where `dead_nodes` looks | every `beat` (`SADD`); `forget_dead`, `detach` |
//!
//! Each operation is one script on the node's slot (plus the `P:nodes` update beside it). A beat
//! sets `:a` and answers `Alive` if it was there; else `Lapsed { cleaned: true }` if a tombstone
//! or a claim is there, `Lapsed { cleaned: false }` if the node is tracked, or if this process
//! beat for it before and Redis lost every trace (restarted or flushed: the node must register
//! its entries again); a node's first beat finds nothing and is `Alive`. A beat whose answer was
//! lost (`Indeterminate`) is asked about by the next one, which answers the worse of the two
//! verdicts, so a node never misses that it was cleaned up. A dead node is one listed in
//! `P:nodes`, tracked, and without `:a`; `claim_dead` succeeds only on such a node, when nobody
//! else holds `:c`. `P:nodes` is renewed at every beat, so losing it (its master restarted)
//! costs one beat interval.
//!
//! `Presence::evict_node` and `Users::evict_node` read the node's sets in batches and run one
//! script per presence key or user, which removes the node's entries still there and returns
//! them; they are then unlisted from the node's and their owners' sets. An eviction stopped by a
//! failure part way reports what it removed (nobody else can) and leaves the rest listed for the
//! next call, so call it until it returns nothing. When the evicting process owns an entry
//! itself, it also forgets it.
//!
//! The process of a node that survivors cleaned up never writes its evicted entries again: when
//! it writes its entries again (below), it skips and forgets those of nodes whose cleanup was
//! claimed or finished, and a beat answering `Lapsed { cleaned: true }` makes it forget all the
//! entries of that node (what the node still holds is the framework's to close or to register
//! again). An entry the node writes after its eviction, before its beat tells it, stays until
//! the framework closes or registers it again.
//!
//! ## Owner liveness
//!
//! Besides the nodes' liveness, which the framework drives and acts on (announcing leaves), the
//! backend has its own, silent one, so that a crashed process leaves no zombies even when no
//! node cleans up after it. Keep [`RedisOptions::owner_ttl`] longer than the framework's node
//! ttl plus its cleanup time: entries an owner's expiry drops are dropped without a word.
//!
//! Each [`RedisBackends::connect`] is one *owner* with a random id. Its heartbeat key
//! `{P:o:OWNER}:a` is created once (`SET NX`) and then refreshed every [`RedisOptions::heartbeat`]
//! with a TTL of [`RedisOptions::owner_ttl`], but never created again (`SET XX`): an owner id
//! whose key expired or was lost is dead for good. Presence and user entries record their owner,
//! and each owner lists its entries in `{P:o:OWNER}:e` and itself in `P:owners`.
//!
//! No script reads a heartbeat key (that would cross slots on a cluster). Reading presence or a
//! user's connections returns entries with their owners; the owners' heartbeat keys are checked
//! (alive verdicts cached for one heartbeat interval, dead ones for good) and entries of dead
//! owners are dropped and deleted. Registering with a cap first checks the owners of the user's
//! entries, then one script on the user's slot drops the dead owners' entries and applies the
//! cap; an owner it was not told about counts as alive, so a race can make the cap stricter,
//! never looser. Every owner periodically sweeps the sets of dead owners, so a crashed node
//! leaves no zombies even in keys nobody reads.
//!
//! When an owner finds its heartbeat key gone (Redis restarted or flushed, or it was cut off for
//! longer than the TTL), it takes a new owner id and writes its live entries again. On a cluster
//! it also compares the masters' run ids at each heartbeat: when a master restarted (it may have
//! lost entries in its slots), it writes its entries again.
//!
//! ## The event log
//!
//! Lifecycle events ([`EventLog`](switchboard_core::EventLog)) are kept in
//! [`RedisOptions::event_partitions`] Redis Streams (default 16), each holding exactly the events
//! of its partition not delivered yet: a delivery's commit trims the stream up to what it
//! delivered, so whichever node holds a partition's lease next (a crashed holder's lease lapses)
//! reads from the stream's head again — what was read and not committed is read again, nothing
//! committed is.
//!
//! - **Numbering.** A key's counter `{P:ev:N}:q:KEY` has no expiry while the key has events not
//!   delivered; once its last event is committed it expires after
//!   [`RedisOptions::event_key_idle`] (24 h), and the key's next append takes that expiry off
//!   again. So a key's numbering starts again at 1 exactly when it had no append for that long
//!   after all its events were delivered.
//! - **Bound.** A partition keeps at most [`RedisOptions::event_log_max`] events not delivered
//!   (100,000 by default, so 1.6 million over 16 partitions): past it an append is refused with
//!   `Limit` (the framework refuses the action it would announce), never trimmed.
//! - **Durability** is Redis's: without persistence a Redis restart empties the log (undelivered
//!   events are lost, numbering starts again). With `appendonly yes` it survives a restart
//!   (`appendfsync everysec`, the default, may lose the last second's appends when Redis itself
//!   crashes; `always` loses none). Replication is asynchronous: a failover may lose the last
//!   appends. Use `maxmemory-policy noeviction` (or a `volatile-*` one): the streams have no
//!   expiry and must not be evicted. Needs Redis ≥ 6.2 (`XTRIM MINID`).
//! - **Partitions.** Every node must use the same number. Changing it on a running cluster
//!   reorders nothing already delivered but moves keys between partitions (a key's old and new
//!   events could be delivered out of order, its numbering starts again): change it only with
//!   the log drained.
//!
//! ## Failures
//!
//! A Redis failure is [`BackendError::Unavailable`](switchboard_core::BackendError) when the
//! request certainly did not run: there was no connection (connection refused, cluster node not
//! found), or Redis answered with an error. It is
//! [`BackendError::Indeterminate`](switchboard_core::BackendError) when the request was or may
//! have been sent and its answer was lost: it timed out ([`RedisOptions::timeout`]), or the
//! connection dropped or failed otherwise. When in doubt, indeterminate: a timeout while the
//! client is still reconnecting is one too. A keyed [`History::append`](switchboard_core::History::append)
//! that was indeterminate and is retried with the same key is applied once; an event-log
//! `append` has no such key: retried after an indeterminate failure, the event may be logged
//! twice (two ids, two numbers). Reads (`list`, `connections`, `position`, `recover`,
//! `dead_nodes`, the event log's `read`) have nothing to apply: their failures are always
//! `Unavailable`. Nothing here panics on a Redis error. A publication that cannot reach Redis is an error to the caller.
//! Publications sent while a node's subscription connection is down are lost for that node
//! (at-most-once); history sequence numbers let the framework and clients see the gap.

// Layers, each module using only those on the lines above it (no import circles):
//   conn      which Redis (one or a cluster) and the command connection
//   scripts   the Lua scripts
//   core      key names, liveness of owners, the entry writes, sweeping, rewriting lost entries
//   broker, events, history, presence, users   the contracts of switchboard-core
//   lib.rs    RedisOptions, ConnectError, RedisBackends::connect wiring them together
mod broker;
mod conn;
mod core;
mod events;
mod history;
mod limits;
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
    /// How long one Redis operation may take before it fails with `Indeterminate` (it may have
    /// run; default 3 s).
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
    /// `rediss://` only: the CA certificates (PEM) that sign the Redis servers' certificates,
    /// trusted instead of the system's roots (default: none, the system's roots).
    pub tls_ca: Option<Vec<u8>>,
    /// How many partitions the event log has (default 16; see [`RedisOptions::events`]). Every
    /// node must use the same number; change it only with the log drained.
    pub event_partitions: usize,
    /// Events not delivered yet that one partition of the event log keeps, at most (default
    /// 100,000; at least 1): past it, an append is refused ([`BackendError::Limit`](switchboard_core::BackendError)),
    /// nothing undelivered is ever dropped.
    pub event_log_max: usize,
    /// How long a key's event numbering is remembered once all its events were delivered
    /// (default 24 h): after that long without an append, it starts again at 1.
    pub event_key_idle: Duration,
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
            tls_ca: None,
            event_partitions: 16,
            event_log_max: 100_000,
            event_key_idle: Duration::from_secs(24 * 3600),
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

    /// Trusts these CA certificates (PEM, one or more) for `rediss://`, instead of the system's
    /// roots: for Redis servers with certificates of a private CA.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use switchboard_redis::{RedisBackends, RedisOptions};
    /// let ca = std::fs::read("/etc/switchboard/redis-ca.crt")?;
    /// let backends = RedisBackends::connect("rediss://redis.internal:6380", RedisOptions::default().tls_ca(ca)).await?;
    /// # let _ = backends; Ok(()) }
    /// ```
    #[must_use]
    pub fn tls_ca(mut self, pem: Vec<u8>) -> Self {
        self.tls_ca = Some(pem);
        self
    }

    /// Sets the event log's partitions (at least 1) and how many events not delivered yet each
    /// keeps at most.
    ///
    /// Every node must use the same number of partitions: a key's partition is a hash of the
    /// key modulo that number. Changing it on a running cluster reorders nothing already
    /// delivered, but moves keys to other partitions, so a key's events appended before and
    /// after the change could be delivered out of order, and its numbering starts again: only
    /// change it with the log drained (every node stopped gracefully).
    ///
    /// ```
    /// use switchboard_redis::RedisOptions;
    /// // 32 partitions of at most 50,000 events each (1.6 million events not delivered, at most).
    /// let options = RedisOptions::default().events(32, 50_000);
    /// assert_eq!((options.event_partitions, options.event_log_max), (32, 50_000));
    /// ```
    #[must_use]
    pub fn events(mut self, partitions: usize, max_per_partition: usize) -> Self {
        self.event_partitions = partitions.max(1);
        self.event_log_max = max_per_partition;
        self
    }

    /// Sets how long a key's event numbering is remembered once all its events were delivered.
    #[must_use]
    pub fn event_key_idle(mut self, idle: Duration) -> Self {
        self.event_key_idle = idle;
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
    /// Connects to `url` and returns the backends: `redis://[user:password@]host:port[/db]`
    /// for one Redis, `redis+cluster://[user:password@]host:port[,host:port…]` for a Redis
    /// Cluster (sharded pub/sub; see the crate documentation); `rediss` instead of `redis` for
    /// TLS.
    ///
    /// Fails if Redis does not answer now; afterwards the backends reconnect by themselves.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] if the URL is invalid, Redis is unreachable (a TLS certificate that
    /// does not verify included), the prefix contains `{` or `}` on a cluster, or the event
    /// log would have no partition ([`RedisOptions::event_partitions`]) or no room
    /// ([`RedisOptions::event_log_max`]).
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Backends, ConnectError> {
        let target = conn::Target::parse(url, &options)?;
        if target.is_cluster() && options.prefix.contains(['{', '}']) {
            return Err(ConnectError::InvalidOptions(
                "on a Redis Cluster the prefix must not contain '{' or '}' (it is part of every hash tag)"
                    .to_owned(),
            ));
        }
        if options.event_partitions == 0 || options.event_log_max == 0 {
            return Err(ConnectError::InvalidOptions(
                "the event log needs at least one partition, of at least one event".to_owned(),
            ));
        }
        let core = core::Core::connect(&target, options).await?;
        let broker = broker::RedisBroker::start(&target, core.clone()).await?;
        Ok(Backends {
            broker: Arc::new(broker),
            history: Arc::new(history::RedisHistory::new(core.clone())),
            presence: Arc::new(presence::RedisPresence::new(core.clone())),
            users: Arc::new(users::RedisUsers::new(core.clone())),
            events: Arc::new(events::RedisEventLog::new(core.clone())),
            limiter: Arc::new(limits::RedisRateLimiter::new(core)),
        })
    }
}
