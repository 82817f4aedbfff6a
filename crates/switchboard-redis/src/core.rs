//! What the four backends share: the command connection, key names, this process's heartbeat
//! (its liveness as an *owner* of presence and user entries), deciding which owners are dead,
//! the entry writes (presence join, user register), the sweeping of dead owners, and the local
//! copy of this owner's entries that is written again when Redis lost them. `presence` and
//! `users` build on it; it uses neither.
//!
//! Liveness works the same on one Redis and on a Redis Cluster, where a script may only touch
//! the keys of one hash slot:
//!
//! - An owner's heartbeat key `{P:o:OWNER}:a` is created once (`SET NX`) and afterwards only
//!   refreshed (`SET XX`), never created again: once it expired or was lost, the owner id is
//!   dead *for good*. The owner notices at its next heartbeat, takes a new id and writes its
//!   entries again under it. So "dead" is a final verdict that can be cached and passed to a
//!   script of another slot without a race; "alive" is only a snapshot.
//! - Scripts never read heartbeat keys. Readers (`list`, `connections`) get entries with their
//!   owners, check the owners' heartbeat keys (one `EXISTS` each, concurrently; alive verdicts
//!   are cached for one heartbeat interval, dead ones for good), drop and prune the dead ones.
//!   `register` checks the owners of the user's entries first (fresh), then runs one script
//!   on the user's slot that drops the entries of the dead owners and applies the cap; an owner
//!   it was not told about counts as alive, which can only make the cap stricter, never looser.
//! - Each owner lists its entries in `{P:o:OWNER}:e` (sent together with the entry's write) and
//!   registers itself in `P:owners`; every owner sweeps dead owners' sets, removing each listed
//!   entry with a per-slot script that checks the entry still names the dead owner. An entry
//!   whose listing was lost (a crash between the two writes on a cluster, or the master of the
//!   owner's set restarted empty) is not swept, but readers still drop it once its owner is dead.
//! - Each entry is also listed in its *node's* set (`{P:N:NODE}:p` or `:u`, written beside the
//!   owner's), where a survivor's `evict_node` finds it; whoever removes an entry (leave,
//!   unregister, eviction, the cap, a prune) unlists it from both. The node's liveness itself
//!   (`{P:N:NODE}:a`…) is the broker's; the rewrite below reads it ([`Core::node_state`]) to skip
//!   the entries of nodes whose cleanup was claimed or finished, and the broker's beat makes the
//!   mirror forget a node that learned it was cleaned up ([`Core::forget_node`]).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use redis::{FromRedisValue, Value};
use switchboard_core::{BackendError, CapPolicy, ConnRef, NodeId, Registration};

use crate::conn::{Conn, Target};
use crate::{ConnectError, RedisOptions, scripts};

