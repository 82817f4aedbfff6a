//! The backends over TLS (`rediss://`, `rediss+cluster://`, rustls): Debian's `redis-server`
//! with `--tls-port` only (`--port 0`), certificates made at test time (rcgen), the CA given
//! with `RedisOptions::tls_ca`. An untrusted server certificate is refused.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::prefix;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use switchboard_core::conformance;
use switchboard_redis::{ConnectError, RedisBackends, RedisOptions};

/// A CA and one server certificate for 127.0.0.1, as files.
struct Certs {
    dir: PathBuf,
    ca_pem: String,
}

impl Certs {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sb-redis-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "switchboard-redis test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.crt"), &ca_pem).unwrap();
        std::fs::write(dir.join("redis.crt"), leaf.pem()).unwrap();
        std::fs::write(dir.join("redis.key"), key.serialize_pem()).unwrap();
        Self { dir, ca_pem }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-server` speaking TLS only; killed on drop.
struct TlsRedis(Vec<Child>);

impl Drop for TlsRedis {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port(pair: bool) -> u16 {
    for _ in 0..1000 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else { continue };
        let p = l.local_addr().unwrap().port();
        if !pair || (p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()) {
            return p;
        }
    }
    panic!("no free port");
}

fn cli(certs: &Certs, port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(certs.file("ca.crt"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli (Debian package redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn spawn(certs: &Certs, port: u16, dir: &Path, extra: &[&str]) -> Child {
    let child = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--tls-cert-file")
        .arg(certs.file("redis.crt"))
        .arg("--tls-key-file")
        .arg(certs.file("redis.key"))
        .arg("--tls-ca-cert-file")
        .arg(certs.file("ca.crt"))
        .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (Debian package redis-server, built with TLS)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cli(certs, port, &["ping"]).contains("PONG") {
        assert!(Instant::now() < deadline, "redis-server --tls-port {port} did not answer PING");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl TlsRedis {
    fn single(certs: &Certs) -> (Self, u16) {
        let port = free_port(false);
        (Self(vec![spawn(certs, port, &certs.dir, &[])]), port)
    }

    fn cluster(certs: &Certs) -> (Self, Vec<u16>) {
        let mut children = Vec::new();
        let mut ports = Vec::new();
        for i in 0..3 {
            let port = free_port(true);
            let dir = certs.dir.join(format!("node{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let conf = dir.join("nodes.conf");
            let conf = conf.to_str().unwrap();
            children.push(spawn(
                certs,
                port,
                &dir,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf,
                    "--tls-cluster",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                ],
            ));
            ports.push(port);
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(nodes.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = cli(certs, ports[0], &args);
        assert!(out.contains("All 16384 slots covered"), "cluster create over TLS failed:\n{out}");
        let deadline = Instant::now() + Duration::from_secs(30);
        for p in &ports {
            while !cli(certs, *p, &["cluster", "info"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster node {p} not ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        (Self(children), ports)
    }
}

#[tokio::test]
async fn rediss_with_a_private_ca_conforms() {
    let certs = Certs::new("single");
    let (_redis, port) = TlsRedis::single(&certs);
    let url = format!("rediss://127.0.0.1:{port}");
    let options = RedisOptions::default().prefix(prefix("tls")).tls_ca(certs.ca_pem.clone().into_bytes());
    let a = RedisBackends::connect(&url, options.clone()).await.unwrap();
    let b = RedisBackends::connect(&url, options).await.unwrap();
    conformance::history(&*a.history, "t").await;
    conformance::presence(&*a.presence, "t").await;
    conformance::users(&*b.users, "t").await;
    conformance::broker(&*a.broker, &*b.broker).await;
    conformance::liveness(&*a.broker, &*b.broker, "tls").await;
    conformance::event_log(&*a.events, &*b.events, "tls").await;

    // The system's roots do not know the test CA: refused, not silently unencrypted.
    let untrusted =
        RedisBackends::connect(&url, RedisOptions::default().connect_timeout(Duration::from_secs(2))).await;
    assert!(matches!(untrusted, Err(ConnectError::Unreachable(_))), "{untrusted:?}");
    // Plain redis:// to a TLS port gets no answer.
    let plain = RedisBackends::connect(
        &format!("redis://127.0.0.1:{port}"),
        RedisOptions::default().connect_timeout(Duration::from_secs(1)),
    )
    .await;
    assert!(plain.is_err());
}

#[tokio::test]
async fn rediss_cluster_with_a_private_ca_conforms() {
    let certs = Certs::new("cluster");
    let (_cluster, ports) = TlsRedis::cluster(&certs);
    let seeds: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let url = format!("rediss+cluster://{}", seeds.join(","));
    let options =
        RedisOptions::default().prefix(prefix("tls-cluster")).tls_ca(certs.ca_pem.clone().into_bytes());
    let a = RedisBackends::connect(&url, options.clone()).await.unwrap();
    let b = RedisBackends::connect(&url, options).await.unwrap();
    conformance::history(&*a.history, "c").await;
    conformance::presence(&*a.presence, "c").await;
    conformance::users(&*b.users, "c").await;
    conformance::broker(&*a.broker, &*b.broker).await;
    conformance::liveness(&*a.broker, &*b.broker, "tls").await;
    conformance::event_log(&*a.events, &*b.events, "tls").await;
}
