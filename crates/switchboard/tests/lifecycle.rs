//! Lifecycle events over real sockets: what a sink receives (numbered per user, in order, each
//! once), retries and refusals, filters, the hook, an event log that fails, a dead node's
//! connections announced once by a survivor, and the drain at shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, main_ns, serve};
use futures_util::SinkExt;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::json;
use switchboard::core::{Backends, MemoryBroker, MemoryEventLog, MemoryPresence, MemoryUsers};
use switchboard::{
    Config, Delivery, DeliveryError, Event, EventKind, EventSink, Lifecycle, LifecycleEvent, Namespace,
    Server, Switchboard, TopicOptions,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// A sink that keeps what it is given; fails the first `fail` attempts (`Retry`), and refuses
/// batches holding an event of user `refuse`.
#[derive(Clone, Default)]
struct Collect {
    got: Arc<Mutex<Vec<Event>>>,
    attempts: Arc<Mutex<usize>>,
    fail: usize,
    refuse: Option<&'static str>,
}

impl EventSink for Collect {
    fn deliver<'a>(&'a self, batch: &'a [Event]) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let attempt = {
                let mut n = self.attempts.lock();
                *n += 1;
                *n
            };
            if attempt <= self.fail {
                return Err(DeliveryError::Retry(format!("attempt {attempt} fails")));
            }
            if let Some(user) = self.refuse
                && batch.iter().any(|e| e.key == format!("user:{user}"))
            {
                return Err(DeliveryError::Reject("400 Bad Request".into()));
            }
            self.got.lock().extend(batch.iter().cloned());
            Ok(())
        })
    }
}

impl Collect {
    /// Waits until `pred` holds for what was received.
    async fn until(&self, what: &str, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + common::WAIT;
        loop {
            {
                let got = self.got.lock();
                if pred(&got) {
                    return got.clone();
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}",
                self.got.lock()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn of(&self, key: &str) -> Vec<Event> {
        self.got.lock().iter().filter(|e| e.key == key).cloned().collect()
    }
}

fn fast() -> Delivery {
    Delivery::new()
        .max_wait(Duration::from_millis(5))
        .poll(Duration::from_millis(20))
        .retry(Duration::from_millis(10), Duration::from_millis(50))
}

fn rooms() -> Namespace {
    main_ns().topic("chat/{room}", TopicOptions::new().clients_publish().presence(true))
}

async fn one_node(sink: &Collect, filter: Lifecycle) -> (Switchboard, std::net::SocketAddr) {
    let board = Server::new()
        .namespace(rooms())
        .lifecycle(filter)
        .deliver_events(sink.clone(), fast())
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    (board, addr)
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.event.kind()).collect()
}

#[tokio::test]
async fn a_users_events_arrive_numbered_in_order_and_once() {
    let sink = Collect::default();
    let (board, addr) = one_node(&sink, Lifecycle::all()).await;
    let (mut ada, welcome) = Client::identified(addr, "ada").await;
    let conn = welcome["conn"].as_str().unwrap().to_owned();
    ada.call("~sub", json!({"topic": "chat/x"})).await.unwrap();
    ada.call("~status", json!({"available": false})).await.unwrap();
    ada.call("~unsub", json!({"topic": "chat/x"})).await.unwrap();
    ada.ws.close(Some(CloseFrame { code: 4321.into(), reason: "bye".into() })).await.unwrap();
    let all =
        sink.until("user_offline", |e| e.iter().any(|e| e.event.kind() == EventKind::UserOffline)).await;

    let mine = sink.of("user:ada");
    assert_eq!(
        kinds(&mine),
        [
            EventKind::Connect,
            EventKind::UserOnline,
            EventKind::Subscribe,
            EventKind::Status,
            EventKind::Unsubscribe,
            EventKind::Disconnect,
            EventKind::UserOffline
        ]
    );
    assert_eq!(
        mine.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7],
        "one sequence per user"
    );
    let ids: std::collections::HashSet<_> = all.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), all.len(), "unique ids, each event once");
    assert!(mine.iter().all(|e| e.node == board.hub().node() && e.ts > 1_700_000_000_000));
    assert_eq!(
        mine[0].event,
        LifecycleEvent::Connect { conn: conn.clone(), user: Some("ada".into()), ns: "main".into() }
    );
    assert_eq!(
        mine[5].event,
        LifecycleEvent::Disconnect {
            conn: conn.clone(),
            user: Some("ada".into()),
            ns: "main".into(),
            code: 4321,
            reason: "closed by the client".into()
        },
        "the client's close code"
    );
    assert_eq!(
        mine[3].event,
        LifecycleEvent::Status {
            conn,
            user: Some("ada".into()),
            alias: Some("ada".into()),
            available: false
        }
    );
    // The topic's occupancy, numbered under its own key.
    let topic = sink.of("topic:chat/x");
    assert_eq!(kinds(&topic), [EventKind::Occupied, EventKind::Vacated]);
    assert_eq!(topic.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    // JSON as a webhook sends it: one flat object.
    let v = serde_json::to_value(&mine[0]).unwrap();
    assert_eq!(v["type"], "connect");
    assert_eq!(v["user"], "ada");
    assert_eq!(v["seq"], 1);
    let back: Event = serde_json::from_value(v).unwrap();
    assert_eq!(back, mine[0]);
    let stats = board.hub().event_stats();
    assert_eq!(stats.delivered as usize, all.len());
    assert_eq!((stats.lost, stats.rejected, stats.append_failures), (0, 0, 0));
}

