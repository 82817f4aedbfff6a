//! Two servers in one process on one in-memory broker and shared backends: the framework's
//! multi-node paths (users on every node, kicks, publications, requests, direct messages).

mod common;

use std::sync::Arc;

use common::{Client, main_ns, serve};
use serde_json::json;
use switchboard::core::{
    BackendFuture, Backends, Beat, Broker, BrokerSink, MemoryBroker, MemoryHistory, MemoryPresence,
    MemoryUsers, NodeId,
};
use switchboard::{CapPolicy, CloseCode, Config, Server, Switchboard, TopicOptions};

async fn cluster() -> (Switchboard, Switchboard) {
    let backends = Backends {
        broker: Arc::new(MemoryBroker::new()),
        history: Arc::new(MemoryHistory::new()),
        presence: Arc::new(MemoryPresence::new()),
        users: Arc::new(MemoryUsers::new()),
        ..Backends::memory()
    };
    let mut config = Config::default();
    config.conn_per_user = Some((2, CapPolicy::EvictOldest));
    let node = || {
        Server::new().config(config.clone()).backends(backends.clone()).namespace(
            main_ns()
                .topic("chat/{room}", TopicOptions::new().clients_publish().presence(true).history(10, None)),
        )
    };
    (node().build().await.unwrap(), node().build().await.unwrap())
}

#[tokio::test]
async fn users_topics_requests_and_kicks_cross_nodes() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("switchboard=debug").try_init();
    let (a, b) = cluster().await;
    let (addr_a, addr_b) = (serve(&a).await, serve(&b).await);
    let (mut ada_a, _) = Client::identified(addr_a, "ada").await;
    let (mut ada_b, welcome_b) = Client::identified(addr_b, "ada").await;
    let (mut bob_b, _) = Client::identified(addr_b, "bob").await;

    // Send to a user: both devices, one on each node.
    let reached = a.hub().send_to_user("ada", "note", &json!({"n": 1})).await.unwrap();
    assert_eq!(reached, 2);
    assert_eq!(ada_a.expect(|m| m[0] == "note").await[1], json!({"n": 1}));
    assert_eq!(ada_b.expect(|m| m[0] == "note").await[1], json!({"n": 1}));

    // A publication on node A reaches a subscriber on node B, in order, with the same seq.
    bob_b.call("~sub", json!({"topic": "chat/x"})).await.unwrap();
    ada_a.call("~sub", json!({"topic": "chat/x"})).await.unwrap();
    for i in 1..=3 {
        ada_a.call("~pub", json!({"topic": "chat/x", "data": i})).await.unwrap();
    }
    for i in 1..=3 {
        let m = bob_b.expect(|m| m[0] == "~msg").await;
        assert_eq!((m[1]["data"].clone(), m[1]["seq"].clone()), (json!(i), json!(i)));
    }
    // Presence is shared: B's subscriber sees A's.
    let who = bob_b.call("~who", json!({"topic": "chat/x"})).await.unwrap();
    assert_eq!(who["peers"].as_array().unwrap().len(), 2);

    // A request from node A's hub to a connection on node B.
    let conn_b = welcome_b["conn"].as_str().unwrap().to_owned();
    let ask = tokio::spawn({
        let hub = a.hub();
        async move { hub.request(&conn_b, "confirm", &json!("sure?"), std::time::Duration::from_secs(3)).await }
    });
    let req = ada_b.expect(|m| m[0] == "confirm").await;
    ada_b.send(json!(["~ok", "yes", req[2]])).await;
    let answer = ask.await.unwrap().unwrap();
    assert_eq!(answer.decode::<String>().unwrap(), "yes");

    // A direct message by alias, sender on A, recipient on B.
    ada_a.call("~dm", json!({"to": {"alias": "bob"}, "data": "hi bob"})).await.unwrap();
    let dm = bob_b.expect(|m| m[0] == "~dm").await;
    assert_eq!(dm[1]["from"]["alias"], "ada");

    // conn_per_user is cluster-wide: a third device (on A) evicts the oldest (on A).
    let (_ada3, _) = Client::identified(addr_a, "ada").await;
    assert_eq!(ada_a.closed().await.0, 4502);

    // A kick from node B closes ada's connections on both nodes.
    let kicked = b.hub().disconnect_user("ada", CloseCode::KICKED, "bye").await.unwrap();
    assert_eq!(kicked, 2);
    assert_eq!(ada_b.closed().await.0, 4503);
}

