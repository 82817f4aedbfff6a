//! Reconnection against the real fixture: a server killed and restarted on the same port,
//! a link dropped while the server stays up, a silent link, the offline buffer, and the
//! close codes that stop the client.

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, builder, connect, wait_state, within, within_for};
use serde_json::{Value, json};
use switchboard_client::testing::Faults;
use switchboard_client::{
    CallOptions, Client, ClientError, CloseReason, ConnectionError, Format, State, Subscription, TopicEvent,
};

async fn expect_resubscribed(sub: &mut Subscription) -> bool {
    loop {
        match within(sub.recv()).await.expect("subscription ended") {
            TopicEvent::Resubscribed { recovered, .. } => return recovered,
            TopicEvent::Presence(_) => {}
            other => panic!("expected Resubscribed, got {other:?}"),
        }
    }
}

async fn next_data(sub: &mut Subscription) -> (u64, Value) {
    let p = within(sub.next_publication()).await.expect("subscription ended");
    (p.seq, p.decode().unwrap())
}

#[tokio::test]
async fn a_server_restart_on_the_same_port_is_survived_and_the_lost_history_reported() {
    common::init_tracing();
    let mut fx = Fixture::start();
    for format in Format::ALL {
        let alice = connect(&fx, "alice", format).await;
        let bob = connect(&fx, "bob", Format::Json).await;
        let topic = format!("chat/restart-{format}");
        let mut sub = within(alice.subscribe(&topic)).await.unwrap();
        for i in 0..3 {
            within(bob.publish(&topic, &json!(i))).await.unwrap();
        }
        for i in 0..3 {
            assert_eq!(next_data(&mut sub).await.1, json!(i));
        }

        fx.kill();
        let state = wait_state(&alice, |s| !s.is_ready()).await;
        assert!(matches!(state, State::Reconnecting { .. }), "{state:?}");
        // While the server is down, a call waits in the offline buffer, keeping its timeout.
        let patient = {
            let alice = alice.clone();
            tokio::spawn(async move {
                let opts = CallOptions::new().timeout(Duration::from_secs(20));
                alice.call_with::<Value, _>("echo", &"after the restart", opts).await
            })
        };
        let hasty =
            alice.call_with::<Value, _>("echo", &1, CallOptions::new().timeout(Duration::from_millis(200)));
        assert_eq!(within(hasty).await.unwrap_err().code(), "TIMEOUT");

        fx.restart();
        wait_state(&alice, State::is_ready).await;
        assert_eq!(within(patient).await.unwrap().unwrap(), json!("after the restart"));
        // The new server has no history: the client says recovery failed, before anything new.
        assert!(!expect_resubscribed(&mut sub).await, "the restarted server cannot recover");
        wait_state(&bob, State::is_ready).await;
        let seq = within(bob.publish(&topic, &"fresh")).await.unwrap();
        assert_eq!(next_data(&mut sub).await, (seq, json!("fresh")));
        assert_eq!(alice.stats().connections, 2);
    }
}

#[tokio::test]
async fn a_dropped_link_recovers_the_missed_publications_in_order() {
    let fx = Fixture::start();
    for format in Format::ALL {
        let faults = Faults::new();
        let alice = within(builder(&fx, "alice").format(format).faults(&faults).connect()).await.unwrap();
        let bob = connect(&fx, "bob", Format::MsgPack).await;
        let topic = format!("chat/drop-{format}");
        let mut sub = within(alice.subscribe(&topic)).await.unwrap();
        for i in 0..3 {
            within(bob.publish(&topic, &json!({"i": i}))).await.unwrap();
        }
        let mut last = 0;
        for i in 0..3 {
            let (seq, data) = next_data(&mut sub).await;
            assert_eq!(data, json!({"i": i}));
            last = seq;
        }

        // The network goes away: the link drops without a close frame, attempts fail.
        faults.set_offline(true);
        faults.drop_link();
        wait_state(&alice, |s| !s.is_ready()).await;
        for i in 3..10 {
            within(bob.publish(&topic, &json!({"i": i}))).await.unwrap();
        }
        faults.set_offline(false);
        wait_state(&alice, State::is_ready).await;

        assert!(expect_resubscribed(&mut sub).await, "the server still has the history");
        for i in 3..10 {
            let (seq, data) = next_data(&mut sub).await;
            assert_eq!((seq, data), (last + 1, json!({"i": i})), "in order, none missing");
            last = seq;
        }
        let seq = within(bob.publish(&topic, &json!({"i": 10}))).await.unwrap();
        assert_eq!(next_data(&mut sub).await, (seq, json!({"i": 10})));
        assert_eq!(seq, last + 1);
        assert_eq!(alice.stats().duplicates_dropped, 0);
        assert_eq!(faults.links(), 2);
    }
}