#[tokio::test]
async fn occupancy_counts_every_subscriber_and_closing_is_not_an_unsubscribe() {
    let sink = Collect::default();
    let (_board, addr) = one_node(&sink, Lifecycle::all()).await;
    let (mut ada, _) = Client::identified(addr, "ada").await;
    let (mut bob, _) = Client::identified(addr, "bob").await;
    ada.call("~sub", json!({"topic": "chat/x"})).await.unwrap();
    bob.call("~sub", json!({"topic": "chat/x"})).await.unwrap();
    ada.call("~sub", json!({"topic": "chat/x"})).await.unwrap();
    drop(ada);
    sink.until("ada's offline", |e| {
        e.iter().any(|e| e.key == "user:ada" && e.event.kind() == EventKind::UserOffline)
    })
    .await;
    bob.call("~unsub", json!({"topic": "chat/x"})).await.unwrap();
    sink.until("vacated", |e| e.iter().any(|e| e.event.kind() == EventKind::Vacated)).await;
    let ada = sink.of("user:ada");
    assert_eq!(
        kinds(&ada),
        [
            EventKind::Connect,
            EventKind::UserOnline,
            EventKind::Subscribe,
            EventKind::Disconnect,
            EventKind::UserOffline
        ],
        "a second ~sub of one topic is not an event; a closed connection's topics are in its disconnect"
    );
    assert!(
        matches!(&ada[3].event, LifecycleEvent::Disconnect { code: 1006, .. }),
        "lost without a close frame"
    );
    assert_eq!(
        kinds(&sink.of("topic:chat/x")),
        [EventKind::Occupied, EventKind::Vacated],
        "first in, last out"
    );
}

#[tokio::test]
async fn a_failing_sink_is_retried_and_a_refusing_one_is_dropped() {
    let sink = Collect { fail: 3, refuse: Some("mallory"), ..Collect::default() };
    let (board, addr) =
        one_node(&sink, Lifecycle::new().kinds([EventKind::Connect, EventKind::UserOnline])).await;
    let (_ada, _) = Client::identified(addr, "ada").await;
    let got = sink.until("ada's two events", |e| e.len() >= 2).await;
    assert_eq!(
        kinds(&got),
        [EventKind::Connect, EventKind::UserOnline],
        "delivered once, after the failures"
    );
    assert!(*sink.attempts.lock() >= 4);
    let (_mallory, _) = Client::identified(addr, "mallory").await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while board.hub().event_stats().rejected < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", board.hub().event_stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // (A batch is refused whole: bob comes after, so that his events are not in it.)
    let (_bob, _) = Client::identified(addr, "bob").await;
    sink.until("bob's events", |e| e.iter().any(|e| e.key == "user:bob")).await;
    assert!(sink.of("user:mallory").is_empty(), "refused for good, not retried");
    let stats = board.hub().event_stats();
    assert!(stats.retries >= 3, "{stats:?}");
    assert_eq!(stats.rejected, 2, "mallory's connect and user_online: {stats:?}");
}

