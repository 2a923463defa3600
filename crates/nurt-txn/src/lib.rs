//! Kafka's transaction coordinator (KIP-98, with KIP-360 producer recovery and KIP-890's
//! verification and per-transaction epoch bump) as a sans-IO state machine
//! ([`coordinator`]), and its records in Kafka's `__transaction_state` layout ([`record`]).
//!
//! Nothing here reads a clock, opens a file or awaits: time and fresh producer ids come in as
//! arguments; responses, records to persist and transaction markers to write go out. State
//! changes only by replaying records ([`TxnCoordinator::replay`]): a request applies the
//! records it returns through that same path, so a leader, a follower and a restarted node
//! hold the same state for the same log.

pub mod coordinator;
mod end;
pub mod error;
mod init;
mod partitions;
pub mod record;
mod timeouts;
mod views;

pub use coordinator::{TxnCoordinator, Undo};
pub use end::EndAnswer;
pub use error::{TxnApi, TxnError};
pub use partitions::Verified;
pub use record::{Partitions, TxnLogValue, TxnRecord, TxnState};
pub use views::{ListFilter, TxnDescription, TxnListing};

/// Kafka's "no producer id".
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's "no producer epoch".
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// The topic whose partitions AddOffsetsToTxn adds.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `TransactionVersion` feature levels (the `transaction.version` feature).
pub mod txn_version {
    /// Transactions as KIP-98 made them.
    pub const TV_0: i16 = 0;
    /// Flexible transaction log records.
    pub const TV_1: i16 = 1;
    /// KIP-890 part 2: the epoch is bumped at the end of every transaction.
    pub const TV_2: i16 = 2;

    /// Whether `version` bumps the producer epoch at the end of every transaction.
    pub fn bumps_epoch(version: i16) -> bool {
        version >= TV_2
    }
}

/// A producer id and epoch, as InitProducerId and EndTxn (v5+) return them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub epoch: i16,
}

/// How a transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnResult {
    Commit,
    Abort,
}

/// Transaction markers to write (WriteTxnMarkers): once every partition has its marker, the
/// broker calls [`TxnCoordinator::markers_written`] with this producer id and epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMarkers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub result: TxnResult,
    /// The leader epoch of the `__transaction_state` partition, so partition leaders can
    /// refuse markers of a deposed coordinator.
    pub coordinator_epoch: i32,
    pub partitions: Partitions,
}

/// What one call produced: the response to send once `records` are persisted (appended and
/// replicated), and the markers to write after that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output<R> {
    pub response: R,
    pub records: Vec<TxnRecord>,
    pub markers: Option<TxnMarkers>,
}

impl<R> Output<R> {
    /// An answer that persists nothing.
    pub fn answer(response: R) -> Self {
        Self {
            response,
            records: Vec::new(),
            markers: None,
        }
    }
}

/// Transaction settings, by their Kafka broker config names.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`
    pub id_expiration_ms: i64,
    /// The finalized `transaction.version` feature level: the version of the aborts the
    /// coordinator starts itself (timeouts, fencing), as Kafka uses the server's level there.
    pub transaction_version: i16,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 3_600_000,
            transaction_version: txn_version::TV_2,
        }
    }
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
