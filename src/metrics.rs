//! Prometheus metrics: one recorder per process, rendered on `/metrics`.
//! Names and labels are fixed here so dashboards can rely on them.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global recorder once; later calls return the same handle.
/// `None` when another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_owned()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "passerelle_transactions_total",
        "Appservice transactions received, by outcome"
    );
    describe_counter!(
        "passerelle_transactions_rejected_total",
        "Transactions refused before handling, by reason"
    );
    describe_counter!(
        "passerelle_appservice_auth_failures_total",
        "Requests with a missing or wrong hs_token"
    );
    describe_counter!(
        "passerelle_events_in_total",
        "Events received, by network and direction"
    );
    describe_counter!(
        "passerelle_events_out_total",
        "Events delivered, by network and direction"
    );
    describe_counter!(
        "passerelle_events_failed_total",
        "Events that could not be delivered, by network and direction"
    );
    describe_gauge!("passerelle_queue_depth", "Jobs waiting in portal queues");
    describe_histogram!(
        "passerelle_homeserver_request_duration_seconds",
        "Latency of requests to the homeserver, by endpoint"
    );
    describe_counter!(
        "passerelle_purged_rows_total",
        "Message-map rows removed by the retention purge"
    );
}

/// The Prometheus text for `/metrics`.
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}
