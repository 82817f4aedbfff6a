//! Identification against the real fixture: namespaces, credentials, the identity provider at
//! every reconnection, challenges, refusals.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{Fixture, builder, connect, wait_state, within};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard_client::testing::Faults;
use switchboard_client::{Client, ClientError, CloseReason, ConnectionError, ErrorBody, Format, State};

#[derive(serde::Deserialize, Debug, PartialEq)]
struct WhoAmI {
    user: String,
    conn: String,
    ns: String,
}

#[tokio::test]
async fn welcome_and_whoami_in_both_formats() {
    common::init_tracing();
    let fx = Fixture::start();
    for format in Format::ALL {
        let client = connect(&fx, "alice", format).await;
        let welcome = client.welcome().unwrap();
        assert_eq!(welcome.user.as_deref(), Some("alice"));
        assert_eq!(welcome.ns, "main");
        assert_eq!(welcome.heartbeat, 5000);
        assert_eq!(welcome.data.decode::<Value>().unwrap(), json!({"hello": "alice"}));
        let me: WhoAmI = within(client.call("whoami", &())).await.unwrap();
        assert_eq!(me, WhoAmI { user: "alice".into(), conn: welcome.conn.clone(), ns: "main".into() });
        assert_eq!(client.format(), format);
        client.close().await;
        assert_eq!(client.state(), State::Closed { reason: CloseReason::Requested });
    }
}

#[tokio::test]
async fn meta_and_explicit_namespace() {
    let fx = Fixture::start();
    let client =
        within(builder(&fx, "bob").namespace("main").meta(&json!({"device": "test", "v": 1})).connect())
            .await
            .unwrap();
    assert_eq!(client.welcome().unwrap().ns, "main");
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_the_client_stops() {
    let fx = Fixture::start();
    let err =
        within(Client::builder(fx.url()).identity(&json!({"user": "eve", "password": "guess"})).connect())
            .await
            .unwrap_err();
    match &err {
        ClientError::Connect(ConnectionError::Refused { code, message }) => {
            assert_eq!(code, "NOT_AUTHORIZED");
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), "NOT_AUTHORIZED");
}

#[tokio::test]
async fn no_identity_is_refused() {
    let fx = Fixture::start();
    let client = Client::builder(fx.url()).start().unwrap();
    let state = wait_state(&client, State::is_closed).await;
    assert!(
        matches!(&state, State::Closed { reason: CloseReason::Failed(e) } if e.code() == "NOT_AUTHORIZED"),
        "{state:?}"
    );
}

#[tokio::test]
async fn an_unknown_namespace_is_refused_with_not_found() {
    let fx = Fixture::start();
    let err = within(builder(&fx, "alice").namespace("nowhere").connect()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Connect(ConnectionError::Refused { code, .. }) if code == "NOT_FOUND"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_admin_namespace_extends_main() {
    let fx = Fixture::start();
    let root = within(
        Client::builder(fx.url())
            .namespace("admin")
            .identity(&json!({"user": "root", "password": "pw-root"}))
            .connect(),
    )
    .await
    .unwrap();
    assert_eq!(root.welcome().unwrap().ns, "admin");
    let echoed: Value = within(root.call("echo", &json!({"inherited": true}))).await.unwrap();
    assert_eq!(echoed, json!({"inherited": true}));
    let info: Value = within(root.info(false)).await.unwrap().decode().unwrap();
    assert!(info.is_object(), "{info}");
    // ~info is refused in main; admin refuses other users.
    let alice = connect(&fx, "alice", Format::Json).await;
    assert_eq!(within(alice.info(false)).await.unwrap_err().code(), "FORBIDDEN");
    let err = within(builder(&fx, "alice").namespace("admin").connect()).await.unwrap_err();
    assert_eq!(err.code(), "NOT_AUTHORIZED", "{err:?}");
}

fn hmac_hex(user: &str, nonce: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(format!("secret-{user}").as_bytes()).unwrap();
    mac.update(nonce.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[derive(serde::Deserialize)]
struct Quest {
    nonce: String,
}

#[tokio::test]
async fn challenges_are_answered_by_the_handler() {
    let fx = Fixture::start();
    for format in Format::ALL {
        let client = within(
            Client::builder(fx.url())
                .format(format)
                .identity(&json!({"user": "carol", "challenge": true}))
                .on_challenge(|q: Quest| async move { Ok::<_, ErrorBody>(hmac_hex("carol", &q.nonce)) })
                .connect(),
        )
        .await
        .unwrap();
        assert_eq!(client.welcome().unwrap().user.as_deref(), Some("carol"));
    }
    // A wrong answer, or none, is refused.
    let wrong = Client::builder(fx.url())
        .identity(&json!({"user": "carol", "challenge": true}))
        .on_challenge(|q: Quest| async move { Ok::<_, ErrorBody>(hmac_hex("mallory", &q.nonce)) })
        .connect();
    assert_eq!(within(wrong).await.unwrap_err().code(), "NOT_AUTHORIZED");
    let no_handler =
        Client::builder(fx.url()).identity(&json!({"user": "carol", "challenge": true})).connect();
    assert!(matches!(within(no_handler).await.unwrap_err(), ClientError::Connect(_)));
}

#[tokio::test]
async fn the_identity_provider_runs_again_at_every_reconnection() {
    let fx = Fixture::start();
    let faults = Faults::new();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let client = builder(&fx, "dave")
        .faults(&faults)
        .identity_provider(move || {
            // Each connection gets a "fresh token"; the fixture only checks the password.
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, std::io::Error>(json!({"user": "dave", "password": "pw-dave", "token": n})) }
        })
        .connect();
    let client = within(client).await.unwrap();
    let first = client.welcome().unwrap().conn;
    faults.drop_link();
    wait_state(&client, |s| !s.is_ready()).await;
    wait_state(&client, State::is_ready).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let me: WhoAmI = within(client.call("whoami", &())).await.unwrap();
    assert_ne!(me.conn, first, "a new connection");
    assert_eq!(client.stats().connections, 2);
}