#[tokio::test]
async fn only_the_events_asked_for() {
    let sink = Collect::default();
    let filter = Lifecycle::new()
        .kinds([EventKind::Connect, EventKind::Subscribe, EventKind::Occupied])
        .namespaces(["main"])
        .topics(["chat/{room}"]);
    let board = Server::new()
        .namespace(rooms().topic("news/{n}", TopicOptions::new()))
        .namespace(Namespace::new("other").identify(common::identify))
        .lifecycle(filter)
        .deliver_events(sink.clone(), fast())
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let (mut ada, _) = Client::identified(addr, "ada").await;
    ada.call("~sub", json!({"topic": "news/1"})).await.unwrap();
    ada.call("~sub", json!({"topic": "chat/1"})).await.unwrap();
    let mut eve = Client::connect(addr).await;
    eve.call("~hello", json!({"identity": "user:eve", "ns": "other"})).await.unwrap();
    drop(ada);
    sink.until("ada's subscribe and the occupancy", |e| e.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let got = sink.got.lock().clone();
    assert_eq!(
        kinds(&got.iter().filter(|e| e.key == "user:ada").cloned().collect::<Vec<_>>()),
        [EventKind::Connect, EventKind::Subscribe]
    );
    assert!(
        matches!(&got.iter().find(|e| e.event.kind() == EventKind::Subscribe).unwrap().event,
            LifecycleEvent::Subscribe { topic, .. } if topic == "chat/1"),
        "news/1 is not covered"
    );
    assert_eq!(kinds(&sink.of("topic:chat/1")), [EventKind::Occupied]);
    assert!(sink.of("user:eve").is_empty(), "namespace other is not covered");
}

#[tokio::test]
async fn the_hook_sees_every_event_without_a_sink() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = seen.clone();
    let board = Server::new()
        .namespace(rooms())
        .on_lifecycle(move |e: &LifecycleEvent| hook.lock().push(e.kind()))
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let (mut ada, _) = Client::identified(addr, "ada").await;
    ada.call("~sub", json!({"topic": "chat/x"})).await.unwrap();
    assert_eq!(
        *seen.lock(),
        [EventKind::Connect, EventKind::UserOnline, EventKind::Subscribe, EventKind::Occupied]
    );
    assert_eq!(board.hub().event_stats().appended, 0, "nothing written without a sink");
}

#[tokio::test]
async fn an_event_log_that_fails_refuses_what_it_would_announce() {
    let sink = Collect::default();
    let backends = Backends { events: Arc::new(MemoryEventLog::with_capacity(0)), ..Backends::memory() };
    let board = Server::new()
        .namespace(rooms())
        .backends(backends)
        .deliver_events(sink.clone(), fast())
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let mut ada = Client::connect(addr).await;
    let refused = ada.call("~hello", json!({"identity": "user:ada"})).await.unwrap_err();
    assert_eq!(refused["code"], "UNAVAILABLE", "{refused}");
    assert_eq!(ada.closed().await.0, 4000, "reconnect later");
    assert!(board.hub().event_stats().append_failures >= 1);
}

