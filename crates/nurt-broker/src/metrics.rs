//! Counters of what the broker did, served as Prometheus text on `/metrics` (see
//! `metrics_http.rs`) and read by tests that must show work happened or did not (a produce
//! waking only the fetches of its partition), never by timing.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters since start.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Long-polling fetches woken by a change of a partition they read (not by their timeout).
    pub fetch_wakeups: AtomicU64,
    /// Fetches parked in a long poll right now (a gauge).
    pub fetches_parked: AtomicU64,
}

/// Counts one parked fetch while alive (also when its connection goes and drops the wait).
#[derive(Debug)]
pub struct Parked<'a>(&'a AtomicU64);

impl<'a> Parked<'a> {
    pub fn new(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counters as `name value` pairs, in a fixed order.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("nurt_fetch_wakeups_total", self.fetch_wakeups.load(Ordering::Relaxed))]
    }

    /// Gauges as `name value` pairs, in a fixed order.
    pub fn gauges(&self) -> Vec<(&'static str, u64)> {
        vec![("nurt_fetches_parked", self.fetches_parked.load(Ordering::Relaxed))]
    }
}
