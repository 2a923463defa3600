//! Background upkeep of a partition's log: retention (time and size), DeleteRecords,
//! compaction and the expiration of idle producers. Compaction reads and rewrites rolled segments without holding the partition
//! lock; only the final swap takes it, so produce and fetch never wait on the cleaner.

use nurt_log::cleaner::{clean_segments, CleanOptions, CleanStats};
use nurt_log::LogError;

use crate::partition::{lock, Partition};

/// Bound on one decompressed batch while cleaning.
const CLEANER_BATCH_BYTES_MAX: usize = 64 << 20;

impl Partition {
    /// Deletes segments past `retention.ms` / `retention.bytes` when the policy says delete.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let mut inner = lock(&self.inner);
        if !inner.settings.delete {
            return Ok(0);
        }
        let (ms, bytes) = (inner.settings.retention_ms, inner.settings.retention_bytes);
        inner.log.enforce_retention(now_ms, ms, bytes)
    }

    /// Forgets producers idle for `producer.id.expiration.ms`; returns how many.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        lock(&self.inner).log.expire_producers(now_ms, expiration_ms)
    }

    /// DeleteRecords: moves the log start offset (-1: to the high watermark).
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut inner = lock(&self.inner);
        let target = if offset == -1 {
            inner.log.high_watermark()
        } else {
            offset
        };
        inner.log.delete_records_before(target)
    }

    /// One compaction pass if the policy says compact and enough of the log is dirty (or a
    /// record waited longer than `max.compaction.lag.ms`). Returns what it did.
    pub fn compact(&self, now_ms: i64) -> Result<Option<CleanStats>, LogError> {
        let (segments, opts, storage) = {
            let inner = lock(&self.inner);
            let s = &inner.settings;
            if !s.compact {
                return Ok(None);
            }
            let overdue = s.max_compaction_lag_ms < i64::MAX;
            let Some(segments) =
                inner
                    .log
                    .plan_compaction(now_ms, s.min_compaction_lag_ms, s.min_cleanable_dirty_ratio, overdue)
            else {
                return Ok(None);
            };
            (
                segments,
                CleanOptions {
                    now_ms,
                    delete_retention_ms: s.delete_retention_ms,
                    decompressed_bytes_max: CLEANER_BATCH_BYTES_MAX,
                },
                std::sync::Arc::clone(inner.log.storage()),
            )
        };
        let (cleaned, stats) = clean_segments(&*storage, &segments, opts)?;
        lock(&self.inner).log.install_compaction(cleaned)?;
        Ok(Some(stats))
    }
}
