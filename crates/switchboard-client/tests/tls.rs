//! `wss://` against the real fixture, through a TLS-terminating proxy run inside the test (a
//! tokio-rustls acceptor that forwards the bytes to the fixture over TCP), with a CA and server
//! certificates made at test time.

#![cfg(feature = "tls")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Fixture, builder, builder_at, wait_state, within};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use switchboard_client::testing::Faults;
use switchboard_client::{ClientError, CloseReason, ConnectionError, Format, State};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A certificate authority made for one test.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    /// The CA certificate, as the client is given it.
    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server configuration with a certificate for `names`, signed by this CA.
    fn server(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone(), self.issuer.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }

    /// A root store with only this CA.
    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        roots
    }
}

/// A TLS-terminating proxy on a free port of 127.0.0.1 that forwards to `upstream`.
struct TlsProxy {
    port: u16,
    /// TCP connections accepted (each a connection attempt of the client).
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TlsProxy {
    async fn start(config: Arc<rustls::ServerConfig>, upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let Ok(mut up) = TcpStream::connect(upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Self { port, accepted, task }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn wss_with_an_extra_ca_reaches_the_fixture_and_reconnects() {
    common::init_tracing();
    let fx = Fixture::start();
    let ca = TestCa::new("switchboard test CA");
    let proxy = TlsProxy::start(ca.server(&["localhost"]), fx.addr).await;
    let url = format!("wss://localhost:{}/ws", proxy.port);
    for format in Format::ALL {
        let faults = Faults::new();
        let alice =
            within(builder_at(&url, "alice").tls_ca_pem(ca.pem()).format(format).faults(&faults).connect())
                .await
                .unwrap_or_else(|e| panic!("{format}: {e}"));
        let me: Value = within(alice.call("whoami", &())).await.unwrap();
        assert_eq!(me["user"], "alice");
        // Publications cross from a plain ws:// client to the wss:// one.
        let bob = within(builder(&fx, "bob").connect()).await.unwrap();
        let topic = format!("chat/tls-{format}");
        let mut sub = within(alice.subscribe(&topic)).await.unwrap();
        within(bob.publish(&topic, &json!({"over": "tls"}))).await.unwrap();
        let p = within(sub.next_publication()).await.unwrap();
        assert_eq!(p.decode::<Value>().unwrap(), json!({"over": "tls"}));
        // A dropped link reconnects through TLS again.
        faults.drop_link();
        wait_state(&alice, |s| !s.is_ready()).await;
        wait_state(&alice, State::is_ready).await;
        assert_eq!(alice.stats().connections, 2);
        let echoed: Value = within(alice.call("echo", &"again")).await.unwrap();
        assert_eq!(echoed, "again");
    }
    assert!(proxy.accepted() >= 4, "every wss:// connection went through the proxy");
}

#[tokio::test]
async fn an_untrusted_certificate_fails_fast_with_a_tls_error() {
    let fx = Fixture::start();
    let stranger = TestCa::new("a CA nobody trusts");
    let proxy = TlsProxy::start(stranger.server(&["localhost"]), fx.addr).await;
    let url = format!("wss://localhost:{}/ws", proxy.port);
    // Only the system's roots: the stranger's certificate is not trusted.
    let client = builder_at(&url, "alice").start().unwrap();
    let err = within(client.ready()).await.unwrap_err();
    let Some(ConnectionError::Tls(message)) = err.connection_error() else { panic!("{err:?}") };
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(matches!(err, ClientError::Connect(_)), "{err:?}");
    let state = client.state();
    assert!(
        matches!(&state, State::Closed { reason: CloseReason::Failed(ConnectionError::Tls(_)) }),
        "{state:?}"
    );
    assert_eq!(proxy.accepted(), 1, "not retried");

    // Trusted CA, but the certificate is for another name.
    let ca = TestCa::new("switchboard test CA");
    let proxy = TlsProxy::start(ca.server(&["elsewhere.example"]), fx.addr).await;
    let url = format!("wss://localhost:{}/ws", proxy.port);
    let err = within(builder_at(&url, "alice").tls_ca_pem(ca.pem()).connect()).await.unwrap_err();
    assert!(
        matches!(err.connection_error(), Some(ConnectionError::Tls(m)) if m.contains("not valid for name")),
        "{err:?}"
    );
    assert_eq!(proxy.accepted(), 1);
}

#[tokio::test]
async fn an_extra_ca_without_a_certificate_stops_before_connecting() {
    let fx = Fixture::start();
    let ca = TestCa::new("switchboard test CA");
    let proxy = TlsProxy::start(ca.server(&["localhost"]), fx.addr).await;
    let url = format!("wss://localhost:{}/ws", proxy.port);
    let err = within(builder_at(&url, "alice").tls_ca_pem("not a PEM file").connect()).await.unwrap_err();
    assert!(
        matches!(err.connection_error(), Some(ConnectionError::Tls(m)) if m.contains("extra CA")),
        "{err:?}"
    );
    assert_eq!(proxy.accepted(), 0, "the configuration is checked before any socket is opened");
}

#[tokio::test]
async fn a_custom_rustls_config_replaces_the_system_roots() {
    let fx = Fixture::start();
    let ca = TestCa::new("switchboard test CA");
    let proxy = TlsProxy::start(ca.server(&["localhost"]), fx.addr).await;
    let url = format!("wss://localhost:{}/ws", proxy.port);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = switchboard_client::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    let client = within(builder_at(&url, "carol").tls_config(Arc::new(config)).connect()).await.unwrap();
    let me: Value = within(client.call("whoami", &())).await.unwrap();
    assert_eq!(me["user"], "carol");
}
