//! Prometheus series, all prefixed `switchboard_`, refreshed on every scrape.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use switchboard::Hub;

/// Installs the global recorder and describes the series.
///
/// # Errors
/// When a recorder is already installed.
pub(crate) fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("switchboard_proxy_request_duration_seconds".to_owned()),
            &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full("switchboard_request_duration_seconds".to_owned()),
            &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0],
        )?
        .install_recorder()?;
    metrics::describe_histogram!(
        "switchboard_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from receiving a client request to its reply, by type and outcome"
    );
    metrics::describe_gauge!("switchboard_connections", "Open client connections on this node");
    metrics::describe_gauge!("switchboard_users", "Users with a connection on this node");
    metrics::describe_gauge!("switchboard_topics", "Topics with a local subscriber");
    metrics::describe_gauge!(
        "switchboard_pending_timers",
        "Identification deadlines, acknowledgement resends and credential expiries held now"
    );
    metrics::describe_counter!("switchboard_connections_total", "Connections accepted since start");
    metrics::describe_counter!("switchboard_messages_in_total", "Messages received from clients");
    metrics::describe_counter!("switchboard_messages_out_total", "Messages sent to clients");
    metrics::describe_counter!("switchboard_bytes_in_total", "Bytes of messages received from clients");
    metrics::describe_counter!("switchboard_bytes_out_total", "Bytes of messages sent to clients");
    metrics::describe_counter!(
        "switchboard_slow_consumer_closes_total",
        "Connections closed as slow consumers (4002)"
    );
    metrics::describe_histogram!(
        "switchboard_proxy_request_duration_seconds",
        "Latency of calls to the application (identification, forwarded messages)"
    );
    metrics::describe_counter!("switchboard_proxy_requests_total", "Calls to the application by outcome");
    metrics::describe_counter!("switchboard_api_commands_total", "HTTP API commands executed");
    metrics::describe_counter!(
        "switchboard_origin_refused_total",
        "WebSocket upgrades refused (403) for their Origin, by reason: null, malformed, not_allowed"
    );
    for reason in ["null", "malformed", "not_allowed"] {
        metrics::counter!("switchboard_origin_refused_total", "reason" => reason).absolute(0);
    }
    metrics::describe_counter!(
        "switchboard_rate_limited_total",
        "Client messages refused with RATE_LIMITED, by the limit that ran out: message, publication, subscription"
    );
    metrics::describe_counter!(
        "switchboard_rate_limit_closes_total",
        "Connections closed (4501) for going on past their rate limits"
    );
    metrics::describe_counter!(
        "switchboard_connections_refused_total",
        "Connections refused for their source address: too_many (open at once), too_often (new per second)"
    );
    // Present from the first scrape on.
    metrics::counter!("switchboard_api_commands_total").absolute(0);
    Ok(handle)
}

/// Records one answered client request (the framework's `on_request_done` hook). Unknown
/// types are not used as labels, so clients cannot grow the series without bound.
pub(crate) fn request_done(done: &switchboard::RequestDone<'_>) {
    let kind = if done.error == Some("NOT_FOUND") { "unknown".to_owned() } else { done.kind.to_owned() };
    let outcome = if done.error.is_some() { "error" } else { "ok" };
    metrics::histogram!("switchboard_request_duration_seconds", "type" => kind, "outcome" => outcome)
        .record(done.duration.as_secs_f64());
}

/// Copies the hub's counters into the series.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn update(hub: &Hub) {
    let stats = hub.stats();
    metrics::gauge!("switchboard_connections").set(stats.connections as f64);
    metrics::gauge!("switchboard_users").set(stats.users as f64);
    metrics::gauge!("switchboard_topics").set(stats.topics as f64);
    metrics::gauge!("switchboard_pending_timers").set(hub.registry_sizes().timers as f64);
    metrics::counter!("switchboard_connections_total").absolute(stats.connections_total);
    metrics::counter!("switchboard_messages_in_total").absolute(stats.messages_in);
    metrics::counter!("switchboard_messages_out_total").absolute(stats.messages_out);
    metrics::counter!("switchboard_bytes_in_total").absolute(stats.bytes_in);
    metrics::counter!("switchboard_bytes_out_total").absolute(stats.bytes_out);
    metrics::counter!("switchboard_slow_consumer_closes_total").absolute(stats.slow_consumers);
    let limits = switchboard::LimitStats::of(hub);
    for (kind, n) in [
        ("message", limits.rate_limited_messages),
        ("publication", limits.rate_limited_publications),
        ("subscription", limits.rate_limited_subscriptions),
    ] {
        metrics::counter!("switchboard_rate_limited_total", "kind" => kind).absolute(n);
    }
    metrics::counter!("switchboard_rate_limit_closes_total").absolute(limits.rate_limit_closes);
    for (reason, n) in [("too_many", limits.address_too_many), ("too_often", limits.address_too_often)] {
        metrics::counter!("switchboard_connections_refused_total", "reason" => reason).absolute(n);
    }
}
