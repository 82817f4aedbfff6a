//! The topic table: this node's topics with a local subscriber, each with its subscribers, its
//! sequencer and its held fan-out. State only; what acts on it is `deliver.rs`, `publish.rs`
//! and `subscribe.rs`.
//!
//! A topic's locks are taken in the crate's lock order (`base/ordered.rs`): the table's shard,
//! then `sequencer`, `pending`, `held`, `subs`, then the subscribers' queues.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use switchboard_protocol::Topic;

use super::record::Record;
use super::sequencer::Sequencer;
use super::settings::TopicSettings;
use crate::base::ordered::{self, rank};
use crate::base::sharded::Sharded;
use crate::conn::ConnShared;

/// Publications (with their streams and sequence numbers) held for a subscription that is reading
/// history.
pub(super) type Buffered = Vec<(Arc<str>, u64, Record)>;

/// A connection the topic keeps apart from its other subscribers.
pub(super) enum Apart {
    /// Its subscription is reading history: what is released meanwhile is buffered for it.
    Reading(Buffered),
    /// A live subscriber that was told another epoch than the sequencer's (its `~sub` reply came
    /// from history while the stream restarted): its next delivery carries the epoch.
    Told(Arc<str>),
}

/// Local subscribers of one topic, and what its publications pass through on their way to them.
pub(crate) struct TopicState {
    /// The name, shared with the table's key and with every subscriber's topic list.
    pub(super) name: Topic,
    pub(super) settings: TopicSettings,
    /// Puts publications in `seq` order.
    pub(super) sequencer: ordered::Mutex<Sequencer, { rank::SEQUENCER }>,
    /// Subscriptions still reading history, with what was published meanwhile, and subscribers
    /// that were told another epoch. (A list, not a map: it is empty nearly always, and an empty
    /// `Vec` is half the size.)
    pub(super) pending: ordered::Mutex<Vec<(Arc<str>, Apart)>, { rank::PENDING }>,
    /// Publications released by the sequencer whose fan-out waits for the cork of the thread
    /// that released them (see `deliver.rs`).
    pub(super) held: ordered::Mutex<Vec<(u64, Record)>, { rank::HELD }>,
    pub(super) subs: ordered::RwLock<Subscribers, { rank::SUBSCRIBERS }>,
}

impl TopicState {
    fn new(name: Topic, settings: TopicSettings) -> Self {
        Self {
            name,
            settings,
            sequencer: ordered::Mutex::new(Sequencer::default()),
            pending: ordered::Mutex::new(Vec::new()),
            held: ordered::Mutex::new(Vec::new()),
            subs: ordered::RwLock::new(Subscribers::Few(Vec::new())),
        }
    }

    fn is_unused(&self) -> bool {
        let pending = self.pending.lock();
        pending.is_empty() && self.subs.read().is_empty()
    }

    /// Forgets a subscription that was reading history.
    pub(super) fn drop_pending(&self, conn: &str) {
        let mut pending = self.pending.lock();
        pending.retain(|(id, _)| **id != *conn);
        if pending.is_empty() {
            *pending = Vec::new();
        }
    }
}

/// A topic's local subscribers: a list while they are few (a topic of one connection costs
/// one pointer, not a hash table), a map by connection id beyond.
pub(crate) enum Subscribers {
    Few(Vec<Arc<ConnShared>>),
    /// Boxed: the list is the usual case, and the enum stays the size of a `Vec`.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Arc<str>, Arc<ConnShared>>>),
}

impl Subscribers {
    /// Up to this many, a list.
    const FEW: usize = 16;

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Few(list) => list.len(),
            Self::Many(map) => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<ConnShared>> {
        let (list, map) = match self {
            Self::Few(list) => (Some(list.iter()), None),
            Self::Many(map) => (None, Some(map.values())),
        };
        list.into_iter().flatten().chain(map.into_iter().flatten())
    }

