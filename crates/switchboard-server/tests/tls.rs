//! The server over TLS (rustls): https and wss from PEM files made at test time, ALPN
//! http/1.1, and certificate rotation — when the files change and on SIGHUP — without dropping
//! open connections; a bad new certificate keeps the old one with an ERROR line.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pki::{Pki, https, peer_leaf, tls, write_atomically};
use common::{Client, KEY, start_with};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls_config(cert: &Path, key: &Path, reload_secs: u64) -> String {
    common::config(
        "anonymous",
        &format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nreload_interval_secs = {reload_secs}\n",
            cert.display(),
            key.display()
        ),
    )
}

/// Copies the pair `from` over the served files.
fn install(from: &(std::path::PathBuf, std::path::PathBuf), to: &(std::path::PathBuf, std::path::PathBuf)) {
    write_atomically(&to.1, &std::fs::read(&from.1).unwrap());
    write_atomically(&to.0, &std::fs::read(&from.0).unwrap());
}

/// Polls new TLS connections until the server presents `leaf` (within 20 s).
async fn serves(addr: std::net::SocketAddr, pki: &Pki, leaf: &Path) -> bool {
    let want = rustls::pki_types::pem::PemObject::from_pem_file(leaf)
        .map(|c: rustls::pki_types::CertificateDer<'static>| c)
        .unwrap();
    for _ in 0..200 {
        if let Ok(stream) = tls(addr, &pki.connector()).await
            && peer_leaf(&stream) == want
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn https_and_wss_with_rotation_when_the_files_change() {
    let pki = Pki::new("rotate");
    let served = pki.server("served");
    let first = pki.server("first");
    install(&first, &served);
    let server = start_with(&tls_config(&served.0, &served.1, 1), &[("RUST_LOG", "info")], &[]).await;
    let addr = server.addr;
    let connector = pki.connector();

    // https with ALPN http/1.1 (checked inside `https`), the API too.
    assert_eq!(https(addr, &connector, "GET", "/healthz", None).await, (200, "ok".to_owned()));
    let (status, body) = https(addr, &connector, "GET", "/api/info", Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));

    // wss: identify and talk.
    let mut ws = Client::connect_tls(addr, pki.client_config()).await;
    ws.call("~hello", json!({})).await.unwrap();
    assert!(serves(addr, &pki, &first.0).await);

    // Rotation by changing the files: new handshakes get the new certificate.
    let second = pki.server("second");
    install(&second, &served);
    assert!(serves(addr, &pki, &second.0).await, "the new certificate is served");
    assert!(server.logged(&["TLS certificate reloaded"]).await);
    // The connection opened before the rotation is still up.
    assert_eq!(ws.call("~ping", Value::Null).await, Ok(Value::Null));

    // A broken certificate file: ERROR, and the previous certificate stays.
    write_atomically(&served.0, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    assert!(server.logged(&["ERROR", "keeping the previous certificate"]).await);
    assert!(serves(addr, &pki, &second.0).await, "still the previous certificate");
    // A key of another certificate: refused too.
    let third = pki.server("third");
    write_atomically(&served.0, &std::fs::read(&third.0).unwrap());
    assert!(server.logged(&["do not make a usable pair"]).await);
    assert!(serves(addr, &pki, &second.0).await);
    // Both files right again: served.
    install(&third, &served);
    assert!(serves(addr, &pki, &third.0).await);
    assert_eq!(ws.call("~ping", Value::Null).await, Ok(Value::Null));
}

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let pki = Pki::new("hup");
    let served = pki.server("served");
    let first = pki.server("first");
    install(&first, &served);
    // No polling: only SIGHUP reloads.
    let server = start_with(&tls_config(&served.0, &served.1, 0), &[("RUST_LOG", "info")], &[]).await;
    let addr = server.addr;
    let mut ws = Client::connect_tls(addr, pki.client_config()).await;
    ws.call("~hello", json!({})).await.unwrap();
    let second = pki.server("second");
    install(&second, &served);
    let pid = server.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    assert!(serves(addr, &pki, &second.0).await, "served after SIGHUP");
    assert!(server.logged(&["TLS certificate reloaded"]).await);
    assert_eq!(ws.call("~ping", Value::Null).await, Ok(Value::Null));
    // SIGHUP does not stop the server.
    assert_eq!(https(addr, &pki.connector(), "GET", "/healthz", None).await.0, 200);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_cannot_connect() {
    let pki = Pki::new("trusted");
    let other = Pki::new("other");
    let served = pki.server("served");
    let server = start_with(&tls_config(&served.0, &served.1, 0), &[], &[]).await;
    assert!(tls(server.addr, &other.connector()).await.is_err());
    assert!(tls(server.addr, &pki.connector()).await.is_ok());
}
