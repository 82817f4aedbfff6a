//! Credentials that expire cost nothing once their connection is gone or refreshed (issue 16:
//! an expiry heap kept ~80 bytes per connection and ~38 per `~refresh` until the credentials'
//! expiry, hours later): the timers go back to zero.

mod common;

use std::time::Duration;

use common::{Client, serve};
use futures_util::StreamExt;
use serde_json::json;
use switchboard::{Accept, Config, Error, Namespace, Payload, Server};

/// `"user:NAME"` → NAME, with credentials valid for an hour.
async fn identify(Payload(token): Payload<String>) -> Result<Accept, Error> {
    match token.strip_prefix("user:") {
        Some(user) => Ok(Accept::user(user).expires_in(Duration::from_secs(3600))),
        None => Err(Error::not_authorized("bad token")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_identities_leave_no_timer_behind() {
    let mut config = Config::default();
    config.identify_timeout = Duration::from_millis(300);
    let board = Server::new()
        .config(config)
        .namespace(Namespace::new("main").identify(identify))
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let hub = board.hub();

    // Connect, identify, close, many times.
    for i in 0..200 {
        let (mut c, _) = Client::identified(addr, &format!("u{}", i % 7)).await;
        c.ws.close(None).await.unwrap();
        while let Some(Ok(_)) = c.ws.next().await {}
    }
    // One connection refreshing its credentials again and again.
    let (mut c, _) = Client::identified(addr, "refresher").await;
    for _ in 0..500 {
        c.call("~refresh", json!({"identity": "user:refresher"})).await.unwrap();
    }
    // Past the identification deadlines (drained by the sweeper): the refresher's one expiry.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let sizes = loop {
        let sizes = hub.registry_sizes();
        if (sizes.connections, sizes.timers) == (1, 1) || tokio::time::Instant::now() > deadline {
            break sizes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sizes.connections, 1);
    assert_eq!(sizes.timers, 1, "one expiry for the one open connection, whatever it refreshed: {sizes:?}");
    c.ws.close(None).await.unwrap();
    while let Some(Ok(_)) = c.ws.next().await {}
    for _ in 0..100 {
        if hub.registry_sizes() == Default::default() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("left behind: {:?}", hub.registry_sizes());
}