#[tokio::test]
async fn a_silent_link_is_noticed_by_the_heartbeat() {
    let fx = Fixture::start();
    let faults = Faults::new();
    // Long enough that a stall of the loaded test machine is not taken for a silent link.
    let period = Duration::from_millis(600);
    let alice = within(builder(&fx, "alice").heartbeat(period).faults(&faults).connect()).await.unwrap();
    // Pings answered: the link stays up across many periods.
    tokio::time::sleep(period * 4).await;
    assert!(alice.state().is_ready());
    assert_eq!(faults.links(), 1);

    faults.freeze(true);
    let frozen_at = Instant::now();
    wait_state(&alice, |s| !s.is_ready()).await;
    let noticed = frozen_at.elapsed();
    // Two periods after the last frame received (which came up to a period before the
    // freeze), and well before the server's own 10 s limit.
    assert!(noticed >= period && noticed < period * 10, "noticed after {noticed:?}");
    faults.freeze(false);
    wait_state(&alice, State::is_ready).await;
    let echoed: Value = within(alice.call("echo", &"alive")).await.unwrap();
    assert_eq!(echoed, json!("alive"));
}

#[tokio::test]
async fn in_flight_requests_fail_with_disconnected() {
    let fx = Fixture::start();
    let faults = Faults::new();
    let alice = within(builder(&fx, "alice").faults(&faults).connect()).await.unwrap();
    let sleeping = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.call::<Value, _>("sleep", &json!({"ms": 3000})).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    faults.drop_link();
    let err = within(sleeping).await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::Disconnected), "{err:?}");
    assert_eq!(err.code(), "DISCONNECTED");
    wait_state(&alice, State::is_ready).await;
}

#[tokio::test]
async fn the_offline_buffer_is_bounded() {
    let mut fx = Fixture::start();
    let alice = within(builder(&fx, "alice").offline_buffer(2).connect()).await.unwrap();
    fx.kill();
    wait_state(&alice, |s| !s.is_ready()).await;
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let alice = alice.clone();
            tokio::spawn(async move { alice.call::<Value, _>("echo", &json!(i)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let full = within(alice.call::<Value, _>("echo", &"one too many")).await.unwrap_err();
    assert_eq!(full.code(), "LIMIT");
    assert_eq!(within(alice.emit("x", &1)).await.unwrap_err().code(), "LIMIT");
    fx.restart();
    for (i, w) in waiting.into_iter().enumerate() {
        assert_eq!(within(w).await.unwrap().unwrap(), json!(i));
    }
}

#[tokio::test]
async fn a_kick_stops_the_client_and_says_why() {
    let fx = Fixture::start();
    let alice = connect(&fx, "alice", Format::Json).await;
    let root = within(
        Client::builder(fx.url())
            .namespace("admin")
            .identity(&json!({"user": "root", "password": "pw-root"}))
            .connect(),
    )
    .await
    .unwrap();
    let _: Value = within(root.call("kick", &json!({"user": "alice"}))).await.unwrap();
    let state = wait_state(&alice, State::is_closed).await;
    let State::Closed { reason } = state else { unreachable!() };
    assert_eq!(reason.close_code(), Some(4503), "{reason}");
    // It stays closed: no reconnection.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(alice.state().is_closed());
    assert_eq!(alice.stats().connections, 1);
    let err = within(alice.call::<Value, _>("echo", &1)).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Closed(CloseReason::Failed(ConnectionError::Closed { code: 4503, .. }))),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_oldest_connection_of_a_user_is_evicted_and_stops() {
    let fx = Fixture::start();
    let oldest = connect(&fx, "erin", Format::Json).await;
    let _others: Vec<_> =
        [connect(&fx, "erin", Format::Json).await, connect(&fx, "erin", Format::MsgPack).await].into();
    let fourth = connect(&fx, "erin", Format::Json).await;
    let state =
        within_for(Duration::from_secs(10), async { wait_state(&oldest, State::is_closed).await }).await;
    let State::Closed { reason } = state else { unreachable!() };
    assert_eq!(reason.close_code(), Some(4502), "{reason}");
    assert!(fourth.state().is_ready());
}