#[tokio::test]
async fn a_dead_nodes_connections_are_announced_once_by_a_survivor() {
    use switchboard::core::{Broker, BrokerSink, ConnRef, Presence, Users};
    let broker = MemoryBroker::new();
    let presence = Arc::new(MemoryPresence::new());
    let users = Arc::new(MemoryUsers::new());
    let backends = Backends {
        broker: Arc::new(broker.clone()),
        presence: presence.clone(),
        users: users.clone(),
        events: Arc::new(MemoryEventLog::new()),
        ..Backends::memory()
    };
    let mut config = Config::default();
    config.node_timeout = Duration::from_millis(500);
    let (sink_a, sink_b) = (Collect::default(), Collect::default());
    let node = |sink: &Collect| {
        Server::new()
            .config(config.clone())
            .backends(backends.clone())
            .namespace(rooms())
            .deliver_events(sink.clone(), fast())
    };
    let (a, b) = (node(&sink_a).build().await.unwrap(), node(&sink_b).build().await.unwrap());
    let _ = (serve(&a).await, serve(&b).await);
    // A third node, "gone", as a killed process leaves it: carl connected, subscribed to
    // chat/x, its only subscriber; it beat once and fell silent.
    struct Deaf;
    impl BrokerSink for Deaf {
        fn publication(&self, _: &str, _: bytes::Bytes) {}
        fn node_message(&self, _: bytes::Bytes) {}
    }
    let gone: Arc<str> = Arc::from("gone");
    broker.attach(gone.clone(), Arc::new(Deaf)).await.unwrap();
    broker.beat(&gone, Duration::from_millis(100)).await.unwrap();
    let info = json!({"user": "carl", "ns": "main"}).to_string();
    presence.join("~conns/gone", "gone.1", bytes::Bytes::from(info)).await.unwrap();
    let me = ConnRef { conn: Arc::from("gone.1"), node: gone.clone() };
    users.register("carl", me.clone(), None).await.unwrap();
    users.register("\u{0}topic:chat/x", me, None).await.unwrap();

    let delivered =
        |sinks: [&Collect; 2]| -> Vec<Event> { sinks.iter().flat_map(|s| s.got.lock().clone()).collect() };
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while delivered([&sink_a, &sink_b]).len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "{:#?}", delivered([&sink_a, &sink_b]));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let all = delivered([&sink_a, &sink_b]);
    assert_eq!(all.len(), 3, "each once, by one survivor: {all:#?}");
    let carl: Vec<_> = all.iter().filter(|e| e.key == "user:carl").collect();
    assert_eq!(
        carl.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        [
            LifecycleEvent::Disconnect {
                conn: "gone.1".into(),
                user: Some("carl".into()),
                ns: "main".into(),
                code: 1006,
                reason: "its server stopped".into()
            },
            LifecycleEvent::UserOffline { user: "carl".into() }
        ]
    );
    assert!(all.iter().any(|e| e.event == LifecycleEvent::Vacated { topic: "chat/x".into() }));
    assert!(carl.iter().all(|e| e.node == a.hub().node() || e.node == b.hub().node()), "from a survivor");
}

#[tokio::test]
async fn a_shutdown_delivers_the_disconnects_it_causes() {
    let sink = Collect::default();
    let (board, addr) = one_node(&sink, Lifecycle::new().kinds([EventKind::Disconnect])).await;
    let mut clients = Vec::new();
    for user in ["ada", "bob", "carl"] {
        clients.push(Client::identified(addr, user).await.0);
    }
    board.shutdown().await;
    let got = sink.got.lock().clone();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got.iter().all(|e| matches!(&e.event, LifecycleEvent::Disconnect { code: 1001, .. })));
    for mut c in clients {
        let _ = c.ws.send(Message::text("[]")).await;
    }
}

/// A registry and a presence store whose removals fail while `down` (Redis restarting, say).
#[derive(Default)]
struct Flaky {
    users: MemoryUsers,
    presence: MemoryPresence,
    down: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), switchboard::core::BackendError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(switchboard::core::BackendError::Unavailable("down".to_owned()));
        }
        Ok(())
    }
}

struct FlakyUsers(Arc<Flaky>);
struct FlakyPresence(Arc<Flaky>);

