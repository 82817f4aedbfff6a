//! Outbound HTTPS: JWKS from a URL (cached by `kid`, fetched again for an unknown `kid` at most
//! once per interval, and periodically: keys rotate without a restart) and proxy identification
//! over https, against in-test HTTPS servers whose certificates a test CA signs (`ca_file`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::pki::{Pki, es256_key, https_app};
use common::{Client, config, start_with};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

fn token(key: &EncodingKey, kid: &str, user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    encode(&header, &json!({"sub": user, "exp": now + 600}), key).unwrap()
}

/// A JWKS endpoint whose keys the test changes; counts its fetches.
struct Jwks {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    url: String,
}

async fn jwks(pki: &Pki, keys: Vec<Value>) -> Jwks {
    let keys = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f) = (keys.clone(), fetches.clone());
    let addr = https_app(
        pki,
        Arc::new(move |method, path, _| {
            assert_eq!((method, path), ("GET", "/jwks.json"));
            f.fetch_add(1, Ordering::SeqCst);
            (200, json!({"keys": *k.lock().unwrap()}).to_string())
        }),
    )
    .await;
    Jwks { keys, fetches, url: format!("https://localhost:{}/jwks.json", addr.port()) }
}

fn jwt_config(pki: &Pki, url: &str, min_refresh: u64, refresh: u64) -> String {
    config(
        "jwt",
        &format!(
            "ca_file = \"{}\"\n[jwt]\nalgorithm = \"ES256\"\njwks_url = \"{url}\"\njwks_min_refresh_secs = {min_refresh}\njwks_refresh_secs = {refresh}\n",
            pki.ca_file.display()
        ),
    )
}

async fn hello(addr: std::net::SocketAddr, token: &str) -> Result<Value, Value> {
    let mut c = Client::connect(addr).await;
    c.call("~hello", json!({"identity": token})).await
}

/// Retries `hello` until accepted or refused for good (within 20 s); whether accepted.
async fn eventually_accepted(addr: std::net::SocketAddr, token: &str, want: bool) -> bool {
    for _ in 0..100 {
        if hello(addr, token).await.is_ok() == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn jwks_from_a_url_rotates_keys_without_a_restart() {
    let pki = Pki::new("jwks");
    let (a, key_a) = es256_key("a");
    let (b, key_b) = es256_key("b");
    let endpoint = jwks(&pki, vec![a.clone()]).await;
    let server = start_with(&jwt_config(&pki, &endpoint.url, 1, 2), &[], &[]).await;
    let addr = server.addr;
    assert_eq!(hello(addr, &token(&key_a, "a", "ada")).await.unwrap()["user"], "ada");

    // The issuer adds key b: a token naming it makes the server fetch again (at most once a
    // second here), and it is accepted.
    endpoint.keys.lock().unwrap().push(b.clone());
    assert!(eventually_accepted(addr, &token(&key_b, "b", "bob"), true).await, "kid b accepted");

    // The issuer drops key a: the periodic refresh (every 2 s here) forgets it.
    endpoint.keys.lock().unwrap().retain(|k| k["kid"] != "a");
    assert!(eventually_accepted(addr, &token(&key_a, "a", "ada"), false).await, "kid a refused");
    let err = hello(addr, &token(&key_a, "a", "ada")).await.unwrap_err();
    assert_eq!(err["message"], "the token is not valid");
    assert_eq!(hello(addr, &token(&key_b, "b", "bob")).await.unwrap()["user"], "bob");
}

#[tokio::test]
async fn unknown_kids_cannot_make_the_server_hammer_the_issuer() {
    let pki = Pki::new("jwks-rate");
    let (a, key_a) = es256_key("a");
    let endpoint = jwks(&pki, vec![a]).await;
    // Unknown kids fetch at most once a minute; no periodic fetch during the test.
    let server = start_with(&jwt_config(&pki, &endpoint.url, 60, 3600), &[], &[]).await;
    assert!(hello(server.addr, &token(&key_a, "a", "ada")).await.is_ok());
    let before = endpoint.fetches.load(Ordering::SeqCst);
    for i in 0..20 {
        let (_, forged) = es256_key(&format!("made-up-{i}"));
        let err = hello(server.addr, &token(&forged, &format!("made-up-{i}"), "eve")).await.unwrap_err();
        assert_eq!(err["message"], "the token is not valid");
    }
    let after = endpoint.fetches.load(Ordering::SeqCst);
    assert!(after - before <= 1, "{} fetches for 20 unknown kids", after - before);
}

#[tokio::test]
async fn proxy_identification_over_https_with_a_private_ca() {
    let pki = Pki::new("proxy");
    let app = https_app(
        &pki,
        Arc::new(|_, path, body| {
            assert_eq!(path, "/identify");
            let call: Value = serde_json::from_str(body).unwrap();
            let user = call["identity"]["user"].as_str().unwrap_or("nobody");
            (200, json!({"user": user}).to_string())
        }),
    )
    .await;
    let proxy = format!("[proxy]\nidentify_url = \"https://localhost:{}/identify\"\n", app.port());
    let trusted = format!("ca_file = \"{}\"\n{proxy}", pki.ca_file.display());
    let server = start_with(&config("proxy", &trusted), &[], &[]).await;
    let mut c = Client::connect(server.addr).await;
    let welcome = c.call("~hello", json!({"identity": {"user": "ada"}})).await.unwrap();
    assert_eq!(welcome["user"], "ada");

    // Without the CA, the application's certificate is not trusted: refused, nothing leaked.
    let server = start_with(&config("proxy", &proxy), &[], &[]).await;
    let mut c = Client::connect(server.addr).await;
    let err = c.call("~hello", json!({"identity": {"user": "ada"}})).await.unwrap_err();
    assert_eq!(err["code"], "NOT_AUTHORIZED");
    assert_eq!(err["message"], "identification is unavailable");
    assert!(server.logged(&["identification service failed"]).await);
}
