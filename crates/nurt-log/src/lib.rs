//! The durable, ordered log of one partition, stored as segment files.
//!
//! A partition directory holds segments named by their base offset (`{base:020}.log`), each with a
//! sparse offset index (`.index`, 8-byte entries: relative offset u32, position u32) and a time
//! index (`.timeindex`, 12-byte entries: max timestamp i64, relative offset u32), plus the
//! `leader-epoch-checkpoint` and `recovery-point` files; for transactions, an aborted-transaction
//! index per segment (`.txnindex`, 34-byte entries) and producer state snapshots
//! (`<offset>.snapshot`). Batches are stored exactly as produced,
//! with only the base offset and leader epoch rewritten in place.
//!
//! Nothing here is async: callers decide which thread does the I/O.

pub mod cleaner;
pub mod config;
pub mod data_dir;
pub mod epoch;
pub mod error;
pub mod index;
pub mod log;
pub mod producer_state;
pub mod segment;
pub mod snapshot;
pub mod storage;
pub mod txn_index;
pub mod verification;

pub use config::LogConfig;
pub use data_dir::DataDir;
pub use epoch::LeaderEpochCache;
pub use error::LogError;
pub use log::txn::IsolationLevel;
pub use log::{AppendInfo, CleanableSegment, Log, ReadSlice};
pub use producer_state::{ActiveProducer, CompletedTxn, MarkerCheck, ProducerStateTable, SequenceCheck};
pub use storage::{OsStorage, Storage, StorageFile};
pub use txn_index::AbortedTxn;
pub use verification::VerificationGuard;

#[cfg(test)]
mod power_loss_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;
