//! A small JSON-over-HTTP client for calls to the application (proxy identification, forwarding).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Why a call to the application failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer in time.
    Timeout,
    /// Transport failure or unreadable answer.
    Failed(String),
}

/// Shared HTTP client (plain `http://`; put TLS in front of the application if needed).
#[derive(Clone)]
pub(crate) struct AppClient {
    /// Pooled hyper client.
    client: Client<HttpConnector, Full<Bytes>>,
    /// Timeout of one call.
    timeout: Duration,
}

impl AppClient {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build_http(), timeout }
    }

    /// POSTs `body` as JSON to `url`; returns the status and the JSON answer (`null` if empty).
    /// `kind` labels the latency histogram.
    pub(crate) async fn post(
        &self,
        kind: &'static str,
        url: &str,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.call(url, body)).await;
        metrics::histogram!("switchboard_proxy_request_duration_seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        };
        metrics::counter!("switchboard_proxy_requests_total", "kind" => kind, "outcome" => outcome)
            .increment(1);
        result.map_err(|_| CallError::Timeout)?
    }

    async fn call(&self, url: &str, body: &Value) -> Result<(u16, Value), CallError> {
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| CallError::Failed(e.to_string()))?;
        let response = self.client.request(request).await.map_err(|e| CallError::Failed(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes =
            response.into_body().collect().await.map_err(|e| CallError::Failed(e.to_string()))?.to_bytes();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((status, Value::Null));
        }
        let value =
            serde_json::from_slice(&bytes).map_err(|e| CallError::Failed(format!("not JSON: {e}")))?;
        Ok((status, value))
    }
}
