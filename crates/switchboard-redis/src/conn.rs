//! Which Redis: one server (`redis://…`, `rediss://…` over TLS) or a Redis Cluster
//! (`redis+cluster://seed,seed…`, `rediss+cluster://…` over TLS), and the command connection
//! that hides the difference from the rest of the crate.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::{ConnectError, RedisOptions};

/// Where the backends connect, parsed from the URL.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // One per process (a TLS-capable client is large): no matter.
pub(crate) enum Target {
    /// One Redis server (possibly behind Sentinel or a proxy).
    Single(redis::Client),
    /// A Redis Cluster, given by seed nodes (`redis[s]://[auth@]host:port` each; `rediss` for
    /// TLS, with [`RedisOptions::tls_ca`] if given).
    Cluster(Vec<String>),
}

const CLUSTER_SCHEME: &str = "redis+cluster://";
const CLUSTER_TLS_SCHEME: &str = "rediss+cluster://";

/// `url` without `scheme` (any case), if it starts with it.
fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    url.get(..scheme.len()).filter(|s| s.eq_ignore_ascii_case(scheme)).map(|_| &url[scheme.len()..])
}

/// TLS needs a rustls crypto provider: the process's default, else aws-lc-rs (the only one this
/// crate compiles in; installing it is a no-op when another thread did first).
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

fn certificates(ca: Option<&[u8]>) -> redis::TlsCertificates {
    redis::TlsCertificates { client_tls: None, root_cert: ca.map(<[u8]>::to_vec) }
}

impl Target {
    /// Parses `redis[s]://…` (anything `redis::Client::open` takes) or
    /// `redis[s]+cluster://[user[:password]@]host:port[,host:port…][/]`; `rediss` is TLS, with
    /// the system's roots or, if given, [`RedisOptions::tls_ca`] only.
    pub(crate) fn parse(url: &str, options: &RedisOptions) -> Result<Self, ConnectError> {
        let (rest, tls) = match (strip_scheme(url, CLUSTER_SCHEME), strip_scheme(url, CLUSTER_TLS_SCHEME)) {
            (Some(rest), _) => (rest, false),
            (None, Some(rest)) => (rest, true),
            (None, None) => {
                let tls = strip_scheme(url, "rediss://").is_some();
                if tls {
                    ensure_crypto_provider();
                }
                let client = match (&options.tls_ca, tls) {
                    (Some(ca), true) => redis::Client::build_with_tls(url, certificates(Some(ca))),
                    _ => redis::Client::open(url),
                }
                .map_err(|e| ConnectError::InvalidUrl(e.to_string()))?;
                return Ok(Self::Single(client));
            }
        };
        if tls {
            ensure_crypto_provider();
        }
        let seed_scheme = if tls { "rediss" } else { "redis" };
        let invalid = |why: &str| ConnectError::InvalidUrl(format!("{url}: {why}"));
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(invalid(
                "a cluster URL has no database, path or query (redis+cluster://host:port,host:port)",
            ));
        }
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (Some(auth), hosts),
            None => (None, rest),
        };
        let mut seeds = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(invalid("every seed node needs host:port"));
            };
            if name.is_empty() || port.parse::<u16>().is_err() {
                return Err(invalid("every seed node needs host:port"));
            }
            let seed = match auth {
                Some(auth) => format!("{seed_scheme}://{auth}@{host}"),
                None => format!("{seed_scheme}://{host}"),
            };
            // Validates the seed the way the client will read it.
            redis::Client::open(seed.as_str()).map_err(|e| invalid(&e.to_string()))?;
            seeds.push(seed);
        }
        Ok(Self::Cluster(seeds))
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// A cluster client: for commands (RESP2, no pushes) or for sharded pub/sub (RESP3, pushes
    /// go to `pushes`, and the client resubscribes by itself after reconnecting to a node).
    pub(crate) fn cluster_client(
        seeds: &[String],
        options: &RedisOptions,
        pushes: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
    ) -> Result<ClusterClient, ConnectError> {
        let mut builder = ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.timeout)
            .retries(3)
            .min_retry_wait(20)
            .max_retry_wait(500);
        if let Some(pushes) = pushes {
            builder = builder.use_protocol(redis::ProtocolVersion::RESP3).push_sender(pushes);
        }
        let tls = seeds.first().is_some_and(|s| s.starts_with("rediss://"));
        if tls && options.tls_ca.is_some() {
            builder = builder.certs(certificates(options.tls_ca.as_deref()));
        }
        builder.build().map_err(|e| ConnectError::InvalidUrl(e.to_string()))
    }

    /// The command connection (multiplexed: concurrent callers are pipelined; reconnects by
    /// itself).
    pub(crate) async fn command_connection(&self, options: &RedisOptions) -> Result<Conn, ConnectError> {
        let unreachable = |e: redis::RedisError| ConnectError::Unreachable(e.to_string());
        let timed_out = |_| ConnectError::Unreachable("timed out".to_owned());
        match self {
            Self::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                let conn = tokio::time::timeout(
                    options.connect_timeout * 2,
                    ConnectionManager::new_with_config(client.clone(), config),
                )
                .await
                .map_err(timed_out)?
                .map_err(unreachable)?;
                Ok(Conn::Single(conn))
            }
            Self::Cluster(seeds) => {
                let client = Self::cluster_client(seeds, options, None)?;
                let conn = tokio::time::timeout(options.connect_timeout * 2, client.get_async_connection())
                    .await
                    .map_err(timed_out)?
                    .map_err(unreachable)?;
                Ok(Conn::Cluster(conn))
            }
        }
    }
}

/// The command connection: one multiplexed connection, or a cluster connection that routes each
/// command to the master of its key's slot (one multiplexed connection per node).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let o = RedisOptions::default();
        assert!(!Target::parse("redis://127.0.0.1:6379", &o).unwrap().is_cluster());
        assert!(!Target::parse("rediss://127.0.0.1:6379", &o).unwrap().is_cluster());
        match Target::parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/", &o).unwrap() {
            Target::Cluster(seeds) => {
                assert_eq!(seeds, ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]);
            }
            Target::Single(_) => panic!("a cluster"),
        }
        match Target::parse("REDIS+CLUSTER://u:pw@h1:1,h2:2", &o).unwrap() {
            Target::Cluster(seeds) => assert_eq!(seeds, ["redis://u:pw@h1:1", "redis://u:pw@h2:2"]),
            Target::Single(_) => panic!("a cluster"),
        }
        let with_ca = RedisOptions::default().tls_ca(b"PEM".to_vec());
        match Target::parse("rediss+cluster://h1:1,h2:2", &with_ca).unwrap() {
            Target::Cluster(seeds) => assert_eq!(seeds, ["rediss://h1:1", "rediss://h2:2"]),
            Target::Single(_) => panic!("a cluster"),
        }
        for bad in [
            "redis+cluster://",
            "redis+cluster://h1",
            "redis+cluster://h1:x",
            "redis+cluster://h1:1/2",
            "redis+cluster://h1:1?protocol=3",
            "rediss+cluster://h1",
            "not a url",
        ] {
            assert!(matches!(Target::parse(bad, &o), Err(ConnectError::InvalidUrl(_))), "{bad}");
        }
    }
}
