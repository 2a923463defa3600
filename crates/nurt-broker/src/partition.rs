//! A partition replica on this broker: its log, idempotent producer state and topic settings,
//! behind one mutex that is held only for the in-memory bookkeeping and the page-cache write.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use nurt_log::{Log, LogError, ProducerStateTable, ReadSlice, SequenceCheck, Storage};
use nurt_metadata::TopicId;
use nurt_records::batch::{self, BatchHeader};
use nurt_records::record::decode_batch;
use nurt_records::rewrite::rewrite_batch;
use nurt_records::RecordsError;

pub use crate::settings::TopicSettings;

/// Why a produced batch was refused; the produce handler maps each to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("corrupt batch: {0}")]
    Corrupt(RecordsError),
    #[error("invalid record batch: {0}")]
    InvalidRecord(&'static str),
    #[error("timestamp {0} is out of the allowed range")]
    InvalidTimestamp(i64),
    #[error("out of order sequence number")]
    OutOfOrderSequence,
    #[error("producer epoch is fenced by a newer one")]
    ProducerFenced,
    #[error("storage error: {0}")]
    Storage(#[from] LogError),
}

/// A successful append.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// Offsets of a partition at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Offsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) log: Log,
    pub(crate) producers: ProducerStateTable,
    pub(crate) settings: TopicSettings,
}

/// One partition replica (this node leads every partition it hosts in single-node mode).
#[derive(Debug)]
pub struct Partition {
    pub topic: Arc<str>,
    pub topic_id: TopicId,
    pub index: i32,
    pub leader_epoch: i32,
    pub(crate) inner: Mutex<Inner>,
}

/// Locks, ignoring poisoning: a panic in one request must not take the partition down for
/// everyone (the log's own state is only updated after each write succeeds).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which partition, and in which leader epoch this node leads it.
#[derive(Debug, Clone)]
pub struct PartitionId {
    pub topic: Arc<str>,
    pub topic_id: TopicId,
    pub index: i32,
    pub leader_epoch: i32,
}

/// Bound on a produced batch's decompressed size when the broker must decode it.
const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// Segments scanned on open to rebuild idempotent producer state.
const PRODUCER_STATE_SEGMENTS: usize = 2;

impl Partition {
    /// Opens (or creates) the log of partition `id` in `dir`.
    pub fn open(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        id: PartitionId,
        settings: TopicSettings,
        clean: bool,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        let PartitionId {
            topic,
            topic_id,
            index,
            leader_epoch,
        } = id;
        let log = Log::open(storage, dir, settings.log.clone(), clean, now_ms)?;
        let mut producers = ProducerStateTable::default();
        log.scan_headers(PRODUCER_STATE_SEGMENTS, |h| producers.on_append(h, h.base_offset))?;
        Ok(Self {
            topic,
            topic_id,
            index,
            leader_epoch,
            inner: Mutex::new(Inner {
                log,
                producers,
                settings,
            }),
        })
    }

    /// Replaces the topic settings after a config change.
    pub fn update_settings(&self, settings: TopicSettings) {
        let mut inner = lock(&self.inner);
        if inner.settings != settings {
            inner.log.set_config(settings.log.clone());
            inner.settings = settings;
        }
    }

