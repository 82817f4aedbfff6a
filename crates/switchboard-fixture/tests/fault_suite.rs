//! The fault suite (issue #18; the figures are in docs/cluster.md, "Faults, measured").
//!
//! Two fixture processes share a real Redis (one `redis-server`, or a local Redis Cluster of
//! three masters with a replica each). A publisher on node A publishes `{"n": N}` on one topic,
//! N counting up, at a steady 200/s, each with an idempotency key and retried until it is
//! acknowledged. Three subscribers on each node count what they receive through the real Rust
//! client (`switchboard-client`): it resubscribes with the last epoch and `seq` after a
//! reconnection or a close 4000, drops what it already delivered (by epoch and `seq`), and says
//! `recovered: false` when a gap could not be filled. Every subscriber reaches its node through a
//! small TCP load balancer that sends each new connection to its node, or to the other node when
//! its own is gone.
//!
//! Then one fault:
//! 1. Redis SIGKILLed, and restarted empty on the same port one second later;
//! 2. Redis SIGSTOPped for 5 s, then SIGCONTed;
//! 3. node B SIGKILLed: its subscribers reconnect (through the load balancer) to node A;
//! 4. on the Redis Cluster, the master that holds the topic SIGKILLed; its replica takes over.
//!
//! Each case checks, for every acknowledged publication and every subscriber: it was delivered,
//! or the subscriber was told that it may have missed something (`recovered: false`) between the
//! deliveries around it. It asserts that none was lost without that signal, that no `(epoch,
//! seq)` and no publication was delivered twice, that none came out of order, that every
//! subscriber receives the publications made after the fault, and that the topic's presence
//! (`~who`) lists exactly the subscribers' current connections at the end. It prints one line
//! of figures to stderr (outside the test harness's capture, so that `scripts/test.sh` shows
//! them): lost-unsignalled, duplicates, out-of-order, the signals, the time until every
//! subscriber received publications again, and the time until presence was right again.
//!
//! The cases run one at a time (their figures are timings). They need `redis-server` and
//! `redis-cli` (Debian packages `redis-server`, `redis-tools`); `scripts/test.sh` installs them.
//! `scripts/test.sh` runs them in the one-node pass of the conformance suite only (they choose
//! their own nodes): the two-node pass skips the names that start with `fault_suite_`.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard_client::{Backoff, Client, PublishOptions, State, TopicEvent};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The topic (a `chat/` topic of the fixture: clients publish, presence on, history of 100).
const TOPIC: &str = "chat/faults";
/// One publication every 5 ms: 200/s.
const PERIOD: Duration = Duration::from_millis(5);
/// Subscribers on each node.
const PER_NODE: usize = 3;
/// Publishing before the fault.
const WARM_UP: Duration = Duration::from_secs(2);
/// How long a case may take after the fault before it fails.
const LIMIT: Duration = Duration::from_secs(30);

/// One case at a time: the figures are timings, measured without another case competing.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// The pieces: a load balancer, a publisher, subscribers, a presence watcher
// ---------------------------------------------------------------------------------------------

