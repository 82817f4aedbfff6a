//! Unit tests of the connection task: a fake transport plays the server, and time is paused
//! (`tokio::time::pause`), so backoff delays and heartbeats are checked exactly and quickly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_protocol::ErrorBody;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::transport::fake::{FakeConn, FakeConnector, Plan};
use crate::transport::{Incoming, Outgoing};
use crate::{
    Backoff, CallOptions, Client, ClientBuilder, ClientError, CloseReason, ConnectionError, State,
    SubscribeOptions, TopicEvent,
};

mod epoch;
mod errors;
mod history;

/// A message the client sent, decoded.
#[derive(Debug)]
struct Msg {
    kind: String,
    payload: Value,
    id: Option<u64>,
}

/// The server's end of one fake connection.
struct Srv {
    conn: FakeConn,
}

impl Srv {
    /// The next message, `~ping`s included.
    async fn next_any(&mut self) -> Msg {
        match self.conn.from_client.recv().await.expect("the client closed the link") {
            Outgoing::Frame(bytes) => {
                let v: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
                Msg {
                    kind: v[0].as_str().unwrap().to_owned(),
                    payload: v.get(1).cloned().unwrap_or(Value::Null),
                    id: v.get(2).and_then(Value::as_u64),
                }
            }
            Outgoing::Close { code, reason } => {
                Msg { kind: "close".into(), payload: json!([code, reason]), id: None }
            }
        }
    }

    /// The next message that is not a `~ping`.
    async fn next(&mut self) -> Msg {
        loop {
            let m = self.next_any().await;
            if m.kind != "~ping" {
                return m;
            }
        }
    }

    // By value: call sites pass `json!` literals.
    #[allow(clippy::needless_pass_by_value)]
    fn send(&self, v: Value) {
        let bytes = Bytes::from(serde_json::to_vec(&v).unwrap());
        let _ = self.conn.to_client.send(Ok(Incoming::Frame(bytes)));
    }

    fn close(&self, code: u16, reason: &str) {
        let _ = self.conn.to_client.send(Ok(Incoming::Close { code, reason: reason.into() }));
    }

    /// Answers the `~hello` (heartbeat off); returns its payload.
    async fn welcome(&mut self) -> Value {
        let hello = self.next().await;
        assert_eq!(hello.kind, "~hello");
        let w = json!({"conn": "c1", "user": "u", "ns": "main", "data": {"hello": "u"}, "heartbeat": 0});
        self.send(json!(["~ok", w, hello.id]));
        hello.payload
    }
}

struct Harness {
    client: Client,
    connector: FakeConnector,
    conns: mpsc::UnboundedReceiver<FakeConn>,
}

impl Harness {
    fn start(configure: impl FnOnce(ClientBuilder) -> ClientBuilder) -> Self {
        let (connector, conns) = FakeConnector::new();
        let builder = Client::builder("ws://fake/ws")
            .backoff(Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(1),
                max_attempts: None,
            })
            .connector(Arc::new(connector.clone()));
        let client = configure(builder).start().unwrap();
        Self { client, connector, conns }
    }

    async fn accept(&mut self) -> Srv {
        Srv { conn: self.conns.recv().await.unwrap() }
    }

    /// Accepts and identifies.
    async fn ready(&mut self) -> Srv {
        let mut srv = self.accept().await;
        srv.welcome().await;
        self.client.ready().await.unwrap();
        srv
    }

    async fn wait_state(&self, pred: impl Fn(&State) -> bool) -> State {
        self.client.states().wait_for(|s| pred(s)).await.unwrap().clone()
    }
}

