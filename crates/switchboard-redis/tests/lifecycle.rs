//! Lifecycle events of two servers on one Redis (and on a Redis Cluster) when one of them
//! crashes: the survivor delivers the events the dead node had written to the log and not
//! delivered, and announces the dead node's connection (`disconnect` 1006, `user_offline`,
//! `vacated`), each once.
//!
//! The crashed node runs on its own single-threaded Tokio runtime in its own thread: the crash
//! stops that runtime at once and drops every task of the node (its connections, beats, lease
//! renewals, deliveries and Redis connections) without running any shutdown — as a killed
//! process would, except that its sockets are closed rather than reset.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{RedisCluster, RedisServer, eventually, prefix};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use switchboard::{
    Accept, Config, Delivery, DeliveryError, Error, Event, EventKind, EventSink, EventStats, LifecycleEvent,
    Namespace, Payload, Server, Switchboard, TopicOptions,
};
use switchboard_redis::{RedisBackends, RedisOptions};
use tokio_tungstenite::tungstenite::Message;

/// A sink that keeps what it is given.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Event>>>);

impl EventSink for Collect {
    fn deliver<'a>(&'a self, batch: &'a [Event]) -> BoxFuture<'a, Result<(), DeliveryError>> {
        self.0.lock().extend(batch.iter().cloned());
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Collect {
    fn of(&self, key: &str) -> Vec<Event> {
        self.0.lock().iter().filter(|e| e.key == key).cloned().collect()
    }
}

/// A sink whose endpoint is down: every batch is to be retried.
struct Down;

impl EventSink for Down {
    fn deliver<'a>(&'a self, _: &'a [Event]) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(std::future::ready(Err(DeliveryError::Retry("503 Service Unavailable".into()))))
    }
}

async fn identify(Payload(token): Payload<String>) -> Result<Accept, Error> {
    match token.strip_prefix("user:") {
        Some(user) => Ok(Accept::user(user)),
        None => Err(Error::not_authorized("bad token")),
    }
}

/// A server on Redis: node timeout 1 s, partition leases of 1 s.
async fn node(url: &str, prefix: &str, sink: impl EventSink) -> (Switchboard, SocketAddr) {
    let backends = RedisBackends::connect(url, RedisOptions::default().prefix(prefix)).await.unwrap();
    let mut config = Config::default();
    config.node_timeout = Duration::from_secs(1);
    let delivery = Delivery::new()
        .max_wait(Duration::from_millis(5))
        .poll(Duration::from_millis(20))
        .retry(Duration::from_millis(10), Duration::from_millis(50))
        .lease(Duration::from_secs(1));
    let board = Server::new()
        .config(config)
        .backends(backends)
        .namespace(Namespace::new("main").identify(identify).topic("chat/{room}", TopicOptions::new()))
        .deliver_events(sink, delivery)
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(board.clone().serve(listener));
    (board, addr)
}

/// A node that can crash: it runs in its own thread, on its own runtime.
struct Crashable {
    addr: SocketAddr,
    id: String,
    stats: Arc<Mutex<EventStats>>,
    crash: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Crashable {
    fn start(url: String, prefix: String) -> Self {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (crash, mut crashed) = tokio::sync::oneshot::channel::<()>();
        let stats = Arc::new(Mutex::new(EventStats::default()));
        let seen = stats.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let (board, addr) = node(&url, &prefix, Down).await;
                started_tx.send((addr, board.hub().node().to_string())).unwrap();
                loop {
                    *seen.lock() = board.hub().event_stats();
                    tokio::select! {
                        _ = &mut crashed => return,
                        () = tokio::time::sleep(Duration::from_millis(10)) => {}
                    }
                }
            });
            // Nothing of the node runs from here on; dropping the runtime drops its tasks.
            drop(runtime);
        });
        let (addr, id) = started_rx.recv_timeout(Duration::from_secs(30)).expect("node A started");
        Self { addr, id, stats, crash: Some(crash), thread: Some(thread) }
    }

    fn stats(&self) -> EventStats {
        *self.stats.lock()
    }

    fn crash(&mut self) {
        if let Some(crash) = self.crash.take() {
            let _ = crash.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("node A's thread");
        }
    }
}

impl Drop for Crashable {
    fn drop(&mut self) {
        self.crash();
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends a request and waits for its reply (`~ok`).
async fn call(ws: &mut Ws, id: u64, kind: &str, payload: Value) -> Value {
    ws.send(Message::text(json!([kind, payload, id]).to_string())).await.unwrap();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a reply");
        if let Some(Ok(Message::Text(t))) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v.get(2) == Some(&json!(id)) {
                assert_eq!(v[0], "~ok", "{v}");
                return v[1].clone();
            }
        }
    }
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.event.kind()).collect()
}

