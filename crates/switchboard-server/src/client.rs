//! A small JSON-over-HTTP(S) client for calls to the application (proxy identification,
//! forwarding, authorization) and for fetching a JWKS: `http://` and `https://` (rustls, the
//! system's roots plus `ca_file`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Largest answer read from the application or a JWKS URL.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer in time.
    Timeout,
    /// Transport failure or unreadable answer.
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::Failed(e) => f.write_str(e),
        }
    }
}

/// Shared HTTP client (pooled connections).
#[derive(Clone)]
pub(crate) struct AppClient {
    /// Pooled hyper client, `http` and `https`.
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Timeout of one call.
    timeout: Duration,
}

impl AppClient {
    /// A client trusting `tls` roots for `https://`.
    pub(crate) fn new(timeout: Duration, tls: rustls::ClientConfig) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Self { client: Client::builder(TokioExecutor::new()).build(connector), timeout }
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
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| CallError::Failed(e.to_string()));
        let result = match request {
            Ok(request) => tokio::time::timeout(self.timeout, self.call(request)).await,
            Err(e) => Ok(Err(e)),
        };
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

    /// GETs JSON from `url` (a JWKS); a status other than 2xx is an error.
    pub(crate) async fn get(&self, url: &str) -> Result<Value, CallError> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| CallError::Failed(e.to_string()))?;
        let (status, value) = tokio::time::timeout(self.timeout, self.call(request))
            .await
            .map_err(|_| CallError::Timeout)??;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(CallError::Failed(format!("answered {status}")))
        }
    }

    /// POSTs `body` (JSON) with `headers`; returns the status once the answer (at most 64 KiB
    /// of it, then discarded) was read, within the timeout.
    pub(crate) async fn post_bytes(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<u16, CallError> {
        let mut request = http::Request::post(url).header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(Full::new(body)).map_err(|e| CallError::Failed(e.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| CallError::Failed(chain(&e)))?;
            let status = response.status().as_u16();
            // Read (so the connection is reused), but a large or broken answer is no failure.
            let _ = Limited::new(response.into_body(), 64 * 1024).collect().await;
            Ok(status)
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| CallError::Timeout)?
    }

    async fn call(&self, request: http::Request<Full<Bytes>>) -> Result<(u16, Value), CallError> {
        let response = self.client.request(request).await.map_err(|e| CallError::Failed(chain(&e)))?;
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| CallError::Failed(format!("reading the answer: {e}")))?
            .to_bytes();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((status, Value::Null));
        }
        let value =
            serde_json::from_slice(&bytes).map_err(|e| CallError::Failed(format!("not JSON: {e}")))?;
        Ok((status, value))
    }
}

/// An error with its causes (hyper's own text is only "client error (Connect)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
