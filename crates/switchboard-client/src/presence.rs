//! Presence: the directory (`~who` + `~peer`) and a topic's presence (`~who {topic}` +
//! `~presence`), each kept as a live [`Roster`].

use std::collections::BTreeMap;
use std::sync::Arc;

use switchboard_protocol::Id;
use switchboard_protocol::wire::{Peer, PeerChange, PresenceDiff};
use tokio::sync::{oneshot, watch};

use crate::error::{ClientError, CloseReason};

/// Peers by connection id.
pub type PeerMap = BTreeMap<String, Peer>;

/// A live set of peers: the directory ([`Client::directory`]) or a topic's presence
/// ([`Subscription::presence`]).
///
/// The client loads it with `~who` at every (re)connection and applies the server's changes
/// (`~peer` for the directory, `~presence` for a topic) as they come, so [`Roster::peers`] is
/// always the server's view as of the last frame received. Cloning is cheap.
///
/// [`Client::directory`]: crate::Client::directory
/// [`Subscription::presence`]: crate::Subscription::presence
///
/// ```no_run
/// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
/// let mut directory = client.directory().await?;
/// loop {
///     let aliases: Vec<_> = directory.peers().into_iter().filter_map(|p| p.alias).collect();
///     println!("online: {aliases:?}");
///     directory.changed().await?;
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Roster {
    rx: watch::Receiver<Arc<PeerMap>>,
}

impl Roster {
    /// The peers now, ordered by connection id.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let directory = client.directory().await?;
    /// for peer in directory.peers() {
    ///     println!("{} ({:?})", peer.conn, peer.alias);
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn peers(&self) -> Vec<Peer> {
        self.rx.borrow().values().cloned().collect()
    }

    /// The peers now, shared (no copy).
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let snapshot = client.directory().await?.snapshot();
    /// println!("{} peers", snapshot.len());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Arc<PeerMap> {
        Arc::clone(&self.rx.borrow())
    }

    /// One peer by connection id.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let directory = client.directory().await?;
    /// let me = client.welcome().unwrap().conn;
    /// assert!(directory.get(&me).is_some());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn get(&self, conn: &str) -> Option<Peer> {
        self.rx.borrow().get(conn).cloned()
    }

    /// The peers that have this alias.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let bobs = client.directory().await?.by_alias("bob");
    /// println!("bob has {} connections", bobs.len());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn by_alias(&self, alias: &str) -> Vec<Peer> {
        self.rx.borrow().values().filter(|p| p.alias.as_deref() == Some(alias)).cloned().collect()
    }

    /// How many peers there are.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// assert!(client.directory().await?.len() >= 1);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.rx.borrow().len()
    }

    /// Whether there is no peer.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// assert!(!client.directory().await?.is_empty());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rx.borrow().is_empty()
    }

    /// Waits for the next change.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let mut directory = client.directory().await?;
    /// directory.changed().await?;
    /// println!("now {} peers", directory.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Closed`] once the roster is no longer kept (the client closed, or the
    /// subscription ended).
    pub async fn changed(&mut self) -> Result<(), ClientError> {
        self.rx.changed().await.map_err(|_| ClientError::Closed(CloseReason::Requested))
    }

    /// Waits until `pred` holds for the peers, and returns them.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let mut directory = client.directory().await?;
    /// directory.wait_for(|peers| peers.values().any(|p| p.alias.as_deref() == Some("bob"))).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Closed`] once the roster is no longer kept.
    pub async fn wait_for(
        &mut self,
        mut pred: impl FnMut(&PeerMap) -> bool,
    ) -> Result<Arc<PeerMap>, ClientError> {
        let map =
            self.rx.wait_for(|m| pred(m)).await.map_err(|_| ClientError::Closed(CloseReason::Requested))?;
        Ok(Arc::clone(&map))
    }
}

/// One change: a peer is (still) there with this profile, or is gone.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Up(Peer),
    Down(String),
}

impl Change {
    pub(crate) fn from_peer(change: PeerChange) -> Self {
        if change.online { Self::Up(change.peer) } else { Self::Down(change.peer.conn) }
    }

    pub(crate) fn from_diff(diff: &PresenceDiff) -> Vec<Self> {
        let leaves = diff.leaves.iter().map(|p| Self::Down(p.conn.clone()));
        leaves.chain(diff.joins.iter().cloned().map(Self::Up)).collect()
    }
}

/// The connection task's side of a roster: the map, the `~who` in flight, and the changes
/// that arrived while it was in flight.
///
/// Changes are absolute ("this peer is there with this profile" / "is gone"), so replaying the
/// changes received between the `~who` and its reply over the reply's snapshot yields the
/// state as of the last change, whatever the server's interleaving.
pub(crate) struct PeerSet {
    map: PeerMap,
    tx: watch::Sender<Arc<PeerMap>>,
    loading: Option<Id>,
    buffered: Vec<Change>,
    loaded: bool,
    waiters: Vec<oneshot::Sender<Result<Roster, ClientError>>>,
}

