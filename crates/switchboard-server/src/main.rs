//! `switchboard`: the standalone Switchboard server.
//!
//! ```text
//! switchboard [--listen ADDR] [--config FILE] [--dev] [--log-format text|json] [--redis URL]
//! switchboard checkconfig [--config FILE]
//! switchboard gentoken --user USER [--ttl SECS] [--private-key FILE] [--kid KID] [--config FILE]
//! ```
//!
//! Configuration layers: defaults < TOML file < `SWITCHBOARD_*` environment (nested keys with
//! `__`) < flags. With no configuration at all, or with `--dev`, it runs in development mode on
//! loopback; any other configuration must identify users. Prints `listening on ADDR` once ready;
//! SIGTERM or Ctrl-C turns `/readyz` to 503, keeps serving for `shutdown.drain_delay_ms`, then
//! closes every connection with 1001 and exits 0; SIGHUP reloads the TLS certificate. See the
//! crate's README for every key.

// Layers, each module using only those on the lines above it (no import circles):
//   settings                  what can be configured (plain data, defaults)
//   origin, tls, client       origin patterns; certificates and roots; HTTP(S) client
//   outbox                    the transactional outbox's consumers (PostgreSQL, Redis Streams)
//   config, jwks, metrics     loading and checking; key sets; Prometheus series
//   jwt                       token verification (reads the key files, fetches JWKS)
//   webhook                   lifecycle events POSTed to the application, signed
//   commands, serve           files of a configuration, checkconfig, gentoken; the accept loop
//   namespaces, api, demo     what is served: identification, topics, HTTP API, page
//   main.rs                   arguments, start, shutdown
mod api;
mod client;
mod commands;
mod config;
mod demo;
mod jwks;
mod jwt;
mod metrics;
mod namespaces;
mod origin;
mod outbox;
mod serve;
mod settings;
mod tls;
mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard::Server;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::commands::{Parts, redact};
use crate::config::{DevMode, Loaded, Overrides};
use crate::settings::{IdentifyMode, LogFormat};

