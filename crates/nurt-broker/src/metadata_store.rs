//! The metadata log (`__cluster_metadata-0`): controller operations append one batch of
//! metadata records each, fsynced before they are applied to the in-memory image. On start the
//! whole log is replayed. A single node is its own controller; a Raft quorum will replace the
//! local append with a consensus commit, and replay stays the same.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use nurt_log::{Log, LogConfig, Storage};
use nurt_metadata::{MetadataError, MetadataImage, MetadataRecord};
use nurt_records::batch::Batches;
use nurt_records::record::decode_batch;
use nurt_records::{BatchBuilder, Compression};

use crate::BrokerError;

/// Metadata records are small; no decoded batch may exceed this.
const METADATA_BATCH_BYTES_MAX: usize = 16 << 20;

/// The metadata log and the image it replays into.
#[derive(Debug)]
pub struct MetadataStore {
    log: Mutex<Log>,
    image: RwLock<MetadataImage>,
}

impl MetadataStore {
    /// Opens the metadata log in `dir` and replays it.
    pub fn open(storage: &Arc<dyn Storage>, dir: &Path, clean: bool, now_ms: i64) -> Result<Self, BrokerError> {
        let config = LogConfig {
            segment_bytes: 64 << 20,
            flush_messages: 1,
            ..LogConfig::default()
        };
        let log = Log::open(storage, dir, config, clean, now_ms).map_err(BrokerError::Storage)?;
        let mut image = MetadataImage::default();
        let mut offset = log.log_start_offset();
        while let Some(slice) = log.read(offset, 1 << 20).map_err(BrokerError::Storage)? {
            let bytes = slice.read_to_vec().map_err(|e| BrokerError::Io(dir.to_path_buf(), e))?;
            for b in Batches::new(&bytes) {
                let (_, raw) = b.map_err(|e| BrokerError::CorruptMetadata(e.to_string()))?;
                let (header, records) = decode_batch(raw, METADATA_BATCH_BYTES_MAX)
                    .map_err(|e| BrokerError::CorruptMetadata(e.to_string()))?;
                for r in records {
                    let value = r
                        .value
                        .ok_or_else(|| BrokerError::CorruptMetadata("record without value".into()))?;
                    let record =
                        MetadataRecord::decode(&value).map_err(|e| BrokerError::CorruptMetadata(e.to_string()))?;
                    image
                        .apply(&record)
                        .map_err(|e| BrokerError::CorruptMetadata(e.to_string()))?;
                }
                offset = header.last_offset() + 1;
            }
        }
        Ok(Self {
            log: Mutex::new(log),
            image: RwLock::new(image),
        })
    }

    /// A read view of the image.
    pub fn image(&self) -> RwLockReadGuard<'_, MetadataImage> {
        self.image.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a controller operation: `op` sees the image and returns the records to commit.
    /// Operations are serialized; the records are durable (fsynced) before they are applied.
    pub fn commit<T>(
        &self,
        now_ms: i64,
        op: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), MetadataError>,
    ) -> Result<T, CommitError> {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let (records, out) = op(&self.image())?;
        if records.is_empty() {
            return Ok(out);
        }
        let mut builder = BatchBuilder::new(Compression::None, now_ms);
        for r in &records {
            builder.push(now_ms, None, Some(&r.encode()), &[]);
        }
        let batch = builder.build().map_err(|e| CommitError::Storage(e.to_string()))?;
        log.append(&batch, 0, None, now_ms)
            .map_err(|e| CommitError::Storage(e.to_string()))?;
        log.flush().map_err(|e| CommitError::Storage(e.to_string()))?;
        let mut image = self.image.write().unwrap_or_else(|p| p.into_inner());
        for r in &records {
            // Validated by the controller against this very image; a failure is a bug.
            image.apply(r).map_err(CommitError::Rejected)?;
        }
        Ok(out)
    }

    /// Flushes and checkpoints for shutdown.
    pub fn close(&self) -> Result<(), nurt_log::LogError> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).close()
    }
}

/// Why a controller operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Rejected(#[from] MetadataError),
    #[error("metadata log write failed: {0}")]
    Storage(String),
}