/// Key and channel names. The keys of one topic, presence key, user or owner share a hash tag
/// (`{P:h:TOPIC}`…), so that each script touches one hash slot.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
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

    /// The set of live owners' ids (`P:owners`).
    pub(crate) fn owners(&self) -> String {
        format!("{}:owners", self.prefix)
    }

    /// An owner's heartbeat key (`{P:o:OWNER}:a`).
    pub(crate) fn alive(&self, owner: &str) -> String {
        format!("{{{}:o:{owner}}}:a", self.prefix)
    }

    /// The set of an owner's entries (`{P:o:OWNER}:e`), same slot as its heartbeat.
    pub(crate) fn owned(&self, owner: &str) -> String {
        format!("{{{}:o:{owner}}}:e", self.prefix)
    }

    /// The base of a presence key's Redis keys (`:z` order, `:i` info, `:w` owner, `:n` counter).
    pub(crate) fn presence(&self, key: &str) -> String {
        format!("{{{}:p:{key}}}", self.prefix)
    }

    /// The base of a user's keys (`:z` order, `:h` owner and node, `:n` counter).
    pub(crate) fn user(&self, user: &str) -> String {
        format!("{{{}:u:{user}}}", self.prefix)
    }

    /// A presence key's Redis keys: `:z` order, `:i` info, `:w` owner, `:n` counter.
    pub(crate) fn presence_keys(&self, key: &str) -> [String; 4] {
        let base = self.presence(key);
        [format!("{base}:z"), format!("{base}:i"), format!("{base}:w"), format!("{base}:n")]
    }

    /// A user's Redis keys: `:z` order, `:h` owner and node, `:n` counter.
    pub(crate) fn user_keys(&self, user: &str) -> [String; 3] {
        let base = self.user(user);
        [format!("{base}:z"), format!("{base}:h"), format!("{base}:n")]
    }

    /// The base of a topic's history keys (`:m` epoch and seq, `:s` stream).
    pub(crate) fn history(&self, topic: &str) -> String {
        format!("{{{}:h:{topic}}}", self.prefix)
    }

    /// The base of an event-log partition's keys (`{P:ev:N}`: `:s` stream, `:l` lease, `:q:KEY`
    /// counters).
    pub(crate) fn events(&self, partition: usize) -> String {
        format!("{{{}:ev:{partition}}}", self.prefix)
    }

    /// The set of nodes that beat (`P:nodes`), where survivors look for dead ones.
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// The base of a node's keys (`{P:N:NODE}`).
    pub(crate) fn node(&self, node: &str) -> String {
        format!("{{{}:N:{node}}}", self.prefix)
    }

    /// A node's liveness keys: `:a` alive, `:k` tracked, `:c` claim, `:x` tombstone (see
    /// `scripts::NODE_BEAT`).
    pub(crate) fn node_keys(&self, node: &str) -> [String; 4] {
        let base = self.node(node);
        [format!("{base}:a"), format!("{base}:k"), format!("{base}:c"), format!("{base}:x")]
    }

    /// A node's last beat's token and verdict (`{P:N:NODE}:v`, see `scripts::NODE_BEAT`).
    pub(crate) fn node_verdict(&self, node: &str) -> String {
        format!("{}:v", self.node(node))
    }

    /// The set of a node's entries of one kind (`{P:N:NODE}:p` presence, `:u` users), members
    /// as in the owners' sets ([`member`]).
    pub(crate) fn node_index(&self, node: &str, kind: char) -> String {
        format!("{}:{kind}", self.node(node))
    }
}

/// How an entry is named in its owner's set: kind, key length, key, connection.
pub(crate) fn member(kind: char, key: &str, conn: &str) -> String {
    format!("{kind}{}:{key}{conn}", key.len())
}

/// The inverse of [`member`].
pub(crate) fn parse_member(m: &str) -> Option<(char, &str, &str)> {
    let kind = m.chars().next().filter(char::is_ascii_alphabetic)?;
    let rest = &m[1..];
    let (len, rest) = rest.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let key = rest.get(..len)?;
    Some((kind, key, &rest[len..]))
}

/// This owner's live entries, written again if Redis loses them.
#[derive(Default)]
struct Mirror {
    next: u64,
    presence: HashMap<(String, String), (u64, Bytes)>,
    users: HashMap<(String, String), (u64, NodeId)>,
}

/// What this process knows about other owners.
#[derive(Default)]
struct Liveness {
    /// Owners whose heartbeat key was gone: dead for good.
    dead: HashSet<String>,
    /// Owners seen alive, and when.
    alive: HashMap<String, Instant>,
}

/// A node's liveness in Redis (`scripts::NODE_STATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeState {
    /// Its liveness is current.
    Alive,
    /// Its liveness ran out; nobody claimed its cleanup.
    Lapsed,
    /// Its liveness ran out and a survivor claimed its cleanup (it may be evicting its entries).
    Claimed,
    /// Never beat, detached, or Redis lost its keys.
    Unknown,
    /// Its cleanup finished (a tombstone; until its next beat).
    Cleaned,
}

/// At most this many dead owners are remembered (then the cache starts again).
const DEAD_CACHE: usize = 10_000;
/// At most this many entries of dead owners are swept per owner and heartbeat.
const SWEEP_BATCH: usize = 500;

pub(crate) struct Core {
    /// Commands (multiplexed; reconnects by itself; on a cluster, routed by slot).
    pub(crate) conn: Conn,
    pub(crate) keys: Keys,
    /// This process's current owner id (random), the name of its heartbeat key. It changes when
    /// the heartbeat key was found gone.
    owner: Mutex<Arc<str>>,
    pub(crate) options: RedisOptions,
    mirror: Mutex<Mirror>,
    liveness: Mutex<Liveness>,
    /// Cluster: each master's address and run id at the last heartbeat (a master that restarted
    /// without persistence lost this owner's entries in its slots).
    masters: Mutex<Option<HashMap<String, String>>>,
    /// Entry writes take it shared; rewriting lost entries takes it exclusively, so that a leave
    /// racing with the rewrite cannot be undone by it, and no entry is written under an owner
    /// id being replaced.
    gate: tokio::sync::RwLock<()>,
}