    pub(super) fn insert(&mut self, conn: &Arc<ConnShared>) {
        match self {
            Self::Few(list) => {
                if list.iter().any(|c| c.id == conn.id) {
                    return;
                }
                if list.len() < Self::FEW {
                    if list.capacity() == 0 {
                        list.reserve_exact(1);
                    }
                    list.push(conn.clone());
                } else {
                    let mut map: HashMap<_, _> = list.drain(..).map(|c| (c.id.clone(), c)).collect();
                    map.insert(conn.id.clone(), conn.clone());
                    *self = Self::Many(Box::new(map));
                }
            }
            Self::Many(map) => {
                map.insert(conn.id.clone(), conn.clone());
            }
        }
    }

    pub(super) fn remove(&mut self, id: &str) {
        match self {
            Self::Few(list) => {
                list.retain(|c| &*c.id != id);
                if list.is_empty() {
                    *list = Vec::new();
                }
            }
            Self::Many(map) => {
                map.remove(id);
                if map.len() <= Self::FEW / 2 {
                    *self = Self::Few(map.drain().map(|(_, c)| c).collect());
                }
            }
        }
    }
}

/// The topic table (see the module's documentation).
pub(crate) struct Topics {
    map: Sharded<Arc<TopicState>, { rank::TOPIC_TABLE }>,
    /// Striped order locks: subscriptions of one topic are serialized.
    order: Box<[tokio::sync::Mutex<()>]>,
    hasher: RandomState,
}

impl Topics {
    pub(crate) fn new() -> Self {
        Self {
            map: Sharded::new(64),
            order: (0..256).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }

    /// The lock that serializes the subscriptions of `topic` (held across their history reads).
    pub(super) fn order(&self, topic: &str) -> &tokio::sync::Mutex<()> {
        &self.order[(self.hasher.hash_one(topic) as usize) % self.order.len()]
    }

    pub(crate) fn get(&self, topic: &str) -> Option<Arc<TopicState>> {
        self.map.shard(topic).read().get(topic).cloned()
    }

    /// Topics with a local subscriber (or one reading history).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every topic and its local subscribers.
    pub(crate) fn names(&self) -> Vec<(Arc<str>, usize)> {
        self.map
            .shards()
            .iter()
            .flat_map(|s| {
                s.read().iter().map(|(t, st)| (t.clone(), st.subs.read().len())).collect::<Vec<_>>()
            })
            .collect()
    }

    /// The topic's state (made with `settings` if it has none yet), with `conn` added to its
    /// subscriptions reading history; and whether the state is new.
    pub(super) fn enter(
        &self,
        topic: &Topic,
        settings: TopicSettings,
        conn: &Arc<str>,
    ) -> (Arc<TopicState>, bool) {
        let mut shard = self.map.shard(topic).write();
        let created = !shard.contains_key(topic.as_str());
        let state = shard
            .entry(topic.shared())
            .or_insert_with(|| Arc::new(TopicState::new(topic.clone(), settings)))
            .clone();
        state.pending.lock().push((conn.clone(), Apart::Reading(Vec::new())));
        (state, created)
    }

    /// Takes `conn` out of `topic` (a subscriber, or a subscription reading history): `before`
    /// runs first, on the state, under the table's lock (to queue what the topic holds for the
    /// subscribers of the moment). Returns the topic's settings and whether it has no local
    /// subscriber left (then it is gone from the table), or `None` if the topic is unknown.
    pub(super) fn leave(
        &self,
        topic: &str,
        conn: &str,
        before: impl FnOnce(&TopicState),
    ) -> Option<(TopicSettings, bool)> {
        let mut shard = self.map.shard(topic).write();
        let state = shard.get(topic)?;
        let settings = state.settings;
        state.drop_pending(conn);
        before(state);
        state.subs.write().remove(conn);
        let last = state.is_unused();
        if last {
            shard.remove(topic);
        }
        Some((settings, last))
    }
}