    /// Validates and appends one produced record set (exactly one batch v2).
    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<Appended, AppendError> {
        let header = validate_produced(records)?;
        let (compact, target_codec) = {
            let inner = lock(&self.inner);
            (inner.settings.compact, inner.settings.compression)
        };
        if compact {
            // Kafka refuses keyless records on compacted topics: the one produce-path check
            // that needs the records decoded.
            let (_, decoded) = decode_batch(records, DECOMPRESSED_BYTES_MAX).map_err(AppendError::Corrupt)?;
            if decoded.iter().any(|r| r.key.is_none()) {
                return Err(AppendError::InvalidRecord(
                    "compacted topics need a key on every record",
                ));
            }
        }
        let recompressed;
        let records = match target_codec {
            Some(codec) if header.compression().ok() != Some(codec) => {
                recompressed = rewrite_batch(records, codec, DECOMPRESSED_BYTES_MAX, |_| true)
                    .map_err(AppendError::Corrupt)?
                    .ok_or(AppendError::InvalidRecord("empty record batch"))?;
                &recompressed[..]
            }
            _ => records,
        };
        let mut inner = lock(&self.inner);
        let settings = &inner.settings;
        if records.len() > settings.max_message_bytes {
            return Err(AppendError::TooLarge {
                size: records.len(),
                max: settings.max_message_bytes,
            });
        }
        let log_append_time = settings.log_append_time.then_some(now_ms);
        if !settings.log_append_time {
            let too_old = header.base_timestamp < now_ms.saturating_sub(settings.timestamp_before_max_ms);
            let too_new = header.max_timestamp > now_ms.saturating_add(settings.timestamp_after_max_ms);
            if too_old || too_new {
                return Err(AppendError::InvalidTimestamp(if too_new {
                    header.max_timestamp
                } else {
                    header.base_timestamp
                }));
            }
        }
        match inner.producers.check(&header) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate { base_offset } => {
                return Ok(Appended {
                    base_offset,
                    log_append_time_ms: log_append_time.unwrap_or(-1),
                    log_start_offset: inner.log.log_start_offset(),
                });
            }
            SequenceCheck::OutOfOrder => return Err(AppendError::OutOfOrderSequence),
            SequenceCheck::Fenced => return Err(AppendError::ProducerFenced),
        }
        let info = inner.log.append(records, self.leader_epoch, log_append_time, now_ms)?;
        inner.producers.on_append(&header, info.base_offset);
        Ok(Appended {
            base_offset: info.base_offset,
            log_append_time_ms: log_append_time.unwrap_or(-1),
            log_start_offset: inner.log.log_start_offset(),
        })
    }

    /// The current offsets.
    pub fn offsets(&self) -> Offsets {
        let inner = lock(&self.inner);
        Offsets {
            log_start_offset: inner.log.log_start_offset(),
            high_watermark: inner.log.high_watermark(),
            log_end_offset: inner.log.log_end_offset(),
        }
    }

    /// Locates the bytes for a fetch at `offset` (read them without the lock).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<(Option<ReadSlice>, Offsets), LogError> {
        let inner = lock(&self.inner);
        let slice = inner.log.read(offset, max_bytes)?;
        let offsets = Offsets {
            log_start_offset: inner.log.log_start_offset(),
            high_watermark: inner.log.high_watermark(),
            log_end_offset: inner.log.log_end_offset(),
        };
        Ok((slice, offsets))
    }

    /// The batch holding the first timestamp ≥ `timestamp_ms`.
    pub fn find_by_timestamp(&self, timestamp_ms: i64) -> Result<Option<ReadSlice>, LogError> {
        lock(&self.inner).log.find_by_timestamp(timestamp_ms)
    }

    /// The largest timestamp and its batch's last offset.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        lock(&self.inner).log.max_timestamp()
    }

    /// OffsetForLeaderEpoch on this replica's epoch history.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let inner = lock(&self.inner);
        let leo = inner.log.log_end_offset();
        match inner.log.epochs().end_offset_for(epoch, leo) {
            Some(found) => Some(found),
            // An empty log has no epoch history yet; the current epoch ends at the log end.
            None if epoch >= self.leader_epoch && inner.log.epochs().latest_epoch().is_none() => {
                Some((self.leader_epoch, leo))
            }
            None => None,
        }
    }

    /// Time-based upkeep: flush per `flush.ms`, roll per `segment.ms`.
    pub fn tick(&self, now_ms: i64) -> Result<(), LogError> {
        let mut inner = lock(&self.inner);
        inner.log.maybe_flush_by_time(now_ms)?;
        inner.log.maybe_roll_by_time(now_ms)
    }

    /// Flushes and checkpoints for shutdown.
    pub fn close(&self) -> Result<(), LogError> {
        lock(&self.inner).log.close()
    }
}

/// Checks a produced record set: one whole, CRC-valid batch v2 with records, not a control batch.
fn validate_produced(records: &[u8]) -> Result<BatchHeader, AppendError> {
    let header = batch::validate(records).map_err(|e| match e {
        RecordsError::UnsupportedMagic(_) => AppendError::InvalidRecord("only record batch v2 (magic 2) is accepted"),
        other => AppendError::Corrupt(other),
    })?;
    if header.total_bytes() != records.len() {
        return Err(AppendError::InvalidRecord(
            "produce requests must carry exactly one record batch",
        ));
    }
    if header.record_count == 0 {
        return Err(AppendError::InvalidRecord("empty record batch"));
    }
    if header.last_offset_delta != header.record_count - 1 {
        return Err(AppendError::InvalidRecord(
            "last offset delta does not match the record count",
        ));
    }
    if header.is_control() {
        return Err(AppendError::InvalidRecord("clients may not write control batches"));
    }
    if header.is_transactional() {
        return Err(AppendError::InvalidRecord(
            "transactional batches are not supported yet",
        ));
    }
    Ok(header)
}
