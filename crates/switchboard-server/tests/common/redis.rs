//! A real `redis-server` for the tests: on a port of its own, without persistence (or with an
//! append-only file in a directory of its own), killed on drop (Debian package `redis-server`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pki::Pki;

/// A `redis-server` process (restartable on its port).
pub struct Redis {
    pub port: u16,
    /// For `--tls-port`: the certificate, key and CA files.
    tls: Option<[std::path::PathBuf; 3]>,
    /// With an append-only file: its directory (removed on drop).
    dir: Option<std::path::PathBuf>,
    child: Option<Child>,
}

impl Redis {
    /// On a free port.
    pub fn start() -> Redis {
        Redis::start_on(free_port())
    }

    /// On `port` (to come back on the same one after [`Redis::kill`]).
    pub fn start_on(port: u16) -> Redis {
        let mut r = Redis { port, tls: None, dir: None, child: None };
        r.spawn();
        r
    }

    /// On a free port, with an append-only file written before each answer (`appendfsync
    /// always`): what it acknowledged survives [`Redis::kill`] and [`Redis::restart`].
    pub fn start_persistent() -> Redis {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-redis-aof-{}-{}",
            std::process::id(),
            super::rand_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis { port: free_port(), tls: None, dir: Some(dir), child: None };
        r.spawn();
        r
    }

    /// Speaking TLS only (`--port 0 --tls-port P`), with a certificate of `pki` for 127.0.0.1.
    pub fn start_tls(pki: &Pki) -> Redis {
        let (cert, key) = pki.leaf("redis", &["127.0.0.1"]);
        let tls = Some([cert, key, pki.ca_file.clone()]);
        let mut r = Redis { port: free_port(), tls, dir: None, child: None };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.args(["--port", &port]),
            Some([cert, key, ca]) => cmd
                .args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(ca),
        };
        cmd.args(["--bind", "127.0.0.1", "--save", ""]);
        match &self.dir {
            None => cmd.args(["--appendonly", "no"]),
            Some(dir) => cmd.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"]).arg(dir),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (its data is lost).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port: empty, or with what its append-only file kept.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
