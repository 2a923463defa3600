//! The async shell of a Nurt node: it owns sockets, tasks and the clock, and drives the
//! sans-IO pieces (protocol guard, logs, metadata controller) from them.
//!
//! Data flow: [`server`] accepts connections; each [`connection`] reads length-prefixed
//! frames, decodes them through `nurt-protocol`, hands them to [`handlers`] in order, and a
//! writer task sends the responses back in the same order.

pub mod broker;
pub mod budget;
pub mod codes;
pub mod config;
pub mod connection;
pub mod controller;
pub(crate) mod coordinator_log;
pub mod error;
pub mod fd_limit;
pub mod group_service;
pub mod handlers;
pub mod hw_checkpoint;
pub mod internal;
pub mod isr;
pub mod maintenance;
pub mod metrics;
pub mod metrics_http;
pub mod migrate;
pub mod parallel;
pub mod partition;
pub mod quorum;
pub mod replica;
pub mod replica_fetcher;
pub mod rpc;
pub mod server;
pub mod settings;
pub mod txn_markers;
pub mod txn_service;
pub mod txn_verify;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use error::BrokerError;
pub use server::serve;

/// Wall-clock milliseconds since the epoch: the one place the broker reads the clock for
/// timestamps handed to the sans-IO cores.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;