impl switchboard::core::Users for FlakyUsers {
    fn register(
        &self,
        user: &str,
        conn: switchboard::core::ConnRef,
        cap: Option<(usize, switchboard::CapPolicy)>,
    ) -> switchboard::core::BackendFuture<'_, switchboard::core::Registration> {
        self.0.users.register(user, conn, cap)
    }
    fn unregister(
        &self,
        user: &str,
        conn: &str,
    ) -> switchboard::core::BackendFuture<'_, switchboard::core::Unregistered> {
        let (user, conn) = (user.to_owned(), conn.to_owned());
        Box::pin(async move {
            self.0.check()?;
            self.0.users.unregister(&user, &conn).await
        })
    }
    fn connections(
        &self,
        user: &str,
    ) -> switchboard::core::BackendFuture<'_, Vec<switchboard::core::ConnRef>> {
        self.0.users.connections(user)
    }
    fn evict_node(
        &self,
        node: &str,
    ) -> switchboard::core::BackendFuture<'_, Vec<switchboard::core::Evicted>> {
        self.0.users.evict_node(node)
    }
}

impl switchboard::core::Presence for FlakyPresence {
    fn join(&self, key: &str, conn: &str, info: bytes::Bytes) -> switchboard::core::BackendFuture<'_, ()> {
        self.0.presence.join(key, conn, info)
    }
    fn leave(&self, key: &str, conn: &str) -> switchboard::core::BackendFuture<'_, bool> {
        let (key, conn) = (key.to_owned(), conn.to_owned());
        Box::pin(async move {
            self.0.check()?;
            self.0.presence.leave(&key, &conn).await
        })
    }
    fn list(&self, key: &str) -> switchboard::core::BackendFuture<'_, Vec<switchboard::core::PresenceEntry>> {
        self.0.presence.list(key)
    }
    fn evict_node(
        &self,
        node: &str,
    ) -> switchboard::core::BackendFuture<'_, Vec<(String, switchboard::core::PresenceEntry)>> {
        self.0.presence.evict_node(node)
    }
}

/// A connection that closes while the registries cannot remove it leaves no ghost: its user
/// entry, its topic presence and its place in the topic's occupancy are removed once they
/// answer again, and its `vacated` and `user_offline` are announced then (not lost).
#[tokio::test]
async fn a_connection_closed_while_the_registries_fail_is_removed_once_they_answer() {
    use switchboard::core::{Presence, Users};
    let flaky = Arc::new(Flaky::default());
    let backends = Backends {
        users: Arc::new(FlakyUsers(flaky.clone())),
        presence: Arc::new(FlakyPresence(flaky.clone())),
        ..Backends::memory()
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = seen.clone();
    let board = Server::new()
        .namespace(rooms())
        .backends(backends)
        .on_lifecycle(move |e: &LifecycleEvent| hook.lock().push(e.kind()))
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let (mut ada, _) = Client::identified(addr, "ada").await;
    ada.call("~sub", json!({"topic": "chat/x"})).await.unwrap();

    flaky.down.store(true, std::sync::atomic::Ordering::Relaxed);
    ada.ws.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while board.hub().registry_sizes().connections > 0 {
        assert!(tokio::time::Instant::now() < deadline, "ada's connection closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still there (the registries refused), and nothing announced that is not known yet.
    assert_eq!(flaky.users.connections("ada").await.unwrap().len(), 1);
    assert!(!seen.lock().contains(&EventKind::UserOffline));

    flaky.down.store(false, std::sync::atomic::Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let user = flaky.users.connections("ada").await.unwrap();
        let present = flaky.presence.list("chat/x").await.unwrap();
        let kinds = seen.lock().clone();
        if user.is_empty()
            && present.is_empty()
            && kinds.contains(&EventKind::UserOffline)
            && kinds.contains(&EventKind::Vacated)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "left behind: {user:?} {present:?} {kinds:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds = seen.lock().clone();
    assert_eq!(kinds.iter().filter(|k| **k == EventKind::UserOffline).count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == EventKind::Vacated).count(), 1, "{kinds:?}");
}
