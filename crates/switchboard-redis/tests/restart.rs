//! A Redis restart in the middle of a stream: the broker reconnects and resubscribes by itself,
//! publishing during the outage is an error, history starts a new epoch, and this node's presence
//! and user entries are written again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{RedisServer, eventually, prefix};
use parking_lot::Mutex;
use switchboard_core::{BrokerSink, ConnRef, HistoryOptions, NodeId, Position};
use switchboard_redis::{RedisBackends, RedisOptions};

#[derive(Default)]
struct Recorder(Mutex<Vec<(Option<String>, Bytes)>>);

impl BrokerSink for Recorder {
    fn publication(&self, topic: &str, publication: Bytes) {
        self.0.lock().push((Some(topic.to_owned()), publication));
    }
    fn node_message(&self, message: Bytes) {
        self.0.lock().push((None, message));
    }
}

impl Recorder {
    fn has(&self, topic: Option<&str>, body: &str) -> bool {
        self.0.lock().iter().any(|(t, b)| t.as_deref() == topic && b == body.as_bytes())
    }
}

fn options(p: &str) -> RedisOptions {
    RedisOptions::default()
        .prefix(p)
        .timeout(Duration::from_millis(500))
        .heartbeat(Duration::from_millis(200), Duration::from_secs(2))
}

#[tokio::test]
async fn redis_restart_mid_stream() {
    let mut redis = RedisServer::start();
    let p = prefix("restart");
    let a = RedisBackends::connect(&redis.url(), options(&p)).await.unwrap();
    let b = RedisBackends::connect(&redis.url(), options(&p)).await.unwrap();
    let (na, nb): (NodeId, NodeId) = (Arc::from("node-a"), Arc::from("node-b"));
    let (ra, rb) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    a.broker.attach(na.clone(), ra.clone()).await.unwrap();
    b.broker.attach(nb.clone(), rb.clone()).await.unwrap();
    b.broker.subscribe(&nb, "t/x").await.unwrap();

    let opts = HistoryOptions { size: 10, ttl: None };
    let before = a.history.append("t/x", Bytes::from("h1"), opts, None).await.unwrap().position;
    assert_eq!(before.seq, 1);
    a.broker.publish(&na, "t/x", Bytes::from("before")).await.unwrap();
    assert!(eventually(Duration::from_secs(5), async || rb.has(Some("t/x"), "before")).await);

    a.presence.join("room", "conn-a", Bytes::from("info-a")).await.unwrap();
    let me = ConnRef { conn: Arc::from("conn-a"), node: na.clone() };
    a.users.register("ada", me.clone(), None).await.unwrap();

    redis.stop();
    let during = a.broker.publish(&na, "t/x", Bytes::from("during")).await;
    assert!(during.is_err(), "a publication that cannot reach Redis is an error");
    assert!(a.broker.send(&na, Some(&nb), Bytes::from("during")).await.is_err());
    assert!(a.history.append("t/x", Bytes::from("h2"), opts, None).await.is_err());
    assert!(b.presence.list("room").await.is_err());

    redis.restart();
    // The subscriber's connection comes back by itself: publish until one gets through.
    let mut n = 0;
    let through = eventually(Duration::from_secs(10), async || {
        n += 1;
        let _ = a.broker.publish(&na, "t/x", Bytes::from(format!("after-{n}"))).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        rb.has(Some("t/x"), &format!("after-{n}"))
    })
    .await;
    assert!(through, "after the restart a publication reaches the other node again");
    assert!(!rb.has(Some("t/x"), "during"));
    // Node channels and broadcasts were resubscribed too, in both directions.
    assert!(
        eventually(Duration::from_secs(5), async || b
            .broker
            .send(&nb, Some(&na), Bytes::from("to-a"))
            .await
            .is_ok())
        .await
    );
    a.broker.send(&na, None, Bytes::from("all")).await.unwrap();
    assert!(eventually(Duration::from_secs(5), async || ra.has(None, "to-a") && rb.has(None, "all")).await);
    assert!(!ra.0.lock().iter().any(|(t, _)| t.is_some()), "a never hears its own publications");

    // History lost its stream: a new epoch, numbered from 1, and the old position is not recoverable.
    let after = a.history.append("t/x", Bytes::from("h3"), opts, None).await.unwrap().position;
    assert_ne!(after.epoch, before.epoch, "a new epoch after Redis lost the history");
    assert_eq!(after.seq, 1);
    let r = b.history.recover("t/x", &Position { epoch: before.epoch.clone(), seq: 1 }).await.unwrap();
    assert!(!r.complete);
    assert_eq!(r.position, after);

    // This node's presence and user entries are written again after its heartbeat notices.
    let back = eventually(Duration::from_secs(5), async || {
        let list = b.presence.list("room").await.unwrap_or_default();
        let users = b.users.connections("ada").await.unwrap_or_default();
        list.len() == 1 && list[0].conn == "conn-a" && list[0].info == "info-a" && users == [me.clone()]
    })
    .await;
    assert!(back, "presence and users are written again after Redis lost them");

    // Unsubscribing still works on the new connection.
    b.broker.unsubscribe(&nb, "t/x").await.unwrap();
    a.broker.publish(&na, "t/x", Bytes::from("after-unsub")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!rb.has(Some("t/x"), "after-unsub"));
}
