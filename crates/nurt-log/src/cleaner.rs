//! Log compaction (`cleanup.policy=compact`): keep the latest record of each key, drop
//! tombstones older than `delete.retention.ms`, keep offsets (gaps are fine) and batch
//! boundaries. Runs on rolled segments without the log's lock: it reads them through their
//! file handles and writes `<segment>.log.cleaned` copies that `Log::install_cleaned` swaps in.
//!
//! Transactions (Kafka's rules, simplified where noted):
//! - The log offers only segments wholly below its last stable offset, so no record of an open
//!   (or not yet replicated) transaction is ever cleaned.
//! - Records of aborted transactions (listed with each segment from the txn indexes) are
//!   removed, and never count as their key's latest value: an aborted write must not make a
//!   committed one disappear.
//! - Control batches (markers) are always kept, as are the segments' txn indexes. (Kafka
//!   removes a marker once its transaction's records are gone and `delete.retention.ms` has
//!   passed; keeping it costs a few bytes and keeps replays exact.)
//! - Each producer's last data batch is kept, emptied if none of its records stays, so its
//!   epoch and sequence can be rebuilt from the log.

use std::collections::HashMap;
use std::path::PathBuf;

use nurt_records::batch::{BatchHeader, BATCH_HEADER_BYTES};
use nurt_records::record::decode_batch;
use nurt_records::rewrite::{empty_batch_like, rewrite_batch};

use crate::error::IoContext;
use crate::log::CleanableSegment;
use crate::storage::{Storage, StorageFile};
use crate::txn_index::AbortedTxn;
use crate::LogError;

/// Cleaned bytes are written to the copy in chunks of about this size.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// How a cleaning pass decides.
#[derive(Debug, Clone, Copy)]
pub struct CleanOptions {
    pub now_ms: i64,
    /// Tombstones older than this are removed.
    pub delete_retention_ms: i64,
    /// Bound on one decompressed batch.
    pub decompressed_bytes_max: usize,
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub records_before: u64,
    pub records_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Calls `f` with every whole batch of a segment file, one at a time.
fn for_each_batch(
    file: &dyn StorageFile,
    size_bytes: u64,
    mut f: impl FnMut(&[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut pos = 0u64;
    let mut buf = Vec::new();
    let mut head = [0u8; BATCH_HEADER_BYTES];
    while pos + BATCH_HEADER_BYTES as u64 <= size_bytes {
        file.read_exact_at(&mut head, pos).at(std::path::Path::new("segment"))?;
        let header = BatchHeader::parse(&head)?;
        let len = header.total_bytes();
        if pos + len as u64 > size_bytes {
            break;
        }
        buf.resize(len, 0);
        file.read_exact_at(&mut buf, pos).at(std::path::Path::new("segment"))?;
        f(&buf)?;
        pos += len as u64;
    }
    Ok(())
}

/// Whether the batch belongs to a transaction that was aborted.
fn is_aborted(header: &BatchHeader, aborted: &[AbortedTxn]) -> bool {
    header.is_transactional()
        && !header.is_control()
        && aborted.iter().any(|t| {
            t.producer_id == header.producer_id && (t.first_offset..=t.last_offset).contains(&header.base_offset)
        })
}

/// Cleans `segments` (oldest first): builds the key → latest offset map over all of them,
/// then writes each one's cleaned copy (fsynced) next to it. Returns the copies to install
/// and the statistics.
pub fn clean_segments(
    storage: &dyn Storage,
    segments: &[CleanableSegment],
    opts: CleanOptions,
) -> Result<(Vec<(CleanableSegment, PathBuf)>, CleanStats), LogError> {
    let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut stats = CleanStats::default();
    for seg in segments {
        for_each_batch(&*seg.file, seg.size_bytes, |batch| {
            let (header, records) = decode_batch(batch, opts.decompressed_bytes_max)?;
            if header.is_control() {
                return Ok(());
            }
            if is_aborted(&header, &seg.aborted) {
                stats.records_before += records.len() as u64;
                return Ok(());
            }
            for r in records {
                stats.records_before += 1;
                if let Some(key) = r.key {
                    latest.insert(key, r.offset);
                }
            }
            Ok(())
        })?;
    }
    let tombstone_horizon = opts.now_ms.saturating_sub(opts.delete_retention_ms);
    let mut out = Vec::with_capacity(segments.len());
    for seg in segments {
        let cleaned_path = seg.path.with_extension("log.cleaned");
        let cleaned = storage.open(&cleaned_path, true, true).at(&cleaned_path)?;
        let mut pending = Vec::with_capacity(WRITE_CHUNK_BYTES);
        let mut written = 0u64;
        let mut pos = 0u64;
        for_each_batch(&*seg.file, seg.size_bytes, |batch| {
            let header = BatchHeader::parse(batch)?;
            pos += batch.len() as u64;
            let last_in_segment = pos == seg.size_bytes;
            let codec = header.compression()?;
            let kept = if is_aborted(&header, &seg.aborted) {
                None
            } else {
                rewrite_batch(batch, codec, opts.decompressed_bytes_max, |r| match &r.key {
                    None => false,
                    Some(k) => {
                        latest.get(k) == Some(&r.offset) && (r.value.is_some() || r.timestamp_ms >= tombstone_horizon)
                    }
                })?
            };
            // The last batch stays, even empty, so its offsets remain readable past the gap;
            // so does a producer's last batch, for its sequence and epoch.
            let retained = seg.retained_batches.binary_search(&header.base_offset).is_ok();
            let kept = match kept {
                None if last_in_segment || retained => Some(empty_batch_like(batch)?),
                other => other,
            };
            if let Some(kept) = kept {
                stats.records_after += u64::from(BatchHeader::parse(&kept)?.record_count.max(0) as u32);
                pending.extend_from_slice(&kept);
                written += kept.len() as u64;
                if pending.len() >= WRITE_CHUNK_BYTES {
                    cleaned.append(&[&pending]).at(&cleaned_path)?;
                    pending.clear();
                }
            }
            Ok(())
        })?;
        cleaned.append(&[&pending]).at(&cleaned_path)?;
        cleaned.sync_data().at(&cleaned_path)?;
        stats.bytes_before += seg.size_bytes;
        stats.bytes_after += written;
        out.push((seg.clone(), cleaned_path));
    }
    Ok((out, stats))
}