#[tokio::test]
async fn a_crashed_nodes_backlog_and_disconnects_are_delivered_once_by_the_survivor() {
    let redis = RedisServer::start();
    a_node_crashes(redis.url()).await.shutdown().await;
}

#[tokio::test]
async fn on_a_redis_cluster_too() {
    let cluster = RedisCluster::start();
    let b = a_node_crashes(cluster.url()).await;
    // The 16 partitions (their leases, all taken by B) are spread over the masters, one hash
    // tag each; the streams written to kept nothing once it was delivered.
    let leases = cluster.keys("*:ev:*}:l");
    assert_eq!(leases.len(), 16, "{leases:?}");
    let masters: HashSet<u16> = leases.iter().map(|k| cluster.port_of(k)).collect();
    assert!(masters.len() > 1, "{masters:?}");
    let streams = cluster.keys("*:ev:*}:s");
    assert!(!streams.is_empty());
    for stream in streams {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{}", cluster.port_of(&stream)))
            .and_then(|c| c.get_connection())
            .unwrap();
        let len: usize = redis::cmd("XLEN").arg(&stream).query(&mut c).unwrap();
        assert_eq!(len, 0, "{stream}: all delivered and committed");
    }
    b.shutdown().await;
}

/// Node A (whose sink is down) writes events, node B (a working sink) joins, A crashes: B
/// delivers A's backlog and announces A's connection, each event once. Returns B, running.
async fn a_node_crashes(url: String) -> Switchboard {
    let p = prefix("lifecycle");
    // Node A first, alone: it takes every partition's lease. Its sink is down, so what it
    // writes to the log stays there.
    let mut a = Crashable::start(url.clone(), p.clone());
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", a.addr)).await.unwrap();
    let welcome = call(&mut ws, 1, "~hello", json!({"identity": "user:ada"})).await;
    let conn = welcome["conn"].as_str().unwrap().to_owned();
    call(&mut ws, 2, "~sub", json!({"topic": "chat/x"})).await;
    let written = eventually(Duration::from_secs(5), async || {
        let s = a.stats();
        s.appended >= 4 && s.retries >= 1
    })
    .await;
    assert!(
        written,
        "connect, user_online, subscribe, occupied written; A tried to deliver: {:?}",
        a.stats()
    );
    assert_eq!(a.stats().delivered, 0);

    // Node B joins; A holds the leases, so B delivers nothing yet.
    let sink = Collect::default();
    let (b, _) = node(&url, &p, sink.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.of("user:ada").is_empty(), "A's partitions are A's while it lives");

    a.crash();
    // The client sees its connection end without a close frame from the server.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the connection ends");
    assert_eq!(end, None, "no close frame from a crashed server");

    let want = [
        EventKind::Connect,
        EventKind::Subscribe,
        EventKind::UserOnline,
        EventKind::Disconnect,
        EventKind::UserOffline,
    ];
    let complete = eventually(Duration::from_secs(15), async || {
        let mine = kinds(&sink.of("user:ada"));
        want.iter().all(|k| mine.contains(k)) && kinds(&sink.of("topic:chat/x")).contains(&EventKind::Vacated)
    })
    .await;
    assert!(complete, "{:#?}", sink.0.lock());
    // Longer than a lease and a node timeout: anything delivered twice would be by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let all = sink.0.lock().clone();
    let ids: HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "each event once: {all:#?}");
    let mine = sink.of("user:ada");
    assert_eq!(mine.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5], "{mine:#?}");
    assert_eq!(
        kinds(&mine),
        [
            EventKind::Connect,
            EventKind::UserOnline,
            EventKind::Subscribe,
            EventKind::Disconnect,
            EventKind::UserOffline
        ]
    );
    let node_b = b.hub().node().to_string();
    assert!(mine[..3].iter().all(|e| e.node == a.id), "written by A, delivered by B");
    assert!(mine[3..].iter().all(|e| e.node == node_b), "announced by B");
    assert_eq!(
        mine[3].event,
        LifecycleEvent::Disconnect {
            conn,
            user: Some("ada".into()),
            ns: "main".into(),
            code: 1006,
            reason: "its server stopped".into()
        }
    );
    let topic = sink.of("topic:chat/x");
    assert_eq!(kinds(&topic), [EventKind::Occupied, EventKind::Vacated]);
    assert_eq!(topic.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!((topic[0].node.as_str(), topic[1].node.as_str()), (a.id.as_str(), node_b.as_str()));
    let stats = b.hub().event_stats();
    assert_eq!(stats.delivered as usize, all.len());
    assert_eq!((stats.lost, stats.rejected), (0, 0));
    b
}