#[derive(Parser)]
#[command(name = "switchboard", version, about = "The Switchboard realtime server")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on [default: 127.0.0.1:8080] (port 0 picks a free one).
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// TOML configuration file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Development mode: `{"name": N}` identifies anyone as N. Never in production.
    #[arg(long, global = true)]
    dev: bool,
    /// Log format [default: text].
    #[arg(long, value_enum, global = true)]
    log_format: Option<LogFormat>,
    /// Redis URL: servers on the same Redis form one cluster (`redis://HOST:PORT`,
    /// `rediss://…` for TLS, `redis+cluster://HOST:PORT,…` for Redis Cluster) [default:
    /// in-memory, one server].
    #[arg(long, value_name = "URL", global = true)]
    redis: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Checks the configuration (the files it names included) and prints a summary; exit 0, or
    /// 2 with one line per problem.
    Checkconfig,
    /// Prints a JWT for a user that this configuration accepts (for tests): signed with
    /// `jwt.secret`, or with `--private-key` for asymmetric algorithms.
    Gentoken {
        /// The user (`sub`).
        #[arg(short, long)]
        user: String,
        /// Lifetime in seconds (`exp`); 0: no expiry.
        #[arg(short, long, default_value_t = 3600)]
        ttl: u64,
        /// PEM private key for RS*/PS*/ES*/EdDSA.
        #[arg(long, value_name = "FILE")]
        private_key: Option<PathBuf>,
        /// `kid` header, to pick a key of a JWKS.
        #[arg(long)]
        kid: Option<String>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let overrides = Overrides {
        listen: args.listen,
        dev: args.dev.then_some(true),
        log_format: args.log_format,
        redis: args.redis.map(|url| config::RedisUrl { url }),
    };
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("switchboard: {e}");
        ExitCode::from(2)
    };
    let loaded = match config::load(args.config.as_deref(), &overrides) {
        Ok(l) => l,
        Err(e) => return fail(&e.to_string().replace('\n', "\nswitchboard: ")),
    };
    match args.command {
        Some(Command::Gentoken { user, ttl, private_key, kid }) => {
            let request = commands::TokenRequest {
                user: &user,
                ttl,
                private_key: private_key.as_deref(),
                kid: kid.as_deref(),
            };
            return match commands::gentoken(&loaded.settings, &request) {
                Ok((token, what)) => {
                    eprintln!("{what}");
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            };
        }
        Some(Command::Checkconfig) => {
            return match commands::prepare(&loaded.settings) {
                Ok(parts) => {
                    println!("{}", commands::summary(&loaded, &parts));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("invalid configuration: {e}")),
            };
        }
        None => {}
    }
    init_logs(loaded.settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The files are read inside the runtime: the JWKS client needs it.
    let parts = match runtime.block_on(async { commands::prepare(&loaded.settings) }) {
        Ok(p) => p,
        Err(e) => return fail(&format!("invalid configuration: {e}")),
    };
    match runtime.block_on(run(loaded, parts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("switchboard: {e:#}");
            ExitCode::from(if e.is::<StartError>() { 2 } else { 1 })
        }
    }
}

/// A problem with the configuration found while building the server (exit code 2).
#[derive(Debug)]
struct StartError(String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn dev_reason(dev: DevMode) -> &'static str {
    match dev {
        DevMode::ZeroConfig => "no configuration was given",
        _ => "--dev (or dev = true) asked for it",
    }
}

/// The development-mode banner on stderr, once listening (text logs only: JSON logs stay one
/// object per line, with the WARN line logged at start).
fn banner(dev: DevMode, address: SocketAddr, scheme: &str, demo: bool) {
    let why = dev_reason(dev);
    let rule = "=".repeat(78);
    eprintln!("{rule}");
    eprintln!("  DEVELOPMENT MODE ({why})");
    eprintln!("  Anyone can identify as any name with {{\"name\": N}}. Never run this in production:");
    eprintln!("  give a configuration whose namespaces identify users with [jwt] or [proxy].");
    if demo {
        eprintln!("  Demo chat: {scheme}://{address}/");
    }
    eprintln!("{rule}");
}

async fn run(loaded: Loaded, parts: Parts) -> anyhow::Result<()> {
    let Loaded { settings, dev, origins } = loaded;
    if dev != DevMode::Off {
        tracing::warn!(
            reason = dev_reason(dev),
            "DEVELOPMENT MODE: anyone may identify as any name with {{\"name\": N}} — never in production"
        );
    }
    let handle = metrics::install()?;
    serve::describe("main");
    if let Some(jwt) = &parts.jwt {
        jwt.start().await;
    }
    let origins = Arc::new(origins);
    let mut server = Server::new()
        .config(settings.to_config())
        .on_request_done(metrics::request_done)
        .on_upgrade(move |request| {
            let origins = origins.clone();
            async move { origin::check_upgrade(&origins, &request) }
        });
    if let Some(redis) = &settings.redis {
        let mut options = switchboard_redis::RedisOptions::default()
            .prefix(redis.prefix.clone())
            .timeout(Duration::from_millis(redis.timeout_ms));
        if let Some(ca) = &parts.redis_ca {
            options = options.tls_ca(ca.clone());
        }
        let backends = switchboard_redis::RedisBackends::connect(&redis.url, options)
            .await
            .with_context(|| format!("cannot use Redis at {}", redact(&redis.url)))?;
        tracing::info!(redis = %redact(&redis.url), prefix = %redis.prefix, "cluster backends on Redis");
        server = server.backends(backends);
    }
    for ns in
        namespaces::build(&settings, parts.jwt.clone(), Some(parts.client.clone())).map_err(StartError)?
    {
        server = server.namespace(ns);
    }
    if let (Some(sink), Some(events)) = (parts.webhook, &settings.events) {
        tracing::info!(url = %redact(&events.url), "lifecycle events POSTed to the application");
        server = server.lifecycle(webhook::lifecycle(events)).deliver_events(sink, webhook::delivery(events));
    }
    let board = server.build().await.map_err(|e| StartError(format!("invalid configuration: {e}")))?;
    let ready = Arc::new(AtomicBool::new(true));
    let api = Arc::new(api::Api {
        hub: board.hub(),
        key: settings.api_key.clone(),
        metrics: handle,
        ready: ready.clone(),
        max_body: settings.api.max_body_bytes,
        max_batch: settings.api.max_batch_commands,
        max_payload: settings.limits.max_message_size,
        metrics_need_key: settings.metrics.require_key,
    });
    if api.key.is_none() {
        tracing::warn!("no api_key configured (SWITCHBOARD_API_KEY): the HTTP API under /api is disabled");
    }
    let mut app = board.router().merge(api::router(api.clone(), settings.metrics.listen.is_some()));
    // The chat page identifies with {"name": N}: only where `main` takes that.
    let demo = settings.namespaces.get("main").is_some_and(|n| n.identify == IdentifyMode::Dev);
    if demo {
        app = app.merge(demo::router());
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let metrics_listener = match settings.metrics.listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} (metrics.listen)"))?,
        ),
        None => None,
    };
    // Before `listening on`: a SIGTERM right after it must find our handler, not the default
    // action (which would kill the process without closing connections with 1001).
    let mut signals = Signals::install();
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let limits = serve::Limits {
        handshake_timeout: Duration::from_millis(settings.http.handshake_timeout_ms),
        max_header_bytes: settings.http.max_header_bytes,
        max_handshakes: settings.http.max_handshakes,
    };
    let acceptor = match (&parts.tls, &settings.tls) {
        (Some(cert), Some(t)) => {
            let interval = (t.reload_interval_secs > 0).then(|| Duration::from_secs(t.reload_interval_secs));
            cert.clone().watch(interval, stop.clone());
            Some(cert.acceptor().map_err(StartError)?)
        }
        _ => {
            ignore_hangups(stop.clone());
            None
        }
    };
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let app = (app, Some(board.clone()));
    tracker.spawn(serve::serve("main", listener, acceptor, app, limits, stop.clone(), tracker.clone()));
    let metrics_address = match metrics_listener {
        Some(l) => {
            let at = l.local_addr()?;
            let router = api::metrics_router(api.clone());
            serve::describe("metrics");
            let app = (router, None);
            tracker.spawn(serve::serve("metrics", l, None, app, limits, stop.clone(), tracker.clone()));
            Some(at)
        }
        None => None,
    };
    let outbox = outbox::Outbox::start(parts.outbox.clone(), &board.hub(), settings.limits.max_message_size);
    println!("listening on {address}");
    if let Some(at) = metrics_address {
        println!("metrics on {at}");
    }
    tracing::info!(%address, scheme, path = %settings.limits.path, "listening");
    if dev != DevMode::Off && settings.log_format == LogFormat::Text {
        banner(dev, address, scheme, demo);
    }
    signals.next().await;
    // Not ready at once; still serving (and accepting) while load balancers notice.
    ready.store(false, Ordering::Release);
    let drain = settings.shutdown.drain_delay(dev != DevMode::Off);
    if !drain.is_zero() {
        tracing::info!(
            drain_delay_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
            "shutting down: /readyz answers 503, still accepting until the drain delay ends (a second signal ends it now)"
        );
        tokio::select! {
            () = tokio::time::sleep(drain) => {}
            () = signals.next() => tracing::info!("second signal: not waiting for the rest of the drain delay"),
        }
    }
    tracing::info!("shutting down: closing connections with 1001");
    // Publications from the outbox stop before the connections close (the rest waits in the table).
    outbox.stop().await;
    board.shutdown().await;
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.is_err() {
        tracing::warn!("HTTP connections still open after 5 s; exiting anyway");
    }
    tracing::info!("bye");
    Ok(())
}

/// Without TLS there is nothing to reload, but a SIGHUP (`systemctl reload`) must not kill the
/// process, as its default action would.
fn ignore_hangups(stop: CancellationToken) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = hup.recv() => tracing::info!("SIGHUP: nothing to reload (no [tls])"),
            }
        }
    });
}

/// The SIGTERM and SIGINT handlers.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers now (a signal from then on is seen by [`Signals::next`]).
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
        }
    }

    /// Completes at the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
