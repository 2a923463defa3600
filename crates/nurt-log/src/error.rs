//! The one error type of this crate.

use std::path::PathBuf;

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O error on a file of the log; the partition may be unusable.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The requested offset is outside [log start, log end].
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// A short write could not be cut back: the segment's tail is torn and it takes no more
    /// writes until the log is reopened (recovery cuts the tail).
    #[error("write to {path} failed ({write}) and cutting it back failed too ({truncate})")]
    TornTail {
        path: PathBuf,
        write: std::io::Error,
        truncate: std::io::Error,
    },
    /// The data directory belongs to another node or lacks its identity.
    #[error("{0}")]
    Identity(String),
    /// A replicated batch starts before the log end: the follower must truncate first.
    #[error("batch at offset {offset} is below the log end {log_end_offset}")]
    OffsetsGoBack { offset: i64, log_end_offset: i64 },
    /// A segment reached 4 GiB, the most its index positions can address.
    #[error("segment {0} is full")]
    SegmentFull(PathBuf),
    /// A transaction marker carries an older producer epoch than the producer's
    /// (INVALID_PRODUCER_EPOCH / PRODUCER_FENCED).
    #[error("marker for producer {producer_id} has epoch {epoch}, older than its epoch {current_epoch}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    /// A transaction marker comes from an older transaction coordinator than the last one
    /// (TRANSACTION_COORDINATOR_FENCED).
    #[error(
        "marker for producer {producer_id} has coordinator epoch {coordinator_epoch}, older than {current_coordinator_epoch}"
    )]
    CoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current_coordinator_epoch: i32,
    },
    /// A batch handed to `append` is malformed.
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] nurt_records::RecordsError),
}

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, LogError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, LogError> {
        self.map_err(|source| LogError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
