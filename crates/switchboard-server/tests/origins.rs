//! `allowed_origins` on the WebSocket endpoint: by default the request's own host; browsers'
//! `Origin` checked, requests without one (not browsers) allowed, `null` refused unless listed;
//! a refusal is 403 and counted in `switchboard_origin_refused_total{reason}`.

mod common;

use std::net::SocketAddr;

use common::{http, metric, start_with};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The upgrade's HTTP status with these `Origin` and `Host` headers (101 when it opened).
async fn upgrade(addr: SocketAddr, origin: Option<&str>, host: Option<&str>) -> u16 {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    if let Some(host) = host {
        request.headers_mut().insert("host", HeaderValue::from_str(host).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

async fn refused(addr: SocketAddr, reason: &str) -> f64 {
    let page = http(addr, "GET", "/metrics", None, None).await.1;
    metric(&page, &format!("switchboard_origin_refused_total{{reason=\"{reason}\"}}")).unwrap()
}

#[tokio::test]
async fn by_default_only_the_requests_own_host() {
    let server = start_with(&common::config("anonymous", ""), &[], &[]).await;
    let addr = server.addr;
    let own = format!("http://{addr}");
    assert_eq!(upgrade(addr, None, None).await, 101, "no Origin: not a browser");
    assert_eq!(upgrade(addr, Some(&own), None).await, 101);
    let host = format!("chat.example.com:{}", addr.port());
    assert_eq!(upgrade(addr, Some(&format!("https://{host}")), Some(&host)).await, 101);
    assert_eq!(upgrade(addr, Some("https://chat.example.com"), Some("chat.example.com")).await, 101);
    assert_eq!(upgrade(addr, Some("https://evil.example"), None).await, 403);
    assert_eq!(upgrade(addr, Some(&format!("http://127.0.0.1:{}", addr.port() + 1)), None).await, 403);
    assert_eq!(
        upgrade(addr, Some("https://chat.example.com.evil.example"), Some("chat.example.com")).await,
        403
    );
    assert_eq!(refused(addr, "not_allowed").await, 3.0);
    assert_eq!(upgrade(addr, Some("null"), None).await, 403);
    assert_eq!(refused(addr, "null").await, 1.0);
    assert_eq!(upgrade(addr, Some("not an origin"), None).await, 403);
    assert_eq!(refused(addr, "malformed").await, 1.0);
}

#[tokio::test]
async fn listed_origins_and_wildcards() {
    let extra = r#"allowed_origins = ["https://app.example.com", "https://*.example.org", "null"]"#;
    let server = start_with(&common::config("anonymous", extra), &[], &[]).await;
    let addr = server.addr;
    assert_eq!(upgrade(addr, Some("https://app.example.com"), None).await, 101);
    assert_eq!(upgrade(addr, Some("https://a.b.example.org"), None).await, 101);
    assert_eq!(upgrade(addr, Some("null"), None).await, 101);
    assert_eq!(upgrade(addr, None, None).await, 101);
    assert_eq!(upgrade(addr, Some("http://app.example.com"), None).await, 403, "another scheme");
    assert_eq!(upgrade(addr, Some("https://example.org"), None).await, 403, "not the domain itself");
    // A list replaces the default: the own host needs `self`.
    assert_eq!(upgrade(addr, Some(&format!("http://{addr}")), None).await, 403);
    let server = start_with(&common::config("anonymous", r#"allowed_origins = ["self"]"#), &[], &[]).await;
    assert_eq!(upgrade(server.addr, Some(&format!("http://{}", server.addr)), None).await, 101);
}

#[test]
fn a_bad_pattern_stops_the_start() {
    let path = std::env::temp_dir().join(format!("sb-origins-{}.toml", std::process::id()));
    std::fs::write(&path, common::config("anonymous", r#"allowed_origins = ["example.com"]"#)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["checkconfig", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("allowed_origins") && err.contains("example.com"), "{err}");
}