pub(crate) fn unavailable(e: &redis::RedisError) -> BackendError {
    BackendError::Unavailable(format!("redis: {e}"))
}

/// What a failed request means (the rule in the crate documentation, "Failures"): the request
/// certainly did not run (`Unavailable`: no connection, connection refused, Redis answered with
/// an error), or it was (or may have been) sent and its answer was lost (`Indeterminate`: a
/// timeout, a connection that dropped, any other I/O failure).
pub(crate) fn failure(e: &redis::RedisError) -> BackendError {
    use redis::ErrorKind;
    let not_run = e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(_)
                | ErrorKind::Extension
                | ErrorKind::AuthenticationFailed
                | ErrorKind::InvalidClientConfig
                | ErrorKind::Client
                | ErrorKind::ClusterConnectionNotFound
                | ErrorKind::UnexpectedReturnType
                | ErrorKind::RESP3NotSupported
        );
    if not_run { unavailable(e) } else { BackendError::Indeterminate(format!("redis: {e}")) }
}

/// A read's failure: nothing to apply, so never indeterminate.
pub(crate) fn read_failure(e: BackendError) -> BackendError {
    match e {
        BackendError::Indeterminate(why) => BackendError::Unavailable(why),
        other => other,
    }
}

fn new_owner() -> Arc<str> {
    Arc::from(format!("{:016x}", rand::random::<u64>()))
}

impl Core {
    pub(crate) async fn connect(target: &Target, options: RedisOptions) -> Result<Arc<Self>, ConnectError> {
        let conn = target.command_connection(&options).await?;
        let core = Arc::new(Self {
            conn,
            keys: Keys::new(&options.prefix),
            owner: Mutex::new(new_owner()),
            options,
            mirror: Mutex::new(Mirror::default()),
            liveness: Mutex::new(Liveness::default()),
            masters: Mutex::new(None),
            gate: tokio::sync::RwLock::new(()),
        });
        let owner = core.owner();
        core.claim(&owner).await.map_err(|e| ConnectError::Unreachable(e.to_string()))?;
        if target.is_cluster() {
            // The masters' run ids to compare the next heartbeats with.
            core.masters_changed().await;
        }
        tokio::spawn(heartbeat(Arc::downgrade(&core)));
        Ok(core)
    }

    /// This process's current owner id.
    pub(crate) fn owner(&self) -> Arc<str> {
        self.owner.lock().clone()
    }

    /// Runs one Redis operation under the configured timeout.
    pub(crate) async fn run<T>(
        &self,
        f: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BackendError> {
        match tokio::time::timeout(self.options.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(failure(&e)),
            Err(_) => Err(BackendError::Indeterminate("redis: timed out".to_owned())),
        }
    }

    /// Runs one command.
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BackendError> {
        let mut conn = self.conn.clone();
        self.run(cmd.query_async(&mut conn)).await
    }

    /// Runs one script.
    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let mut conn = self.conn.clone();
        self.run(call.invoke_async(&mut conn)).await
    }

