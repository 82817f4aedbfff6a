//! The lifecycle events' webhook (`[events]`): the framework's [`EventSink`] that POSTs each
//! batch as `{"events": [...]}` to the application, signed like Stripe's webhooks:
//!
//! ```text
//! Switchboard-Timestamp: 1767225600
//! Switchboard-Signature: t=1767225600,v1=HEX(HMAC-SHA256(secret, "1767225600." + body))
//! ```
//!
//! While a secret rotates, each of `previous_secrets` adds its own `v1=` after the current one's:
//! a backend accepts the request when any of them verifies with the secret it holds.
//!
//! 2xx: delivered. 5xx, 408, 429, 3xx (redirects are not followed), a timeout or a connection
//! error: retried by the framework with exponential backoff and jitter, the events behind it
//! waiting. Any other status (4xx): the batch is refused for good, dropped, counted and logged.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard::{Delivery, DeliveryError, Event, EventSink, Lifecycle};

use crate::client::{AppClient, CallError};
use crate::settings::EventsSettings;

/// The header with the signing time (Unix seconds).
pub(crate) const TIMESTAMP_HEADER: &str = "switchboard-timestamp";
/// The header with `t=SECONDS,v1=HEX[,v1=HEX…]`.
pub(crate) const SIGNATURE_HEADER: &str = "switchboard-signature";

/// What an answer means for the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 2xx.
    Delivered,
    /// 5xx, 408, 429, 3xx: again later.
    Retry,
    /// Any other 4xx (and 1xx): dropped.
    Reject,
}

/// What a status means: see the module's documentation.
pub(crate) fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        300..=399 | 408 | 429 | 500..=599 => Outcome::Retry,
        _ => Outcome::Reject,
    }
}

/// The signature of `body` signed at `t` (Unix seconds): lowercase hex of
/// HMAC-SHA256(`secret`, `"{t}." + body`).
pub(crate) fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Switchboard-Signature` value: `t={t}`, then one `v1=` per secret, in the given order.
pub(crate) fn signature_header(secrets: &[Vec<u8>], t: u64, body: &[u8]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&sign(secret, t, body));
    }
    header
}

/// The webhook sink.
pub(crate) struct Webhook {
    client: AppClient,
    url: String,
    /// The current secret, then those being retired.
    secrets: Vec<Vec<u8>>,
}

impl Webhook {
    /// A sink POSTing to `settings.url`, trusting `tls`'s roots for `https://`.
    pub(crate) fn new(settings: &EventsSettings, tls: rustls::ClientConfig) -> Self {
        Self {
            client: AppClient::new(Duration::from_millis(settings.timeout_ms), tls),
            url: settings.url.clone(),
            secrets: std::iter::once(&settings.secret)
                .chain(&settings.previous_secrets)
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        }
    }

    async fn post(&self, batch: &[Event]) -> Result<(), DeliveryError> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            events: &'a [Event],
        }
        let body = serde_json::to_vec(&Body { events: batch })
            .map_err(|e| DeliveryError::Reject(format!("the batch cannot be encoded: {e}")))?;
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let signature = signature_header(&self.secrets, t, &body);
        let headers = [
            (TIMESTAMP_HEADER, t.to_string()),
            (SIGNATURE_HEADER, signature),
            ("user-agent", concat!("switchboard/", env!("CARGO_PKG_VERSION")).to_owned()),
        ];
        let n = batch.len() as u64;
        let (first, last) = (&batch[0].id, &batch[batch.len() - 1].id);
        let started = Instant::now();
        let answer = self.client.post_bytes(&self.url, &headers, Bytes::from(body)).await;
        let outcome = match &answer {
            Ok(status) => classify(*status),
            Err(_) => Outcome::Retry,
        };
        let label = match outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry => "retried",
            Outcome::Reject => "rejected",
        };
        metrics::histogram!("switchboard_events_batch_duration_seconds", "outcome" => label)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("switchboard_events_webhook_requests_total", "outcome" => label).increment(1);
        metrics::counter!(format!("switchboard_events_{label}_total")).increment(n);
        match (outcome, answer) {
            (Outcome::Delivered, _) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
                let oldest = batch.iter().map(|e| e.ts).min().unwrap_or(now_ms);
                #[allow(clippy::cast_precision_loss)]
                metrics::histogram!("switchboard_events_delay_seconds")
                    .record(now_ms.saturating_sub(oldest) as f64 / 1000.0);
                Ok(())
            }
            (Outcome::Reject, Ok(status)) => {
                tracing::error!(
                    status,
                    events = n,
                    first = %first,
                    last = %last,
                    url = %self.url,
                    "the application refused lifecycle events (a 4xx other than 408/429): dropped"
                );
                Err(DeliveryError::Reject(format!("answered {status}")))
            }
            (_, Ok(status)) => Err(DeliveryError::Retry(format!("{} answered {status}", self.url))),
            (_, Err(CallError::Timeout)) => Err(DeliveryError::Retry(format!(
                "{} did not answer within the timeout (events.timeout_ms)",
                self.url
            ))),
            (_, Err(CallError::Failed(e))) => Err(DeliveryError::Retry(format!("{}: {e}", self.url))),
        }
    }
}

impl EventSink for Webhook {
    fn deliver<'a>(&'a self, batch: &'a [Event]) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            self.post(batch).await
        })
    }
}

/// Which events `[events]` asks for.
pub(crate) fn lifecycle(settings: &EventsSettings) -> Lifecycle {
    Lifecycle::new()
        .kinds(settings.kinds.iter().copied())
        .namespaces(settings.namespaces.iter().cloned())
        .topics(settings.topics.iter())
}

/// How `[events]` batches and retries.
pub(crate) fn delivery(settings: &EventsSettings) -> Delivery {
    Delivery::new()
        .max_batch(settings.max_batch)
        .max_wait(Duration::from_millis(settings.max_wait_ms))
        .retry(Duration::from_millis(settings.retry_min_ms), Duration::from_millis(settings.retry_max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_the_issue_says() {
        assert_eq!(classify(200), Outcome::Delivered);
        assert_eq!(classify(204), Outcome::Delivered);
        for retried in [500, 502, 503, 504, 408, 429, 301, 307] {
            assert_eq!(classify(retried), Outcome::Retry, "{retried}");
        }
        for rejected in [400, 401, 403, 404, 409, 410, 413, 422, 100] {
            assert_eq!(classify(rejected), Outcome::Reject, "{rejected}");
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: Python's
        // hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            sign(b"key", 1_700_000_000, b"{}"),
            "9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn each_secret_adds_its_signature_the_current_one_first() {
        let (new, old) = (b"new-secret".to_vec(), b"key".to_vec());
        assert_eq!(
            signature_header(std::slice::from_ref(&old), 1_700_000_000, b"{}"),
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        let first = sign(&new, 1_700_000_000, b"{}");
        assert_eq!(
            signature_header(&[new, old], 1_700_000_000, b"{}"),
            format!(
                "t=1700000000,v1={first},v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
            )
        );
    }
}