#[tokio::test(start_paused = true)]
async fn states_follow_the_connection_and_the_close_codes() {
    let mut h = Harness::start(|b| b);
    assert_eq!(h.client.state(), State::Connecting);
    let srv = h.ready().await;
    assert_eq!(h.client.welcome().unwrap().conn, "c1");

    srv.close(4001, "heartbeat timeout");
    let state = h.wait_state(|s| !s.is_ready()).await;
    let closed = ConnectionError::Closed { code: 4001, reason: "heartbeat timeout".into() };
    assert_eq!(state, State::Reconnecting { attempt: 1, last_error: closed });
    let srv = h.ready().await;

    srv.close(1001, "going away");
    h.wait_state(|s| !s.is_ready()).await;
    let srv = h.ready().await;

    drop(srv); // the link ends without a close frame: 1006
    h.wait_state(|s| !s.is_ready()).await;
    let srv = h.ready().await;

    srv.close(1012, "service restart");
    h.wait_state(|s| !s.is_ready()).await;
    let srv = h.ready().await;
    assert_eq!(h.client.stats().connections, 5);

    srv.close(4503, "kicked");
    let state = h.wait_state(State::is_closed).await;
    let kicked = ConnectionError::Closed { code: 4503, reason: "kicked".into() };
    assert_eq!(state, State::Closed { reason: CloseReason::Failed(kicked.clone()) });
    assert_eq!(state.last_error(), Some(&kicked));
    let err = h.client.call::<Value, _>("echo", &1).await.unwrap_err();
    assert_eq!(err.code(), "DISCONNECTED");
    assert_eq!(err.connection_error(), Some(&kicked));
    assert!(matches!(err, ClientError::Closed(CloseReason::Failed(_))), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn normal_closure_and_protocol_errors_stop() {
    for code in [1000, 4500, 4501, 4502, 4504] {
        let mut h = Harness::start(|b| b);
        let srv = h.ready().await;
        srv.close(code, "");
        let state = h.wait_state(State::is_closed).await;
        let closed = ConnectionError::Closed { code, reason: String::new() };
        assert_eq!(state, State::Closed { reason: CloseReason::Failed(closed) });
        assert_eq!(h.connector.attempts.lock().unwrap().len(), 1, "no reconnection after {code}");
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_with_full_jitter_and_resets_after_ready() {
    let mut h = Harness::start(|b| b);
    let srv = h.ready().await;
    for _ in 0..5 {
        h.connector.plan(Plan::Refuse);
    }
    let lost_at = Instant::now();
    drop(srv);
    let _srv = h.ready().await;
    let attempts = h.connector.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 7, "1 + 5 refused + 1 accepted");
    // Attempt n waits at most min(1 s, 100 ms × 2^(n−1)) after the previous one.
    let mut previous = lost_at;
    for (n, (at, _)) in attempts[1..].iter().enumerate() {
        let ceiling = Duration::from_millis(100 * (1 << n)).min(Duration::from_secs(1));
        let waited = *at - previous;
        assert!(waited <= ceiling + Duration::from_millis(1), "attempt {}: waited {waited:?}", n + 1);
        previous = *at;
    }
    // After a ready connection the next loss starts again from attempt 1.
    let mut states = h.client.states();
    drop(_srv);
    states.wait_for(|s| !s.is_ready()).await.unwrap();
    assert!(matches!(*states.borrow(), State::Reconnecting { attempt: 1, .. }), "{:?}", *states.borrow());
}

#[tokio::test(start_paused = true)]
async fn max_attempts_gives_up() {
    let mut h = Harness::start(|b| {
        b.backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            max_attempts: Some(3),
        })
    });
    for _ in 0..10 {
        h.connector.plan(Plan::Refuse);
    }
    let state = h.wait_state(State::is_closed).await;
    match state {
        State::Closed { reason: CloseReason::GaveUp { attempts, last_error } } => {
            assert_eq!(attempts, 3);
            assert_eq!(last_error, ConnectionError::Network("connection refused".into()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.connector.attempts.lock().unwrap().len(), 4, "the first connection + 3 attempts");
    let _ = h.conns.try_recv();
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_notices_a_silent_link() {
    let mut h = Harness::start(|b| b.heartbeat(Duration::from_secs(1)));
    let mut srv = h.ready().await;
    let ready_at = Instant::now();
    // The client pings every period; a server that answers keeps the link.
    for _ in 0..5 {
        let ping = srv.next_any().await;
        assert_eq!(ping.kind, "~ping");
        srv.send(json!(["~ok", null, ping.id]));
    }
    assert!(Instant::now() - ready_at >= Duration::from_secs(5));
    assert!(h.client.state().is_ready());
    // Now the server goes silent: within three periods the client reconnects.
    let silent_at = Instant::now();
    let mut states = h.client.states();
    states.wait_for(|s| !s.is_ready()).await.unwrap();
    let noticed = Instant::now() - silent_at;
    assert!(noticed >= Duration::from_secs(2) && noticed <= Duration::from_secs(3), "{noticed:?}");
    drop(srv);
    h.ready().await;
}

#[tokio::test(start_paused = true)]
async fn offline_requests_wait_keep_their_timeout_and_in_flight_ones_fail() {
    let mut h = Harness::start(|b| b.offline_buffer(2));
    let mut srv = h.ready().await;

    // In flight when the link drops: DISCONNECTED.
    let c = h.client.clone();
    let in_flight = tokio::spawn(async move { c.call::<Value, _>("sleep", &json!({"ms": 100})).await });
    assert_eq!(srv.next().await.kind, "sleep");
    drop(srv);
    assert_eq!(in_flight.await.unwrap().unwrap_err().code(), "DISCONNECTED");

    // Offline: refused attempts keep the client offline for a while.
    for _ in 0..4 {
        h.connector.plan(Plan::Refuse);
    }
    let c = h.client.clone();
    let patient = tokio::spawn(async move {
        c.call_with::<Value, _>("echo", &"patient", CallOptions::new().timeout(Duration::from_secs(30))).await
    });
    let c = h.client.clone();
    let hasty = tokio::spawn(async move {
        c.call_with::<Value, _>("echo", &"hasty", CallOptions::new().timeout(Duration::from_millis(50))).await
    });
    tokio::task::yield_now().await;
    let full = h.client.call::<Value, _>("echo", &"third").await.unwrap_err();
    assert_eq!(full.code(), "LIMIT", "the buffer holds two");
    assert_eq!(hasty.await.unwrap().unwrap_err().code(), "TIMEOUT");

    // Reconnected: only the request whose caller still waits is sent.
    let mut srv = h.ready().await;
    let m = srv.next().await;
    assert_eq!((m.kind.as_str(), &m.payload), ("echo", &json!("patient")));
    srv.send(json!(["~ok", "patient", m.id]));
    assert_eq!(patient.await.unwrap().unwrap(), json!("patient"));
    h.client.emit("ping-me", &1).await.unwrap();
    assert_eq!(srv.next().await.kind, "ping-me", "the hasty request was never sent");
}

#[tokio::test(start_paused = true)]
async fn bye_jump_moves_the_next_connection() {
    let mut h = Harness::start(|b| b);
    let srv = h.ready().await;
    srv.send(json!(["~bye", {"code": 4000, "reason": "rebalancing", "jump": "ws://other/ws"}]));
    srv.close(4000, "rebalancing");
    let srv = h.ready().await;
    assert_eq!(srv.conn.url, "ws://other/ws");
    // A bye whose code forbids reconnecting stops, with the bye's reason.
    srv.send(json!(["~bye", {"code": 4503, "reason": "kicked by admin"}]));
    drop(srv);
    let state = h.wait_state(State::is_closed).await;
    assert_eq!(
        state,
        State::Closed {
            reason: CloseReason::Failed(ConnectionError::Closed {
                code: 4503,
                reason: "kicked by admin".into()
            })
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_hello_stops_and_connect_says_why() {
    let (connector, mut conns) = FakeConnector::new();
    let connecting = tokio::spawn(
        Client::builder("ws://fake/ws")
            .identity(&json!({"user": "u", "password": "wrong"}))
            .connector(Arc::new(connector.clone()))
            .connect(),
    );
    let mut srv = Srv { conn: conns.recv().await.unwrap() };
    let hello = srv.next().await;
    assert_eq!(hello.payload, json!({"identity": {"user": "u", "password": "wrong"}}));
    srv.send(json!(["~err", {"code": "NOT_AUTHORIZED", "message": "bad password"}, hello.id]));
    let err = connecting.await.unwrap().unwrap_err();
    assert_eq!(err.code(), "NOT_AUTHORIZED");
    let refused = ConnectionError::Refused { code: "NOT_AUTHORIZED".into(), message: "bad password".into() };
    assert!(matches!(&err, ClientError::Connect(e) if *e == refused), "{err:?}");
    // The client said goodbye and stopped: no second attempt.
    assert_eq!(srv.next().await.kind, "close");
    assert_eq!(connector.attempts.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_identity_provider_runs_at_every_connection_and_challenges_are_answered() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let mut h = Harness::start(move |b| {
        b.namespace("admin")
            .meta(&json!({"device": "test"}))
            .identity_provider(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, std::io::Error>(json!({ "token": format!("t{n}") })) }
            })
            .on_challenge(|q: Value| async move {
                let nonce = q["nonce"].as_str().unwrap_or_default().to_owned();
                Ok::<_, ErrorBody>(nonce.to_uppercase())
            })
    });
    let mut srv = h.accept().await;
    let hello = srv.next().await;
    assert_eq!(
        hello.payload,
        json!({"ns": "admin", "identity": {"token": "t0"}, "meta": {"device": "test"}})
    );
    srv.send(json!(["~challenge", {"nonce": "ab"}, 1]));
    let answer = srv.next().await;
    assert_eq!((answer.kind.as_str(), &answer.payload, answer.id), ("~ok", &json!("AB"), Some(1)));
    let w = json!({"conn": "c1", "user": "u", "ns": "admin", "data": null, "heartbeat": 0});
    srv.send(json!(["~ok", w, hello.id]));
    h.client.ready().await.unwrap();
    srv.close(4003, "credentials expired");
    let mut srv = h.accept().await;
    assert_eq!(srv.welcome().await["identity"], json!({"token": "t1"}));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn server_requests_reach_handlers_and_unknown_ones_get_not_found() {
    let mut h = Harness::start(|b| {
        b.on_request("double", |n: i64| async move { Ok::<_, ErrorBody>(n * 2) }).on_request(
            "boom",
            |_: Value| async move {
                if true {
                    panic!("handler bug");
                }
                Ok::<_, ErrorBody>(())
            },
        )
    });
    let mut srv = h.ready().await;
    h.client.on_request("refuse", |_: Value| async move { Err::<(), _>(ErrorBody::new("NOPE", "no")) });
    srv.send(json!(["double", 21, 7]));
    srv.send(json!(["double", "x", 8]));
    srv.send(json!(["mystery", {}, 9]));
    srv.send(json!(["refuse", null, 10]));
    srv.send(json!(["boom", null, 11]));
    let mut replies = Vec::new();
    for _ in 0..5 {
        let m = srv.next().await;
        replies.push((m.id.unwrap(), m.kind, m.payload));
    }
    replies.sort_by_key(|r| r.0);
    assert_eq!(replies[0], (7, "~ok".into(), json!(42)));
    assert_eq!((replies[1].1.as_str(), &replies[1].2["code"]), ("~err", &json!("BAD_REQUEST")));
    assert_eq!(replies[2].2["code"], "NOT_FOUND");
    assert_eq!(replies[2].2["data"], json!({"type": "mystery"}));
    assert_eq!(replies[3].2, json!({"code": "NOPE", "message": "no"}));
    assert_eq!(replies[4].2["code"], "FAILED");
}

#[tokio::test(start_paused = true)]
async fn acknowledged_deliveries_are_acked_every_time_and_delivered_once() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let mut notes = h.client.events_named("note");
    let mut groups = h.client.group_publications();
    for _ in 0..3 {
        srv.send(json!(["note", {"n": 1}, 5]));
    }
    srv.send(json!(["~msg", {"topic": "group/g", "data": "x", "seq": 1}, 6]));
    srv.send(json!(["~msg", {"topic": "group/g", "data": "x", "seq": 1}, 6]));
    srv.send(json!(["plain", 1]));
    for id in [5, 5, 5, 6, 6] {
        let ack = srv.next().await;
        assert_eq!((ack.kind.as_str(), ack.payload, ack.id), ("~ok", Value::Null, Some(id)));
    }
    assert_eq!(notes.recv().await.unwrap().decode::<Value>().unwrap(), json!({"n": 1}));
    assert_eq!(groups.recv().await.unwrap().topic, "group/g");
    tokio::task::yield_now().await;
    assert!(notes.try_recv().is_none() && groups.try_recv().is_none(), "duplicates dropped");
    assert_eq!(h.client.stats().duplicates_dropped, 3);
}

#[tokio::test(start_paused = true)]
async fn subscriptions_resume_from_the_last_seq_and_report_recovery() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let c = h.client.clone();
    let subscribing = tokio::spawn(async move { c.subscribe("chat/a").await });
    let sub = srv.next().await;
    assert_eq!((sub.kind.as_str(), &sub.payload), ("~sub", &json!({"topic": "chat/a"})));
    srv.send(json!(["~ok", {"topic": "chat/a", "epoch": "e1", "seq": 3, "recovered": false}, sub.id]));
    let mut s = subscribing.await.unwrap().unwrap();
    assert_eq!((s.info().epoch.as_str(), s.info().seq), ("e1", 3));
    for seq in [4, 5, 5] {
        srv.send(json!(["~msg", {"topic": "chat/a", "data": seq, "seq": seq}]));
    }
    assert_eq!(s.next_publication().await.unwrap().seq, 4);
    assert_eq!(s.next_publication().await.unwrap().seq, 5);

    // Lost: the next ~sub asks for what came after 5; deliveries before its reply wait.
    drop(srv);
    let mut srv = h.ready().await;
    let sub = srv.next().await;
    assert_eq!(sub.payload, json!({"topic": "chat/a", "since": {"epoch": "e1", "seq": 5}}));
    srv.send(json!(["~msg", {"topic": "chat/a", "data": 6, "seq": 6}]));
    srv.send(json!(["~ok", {"topic": "chat/a", "epoch": "e1", "seq": 7, "recovered": true}, sub.id]));
    for seq in [6, 7] {
        srv.send(json!(["~msg", {"topic": "chat/a", "data": seq, "seq": seq}]));
    }
    let resubscribed = s.recv().await.unwrap();
    assert!(matches!(resubscribed, TopicEvent::Resubscribed { recovered: true, .. }), "{resubscribed:?}");
    assert_eq!(s.next_publication().await.unwrap().seq, 6);
    assert_eq!(s.next_publication().await.unwrap().seq, 7);

    // The history is gone: the application hears it before anything else.
    drop(srv);
    let mut srv = h.ready().await;
    let sub = srv.next().await;
    assert_eq!(sub.payload["since"], json!({"epoch": "e1", "seq": 7}));
    srv.send(json!(["~ok", {"topic": "chat/a", "epoch": "e2", "seq": 0, "recovered": false}, sub.id]));
    srv.send(json!(["~msg", {"topic": "chat/a", "data": 1, "seq": 1}]));
    let event = s.recv().await.unwrap();
    let TopicEvent::Resubscribed { recovered: false, epoch, seq: 0 } = event else { panic!("{event:?}") };
    assert_eq!(epoch, "e2");
    assert_eq!(s.next_publication().await.unwrap().seq, 1);
    assert_eq!(h.client.stats().duplicates_dropped, 2, "the second 5 and the second 6");

    // Dropping the subscription leaves the topic.
    drop(s);
    let unsub = srv.next().await;
    assert_eq!((unsub.kind.as_str(), unsub.payload), ("~unsub", json!({"topic": "chat/a"})));
}

#[tokio::test(start_paused = true)]
async fn a_refused_resubscription_ends_the_stream() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let c = h.client.clone();
    let subscribing = tokio::spawn(async move { c.subscribe("private/u").await });
    let sub = srv.next().await;
    srv.send(json!(["~ok", {"topic": "private/u", "epoch": "e", "seq": 0, "recovered": false}, sub.id]));
    let mut s = subscribing.await.unwrap().unwrap();
    srv.close(4000, "");
    let mut srv = h.ready().await;
    let sub = srv.next().await;
    srv.send(json!(["~err", {"code": "FORBIDDEN", "message": "no"}, sub.id]));
    let event = s.recv().await.unwrap();
    assert!(matches!(&event, TopicEvent::Ended(e) if e.code() == "FORBIDDEN"), "{event:?}");
    assert!(s.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn presence_status_and_directory_are_restored_after_a_reconnection() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let peer = |conn: &str, alias: &str| json!({"conn": conn, "user": alias, "alias": alias, "available": true, "public": null});

    let c = h.client.clone();
    let status = tokio::spawn(async move { c.set_alias(Some("ally")).await });
    let m = srv.next().await;
    assert_eq!((m.kind.as_str(), &m.payload), ("~status", &json!({"alias": "ally"})));
    srv.send(json!(["~ok", null, m.id]));
    status.await.unwrap().unwrap();

    let c = h.client.clone();
    let directory = tokio::spawn(async move { c.directory().await });
    let who = srv.next().await;
    assert_eq!((who.kind.as_str(), &who.payload), ("~who", &json!({})));
    srv.send(json!(["~peer", {"conn": "c9", "user": "z", "alias": "z", "available": true, "public": null, "online": true}]));
    srv.send(json!(["~ok", {"peers": [peer("c1", "ally"), peer("c2", "bob")]}, who.id]));
    let mut roster = directory.await.unwrap().unwrap();
    assert_eq!(roster.len(), 3, "the change during the load is replayed");

    let c = h.client.clone();
    let subscribing =
        tokio::spawn(async move { c.subscribe_with("chat/a", SubscribeOptions::new().presence(true)).await });
    let sub = srv.next().await;
    srv.send(json!(["~ok", {"topic": "chat/a", "epoch": "e", "seq": 0, "recovered": false}, sub.id]));
    let who = srv.next().await;
    assert_eq!(who.payload, json!({"topic": "chat/a"}));
    srv.send(json!(["~ok", {"peers": [peer("c1", "ally")]}, who.id]));
    let mut s = subscribing.await.unwrap().unwrap();
    assert_eq!(s.presence().unwrap().len(), 1);
    srv.send(json!(["~presence", {"topic": "chat/a", "joins": [peer("c2", "bob")], "leaves": []}]));
    assert!(matches!(s.recv().await.unwrap(), TopicEvent::Presence(_)));
    assert_eq!(s.presence().unwrap().len(), 2);

    // After a reconnection: the status, the subscription, then the directory again.
    drop(srv);
    let mut srv = h.ready().await;
    let msgs = [srv.next().await, srv.next().await, srv.next().await];
    assert_eq!((msgs[0].kind.as_str(), &msgs[0].payload), ("~status", &json!({"alias": "ally"})));
    assert_eq!(msgs[1].kind, "~sub");
    assert_eq!((msgs[2].kind.as_str(), &msgs[2].payload), ("~who", &json!({})));
    srv.send(json!(["~ok", {"peers": [peer("c1", "ally"), peer("c2", "bob")]}, msgs[2].id]));
    roster.wait_for(|peers| peers.len() == 2).await.unwrap();
    srv.send(json!(["~peer", {"conn": "c2", "user": "bob", "alias": "bob", "available": true, "public": null, "online": false}]));
    let peers = roster.wait_for(|peers| peers.len() == 1).await.unwrap();
    assert!(peers.contains_key("c1"));
}

#[tokio::test(start_paused = true)]
async fn close_fails_what_waits_and_ends_streams() {
    let mut h = Harness::start(|b| b);
    let _srv = h.ready().await;
    let mut events = h.client.events();
    let c = h.client.clone();
    let pending = tokio::spawn(async move { c.call::<Value, _>("sleep", &json!({"ms": 1000})).await });
    tokio::task::yield_now().await;
    h.client.close().await;
    assert_eq!(h.client.state(), State::Closed { reason: CloseReason::Requested });
    assert_eq!(pending.await.unwrap().unwrap_err().code(), "DISCONNECTED");
    assert!(events.recv().await.is_none());
    assert!(h.client.emit("x", &1).await.is_err());
}

#[test]
fn handles_and_streams_cross_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Client>();
    send_sync::<crate::Roster>();
    send_sync::<crate::ClientError>();
    send::<crate::Subscription>();
    send::<crate::Events>();
    send::<crate::DirectMessages>();
}
