//! The servers under test: which exist (the bench's own two, the peers of
//! `bench/peers/manifest.tsv`), starting one as a fresh process, and stopping it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::Dialect;
use crate::report::{REFERENCE, SWITCHBOARD};

/// The peers the issue names, in report order.
pub const PEERS: [&str; 5] = ["bun", "ws", "socketio", "socketioxide", "wse"];

/// The peers whose server also speaks TLS (given env `TLS_CERT` and `TLS_KEY`, see
/// `bench/DIALECTS.md`): the TLS scenarios run these, Switchboard and the reference.
pub const TLS_PEERS: [&str; 1] = ["bun"];

/// How to start a target.
#[derive(Clone, Debug)]
pub enum Program {
    /// A binary next to `switchboard-bench`, with arguments.
    Exe(PathBuf, Vec<String>),
    /// A peer's shell command (run as `sh -c 'exec …'` from the repository root).
    Shell(String),
}

/// A server the bench can run.
#[derive(Clone, Debug)]
pub struct Target {
    /// Report name.
    pub name: String,
    /// What it speaks.
    pub dialect: Dialect,
    /// How to start it.
    pub program: Program,
}

/// The set of targets of a run, plus why the missing peers are missing.
pub struct Targets {
    /// Runnable targets: switchboard, reference, then the installed peers.
    pub all: Vec<Target>,
    /// Peer → reason it is not runnable.
    pub missing: Vec<(String, String)>,
}

impl Targets {
    /// Switchboard and the reference from `bin_dir`, peers from `manifest` (relative commands run
    /// from `root`).
    pub fn discover(bin_dir: &Path, manifest: &Path, only: Option<&[String]>) -> Self {
        let mut all = vec![
            Target {
                name: SWITCHBOARD.into(),
                dialect: Dialect::Switchboard,
                program: Program::Exe(bin_dir.join("bench-switchboard"), vec![]),
            },
            Target {
                name: REFERENCE.into(),
                dialect: Dialect::Plain,
                program: Program::Exe(bin_dir.join("bench-reference"), vec![]),
            },
        ];
        let mut missing = Vec::new();
        let text = std::fs::read_to_string(manifest).unwrap_or_default();
        for peer in PEERS {
            let line = text.lines().find(|l| {
                let l = l.trim_start_matches('#');
                l.split('\t').next() == Some(peer)
            });
            match line {
                None if text.is_empty() => missing.push((
                    peer.to_owned(),
                    format!("not installed ({} missing: run scripts/install-peers.sh)", manifest.display()),
                )),
                None => missing.push((peer.to_owned(), "not installed (not in the manifest)".to_owned())),
                Some(l) if l.starts_with('#') => {
                    let why = l.split_once('\t').map_or("not installed", |x| x.1).trim();
                    let why = if why.starts_with("not installed") {
                        why.to_owned()
                    } else {
                        format!("not installed: {why}")
                    };
                    missing.push((peer.to_owned(), why));
                }
                Some(l) => {
                    let mut cols = l.splitn(3, '\t');
                    let (_, dialect, cmd) = (cols.next(), cols.next(), cols.next());
                    match (dialect.and_then(Dialect::parse), cmd) {
                        (Some(dialect), Some(cmd)) if !cmd.trim().is_empty() => all.push(Target {
                            name: peer.to_owned(),
                            dialect,
                            program: Program::Shell(cmd.trim().to_owned()),
                        }),
                        _ => missing.push((peer.to_owned(), format!("not runnable: manifest line `{l}`"))),
                    }
                }
            }
        }
        if let Some(only) = only {
            for t in all.iter().filter(|t| !only.iter().any(|o| o == &t.name)) {
                if PEERS.contains(&t.name.as_str()) {
                    missing.push((t.name.clone(), "not run (--targets)".to_owned()));
                }
            }
            all.retain(|t| only.iter().any(|o| o == &t.name));
        }
        Self { all, missing }
    }

    /// The target called `name`.
    pub fn get(&self, name: &str) -> Option<&Target> {
        self.all.iter().find(|t| t.name == name)
    }

    /// The targets that speak TLS: Switchboard, the reference and [`TLS_PEERS`].
    pub fn tls(&self) -> Vec<Target> {
        self.all
            .iter()
            .filter(|t| t.name == SWITCHBOARD || t.name == REFERENCE || TLS_PEERS.contains(&t.name.as_str()))
            .cloned()
            .collect()
    }
}

/// A running server.
pub struct Running {
    /// The process.
    child: Child,
    /// Its PID (for /proc).
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Target {
    /// Starts the server with `extra` arguments (bench binaries only), waits for
    /// `listening <port>` (30 s at most). Its stderr goes to `logs/<name>.log`.
    pub async fn start(&self, extra: &[String], logs: &Path) -> anyhow::Result<Running> {
        self.start_with_env(extra, &[], logs).await
    }

    /// [`Target::start`] with more environment variables (the TLS scenarios: `TLS_CERT`,
    /// `TLS_KEY`).
    pub async fn start_with_env(
        &self,
        extra: &[String],
        env: &[(String, String)],
        logs: &Path,
    ) -> anyhow::Result<Running> {
        let port = free_port()?;
        let mut cmd = match &self.program {
            Program::Exe(path, args) => {
                let mut c = Command::new(path);
                c.args(args).args(extra);
                c
            }
            Program::Shell(line) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("exec {line}"));
                c
            }
        };
        std::fs::create_dir_all(logs)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("{}.log", self.name)))?;
        cmd.env("PORT", port.to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("start {}", self.name))?;
        let pid = child.id().context("no pid")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                // `listening PORT` (bench servers) or `listening on ADDR:PORT` (the standalone).
                if let Some(p) = line.strip_prefix("listening ") {
                    let p = p.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                    return Ok::<_, anyhow::Error>(p.unwrap_or(port));
                }
            }
            bail!("{} exited before `listening`", self.name)
        })
        .await;
        let port = match ready {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(e),
            Err(_) => bail!("{} did not print `listening <port>` within 30 s", self.name),
        };
        // Keep draining stdout so that the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Running { child, pid, port })
    }
}

impl Running {
    /// Kills the server (SIGKILL) and reaps it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    /// Server CPU time so far (µs).
    pub fn cpu(&self) -> u64 {
        crate::procfs::cpu_micros(self.pid).unwrap_or(0)
    }

    /// Server CPU time so far in user space and in the kernel (µs).
    pub fn cpu_split(&self) -> (u64, u64) {
        crate::procfs::cpu_split_micros(self.pid).unwrap_or_default()
    }

    /// Server resident memory (bytes).
    pub fn rss(&self) -> u64 {
        crate::procfs::rss_bytes(self.pid).unwrap_or(0)
    }
}
