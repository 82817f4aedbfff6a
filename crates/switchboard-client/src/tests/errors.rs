//! Fail fast: errors that retrying cannot fix stop the client at once, are returned by
//! `connect`/`ready` and kept in the state; the others are retried, and the state says which.

use super::*;

/// A client whose connection attempts follow `plans`, then are accepted.
fn failing(plans: Vec<Plan>) -> Harness {
    let h = Harness::start(|b| b);
    for plan in plans {
        h.connector.plan(plan);
    }
    h
}

#[tokio::test(start_paused = true)]
async fn an_http_4xx_at_the_upgrade_stops_at_once() {
    for status in [400, 401, 403, 404] {
        let mut h = failing(vec![Plan::Fail(ConnectionError::Http { status })]);
        let err = h.client.ready().await.unwrap_err();
        let expected = ConnectionError::Http { status };
        assert!(matches!(&err, ClientError::Connect(e) if *e == expected), "{err:?}");
        assert_eq!(err.code(), "DISCONNECTED");
        let state = h.client.state();
        assert_eq!(state, State::Closed { reason: CloseReason::Failed(expected.clone()) });
        assert_eq!(state.last_error(), Some(&expected));
        assert_eq!(h.connector.attempts.lock().unwrap().len(), 1, "HTTP {status}: no second attempt");
        assert!(h.conns.try_recv().is_err());
    }
}

#[tokio::test(start_paused = true)]
async fn tls_failures_and_bad_urls_stop_at_once() {
    let tls = ConnectionError::Tls("invalid peer certificate: UnknownIssuer".into());
    let url = ConnectionError::InvalidUrl { url: "http://h/ws".into(), reason: "not ws://".into() };
    let no_tls = ConnectionError::TlsUnavailable { url: "wss://h/ws".into() };
    for error in [tls, url, no_tls] {
        let h = failing(vec![Plan::Fail(error.clone())]);
        let err = h.client.ready().await.unwrap_err();
        assert_eq!(err.connection_error(), Some(&error));
        assert_eq!(h.client.state().last_error(), Some(&error));
        assert_eq!(h.connector.attempts.lock().unwrap().len(), 1, "{error}");
    }
}

#[tokio::test(start_paused = true)]
async fn overload_and_network_errors_are_retried_and_the_state_says_which() {
    let mut h = failing(vec![
        Plan::Fail(ConnectionError::Http { status: 503 }),
        Plan::Fail(ConnectionError::Http { status: 429 }),
        Plan::Fail(ConnectionError::Http { status: 408 }),
        Plan::Refuse,
    ]);
    let mut states = h.client.states();
    let mut seen = Vec::new();
    let mut srv = {
        let accepted = h.accept();
        tokio::pin!(accepted);
        loop {
            tokio::select! {
                srv = &mut accepted => break srv,
                Ok(()) = states.changed() => {
                    if let State::Reconnecting { attempt, last_error } = &*states.borrow_and_update() {
                        seen.push((*attempt, last_error.clone()));
                    }
                }
            }
        }
    };
    let expected: Vec<(u32, ConnectionError)> = vec![
        (1, ConnectionError::Http { status: 503 }),
        (2, ConnectionError::Http { status: 429 }),
        (3, ConnectionError::Http { status: 408 }),
        (4, ConnectionError::Network("connection refused".into())),
    ];
    assert_eq!(seen, expected);
    srv.welcome().await;
    h.client.ready().await.unwrap();
    assert_eq!(h.client.state().last_error(), None, "ready: no error");
}

#[tokio::test(start_paused = true)]
async fn close_codes_4000_to_4499_and_1001_are_retried_4500_and_above_stop() {
    let mut h = Harness::start(|b| b);
    for code in [4000, 4002, 4003, 4499, 1001] {
        let srv = h.ready().await;
        srv.close(code, "again");
        let state = h.wait_state(|s| !s.is_ready()).await;
        let expected = ConnectionError::Closed { code, reason: "again".into() };
        assert_eq!(state.last_error(), Some(&expected), "{code}");
        assert!(!state.is_closed());
    }
    let srv = h.ready().await;
    srv.close(4999, "go away");
    let state = h.wait_state(State::is_closed).await;
    assert_eq!(state.last_error(), Some(&ConnectionError::Closed { code: 4999, reason: "go away".into() }));
}

#[tokio::test(start_paused = true)]
async fn a_refusal_that_may_pass_is_retried() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.accept().await;
    let hello = srv.next().await;
    srv.send(json!(["~err", {"code": "UNAVAILABLE", "message": "warming up"}, hello.id]));
    let state = h.wait_state(|s| matches!(s, State::Reconnecting { .. })).await;
    let refused = ConnectionError::Refused { code: "UNAVAILABLE".into(), message: "warming up".into() };
    assert_eq!(state.last_error(), Some(&refused));
    drop(srv);
    h.ready().await;
}

#[tokio::test(start_paused = true)]
async fn a_refusal_after_a_reconnection_stops_with_its_code_too() {
    let mut h = Harness::start(|b| b);
    let srv = h.ready().await;
    srv.close(4003, "credentials expired");
    let mut srv = h.accept().await;
    let hello = srv.next().await;
    srv.send(json!(["~err", {"code": "NOT_AUTHORIZED", "message": "token revoked"}, hello.id]));
    let err = h.client.ready().await.unwrap_err();
    assert_eq!(
        (err.code(), err.to_string().as_str()),
        ("NOT_AUTHORIZED", "identification refused: NOT_AUTHORIZED: token revoked")
    );
    // Calls on the stopped client say it is closed, and why.
    let call = h.client.call::<Value, _>("echo", &1).await.unwrap_err();
    assert_eq!(call.code(), "DISCONNECTED");
    assert_eq!(call.connection_error().map(ConnectionError::code), Some("NOT_AUTHORIZED"));
}