    /// Shared access for entry writes (see `gate`).
    pub(crate) async fn write_gate(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    fn millis(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Creates a new owner's heartbeat key and registers the owner.
    async fn claim(&self, owner: &str) -> Result<(), BackendError> {
        let mut set = redis::cmd("SET");
        set.arg(self.keys.alive(owner)).arg(1).arg("PX").arg(Self::millis(self.options.owner_ttl)).arg("NX");
        let created: Option<String> = self.query(&set).await?;
        if created.is_none() {
            return Err(BackendError::Unavailable("redis: owner id already taken".to_owned()));
        }
        let _: i64 = self.query(redis::cmd("SADD").arg(self.keys.owners()).arg(owner)).await?;
        Ok(())
    }

    /// Refreshes the heartbeat (never creates it): whether the key was still there, and (on a
    /// cluster) whether a master restarted or appeared since the last beat.
    async fn beat(&self) -> Result<Beat, BackendError> {
        let owner = self.owner();
        let mut set = redis::cmd("SET");
        set.arg(self.keys.alive(&owner)).arg(1).arg("PX").arg(Self::millis(self.options.owner_ttl)).arg("XX");
        let refreshed: Option<String> = self.query(&set).await?;
        if refreshed.is_some() {
            // `P:owners` may be on another node that lost it: keep this owner listed.
            let _: i64 = self.query(redis::cmd("SADD").arg(self.keys.owners()).arg(&*owner)).await?;
        }
        let restarted = matches!(self.conn, Conn::Cluster(_)) && self.masters_changed().await;
        Ok(Beat { present: refreshed.is_some(), restarted })
    }

    /// Cluster: asks every master for its run id; true if one differs from the last answer (or a
    /// master is new). No answer is no news.
    async fn masters_changed(&self) -> bool {
        let v = self.query::<Value>(redis::cmd("INFO").arg("server")).await;
        let Ok(Value::Map(answers)) = v else {
            return false;
        };
        let mut now = HashMap::new();
        for (addr, info) in answers {
            let (Ok(addr), Ok(info)) = (String::from_redis_value(addr), String::from_redis_value(info))
            else {
                return false;
            };
            let Some(run_id) = info.lines().find_map(|l| l.strip_prefix("run_id:")) else { return false };
            now.insert(addr, run_id.trim().to_owned());
        }
        let mut masters = self.masters.lock();
        let changed =
            masters.as_ref().is_some_and(|before| now.iter().any(|(addr, id)| before.get(addr) != Some(id)));
        *masters = Some(now);
        changed
    }

    /// Lists an entry in its owner's set (sent with the entry's write; a member naming no entry
    /// is harmless: the sweep checks the entry's owner before removing it).
    pub(crate) async fn add_owned(&self, owner: &str, member: &str) -> Result<(), BackendError> {
        let _: i64 = self.query(redis::cmd("SADD").arg(self.keys.owned(owner)).arg(member)).await?;
        Ok(())
    }

    /// Unlists entries from the sets they are listed in: `(set, member)` pairs, one `SREM` per
    /// set, all at once (the sets may live on different masters).
    pub(crate) async fn unlist(&self, listed: Vec<(String, String)>) -> Result<(), BackendError> {
        let mut by_set: HashMap<String, Vec<String>> = HashMap::new();
        for (set, member) in listed {
            by_set.entry(set).or_default().push(member);
        }
        let calls = by_set.into_iter().map(|(set, members)| {
            let cmd = redis::cmd("SREM").arg(set).arg(members).to_owned();
            async move { self.query::<i64>(&cmd).await }
        });
        for r in futures_util::future::join_all(calls).await {
            r?;
        }
        Ok(())
    }

    /// The state of `node`'s liveness (one script on its slot).
    pub(crate) async fn node_state(&self, node: &str) -> Result<NodeState, BackendError> {
        let mut call = scripts::NODE_STATE.prepare_invoke();
        call.key(&self.keys.node_keys(node)[..]);
        let state: i64 = self.invoke(&call).await.map_err(read_failure)?;
        Ok(match state {
            0 => NodeState::Alive,
            1 => NodeState::Lapsed,
            2 => NodeState::Claimed,
            4 => NodeState::Cleaned,
            _ => NodeState::Unknown,
        })
    }

    /// Which of `owners` are dead. This owner is alive; `fresh` ignores cached alive verdicts.
    pub(crate) async fn dead_among<'a>(
        &self,
        owners: impl IntoIterator<Item = &'a str>,
        fresh: bool,
    ) -> Result<HashSet<String>, BackendError> {
        let me = self.owner();
        let mut dead = HashSet::new();
        let mut unknown = Vec::new();
        {
            let l = self.liveness.lock();
            let now = Instant::now();
            for o in owners {
                if o == &*me || dead.contains(o) || unknown.contains(&o) {
                    continue;
                }
                if l.dead.contains(o) {
                    dead.insert(o.to_owned());
                } else if fresh
                    || l.alive.get(o).is_none_or(|seen| now.duration_since(*seen) > self.options.heartbeat)
                {
                    unknown.push(o);
                }
            }
        }
        if unknown.is_empty() {
            return Ok(dead);
        }
        let checks = unknown.iter().map(|o| {
            let cmd = redis::cmd("EXISTS").arg(self.keys.alive(o)).to_owned();
            async move { self.query::<i64>(&cmd).await }
        });
        let answers = futures_util::future::join_all(checks).await;
        let mut l = self.liveness.lock();
        let now = Instant::now();
        for (o, exists) in unknown.into_iter().zip(answers) {
            if exists? == 0 {
                if l.dead.len() >= DEAD_CACHE {
                    l.dead.clear();
                }
                l.dead.insert(o.to_owned());
                l.alive.remove(o);
                dead.insert(o.to_owned());
            } else {
                l.alive.insert(o.to_owned(), now);
            }
        }
        Ok(dead)
    }

    /// Removes the entries of owners whose heartbeat expired, using their sets; returns how many
    /// members were looked at.
    async fn sweep(&self) -> Result<u64, BackendError> {
        let owners: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(self.keys.owners())).await?;
        let dead = self.dead_among(owners.iter().map(String::as_str), true).await?;
        let mut swept = 0;
        for o in dead {
            let members: Vec<String> =
                self.query(redis::cmd("SPOP").arg(self.keys.owned(&o)).arg(SWEEP_BATCH)).await?;
            swept += members.len() as u64;
            let mut by_object: HashMap<(char, &str), Vec<&str>> = HashMap::new();
            for m in &members {
                if let Some((kind, key, conn)) = parse_member(m) {
                    by_object.entry((kind, key)).or_default().push(conn);
                }
            }
            for ((kind, key), conns) in by_object {
                let (script, keys) = match kind {
                    'p' => (&*scripts::PRESENCE_PRUNE, self.keys.presence_keys(key).to_vec()),
                    'u' => (&*scripts::USERS_PRUNE, self.keys.user_keys(key).to_vec()),
                    _ => continue,
                };
                let mut call = script.prepare_invoke();
                call.key(keys);
                for conn in conns {
                    call.arg(conn).arg(&o);
                }
                let removed: Vec<Value> = self.invoke(&call).await?;
                self.unlist_pruned(kind, key, removed).await?;
            }
            if members.len() < SWEEP_BATCH {
                let left: i64 = self.query(redis::cmd("SCARD").arg(self.keys.owned(&o))).await?;
                if left == 0 {
                    let _: i64 = self.query(redis::cmd("SREM").arg(self.keys.owners()).arg(&o)).await?;
                }
            }
        }
        Ok(swept)
    }

