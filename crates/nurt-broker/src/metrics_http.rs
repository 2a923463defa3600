//! The `/metrics` endpoint (`nurt serve --metrics-listen ADDR`): the broker's counters and a
//! few gauges in Prometheus' text format, for scrapers and for tests that must show what the
//! broker did (not how fast).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::Broker;

/// Serves `/metrics` on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    let app = Router::new().route("/metrics", get(metrics)).with_state(broker);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("the metrics endpoint stopped: {e}");
    }
}

async fn metrics(State(broker): State<Arc<Broker>>) -> String {
    let mut out = String::new();
    let mut line = |name: &str, kind: &str, value: u64| {
        let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {value}");
    };
    for (name, value) in broker.metrics.counters() {
        line(name, "counter", value);
    }
    for (name, value) in broker.metrics.gauges() {
        line(name, "gauge", value);
    }
    let partitions = broker.all_partitions();
    line("nurt_partitions", "gauge", partitions.len() as u64);
    let headers: u64 = partitions.iter().map(|p| p.headers_read_at_open()).sum();
    line("nurt_log_open_batch_headers_read", "gauge", headers);
    line(
        "nurt_partitions_offline",
        "gauge",
        broker.offline_partitions().len() as u64,
    );
    line("nurt_log_files_open", "gauge", broker.log_files.open_files() as u64);
    line("nurt_log_file_opens_total", "counter", broker.log_files.opens());
    out
}
