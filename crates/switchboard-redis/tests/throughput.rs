//! Publications per second through the broker, from one instance to another, on one Redis and on
//! a 3-master Redis Cluster, with 1 and with 4 concurrent publishers. A measurement, not a check
//! (ignored by default); run it in release mode:
//!
//! ```text
//! cargo test --release -p switchboard-redis --test throughput -- --ignored --nocapture --test-threads 1
//! ```

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{RedisCluster, RedisServer, eventually, prefix};
use switchboard_core::{BrokerSink, NodeId};
use switchboard_redis::{RedisBackends, RedisOptions};

#[derive(Default)]
struct Counter(AtomicUsize);

impl BrokerSink for Counter {
    fn publication(&self, _: &str, _: Bytes) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn node_message(&self, _: Bytes) {}
}

/// `total` publications of 100 bytes by `publishers` concurrent tasks (each on its own topic,
/// each awaiting every publish, as the framework does under a topic's order lock); returns
/// publications per second, counted until the other instance received them all.
async fn rate(url: &str, publishers: usize, total: usize) -> f64 {
    let p = prefix("rate");
    let a = RedisBackends::connect(url, RedisOptions::default().prefix(&p)).await.unwrap();
    let b = RedisBackends::connect(url, RedisOptions::default().prefix(&p)).await.unwrap();
    let (na, nb): (NodeId, NodeId) = (Arc::from("na"), Arc::from("nb"));
    let got = Arc::new(Counter::default());
    a.broker.attach(na.clone(), Arc::new(Counter::default())).await.unwrap();
    b.broker.attach(nb.clone(), got.clone()).await.unwrap();
    for w in 0..publishers {
        b.broker.subscribe(&nb, &format!("bench/{w}")).await.unwrap();
    }
    let body = Bytes::from(vec![b'x'; 100]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..publishers {
        let (a, na, body) = (a.clone(), na.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let topic = format!("bench/{w}");
            for _ in 0..total / publishers {
                a.broker.publish(&na, &topic, body.clone()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let want = total / publishers * publishers;
    assert!(eventually(Duration::from_secs(60), async || got.0.load(Ordering::Relaxed) == want).await);
    want as f64 / start.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release mode with --ignored --nocapture"]
async fn publications_per_second() {
    let single = RedisServer::start();
    let cluster = RedisCluster::start();
    const N: usize = 40_000;
    for (name, url) in [("one Redis", single.url()), ("3-master cluster", cluster.url())] {
        for publishers in [1, 4, 16] {
            let r = rate(&url, publishers, N).await;
            eprintln!("{name:>16}, {publishers:>2} publisher(s): {r:>8.0} publications/s");
        }
    }
}