    /// The entries of a presence key (`kind` `'p'`) or of a user (`'u'`) whose owners are alive,
    /// as `(conn, info or node)` pairs: `list` reads them with their owners, and `prune` removes
    /// (and this unlists) those of dead owners, if any.
    pub(crate) async fn live_entries(
        &self,
        list: &redis::Script,
        prune: &redis::Script,
        keys: &[String],
        kind: char,
        name: &str,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, BackendError> {
        let mut call = list.prepare_invoke();
        call.key(keys);
        let entries = triples(self.invoke(&call).await?);
        let dead = self.dead_among(entries.iter().map(|(_, _, o)| o.as_str()), false).await?;
        if dead.is_empty() {
            return Ok(entries.into_iter().map(|(conn, second, _)| (conn, second)).collect());
        }
        let mut pruning = prune.prepare_invoke();
        pruning.key(keys);
        let mut live = Vec::with_capacity(entries.len());
        for (conn, second, owner) in entries {
            if dead.contains(&owner) {
                pruning.arg(conn).arg(owner);
            } else {
                live.push((conn, second));
            }
        }
        let removed: Vec<Value> = self.invoke(&pruning).await?;
        self.unlist_pruned(kind, name, removed).await?;
        Ok(live)
    }

    /// Unlists entries a prune script removed (dead owners' entries, dropped without a word)
    /// from their nodes' sets: `removed` is what `PRESENCE_PRUNE` (conns) or `USERS_PRUNE`
    /// (conn, node pairs) returned.
    pub(crate) async fn unlist_pruned(
        &self,
        kind: char,
        key: &str,
        removed: Vec<Value>,
    ) -> Result<(), BackendError> {
        let listed: Vec<(String, String)> = match kind {
            'p' => removed
                .into_iter()
                .filter_map(|c| self.presence_index(key, &String::from_utf8(bytes_of(c)).ok()?))
                .collect(),
            _ => pairs(removed)
                .filter_map(|(c, n)| {
                    Some(self.user_index(key, &String::from_utf8(c).ok()?, std::str::from_utf8(&n).ok()?))
                })
                .collect(),
        };
        if listed.is_empty() { Ok(()) } else { self.unlist(listed).await }
    }

    /// Where a presence entry is listed for its node (none for a connection id that names no
    /// node, see [`switchboard_core::node_of`]): the set and the member.
    pub(crate) fn presence_index(&self, key: &str, conn: &str) -> Option<(String, String)> {
        let node = switchboard_core::node_of(conn)?;
        Some((self.keys.node_index(node, 'p'), member('p', key, conn)))
    }

    /// Where a user's connection is listed for its node: the set and the member.
    pub(crate) fn user_index(&self, user: &str, conn: &str, node: &str) -> (String, String) {
        (self.keys.node_index(node, 'u'), member('u', user, conn))
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

    /// Forgets this process's entries of `node`: survivors declared it dead and removed them
    /// (announcing their leaves), so they must never be written again from here. Whatever the
    /// node still holds is the framework's to close or to register again. Waits for a rewrite in
    /// progress, so that none of them is written after this returns.
    pub(crate) async fn forget_node(&self, node: &str) -> usize {
        let _gate = self.gate.write().await;
        self.drop_mirrored(|n| n == node)
    }

    /// Drops the mirrored entries whose node matches; how many.
    fn drop_mirrored(&self, gone: impl Fn(&str) -> bool) -> usize {
        let mut m = self.mirror.lock();
        let before = m.presence.len() + m.users.len();
        m.presence.retain(|(_, conn), _| !switchboard_core::node_of(conn).is_some_and(&gone));
        m.users.retain(|_, (_, node)| !gone(node));
        before - m.presence.len() - m.users.len()
    }

    /// Takes a new owner id (the current one is dead for good: its heartbeat key was gone) and
    /// writes this owner's entries again under it.
    async fn renew(&self) -> Result<usize, BackendError> {
        let _gate = self.gate.write().await;
        let owner = new_owner();
        self.claim(&owner).await?;
        let old = std::mem::replace(&mut *self.owner.lock(), owner);
        self.liveness.lock().dead.insert(old.to_string());
        self.rewrite().await
    }

    /// Writes this owner's entries again under the same owner id (a master lost some of them).
    async fn rewrite_all(&self) -> Result<usize, BackendError> {
        let _gate = self.gate.write().await;
        self.rewrite().await
    }

    /// Writes this owner's entries again (call with the gate held exclusively), except those of
    /// nodes whose cleanup survivors claimed or finished: their entries were removed on purpose
    /// (and their leaves announced), so they are dropped from the mirror instead.
    async fn rewrite(&self) -> Result<usize, BackendError> {
        let nodes: HashSet<String> = {
            let m = self.mirror.lock();
            m.presence
                .keys()
                .filter_map(|(_, conn)| switchboard_core::node_of(conn))
                .chain(m.users.values().map(|(_, node)| &**node))
                .map(str::to_owned)
                .collect()
        };
        let mut cleaned = HashSet::new();
        for node in nodes {
            if matches!(self.node_state(&node).await?, NodeState::Claimed | NodeState::Cleaned) {
                cleaned.insert(node);
            }
        }
        if !cleaned.is_empty() {
            let dropped = self.drop_mirrored(|n| cleaned.contains(n));
            tracing::warn!(nodes = ?cleaned, entries = dropped, "not writing again the entries of nodes declared dead");
        }
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
            self.write_join(&key, &conn, &info).await?;
        }
        for (_, user, conn, node) in users {
            self.write_register(&user, &conn, &node, None).await?;
        }
        Ok(count)
    }
}

/// The entry writes, without the gate or the local copy: what `Presence::join` and
/// `Users::register` do, and what the rewrite does again when Redis lost the entries.
impl Core {
    /// The presence join script, listed in this owner's set in the same round trip.
    pub(crate) async fn write_join(&self, key: &str, conn: &str, info: &[u8]) -> Result<(), BackendError> {
        let owner = self.owner();
        let mut call = scripts::PRESENCE_JOIN.prepare_invoke();
        call.key(&self.keys.presence_keys(key)[..]).arg(conn).arg(info).arg(&*owner);
        // Listed in the owner's and the node's sets and written in one round trip (the sets
        // first on one Redis, where all go down one connection in this order).
        let member = member('p', key, conn);
        let by_node = async {
            match self.presence_index(key, conn) {
                Some((set, m)) => self.query::<i64>(redis::cmd("SADD").arg(set).arg(m)).await.map(drop),
                None => Ok(()),
            }
        };
        let (listed, indexed, written) =
            tokio::join!(self.add_owned(&owner, &member), by_node, self.invoke::<i64>(&call));
        listed?;
        indexed?;
        written?;
        Ok(())
    }