/// A subscription with `since` on node B while node A publishes: the replay and the live
/// publications from A join without a gap or a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_on_one_node_while_another_publishes_has_no_gap() {
    let backends = Backends {
        broker: Arc::new(MemoryBroker::new()),
        history: Arc::new(MemoryHistory::new()),
        presence: Arc::new(MemoryPresence::new()),
        users: Arc::new(MemoryUsers::new()),
        ..Backends::memory()
    };
    let node = || {
        Server::new()
            .backends(backends.clone())
            .namespace(main_ns().topic("feed/{x}", TopicOptions::new().history(10_000, None)))
            .build()
    };
    let (a, b) = (node().await.unwrap(), node().await.unwrap());
    let addr_b = serve(&b).await;
    let (mut c, _) = Client::identified(addr_b, "ada").await;
    let first = c.call("~sub", json!({"topic": "feed/x"})).await.unwrap();
    c.call("~unsub", json!({"topic": "feed/x"})).await.unwrap();
    let epoch = first["epoch"].clone();

    let total = 3000u64;
    let publisher = tokio::spawn({
        let hub = a.hub();
        async move {
            for i in 1..=total {
                hub.publish("feed/x", None, &i).await.unwrap();
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    c.call("~sub", json!({"topic": "feed/x", "since": {"epoch": epoch, "seq": 0}})).await.unwrap();
    publisher.await.unwrap();
    let mut next = 1;
    while next <= total {
        let m = c.expect(|m| m[0] == "~msg").await;
        assert_eq!(m[1]["seq"], next, "publication {next} is missing or repeated");
        next += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_two_nodes_reach_every_subscriber_in_seq_order() {
    let (a, b) = cluster().await;
    let (addr_a, addr_b) = (serve(&a).await, serve(&b).await);
    let (mut on_a, _) = Client::identified(addr_a, "ada").await;
    let (mut on_b, _) = Client::identified(addr_b, "bob").await;
    on_a.call("~sub", json!({"topic": "chat/busy"})).await.unwrap();
    on_b.call("~sub", json!({"topic": "chat/busy"})).await.unwrap();

    // Eight publishers, four per node, all at once: numbers are taken from the shared history
    // in one order and travel in another; every subscriber must still see 1, 2, 3, …
    let (tasks, each) = (8u64, 150u64);
    let publishers: Vec<_> = (0..tasks)
        .map(|t| {
            let hub = if t % 2 == 0 { a.hub() } else { b.hub() };
            tokio::spawn(async move {
                for i in 0..each {
                    hub.publish("chat/busy", None, &json!([t, i])).await.unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    for client in [&mut on_a, &mut on_b] {
        for seq in 1..=tasks * each {
            let m = client.expect(|m| m[0] == "~msg").await;
            assert_eq!(m[1]["seq"], seq, "out of order or missing: {m}");
        }
    }
}

#[tokio::test]
async fn acknowledged_delivery_to_a_connection_on_another_node() {
    let backends = Backends {
        broker: Arc::new(MemoryBroker::new()),
        history: Arc::new(MemoryHistory::new()),
        presence: Arc::new(MemoryPresence::new()),
        users: Arc::new(MemoryUsers::new()),
        ..Backends::memory()
    };
    let mut config = Config::default();
    config.ack_timeout = std::time::Duration::from_millis(200);
    let node =
        || Server::new().config(config.clone()).backends(backends.clone()).namespace(main_ns()).build();
    let (a, b) = (node().await.unwrap(), node().await.unwrap());
    let addr_b = serve(&b).await;
    let (mut bob, welcome) = Client::identified(addr_b, "bob").await;
    let conn = welcome["conn"].as_str().unwrap().to_owned();

    a.hub().send_acked(&conn, "invoice", &json!({"n": 42})).await.unwrap();
    let first = bob.expect(|m| m[0] == "invoice").await;
    assert_eq!(first[1], json!({"n": 42}));
    let id = first[2].as_u64().expect("an acknowledged delivery carries an id");
    // Not answered: node B resends the same message with the same id.
    let again = bob.expect(|m| m[0] == "invoice").await;
    assert_eq!(again, first);
    bob.send(json!(["~ok", null, id])).await;
    // A connection that does not exist (on B): the same answer as on one node.
    let missing = format!("{}.ffff", conn.rsplit_once('.').unwrap().0);
    assert!(matches!(
        a.hub().send_acked(&missing, "invoice", &1).await,
        Err(switchboard::HubError::NotFound)
    ));
    assert!(matches!(
        a.hub().send_acked("nonode.1", "invoice", &1).await,
        Err(switchboard::HubError::NotFound)
    ));
}

/// A node that stops beating is declared dead by the others within `node_timeout`; exactly one of
/// them cleans up after it: its connections leave topic presence and the directory (announced
/// once, to every node's subscribers) and the user registry.
#[tokio::test]
async fn a_dead_node_is_cleaned_up_after_once() {
    let broker = MemoryBroker::new();
    let presence = Arc::new(MemoryPresence::new());
    let users = Arc::new(MemoryUsers::new());
    let backends = Backends {
        broker: Arc::new(broker.clone()),
        history: Arc::new(MemoryHistory::new()),
        presence: presence.clone(),
        users: users.clone(),
        ..Backends::memory()
    };
    let mut config = Config::default();
    config.node_timeout = std::time::Duration::from_millis(500);
    let node = || {
        Server::new()
            .config(config.clone())
            .backends(backends.clone())
            .namespace(main_ns().topic("chat/{room}", TopicOptions::new().clients_publish().presence(true)))
    };
    let (a, b) = (node().build().await.unwrap(), node().build().await.unwrap());
    let (addr_a, addr_b) = (serve(&a).await, serve(&b).await);
    let (mut ada, _) = Client::identified(addr_a, "ada").await;
    let (mut bob, _) = Client::identified(addr_b, "bob").await;
    for c in [&mut ada, &mut bob] {
        c.call("~sub", json!({"topic": "chat/x"})).await.unwrap();
    }
    // A third node, "gone", with one connection in the topic, in the directory and in the
    // registry, beats once and falls silent (as a killed process would).
    use switchboard::core::{Broker, BrokerSink, ConnRef, Presence, Users};
    struct Deaf;
    impl BrokerSink for Deaf {
        fn publication(&self, _: &str, _: bytes::Bytes) {}
        fn node_message(&self, _: bytes::Bytes) {}
    }
    let gone: Arc<str> = Arc::from("gone");
    broker.attach(gone.clone(), Arc::new(Deaf)).await.unwrap();
    broker.beat(&gone, std::time::Duration::from_millis(100)).await.unwrap();
    let peer = json!({"conn": "gone.1", "user": "carl", "alias": "carl", "available": true, "public": null});
    let info = bytes::Bytes::from(peer.to_string());
    presence.join("chat/x", "gone.1", info.clone()).await.unwrap();
    presence.join("~directory", "gone.1", info).await.unwrap();
    users.register("carl", ConnRef { conn: Arc::from("gone.1"), node: gone.clone() }, None).await.unwrap();
    assert_eq!(a.hub().send_to_user("carl", "hi", &1).await.unwrap(), 1, "counted while alive");

    // Both survivors' subscribers get the leave, once.
    for c in [&mut ada, &mut bob] {
        let m = c
            .expect(|m| m[0] == "~presence" && m[1]["leaves"].as_array().is_some_and(|l| !l.is_empty()))
            .await;
        assert_eq!(m[1]["leaves"], json!([peer]), "the dead node's connection left");
        let p = c.expect(|m| m[0] == "~peer" && m[1]["conn"] == "gone.1").await;
        assert_eq!(p[1]["online"], false);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    for c in [&mut ada, &mut bob] {
        let who = c.call("~who", json!({"topic": "chat/x"})).await.unwrap();
        assert_eq!(who["peers"].as_array().map(Vec::len), Some(2), "only the live ones: {who}");
        let again = |m: &serde_json::Value| {
            (m[0] == "~presence" && m[1]["leaves"].as_array().is_some_and(|l| !l.is_empty()))
                || (m[0] == "~peer" && m[1]["conn"] == "gone.1")
        };
        assert!(!c.inbox.iter().any(again), "announced once: {:?}", c.inbox);
    }
    assert_eq!(a.hub().send_to_user("carl", "hi", &1).await.unwrap(), 0, "no longer counted");
    assert!(users.connections("carl").await.unwrap().is_empty());
    // Its late beat learns it was cleaned up after.
    assert_eq!(
        broker.beat(&gone, std::time::Duration::from_secs(5)).await.unwrap(),
        switchboard::core::Beat::Lapsed { cleaned: true }
    );
}

/// Joining, leaving, acknowledged sends, broadcasts and direct messages answer the same whether
/// the connection is on this node or another.
#[tokio::test]
async fn operations_on_a_remote_connection_answer_as_on_one_node() {
    let (a, b) = cluster().await;
    let (addr_a, addr_b) = (serve(&a).await, serve(&b).await);
    let (mut ada, _) = Client::identified(addr_a, "ada").await;
    let (mut bob, welcome) = Client::identified(addr_b, "bob").await;
    let bob_conn = welcome["conn"].as_str().unwrap().to_owned();
    // Node A puts B's connection into a group, publishes to it, then takes it out.
    a.hub().join(&bob_conn, "chat/group").await.unwrap();
    a.hub().publish("chat/group", None, &"to the group").await.unwrap();
    assert_eq!(bob.expect(|m| m[0] == "~msg").await[1]["data"], "to the group");
    assert!(a.hub().leave(&bob_conn, "chat/group").await.unwrap());
    assert!(!a.hub().leave(&bob_conn, "chat/group").await.unwrap(), "not in it any more");
    let missing = format!("{}.ffff", bob_conn.rsplit_once('.').unwrap().0);
    assert!(matches!(a.hub().join(&missing, "chat/group").await, Err(switchboard::HubError::NotFound)));
    assert!(matches!(a.hub().leave(&missing, "chat/group").await, Err(switchboard::HubError::NotFound)));
    // A broadcast counts the connections reached on every node.
    assert_eq!(a.hub().broadcast("news", &1, None).await.unwrap(), 2);
    assert_eq!(b.hub().broadcast("news", &2, Some(&bob_conn)).await.unwrap(), 1);
    // A direct message to an alias whose connection is unavailable: UNAVAILABLE, on either node.
    bob.call("~status", json!({"available": false})).await.unwrap();
    let (mut cid, _) = Client::identified(addr_b, "cid").await;
    for c in [&mut ada, &mut cid] {
        let e = c.call("~dm", json!({"to": {"alias": "bob"}, "data": 1})).await.unwrap_err();
        assert_eq!(e["code"], "UNAVAILABLE", "{e}");
        let e = c.call("~dm", json!({"to": {"alias": "nobody"}, "data": 1})).await.unwrap_err();
        assert_eq!(e["code"], "NOT_FOUND", "{e}");
    }
}

/// A publication that reached history but not this node (its broker message was lost: the last
/// of a burst, nothing after it to reveal the gap) is found by the position check and delivered
/// in order; the check also measures how long a gap each topic class's history can bridge.
#[tokio::test]
async fn a_missed_tail_is_filled_from_history_by_the_position_check() {
    let history = Arc::new(MemoryHistory::new());
    let backends = Backends {
        broker: Arc::new(MemoryBroker::new()),
        history: history.clone(),
        presence: Arc::new(MemoryPresence::new()),
        users: Arc::new(MemoryUsers::new()),
        ..Backends::memory()
    };
    let mut config = Config::default();
    config.position_check = std::time::Duration::from_millis(200);
    let board = Server::new()
        .config(config)
        .backends(backends)
        .namespace(main_ns().topic("chat/{room}", TopicOptions::new().clients_publish().history(50, None)))
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let (mut ada, _) = Client::identified(addr, "ada").await;
    ada.call("~sub", json!({"topic": "chat/x"})).await.unwrap();
    board.hub().publish("chat/x", None, &1).await.unwrap();
    assert_eq!(ada.expect(|m| m[0] == "~msg").await[1]["seq"], 1);
    // Another node numbered 2 and 3, and their broker messages never came.
    use switchboard::core::{History, HistoryOptions};
    for n in [2, 3] {
        let record = bytes::Bytes::from(format!(r#"{{"data":{n}}}"#));
        history.append("chat/x", record, HistoryOptions { size: 50, ttl: None }, None).await.unwrap();
    }
    for n in [2, 3] {
        let m = ada.expect(|m| m[0] == "~msg").await;
        assert_eq!((m[1]["seq"].clone(), m[1]["data"].clone()), (json!(n), json!(n)), "filled, in order");
    }
    assert_eq!(board.hub().health().missed_filled, 2);
    // Publications keep coming: the class's span is its size over their rate.
    for n in 4..=13 {
        board.hub().publish("chat/x", None, &n).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let span = loop {
        let spans = board.hub().history_spans();
        if let Some(span) =
            spans.into_iter().find(|s| s.pattern == "chat/{room}" && s.publications_per_second > 0.0)
        {
            break span;
        }
        assert!(tokio::time::Instant::now() < deadline, "a span is measured");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(span.size, 50);
    assert!((span.seconds - 50.0 / span.publications_per_second).abs() < 1e-6);
}

/// A memory broker for the tests: it delivers every publication `delay` late (a busy network: in
/// order, but late), and keeps the node's sink, so that a test can tell it that the broker's
/// connection was lost and is back.
struct TestBroker {
    inner: MemoryBroker,
    delay: std::time::Duration,
    sink: parking_lot::Mutex<Option<Arc<dyn BrokerSink>>>,
}

impl TestBroker {
    fn new(delay: std::time::Duration) -> Self {
        Self { inner: MemoryBroker::new(), delay, sink: parking_lot::Mutex::new(None) }
    }

    /// The sink of the (one) node attached.
    fn sink(&self) -> Arc<dyn BrokerSink> {
        self.sink.lock().clone().expect("attached")
    }
}

/// The sink a [`TestBroker`] gives the inner broker: it forwards in order, `delay` late.
struct SlowSink {
    queue: tokio::sync::mpsc::UnboundedSender<(tokio::time::Instant, String, bytes::Bytes)>,
    sink: Arc<dyn BrokerSink>,
}

impl BrokerSink for SlowSink {
    fn publication(&self, topic: &str, publication: bytes::Bytes) {
        let _ = self.queue.send((tokio::time::Instant::now(), topic.to_owned(), publication));
    }
    fn node_message(&self, message: bytes::Bytes) {
        self.sink.node_message(message);
    }
}

impl Broker for TestBroker {
    fn attach(&self, node: NodeId, sink: Arc<dyn BrokerSink>) -> BackendFuture<'_, ()> {
        *self.sink.lock() = Some(sink.clone());
        if self.delay.is_zero() {
            return self.inner.attach(node, sink);
        }
        let (queue, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, String, bytes::Bytes)>();
        let (delay, late) = (self.delay, sink.clone());
        tokio::spawn(async move {
            while let Some((at, topic, publication)) = rx.recv().await {
                tokio::time::sleep_until(at + delay).await;
                late.publication(&topic, publication);
            }
        });
        self.inner.attach(node, Arc::new(SlowSink { queue, sink }))
    }
    fn detach(&self, node: &NodeId) -> BackendFuture<'_, ()> {
        self.inner.detach(node)
    }
    fn subscribe(&self, node: &NodeId, topic: &str) -> BackendFuture<'_, ()> {
        self.inner.subscribe(node, topic)
    }
    fn unsubscribe(&self, node: &NodeId, topic: &str) -> BackendFuture<'_, ()> {
        self.inner.unsubscribe(node, topic)
    }
    fn publish(&self, from: &NodeId, topic: &str, publication: bytes::Bytes) -> BackendFuture<'_, ()> {
        self.inner.publish(from, topic, publication)
    }
    fn send(&self, from: &NodeId, to: Option<&NodeId>, message: bytes::Bytes) -> BackendFuture<'_, ()> {
        self.inner.send(from, to, message)
    }
    fn beat(&self, node: &NodeId, ttl: std::time::Duration) -> BackendFuture<'_, Beat> {
        self.inner.beat(node, ttl)
    }
    fn dead_nodes(&self) -> BackendFuture<'_, Vec<NodeId>> {
        self.inner.dead_nodes()
    }
    fn claim_dead(&self, dead: &NodeId, by: &NodeId, lease: std::time::Duration) -> BackendFuture<'_, bool> {
        self.inner.claim_dead(dead, by, lease)
    }
    fn forget_dead(&self, dead: &NodeId) -> BackendFuture<'_, ()> {
        self.inner.forget_dead(dead)
    }
}

/// Publications still in transit through the broker when a position check reads the topic's
/// position are not missed ones: a busy topic without history (which could not be filled) keeps
/// its subscribers, who get every publication once, in order.
#[tokio::test]
async fn publications_in_transit_are_not_taken_for_missed_ones() {
    let backends = Backends {
        broker: Arc::new(TestBroker::new(std::time::Duration::from_millis(60))),
        ..Backends::memory()
    };
    let mut config = Config::default();
    // Several publications are in transit at every check; one numbered before a check has the
    // period minus the delay (340 ms) to arrive before the next, however slow the machine.
    config.position_check = std::time::Duration::from_millis(400);
    let node = || {
        Server::new()
            .config(config.clone())
            .backends(backends.clone())
            .namespace(main_ns().topic("live/{x}", TopicOptions::new().clients_publish()))
    };
    let (a, b) = (node().build().await.unwrap(), node().build().await.unwrap());
    let (addr_a, addr_b) = (serve(&a).await, serve(&b).await);
    let (mut ada, _) = Client::identified(addr_a, "ada").await;
    let (mut bob, _) = Client::identified(addr_b, "bob").await;
    bob.call("~sub", json!({"topic": "live/x"})).await.unwrap();
    // One publication every 10 ms for 1.5 s: at every check a few are on their way.
    let n = 150;
    for i in 1..=n {
        ada.call("~pub", json!({"topic": "live/x", "data": i})).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for i in 1..=n {
        let m = bob.expect(|m| m[0] == "~msg" || m[0] == "~bye").await;
        assert_eq!(m[0], "~msg", "bob was told to recover: {m}");
        assert_eq!(m[1]["data"], i);
    }
    assert_eq!(b.hub().health().missed_signalled, 0);
}

/// A history that can lose everything (a broker restarted without persistence) and refuse to
/// answer for a while (one still loading).
struct RestartingHistory {
    inner: parking_lot::Mutex<Arc<MemoryHistory>>,
    down: std::sync::atomic::AtomicBool,
}

impl RestartingHistory {
    fn current(&self) -> Result<Arc<MemoryHistory>, switchboard::core::BackendError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(switchboard::core::BackendError::Unavailable("loading".to_owned()));
        }
        Ok(self.inner.lock().clone())
    }
}

impl switchboard::core::History for RestartingHistory {
    fn append(
        &self,
        topic: &str,
        data: bytes::Bytes,
        options: switchboard::core::HistoryOptions,
        key: Option<&str>,
    ) -> BackendFuture<'_, switchboard::core::Appended> {
        let (topic, key) = (topic.to_owned(), key.map(str::to_owned));
        Box::pin(async move { self.current()?.append(&topic, data, options, key.as_deref()).await })
    }
    fn position(&self, topic: &str) -> BackendFuture<'_, switchboard::core::Position> {
        let topic = topic.to_owned();
        Box::pin(async move { self.current()?.position(&topic).await })
    }
    fn recover(
        &self,
        topic: &str,
        since: &switchboard::core::Position,
    ) -> BackendFuture<'_, switchboard::core::Recovery> {
        let (topic, since) = (topic.to_owned(), since.clone());
        Box::pin(async move { self.current()?.recover(&topic, &since).await })
    }
}

/// A broker that restarted empty during an outage, and whose history does not answer yet when
/// the connection is back: the check after the outage cannot read, and the tail of the old
/// stream that this node may have missed cannot be known any more. The subscribers are told
/// (4000, then `recovered: false`) once history answers, not taken for a stream that only moved on.
#[tokio::test]
async fn a_restart_seen_only_after_the_outage_check_failed_is_still_signalled() {
    let history = Arc::new(RestartingHistory {
        inner: parking_lot::Mutex::new(Arc::new(MemoryHistory::new())),
        down: false.into(),
    });
    let broker = Arc::new(TestBroker::new(std::time::Duration::ZERO));
    let backends = Backends { broker: broker.clone(), history: history.clone(), ..Backends::memory() };
    let mut config = Config::default();
    config.position_check = std::time::Duration::from_millis(100);
    let board = Server::new()
        .config(config)
        .backends(backends)
        .namespace(main_ns().topic("chat/{room}", TopicOptions::new().clients_publish().history(50, None)))
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let (mut ada, _) = Client::identified(addr, "ada").await;
    let sub = ada.call("~sub", json!({"topic": "chat/x"})).await.unwrap();
    board.hub().publish("chat/x", None, &1).await.unwrap();
    assert_eq!(ada.expect(|m| m[0] == "~msg").await[1]["seq"], 1);

    // The outage: the broker restarts empty and still loads when the connection is back.
    broker.sink().disconnected();
    history.down.store(true, std::sync::atomic::Ordering::Relaxed);
    *history.inner.lock() = Arc::new(MemoryHistory::new());
    broker.sink().reconnected();
    // Several checks read nothing.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    history.down.store(false, std::sync::atomic::Ordering::Relaxed);

    let bye = ada.expect(|m| m[0] == "~bye").await;
    assert_eq!(bye[1]["code"], 4000, "{bye}");
    assert_eq!(board.hub().health().missed_signalled, 1);
    let (mut again, _) = Client::identified(addr, "ada").await;
    let r = again
        .call("~sub", json!({"topic": "chat/x", "since": {"epoch": sub["epoch"], "seq": 1}}))
        .await
        .unwrap();
    assert_eq!(r["recovered"], false, "{r}");
}
