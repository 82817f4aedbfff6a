//! Conformance: `~info` (protocol.md §7, appendix A: allowed only in `admin`).
//!
//! Readings of protocol.md used here:
//! - The statistics' content is not specified; "server statistics" is read as a JSON object
//!   (named values), with or without `detail`.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn info_is_forbidden_in_main() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.err_code("~info", json!({}), "FORBIDDEN").await;
    c.err_code("~info", json!({"detail": true}), "FORBIDDEN").await;
    // The connection lives on.
    c.sync().await;
}

#[tokio::test]
async fn info_is_not_authenticated_when_anonymous() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    c.err_code("~info", json!({}), "NOT_AUTHENTICATED").await;
}

#[tokio::test]
async fn info_is_allowed_in_admin() {
    let fx = Fixture::start();
    let _alice = Client::user(&fx, "alice").await;
    let mut r = Client::connect(&fx).await;
    r.hello(json!({"ns": "admin", "identity": {"user": "root", "password": "pw-root"}}))
        .await
        .expect("root accepted");
    let plain = r.ok("~info", json!({})).await;
    assert!(plain.is_object(), "statistics: {plain}");
    let detailed = r.ok("~info", json!({"detail": true})).await;
    assert!(detailed.is_object(), "statistics: {detailed}");
    let not_detailed = r.ok("~info", json!({"detail": false})).await;
    assert!(not_detailed.is_object(), "statistics: {not_detailed}");
}