    /// The user register script.
    ///
    /// With a cap, the owners of the user's entries are checked first (fresh), and the script is
    /// told which are dead; owners it was not told about count as alive.
    pub(crate) async fn write_register(
        &self,
        user: &str,
        conn: &str,
        node: &str,
        cap: Option<(usize, CapPolicy)>,
    ) -> Result<Registration, BackendError> {
        let (limit, policy) = match cap {
            Some((n, CapPolicy::RefuseNew)) => (n.max(1), "r"),
            Some((n, _)) => (n.max(1), "e"),
            None => (0, "e"),
        };
        let keys = self.keys.user_keys(user);
        let dead = if cap.is_some() {
            let values: Vec<Vec<u8>> = self.query(redis::cmd("HVALS").arg(&keys[1])).await?;
            let owners: Vec<&str> = values
                .iter()
                .filter_map(|v| std::str::from_utf8(v).ok()?.split_once('\n').map(|(o, _)| o))
                .collect();
            self.dead_among(owners, true).await?
        } else {
            HashSet::new()
        };
        let owner = self.owner();
        let mut call = scripts::USERS_REGISTER.prepare_invoke();
        call.key(&keys[..]).arg(conn).arg(node).arg(&*owner).arg(limit).arg(policy);
        for o in &dead {
            call.arg(o);
        }
        // Listed in the owner's and the node's sets and written in one round trip (as in
        // `write_join`).
        let listed = member('u', user, conn);
        let (index, index_member) = self.user_index(user, conn, node);
        let by_node = async { self.query::<i64>(redis::cmd("SADD").arg(&index).arg(&index_member)).await };
        let (added, indexed, reply) =
            tokio::join!(self.add_owned(&owner, &listed), by_node, self.invoke::<Vec<Value>>(&call));
        let mut reply = reply?;
        added?;
        indexed?;
        if reply.is_empty() {
            return Err(BackendError::Unavailable("redis: empty answer from the register script".to_owned()));
        }
        let status = reply.remove(0);
        if matches!(&status, Value::BulkString(s) if s == b"limit") {
            // Not registered: unlist it again (harmless if this fails: a member without an entry).
            let _ = self.unlist(vec![(self.keys.owned(&owner), listed), (index, index_member)]).await;
            return Err(BackendError::Limit);
        }
        let mut reply = reply.into_iter();
        let connections = reply.next().and_then(|v| usize::from_redis_value(v).ok()).ok_or_else(|| {
            BackendError::Unavailable("redis: no count in the answer of the register script".to_owned())
        })?;
        let mut evicted = Vec::new();
        let mut unlisted = Vec::new();
        for (conn, node, owner) in triples(reply.collect()) {
            let (conn, node) = (text(conn)?, text(node)?);
            unlisted.push(self.user_index(user, &conn, &node));
            if !owner.is_empty() {
                unlisted.push((self.keys.owned(&owner), member('u', user, &conn)));
            }
            evicted.push(ConnRef { conn: conn.into(), node: node.into() });
        }
        if !unlisted.is_empty() {
            // Registered already: failing to unlist the evicted leaves members without entries
            // (harmless), not an error for the caller.
            if let Err(e) = self.unlist(unlisted).await {
                tracing::debug!(error = %e, "could not unlist evicted connections");
            }
        }
        let mut registration = Registration::default();
        registration.evicted = evicted;
        registration.connections = connections;
        Ok(registration)
    }
}

/// A failure in the middle of an eviction: what this call removed already is reported (nobody
/// else will: it is gone), the rest stays listed for the next call; an error only if nothing
/// was removed.
pub(crate) fn partial<T>(evicted: Vec<T>, e: BackendError) -> Result<Vec<T>, BackendError> {
    if evicted.is_empty() {
        Err(e)
    } else {
        tracing::warn!(error = %e, removed = evicted.len(), "evicting a node's entries stopped part way; call again");
        Ok(evicted)
    }
}

/// `[a, b, owner, a, b, owner…]` as triples (the owner as text; not UTF-8: empty, never dead).
pub(crate) fn triples(flat: Vec<Value>) -> Vec<(Vec<u8>, Vec<u8>, String)> {
    let mut it = flat.into_iter().map(bytes_of);
    let mut out = Vec::new();
    while let (Some(a), Some(b), Some(o)) = (it.next(), it.next(), it.next()) {
        out.push((a, b, String::from_utf8(o).unwrap_or_default()));
    }
    out
}

fn bytes_of(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

/// `[a, b, a, b…]` of bulk strings as pairs.
pub(crate) fn pairs(flat: Vec<Value>) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
    let mut it = flat.into_iter().map(bytes_of);
    std::iter::from_fn(move || Some((it.next()?, it.next()?)))
}

/// A stored id as text.
pub(crate) fn text(bytes: Vec<u8>) -> Result<String, BackendError> {
    String::from_utf8(bytes)
        .map_err(|_| BackendError::Unavailable("redis: a stored id is not UTF-8".to_owned()))
}

/// What a heartbeat found.
struct Beat {
    /// The heartbeat key was still there (else this owner id is dead).
    present: bool,
    /// A cluster master restarted or appeared (it may have lost entries of this owner).
    restarted: bool,
}

async fn heartbeat(weak: Weak<Core>) {
    let interval = match weak.upgrade() {
        Some(core) => core.options.heartbeat,
        None => return,
    };
    // Owed when found necessary and not done yet (Redis failed meanwhile).
    let (mut owed_renew, mut owed_rewrite) = (false, false);
    loop {
        tokio::time::sleep(interval).await;
        let Some(core) = weak.upgrade() else { return };
        if !owed_renew {
            match core.beat().await {
                Ok(Beat { present: true, restarted }) => {
                    if restarted {
                        tracing::warn!("a Redis master restarted: writing this node's entries again");
                        owed_rewrite = true;
                    }
                }
                Ok(Beat { present: false, .. }) => {
                    tracing::warn!(owner = %core.owner(), "heartbeat key was gone: writing this node's entries again under a new owner id");
                    owed_renew = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed");
                    continue;
                }
            }
        }
        let result = if owed_renew {
            core.renew().await
        } else if owed_rewrite {
            core.rewrite_all().await
        } else {
            Ok(0)
        };
        match result {
            Ok(n) => {
                if owed_renew || owed_rewrite {
                    tracing::debug!(entries = n, owner = %core.owner(), "entries written again");
                }
                (owed_renew, owed_rewrite) = (false, false);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not write this node's entries again");
                continue;
            }
        }
        match core.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(entries = n, "swept entries of dead nodes"),
            Err(e) => tracing::warn!(error = %e, "could not sweep dead nodes"),
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
        assert_eq!(k.presence("~directory"), "{sb:p:~directory}");
        assert_eq!(k.user("ada"), "{sb:u:ada}");
        assert_eq!(k.history("chat/a"), "{sb:h:chat/a}");
        assert_eq!(k.events(7), "{sb:ev:7}");
        assert_eq!(k.alive("o1"), "{sb:o:o1}:a");
        assert_eq!(k.owned("o1"), "{sb:o:o1}:e");
        assert_eq!(k.nodes(), "sb:nodes");
        assert_eq!(k.node_keys("n1"), ["{sb:N:n1}:a", "{sb:N:n1}:k", "{sb:N:n1}:c", "{sb:N:n1}:x"]);
        assert_eq!(k.node_verdict("n1"), "{sb:N:n1}:v");
        assert_eq!(k.node_index("n1", 'p'), "{sb:N:n1}:p");
        assert_eq!(k.node_index("n1", 'u'), "{sb:N:n1}:u");
        // A key may contain ':' and digits.
        assert_eq!(member('p', "chat:1/a", "c.7"), "p8:chat:1/ac.7");
        assert_eq!(member('u', "", "c"), "u0:c");
        assert_eq!(parse_member("p8:chat:1/ac.7"), Some(('p', "chat:1/a", "c.7")));
        assert_eq!(parse_member("u0:c"), Some(('u', "", "c")));
        assert_eq!(parse_member("u9:c"), None);
        assert_eq!(parse_member("x"), None);
    }

    /// Every key of one object is in one hash slot, whatever the name holds.
    #[test]
    fn one_slot_per_object() {
        fn tag(key: &str) -> &str {
            let open = key.find('{').unwrap();
            let close = open + 1 + key[open + 1..].find('}').unwrap();
            assert!(close > open + 1, "a non-empty hash tag in {key}");
            &key[open + 1..close]
        }
        let k = Keys::new("sb");
        for name in ["chat/a", "", "}", "{", "a}b{c}", "{x}"] {
            for base in [k.presence(name), k.user(name), k.history(name), k.alive(name), k.owned(name)] {
                let base = base.trim_end_matches(":a").trim_end_matches(":e");
                assert_eq!(tag(&format!("{base}:z")), tag(&format!("{base}:n")), "{base}");
            }
            // A node's liveness keys, its last verdict and its sets: one slot.
            let mut node: Vec<String> = k.node_keys(name).to_vec();
            node.extend([k.node_verdict(name), k.node_index(name, 'p'), k.node_index(name, 'u')]);
            assert!(node.iter().all(|key| tag(key) == tag(&node[0])), "{node:?}");
        }
    }
}
