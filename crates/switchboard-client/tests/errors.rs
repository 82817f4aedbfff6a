//! Fail fast over real sockets: errors that retrying cannot fix stop the client at once, are
//! returned by `connect` and kept in the state; HTTP overload answers at the upgrade are retried.
//! A small in-test server answers the first upgrades with chosen HTTP statuses, then forwards
//! the next connections to the fixture.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{Fixture, builder, builder_at, within};
use serde_json::Value;
use switchboard_client::{Client, ClientError, CloseReason, ConnectionError, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Answers the n-th connection with `statuses[n]`, or forwards it to the fixture once the
/// statuses are used up.
struct Scripted {
    addr: SocketAddr,
    /// What each connection got: a status, or `None` for forwarded.
    served: Arc<Mutex<Vec<Option<u16>>>>,
    task: JoinHandle<()>,
}

impl Scripted {
    async fn start(statuses: Vec<u16>, upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&served);
        let task = tokio::spawn(async move {
            let mut statuses = statuses.into_iter();
            while let Ok((mut tcp, _)) = listener.accept().await {
                let status = statuses.next();
                log.lock().unwrap().push(status);
                tokio::spawn(async move {
                    match status {
                        Some(status) => {
                            read_request_head(&mut tcp).await;
                            let answer = format!(
                                "HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = tcp.write_all(answer.as_bytes()).await;
                            let _ = tcp.shutdown().await;
                        }
                        None => {
                            let Ok(mut up) = TcpStream::connect(upstream).await else { return };
                            let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
                        }
                    }
                });
            }
        });
        Self { addr, served, task }
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    fn served(&self) -> Vec<Option<u16>> {
        self.served.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads an HTTP request head (up to the blank line), bounded.
async fn read_request_head(tcp: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_wrong_path_is_a_404_that_stops_the_client() {
    common::init_tracing();
    let fx = Fixture::start();
    let url = format!("ws://{}/no-such-path", fx.addr);
    let client = builder_at(&url, "alice").start().unwrap();
    let err = within(client.ready()).await.unwrap_err();
    assert!(matches!(&err, ClientError::Connect(ConnectionError::Http { status: 404 })), "{err:?}");
    assert_eq!(err.to_string(), "the server answered the WebSocket upgrade with HTTP 404");
    let state = client.state();
    assert_eq!(state, State::Closed { reason: CloseReason::Failed(ConnectionError::Http { status: 404 }) });
    assert_eq!(client.stats().connections, 0);
}

#[tokio::test]
async fn an_http_url_is_refused_before_connecting() {
    let fx = Fixture::start();
    let url = format!("http://{}/ws", fx.addr);
    let err = within(builder_at(&url, "alice").connect()).await.unwrap_err();
    let Some(ConnectionError::InvalidUrl { url: bad, reason }) = err.connection_error() else {
        panic!("{err:?}")
    };
    assert_eq!(bad, &url);
    assert!(reason.contains("not http:// (write ws://)"), "{reason}");
    assert_eq!(err.code(), "BAD_REQUEST");
}

#[tokio::test]
async fn overloaded_upgrades_are_retried_until_the_server_answers() {
    let fx = Fixture::start();
    let front = Scripted::start(vec![503, 429, 502], fx.addr).await;
    let client = builder_at(&front.url(), "alice").start().unwrap();
    let mut states = client.states();
    let mut retried = Vec::new();
    within(async {
        loop {
            let state = states.borrow_and_update().clone();
            match state {
                State::Ready => break,
                State::Reconnecting { last_error, .. } if retried.last() != Some(&last_error) => {
                    retried.push(last_error);
                }
                State::Closed { reason } => panic!("stopped: {reason}"),
                _ => {}
            }
            states.changed().await.unwrap();
        }
    })
    .await;
    assert_eq!(front.served(), [Some(503), Some(429), Some(502), None]);
    let statuses: Vec<ConnectionError> =
        [503, 429, 502].into_iter().map(|status| ConnectionError::Http { status }).collect();
    assert_eq!(retried, statuses, "the state said which error it retried");
    let me: Value = within(client.call("whoami", &())).await.unwrap();
    assert_eq!(me["user"], "alice");
}

#[tokio::test]
async fn a_4xx_after_retries_stops_the_client() {
    let fx = Fixture::start();
    let front = Scripted::start(vec![503, 403], fx.addr).await;
    let err = within(builder_at(&front.url(), "alice").connect()).await.unwrap_err();
    assert_eq!(err.connection_error(), Some(&ConnectionError::Http { status: 403 }));
    assert_eq!(front.served(), [Some(503), Some(403)], "no attempt after the 403");
}

#[tokio::test]
async fn a_refused_login_is_not_authorized_with_the_servers_message() {
    let fx = Fixture::start();
    let client = Client::builder(fx.url())
        .identity(&serde_json::json!({"user": "eve", "password": "guess"}))
        .start()
        .unwrap();
    let err = within(client.ready()).await.unwrap_err();
    assert_eq!(err.code(), "NOT_AUTHORIZED");
    let Some(ConnectionError::Refused { code, message }) = err.connection_error() else { panic!("{err:?}") };
    assert_eq!(code, "NOT_AUTHORIZED");
    assert!(!message.is_empty());
    let state = client.state();
    assert_eq!(state.last_error().map(ConnectionError::code), Some("NOT_AUTHORIZED"));
    assert_eq!(client.stats().connections, 0);
    // A client that logs in properly still works on the same server.
    let alice = within(builder(&fx, "alice").connect()).await.unwrap();
    assert!(alice.state().is_ready());
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn wss_without_the_tls_feature_stops_with_a_clear_error() {
    let fx = Fixture::start();
    let url = format!("wss://{}/ws", fx.addr);
    let err = within(builder_at(&url, "alice").connect()).await.unwrap_err();
    assert_eq!(err.connection_error(), Some(&ConnectionError::TlsUnavailable { url }));
}
