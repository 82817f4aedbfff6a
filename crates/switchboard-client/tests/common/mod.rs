//! The real conformance server, `switchboard-fixture` (protocol.md appendix A), run as a child
//! process, and helpers shared by the integration tests.
//!
//! The binary is `$SWITCHBOARD_FIXTURE`, else `<workspace>/target/debug/switchboard-fixture`.
//! A missing binary fails the test (it never skips): run `cargo build -p switchboard-fixture`.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use switchboard_client::{Backoff, Client, ClientBuilder, Format, State};

/// The fixture binary.
pub fn fixture_path() -> PathBuf {
    match std::env::var_os("SWITCHBOARD_FIXTURE") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/switchboard-fixture"),
    }
}

/// A running fixture; killed when dropped.
pub struct Fixture {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stderr (logs), for post-mortems.
    pub log: PathBuf,
}

static STARTED: AtomicU32 = AtomicU32::new(0);

impl Fixture {
    /// Starts a fixture on a free port.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0")
    }

    fn start_on(listen: &str) -> Self {
        let bin = fixture_path();
        assert!(
            bin.exists(),
            "the conformance fixture is missing at {}: run `cargo build -p switchboard-fixture` \
             (or set SWITCHBOARD_FIXTURE to the binary)",
            bin.display()
        );
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let log =
            std::env::temp_dir().join(format!("switchboard-client-fixture-{}-{n}.log", std::process::id()));
        // Restarting on the same port may race the old socket's release: retry a little.
        let mut last = String::new();
        for _ in 0..50 {
            let mut child = Command::new(&bin)
                .args(["--listen", listen])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let stdout = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                if let Some(Ok(first)) = lines.next() {
                    let _ = tx.send(first);
                }
                for _ in lines {} // keep the pipe drained
            });
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    let addr = line
                        .strip_prefix("listening on ")
                        .unwrap_or_else(|| panic!("unexpected first line from the fixture: {line:?}"))
                        .trim()
                        .parse()
                        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
                    return Self { child: Some(child), addr, log };
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = std::fs::read_to_string(&log).unwrap_or_default();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        panic!("the fixture did not start on {listen}; its log:\n{last}");
    }

    /// The WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Kills the process (SIGKILL: a crash, no close frames).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new process on the same port (its in-memory state is new).
    pub fn restart(&mut self) {
        self.kill();
        let listen = self.addr.to_string();
        let fresh = Self::start_on(&listen);
        assert_eq!(fresh.addr, self.addr);
        *self = fresh;
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("the fixture's log: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A builder for user `user` (password `pw-<user>`), with quick reconnections.
pub fn builder(fx: &Fixture, user: &str) -> ClientBuilder {
    builder_at(&fx.url(), user)
}

/// [`builder`] for another URL (a proxy in front of the fixture).
pub fn builder_at(url: &str, user: &str) -> ClientBuilder {
    Client::builder(url)
        .identity(&serde_json::json!({"user": user, "password": format!("pw-{user}")}))
        .backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            max_attempts: None,
        })
        .request_timeout(Duration::from_secs(5))
}

/// A ready client of user `user`.
pub async fn connect(fx: &Fixture, user: &str, format: Format) -> Client {
    within(builder(fx, user).format(format).connect()).await.unwrap_or_else(|e| panic!("connect {user}: {e}"))
}

/// Bounds a step of a test so that a failure reports instead of hanging.
pub async fn within<F: Future>(fut: F) -> F::Output {
    within_for(Duration::from_secs(15), fut).await
}

/// [`within`] with an explicit bound.
pub async fn within_for<F: Future>(limit: Duration, fut: F) -> F::Output {
    tokio::time::timeout(limit, fut).await.expect("the step did not finish in time")
}

/// Waits until the client's state satisfies `pred`.
pub async fn wait_state(client: &Client, pred: impl Fn(&State) -> bool) -> State {
    let mut states = client.states();
    within(states.wait_for(|s| pred(s))).await.expect("state channel closed").clone()
}

/// Logs of the client (RUST_LOG=switchboard_client=debug), once per test binary.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