impl PeerSet {
    pub(crate) fn new() -> Self {
        Self {
            map: PeerMap::new(),
            tx: watch::Sender::new(Arc::new(PeerMap::new())),
            loading: None,
            buffered: Vec::new(),
            loaded: false,
            waiters: Vec::new(),
        }
    }

    pub(crate) fn roster(&self) -> Roster {
        Roster { rx: self.tx.subscribe() }
    }

    /// Answers `waiter` with the roster once loaded (now, if it already is).
    pub(crate) fn when_loaded(&mut self, waiter: oneshot::Sender<Result<Roster, ClientError>>) {
        if self.loaded {
            let _ = waiter.send(Ok(self.roster()));
        } else {
            self.waiters.push(waiter);
        }
    }

    /// A `~who` with this id was sent.
    pub(crate) fn loading(&mut self, id: Id) {
        self.loading = Some(id);
        self.buffered.clear();
    }

    /// Whether a snapshot was received.
    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Whether a `~who` is in flight.
    pub(crate) fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// The reply to `~who` number `id`.
    pub(crate) fn on_snapshot(&mut self, id: Id, peers: Result<Vec<Peer>, ClientError>) {
        if self.loading != Some(id) {
            return;
        }
        self.loading = None;
        match peers {
            Ok(peers) => {
                self.map = peers.into_iter().map(|p| (p.conn.clone(), p)).collect();
                for change in std::mem::take(&mut self.buffered) {
                    apply(&mut self.map, change);
                }
                self.loaded = true;
                self.publish();
                for w in self.waiters.drain(..) {
                    let _ = w.send(Ok(Roster { rx: self.tx.subscribe() }));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "~who refused");
                self.buffered.clear();
                for w in self.waiters.drain(..) {
                    let _ = w.send(Err(e.clone()));
                }
            }
        }
    }

    /// A change from the server.
    pub(crate) fn on_change(&mut self, change: Change) {
        if self.loading.is_some() {
            self.buffered.push(change);
        } else {
            apply(&mut self.map, change);
            self.publish();
        }
    }

    /// The connection dropped: the `~who` in flight will get no reply.
    pub(crate) fn disconnected(&mut self) {
        self.loading = None;
        self.buffered.clear();
    }

    /// Ends waits with `error` (the client closed).
    pub(crate) fn fail(&mut self, error: &ClientError) {
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(error.clone()));
        }
    }

    fn publish(&self) {
        self.tx.send_replace(Arc::new(self.map.clone()));
    }
}

fn apply(map: &mut PeerMap, change: Change) {
    match change {
        Change::Up(peer) => {
            map.insert(peer.conn.clone(), peer);
        }
        Change::Down(conn) => {
            map.remove(&conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::RawPayload;

    fn peer(conn: &str, alias: &str) -> Peer {
        Peer {
            conn: conn.into(),
            user: Some(alias.into()),
            alias: Some(alias.into()),
            available: true,
            public: RawPayload::null(),
        }
    }

    #[tokio::test]
    async fn changes_during_load_are_replayed_over_the_snapshot() {
        let mut set = PeerSet::new();
        let (tx, rx) = oneshot::channel();
        set.when_loaded(tx);
        let id = Id::new(9).unwrap();
        set.loading(id);
        set.on_change(Change::Up(peer("c3", "carol")));
        set.on_change(Change::Down("c1".into()));
        set.on_snapshot(id, Ok(vec![peer("c1", "alice"), peer("c2", "bob")]));
        let roster = rx.await.unwrap().unwrap();
        let conns: Vec<_> = roster.peers().into_iter().map(|p| p.conn).collect();
        assert_eq!(conns, ["c2", "c3"]);
        assert_eq!(roster.by_alias("bob").len(), 1);
    }

    #[tokio::test]
    async fn changes_after_load_apply_and_notify() {
        let mut set = PeerSet::new();
        let id = Id::new(1).unwrap();
        set.loading(id);
        set.on_snapshot(id, Ok(vec![peer("c1", "alice")]));
        let mut roster = set.roster();
        let diff = PresenceDiff {
            topic: "chat/a".into(),
            joins: vec![peer("c2", "bob")],
            leaves: vec![peer("c1", "alice")],
        };
        for c in Change::from_diff(&diff) {
            set.on_change(c);
        }
        roster.changed().await.unwrap();
        assert_eq!(roster.peers(), vec![peer("c2", "bob")]);
        let stale = Id::new(2).unwrap();
        set.on_snapshot(stale, Ok(vec![]));
        assert_eq!(roster.len(), 1, "a reply to a ~who not in flight is ignored");
    }
}
