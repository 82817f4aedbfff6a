//! `switchboard`: the standalone Switchboard server.
//!
//! ```text
//! switchboard [--listen ADDR] [--config FILE] [--dev] [--log-format text|json] [--redis URL]
//! ```
//!
//! Configuration layers: defaults < TOML file < `SWITCHBOARD_*` environment (nested keys with
//! `__`) < flags. With no configuration at all it runs in development mode. Prints
//! `listening on ADDR` once ready; SIGTERM or Ctrl-C closes every connection with 1001 and
//! exits 0. See the crate's README for every key.

// Layers, each module using only those on the lines above it (no import circles):
//   config              settings: layers, defaults, checks that read no file
//   client, metrics     HTTP client to the application; Prometheus series
//   jwt                 token verification (reads the key files)
//   namespaces, api, demo   what the framework serves: identification, topics, HTTP API, page
//   main.rs             loads, builds, listens, shuts down
mod api;
mod client;
mod config;
mod demo;
mod jwt;
mod metrics;
mod namespaces;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Parser;
use switchboard::Server;
use tokio_util::sync::CancellationToken;

use crate::config::{LogFormat, Overrides};

#[derive(Parser)]
#[command(name = "switchboard", version, about = "The Switchboard realtime server")]
struct Args {
    /// Address to listen on [default: 127.0.0.1:8080] (port 0 picks a free one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Development mode: `{"name": N}` identifies anyone as N. Never in production.
    #[arg(long)]
    dev: bool,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Redis URL: servers on the same Redis form one cluster (`redis://HOST:PORT`, or
    /// `redis+cluster://HOST:PORT,…` for Redis Cluster) [default: in-memory, one server].
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let overrides = Overrides {
        listen: args.listen,
        dev: args.dev.then_some(true),
        log_format: args.log_format,
        redis: args.redis.map(|url| config::RedisUrl { url }),
    };
    let loaded = match config::load(args.config.as_deref(), &overrides) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    init_logs(loaded.settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(loaded)) {
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

/// A Redis URL without its password, for logs and errors.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

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

async fn run(loaded: config::Loaded) -> anyhow::Result<()> {
    let settings = loaded.settings;
    if loaded.zero_config {
        tracing::warn!(
            "DEVELOPMENT MODE: no configuration given, so anyone may identify as any name with \
             {{\"name\": N}} — never run this in production (give --config or SWITCHBOARD_* settings)"
        );
    } else if settings.dev {
        tracing::warn!(
            "DEVELOPMENT MODE (--dev): namespaces with identify = \"dev\" accept anyone as any \
             name — never run this in production"
        );
    }
    let handle = metrics::install()?;
    let mut server = Server::new().config(settings.limits.to_config()).on_request_done(metrics::request_done);
    if let Some(redis) = &settings.redis {
        let backends = switchboard_redis::RedisBackends::connect(&redis.url, redis.options())
            .await
            .with_context(|| format!("cannot use Redis at {}", redact(&redis.url)))?;
        tracing::info!(redis = %redact(&redis.url), prefix = %redis.prefix, "cluster backends on Redis");
        server = server.backends(backends);
    }
    for ns in namespaces::build(&settings).map_err(StartError)? {
        server = server.namespace(ns);
    }
    let board = server.build().await.map_err(|e| StartError(format!("invalid configuration: {e}")))?;
    let ready = Arc::new(AtomicBool::new(true));
    let api = Arc::new(api::Api {
        hub: board.hub(),
        key: settings.api_key.clone(),
        metrics: handle,
        ready: ready.clone(),
    });
    if api.key.is_none() {
        tracing::warn!("no api_key configured (SWITCHBOARD_API_KEY): the HTTP API under /api is disabled");
    }
    let mut app = board.router().merge(api::router(api));
    // The chat page identifies with {"name": N}: only where `main` takes that.
    let demo = settings.namespaces.get("main").is_some_and(|n| n.identify == config::IdentifyMode::Dev);
    if demo {
        app = app.merge(demo::router());
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    // Before `listening on`: a SIGTERM right after it must find our handler, not the default
    // action (which would kill the process without closing connections with 1001).
    let stop_signal = shutdown_signal();
    println!("listening on {address}");
    tracing::info!(%address, path = %settings.limits.path, "listening");
    if demo {
        tracing::warn!("development chat page: http://{address}/");
    }
    let stop = CancellationToken::new();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let serving = tokio::spawn(
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
    );
    stop_signal.await;
    tracing::info!("shutting down: closing connections with 1001");
    ready.store(false, Ordering::Release);
    board.shutdown().await;
    stop.cancel();
    match tokio::time::timeout(std::time::Duration::from_secs(5), serving).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!("HTTP connections still open after 5 s; exiting anyway"),
    }
    tracing::info!("bye");
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now and returns what completes at the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