/// A TCP load balancer: each new connection goes to the first of `backends` that accepts it.
async fn balancer(backends: Vec<SocketAddr>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the load balancer");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let backends = backends.clone();
            tokio::spawn(async move {
                for backend in backends {
                    if let Ok(mut outbound) = TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A Rust client identified as `user` that retries quickly (100 ms, doubling up to 1 s).
async fn client(addr: SocketAddr, user: &str) -> Client {
    Client::builder(format!("ws://{addr}/ws"))
        .identity(&password_identity(user))
        .backoff(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: None,
        })
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{user} cannot connect to {addr}: {e}"))
}

/// What a subscriber saw, in order.
#[derive(Clone, Debug)]
enum Seen {
    /// A publication: the publisher's counter, its epoch and `seq`.
    Publication { n: u64, epoch: String, seq: u64, at: Instant },
    /// `recovered: false`: publications before this point may be missing.
    Gap,
    /// The subscription ended (the server refused to resubscribe), or a delivery was not ours.
    Broken(String),
}

struct Subscriber {
    name: String,
    client: Client,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    async fn start(addr: SocketAddr, name: &str) -> Subscriber {
        let client = client(addr, name).await;
        let mut sub =
            client.subscribe(TOPIC).await.unwrap_or_else(|e| panic!("{name} cannot subscribe: {e}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let mut epoch = sub.info().epoch.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = sub.recv().await {
                let item = match event {
                    TopicEvent::Publication(p) => match p.decode::<Value>().map(|d| d["n"].as_u64()) {
                        Ok(Some(n)) => {
                            Seen::Publication { n, epoch: epoch.clone(), seq: p.seq, at: Instant::now() }
                        }
                        other => Seen::Broken(format!("a delivery that is not {{\"n\": N}}: {other:?}")),
                    },
                    TopicEvent::Resubscribed { recovered, epoch: now, .. } => {
                        epoch = now;
                        if recovered {
                            continue;
                        }
                        Seen::Gap
                    }
                    TopicEvent::Ended(e) => Seen::Broken(format!("the subscription ended: {e}")),
                    _ => continue,
                };
                log.lock().unwrap().push(item);
            }
        });
        Subscriber { name: name.to_owned(), client, seen, task }
    }

    /// The greatest counter delivered so far.
    fn last(&self) -> u64 {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter_map(|s| match s {
                Seen::Publication { n, .. } => Some(*n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether a publication was delivered after `t`.
    fn delivered_after(&self, t: Instant) -> bool {
        self.seen.lock().unwrap().iter().any(|s| matches!(s, Seen::Publication { at, .. } if *at > t))
    }

    /// When the first publication numbered `n` or above was delivered.
    fn first_from(&self, n: u64) -> Option<Instant> {
        self.seen.lock().unwrap().iter().find_map(|s| match s {
            Seen::Publication { n: m, at, .. } if *m >= n => Some(*at),
            _ => None,
        })
    }
}

/// One acknowledged publication.
struct Acked {
    n: u64,
    /// When its first attempt was sent.
    sent: Instant,
    /// When its `~ok` came.
    at: Instant,
}

/// What the publisher did.
#[derive(Default)]
struct Published {
    acked: Vec<Acked>,
    /// Attempts answered `UNAVAILABLE` (not published anywhere).
    refused: usize,
    /// Attempts answered `TIMEOUT` or `DISCONNECTED` (outcome unknown: retried with the same key).
    unknown: usize,
    /// Any other error.
    other: Vec<String>,
}

/// Publishes `{"n": N}` every [`PERIOD`], each with the key `fs-N`, retried every 50 ms until
/// acknowledged, until `stop`.
fn publisher(client: Client, stop: Arc<AtomicBool>) -> JoinHandle<Published> {
    tokio::spawn(async move {
        let mut out = Published::default();
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            n += 1;
            let sent = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let key = PublishOptions::new().key(format!("fs-{n}"));
                match client.publish_with(TOPIC, &json!({ "n": n }), key).await {
                    Ok(_) => {
                        out.acked.push(Acked { n, sent, at: Instant::now() });
                        break;
                    }
                    Err(e) => match e.code() {
                        "UNAVAILABLE" => out.refused += 1,
                        "TIMEOUT" | "DISCONNECTED" => out.unknown += 1,
                        _ => out.other.push(e.to_string()),
                    },
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        out
    })
}

/// When the presence was sampled, and whether it was right then.
type Samples = Arc<Mutex<Vec<(Instant, bool)>>>;

/// Samples, every 100 ms, whether the topic's presence as `observer` sees it (`~who`) is
/// exactly the subscribers' current connections (all of them connected).
fn presence_watcher(observer: Client, clients: Vec<Client>) -> (Samples, JoinHandle<()>) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&samples);
    let task = tokio::spawn(async move {
        loop {
            let expected: Option<BTreeSet<String>> = clients
                .iter()
                .map(|c| match c.state() {
                    State::Ready => c.welcome().map(|w| w.conn),
                    _ => None,
                })
                .collect();
            let listed =
                observer.who_in(TOPIC).await.ok().map(|peers| peers.into_iter().map(|p| p.conn).collect());
            let right = expected.is_some() && listed == expected;
            log.lock().unwrap().push((Instant::now(), right));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (samples, task)
}

// ---------------------------------------------------------------------------------------------
// A case: the load, the fault, the figures
// ---------------------------------------------------------------------------------------------

/// When a fault began and when it was over (Redis back, the process resumed, the node dead, the
/// replica promoted).
struct Fault {
    began: Instant,
    over: Instant,
}

/// What one subscriber's record shows.
#[derive(Default, Debug)]
struct Examined {
    /// Acknowledged publications neither delivered nor covered by a `recovered: false`.
    lost_unsignalled: usize,
    /// Acknowledged publications not delivered, but signalled.
    missed_signalled: usize,
    /// When the first and the last of those were acknowledged.
    missed_window: Option<(Instant, Instant)>,
    /// An `(epoch, seq)` delivered again.
    duplicates: usize,
    /// A publication (its counter) delivered again, under another `seq` of the same epoch: the
    /// idempotency key did not work.
    repeated: usize,
    /// A publication delivered again in a later epoch: its retry came after Redis lost the
    /// history (and the key with it), which the protocol allows; the subscriber was told of the
    /// new stream (`recovered: false`) in between.
    republished: usize,
    /// A publication delivered after a later one.
    out_of_order: usize,
    /// `recovered: false` signals.
    gaps: usize,
    broken: Vec<String>,
}

fn examine(acked: &[Acked], seen: &[Seen]) -> Examined {
    let mut out = Examined::default();
    let mut at_index: HashMap<u64, usize> = HashMap::new();
    let mut first_epoch: HashMap<u64, &str> = HashMap::new();
    let mut pairs = HashSet::new();
    let mut highest = 0;
    for (i, s) in seen.iter().enumerate() {
        match s {
            Seen::Publication { n, epoch, seq, .. } => {
                if !pairs.insert((epoch.clone(), *seq)) {
                    out.duplicates += 1;
                } else if let Some(first) = first_epoch.get(n) {
                    if *first == epoch.as_str() {
                        out.repeated += 1;
                    } else {
                        out.republished += 1;
                    }
                } else if *n < highest {
                    out.out_of_order += 1;
                }
                at_index.entry(*n).or_insert(i);
                first_epoch.entry(*n).or_insert(epoch.as_str());
                highest = highest.max(*n);
            }
            Seen::Gap => out.gaps += 1,
            Seen::Broken(e) => out.broken.push(e.clone()),
        }
    }
    let delivered: Vec<(u64, usize)> = {
        let mut d: Vec<(u64, usize)> = at_index.iter().map(|(n, i)| (*n, *i)).collect();
        d.sort_unstable();
        d
    };
    for a in acked {
        if at_index.contains_key(&a.n) {
            continue;
        }
        // Between the deliveries of the neighbouring counters, was there a signal?
        let below = delivered.partition_point(|(n, _)| *n < a.n);
        let from = if below == 0 { 0 } else { delivered[below - 1].1 + 1 };
        let to = delivered.get(below).map_or(seen.len(), |(_, i)| *i);
        let (lo, hi) = (from.min(to), from.max(to));
        if seen[lo..hi].iter().any(|s| matches!(s, Seen::Gap)) {
            out.missed_signalled += 1;
            let (first, last) = out.missed_window.unwrap_or((a.at, a.at));
            out.missed_window = Some((first.min(a.at), last.max(a.at)));
        } else {
            out.lost_unsignalled += 1;
        }
    }
    out
}

/// Runs the load on nodes `a` and `b`, injects `fault` after [`WARM_UP`], measures, prints the
/// figures and asserts the zeros.
async fn run_case(name: &str, a: SocketAddr, b: SocketAddr, fault: impl Future<Output = Fault>) {
    let lb_a = balancer(vec![a, b]).await;
    let lb_b = balancer(vec![b, a]).await;
    let mut subscribers = Vec::new();
    for i in 0..PER_NODE {
        subscribers.push(Subscriber::start(lb_a, &format!("sa{i}")).await);
        subscribers.push(Subscriber::start(lb_b, &format!("sb{i}")).await);
    }
    let observer = subscribers[0].client.clone();
    let (presence, watcher) =
        presence_watcher(observer, subscribers.iter().map(|s| s.client.clone()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = publisher(client(a, "publisher").await, Arc::clone(&stop));

    tokio::time::sleep(WARM_UP).await;
    let fault = fault.await;

    // Go on until every subscriber receives publications again (one delivered 0.5 s after the
    // fault was over) and presence is right, then 2 s more.
    let deadline = fault.over + LIMIT;
    let again = fault.over + Duration::from_millis(500);
    loop {
        let presence_right = presence.lock().unwrap().last().is_some_and(|(at, ok)| *ok && *at > fault.over);
        let resumed = subscribers.iter().all(|s| s.delivered_after(again));
        if (presence_right && resumed) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let published = publishing.await.expect("the publisher");
    let last = published.acked.last().map_or(0, |p| p.n);
    // Everything in flight arrives.
    let drain = Instant::now() + Duration::from_secs(10);
    while subscribers.iter().any(|s| s.last() < last) && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    watcher.abort();

    // The figures.
    let n_after = published.acked.iter().find(|p| p.sent >= fault.over).map(|p| p.n);
    let mut total = Examined::default();
    let mut recovered_after = Duration::ZERO;
    let mut problems = Vec::new();
    for s in &subscribers {
        let seen = s.seen.lock().unwrap().clone();
        let e = examine(&published.acked, &seen);
        match n_after.and_then(|n| s.first_from(n)) {
            Some(at) => recovered_after = recovered_after.max(at.saturating_duration_since(fault.began)),
            None => problems.push(format!("{} received nothing published after the fault", s.name)),
        }
        if s.last() < last {
            problems.push(format!("{} stopped at {} of {last}", s.name, s.last()));
        }
        for b in &e.broken {
            problems.push(format!("{}: {b}", s.name));
        }
        total.lost_unsignalled += e.lost_unsignalled;
        total.missed_signalled += e.missed_signalled;
        if let Some((first, last)) = e.missed_window {
            let (f, l) = total.missed_window.unwrap_or((first, last));
            total.missed_window = Some((f.min(first), l.max(last)));
        }
        total.duplicates += e.duplicates;
        total.repeated += e.repeated;
        total.republished += e.republished;
        total.out_of_order += e.out_of_order;
        total.gaps += e.gaps;
    }
    let samples = presence.lock().unwrap().clone();
    let presence_after = match samples.iter().rposition(|(at, ok)| !ok && *at >= fault.began) {
        None => Duration::ZERO,
        Some(i) => match samples.get(i + 1) {
            Some((at, _)) => at.saturating_duration_since(fault.began),
            None => {
                problems.push("the topic's presence was still wrong at the end".into());
                LIMIT
            }
        },
    };
    let interrupted = published
        .acked
        .windows(2)
        .map(|w| w[1].at.saturating_duration_since(w[0].at))
        .max()
        .unwrap_or_default();
    let missed_window = total.missed_window.map_or(String::new(), |(first, last)| {
        let rel = |t: Instant| {
            if t >= fault.began {
                t.duration_since(fault.began).as_secs_f64()
            } else {
                -fault.began.duration_since(t).as_secs_f64()
            }
        };
        format!(" (acknowledged {:+.2} s to {:+.2} s from the fault)", rel(first), rel(last))
    });
    let line = format!(
        "fault suite | {name}: {} publications acknowledged ({} attempts UNAVAILABLE, {} TIMEOUT/DISCONNECTED, \
         retried with their key), {} subscribers | lost-unsignalled {} | duplicates {} (repeated {}, republished in a new epoch {}) | \
         out-of-order {} | signalled: {} recovered:false covering {} missed{} | publishing paused {:.1} s | \
         fault {:.1} s | recovered after {:.1} s | presence right after {:.1} s",
        published.acked.len(),
        published.refused,
        published.unknown,
        subscribers.len(),
        total.lost_unsignalled,
        total.duplicates,
        total.repeated,
        total.republished,
        total.out_of_order,
        total.gaps,
        total.missed_signalled,
        missed_window,
        interrupted.as_secs_f64(),
        fault.over.saturating_duration_since(fault.began).as_secs_f64(),
        recovered_after.as_secs_f64(),
        presence_after.as_secs_f64(),
    );
    // Past the harness's capture, so that scripts/test.sh shows the figures.
    let _ = writeln!(std::io::stderr(), "{line}");

    assert!(published.other.is_empty(), "{name}: unexpected publish errors: {:?}", published.other);
    assert!(published.acked.len() > 400, "{name}: the publisher barely published: {line}");
    assert!(problems.is_empty(), "{name}: {problems:?}\n{line}");
    assert_eq!(total.lost_unsignalled, 0, "{name}: acknowledged publications lost without a signal\n{line}");
    assert_eq!(total.duplicates, 0, "{name}: an (epoch, seq) delivered twice\n{line}");
    assert_eq!(total.repeated, 0, "{name}: a publication delivered twice\n{line}");
    assert_eq!(total.out_of_order, 0, "{name}: deliveries out of order\n{line}");
}

/// Sends `signal` (`STOP`, `CONT`) to a process.
fn signal(pid: u32, signal: &str) {
    let status =
        Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_suite_redis_killed_and_restarted() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut redis = Redis::start();
    let fa = Fixture::start_with(&["--redis", &redis.url()]);
    let fb = Fixture::start_with(&["--redis", &redis.url()]);
    run_case("Redis SIGKILL, restarted empty 1 s later", fa.addr(), fb.addr(), async {
        let began = Instant::now();
        redis.stop();
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| redis.restart());
        Fault { began, over: Instant::now() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_suite_redis_paused_5_s() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = Redis::start();
    let fa = Fixture::start_with(&["--redis", &redis.url()]);
    let fb = Fixture::start_with(&["--redis", &redis.url()]);
    run_case("Redis SIGSTOP 5 s, SIGCONT", fa.addr(), fb.addr(), async {
        let began = Instant::now();
        signal(redis.pid(), "STOP");
        tokio::time::sleep(Duration::from_secs(5)).await;
        signal(redis.pid(), "CONT");
        Fault { began, over: Instant::now() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_suite_node_killed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = Redis::start();
    let fa = Fixture::start_with(&["--redis", &redis.url()]);
    let mut fb = Fixture::start_with(&["--redis", &redis.url()]);
    let (a, b) = (fa.addr(), fb.addr());
    run_case("node B SIGKILL, its subscribers move to node A", a, b, async {
        let began = Instant::now();
        fb.kill();
        Fault { began, over: Instant::now() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_suite_cluster_master_killed_replica_promoted() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster =
        tokio::task::block_in_place(|| RedisCluster::start_with(1, &["--cluster-node-timeout", "1000"]));
    let fa = Fixture::start_with(&["--redis", &cluster.url()]);
    let fb = Fixture::start_with(&["--redis", &cluster.url()]);
    run_case(
        "Redis Cluster (3 masters + 3 replicas): the topic's master SIGKILL, replica promoted",
        fa.addr(),
        fb.addr(),
        async {
            // The master that holds the topic's keys, and its replica.
            let (master, replica) = tokio::task::block_in_place(|| {
                let ports = cluster.ports();
                let role = |p: u16| redis_cli(&["-p", &p.to_string(), "info", "replication"]);
                let master = *ports
                    .iter()
                    .find(|p| {
                        role(**p).contains("role:master")
                            && !redis_cli(&[
                                "-p",
                                &p.to_string(),
                                "--scan",
                                "--pattern",
                                &format!("*:h:*{TOPIC}*"),
                            ])
                            .trim()
                            .is_empty()
                    })
                    .expect("a master holds the topic's keys");
                let replica = *ports
                    .iter()
                    .find(|p| role(**p).contains(&format!("master_port:{master}\r")))
                    .expect("the master has a replica");
                (master, replica)
            });
            let began = Instant::now();
            cluster.kill(master);
            let deadline = began + LIMIT;
            while !redis_cli(&["-p", &replica.to_string(), "info", "replication"]).contains("role:master") {
                assert!(Instant::now() < deadline, "the replica {replica} was not promoted");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Fault { began, over: Instant::now() }
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The bookkeeping itself
// ---------------------------------------------------------------------------------------------

#[test]
fn the_bookkeeping_finds_losses_duplicates_and_disorder() {
    let t = Instant::now();
    let acked: Vec<Acked> = (1..=6).map(|n| Acked { n, sent: t, at: t }).collect();
    let p = |n: u64, epoch: &str, seq: u64| Seen::Publication { n, epoch: epoch.into(), seq, at: t };
    // Everything, in order.
    let all: Vec<Seen> = (1..=6).map(|n| p(n, "e1", n)).collect();
    let e = examine(&acked, &all);
    assert_eq!((e.lost_unsignalled, e.duplicates, e.repeated, e.out_of_order, e.gaps), (0, 0, 0, 0, 0));
    // 3 and 4 missing, with a signal between 2 and 5: signalled; 6 missing at the end: lost.
    let gap = vec![p(1, "e1", 1), p(2, "e1", 2), Seen::Gap, p(5, "e2", 1)];
    let e = examine(&acked, &gap);
    assert_eq!((e.lost_unsignalled, e.missed_signalled), (1, 2));
    // The signal must lie between the neighbours: a gap before 2 does not cover 3.
    let early = vec![p(1, "e1", 1), Seen::Gap, p(2, "e1", 2), p(4, "e1", 4), p(5, "e1", 5), p(6, "e1", 6)];
    let e = examine(&acked, &early);
    assert_eq!((e.lost_unsignalled, e.missed_signalled), (1, 0));
    // The same (epoch, seq) twice; the same publication under another seq; one out of order; the
    // same publication again in a new epoch.
    let bad = vec![
        p(1, "e1", 1),
        p(1, "e1", 1),
        p(3, "e1", 3),
        p(2, "e1", 2),
        p(2, "e1", 4),
        Seen::Gap,
        p(3, "e2", 1),
    ];
    let e = examine(&acked[..3], &bad);
    assert_eq!(
        (e.duplicates, e.repeated, e.out_of_order, e.republished, e.lost_unsignalled),
        (1, 1, 1, 1, 0)
    );
}
