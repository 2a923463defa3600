//! One segment: a `.log` file of whole batches plus its two sparse indexes and its
//! aborted-transaction index (`.txnindex`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nurt_records::batch::{self, BatchHeader, BATCH_HEADER_BYTES};

use crate::error::IoContext;
use crate::index::{OffsetIndex, TimeIndex};
use crate::storage::{Storage, StorageFile};
use crate::txn_index::TxnIndex;
use crate::LogError;

/// File name stem of the segment starting at `base_offset`.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// An open segment. `size_bytes` counts only whole, validated batches.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    /// One past the last offset stored here (== base_offset when empty).
    pub next_offset: i64,
    pub size_bytes: u64,
    /// Largest batch max timestamp in the segment (-1 when empty).
    pub max_timestamp_ms: i64,
    /// When the segment was created (for `segment.ms`).
    pub created_ms: i64,
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Transactions aborted by markers in this segment.
    pub(crate) txn_index: TxnIndex,
    bytes_since_index: u32,
    /// Batch headers read to open it: what a start cost (a clean start reads only the
    /// batches after the last index entry).
    pub headers_read_at_open: u64,
}

impl Segment {
    /// Creates an empty segment (truncating leftovers of the same name). The new directory
    /// entries are not synced: the caller syncs the directory.
    pub fn create(storage: &dyn Storage, dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, LogError> {
        let path = dir.join(format!("{}.log", file_stem(base_offset)));
        let file = storage.open(&path, true, true).at(&path)?;
        Ok(Self {
            base_offset,
            next_offset: base_offset,
            size_bytes: 0,
            max_timestamp_ms: -1,
            created_ms: now_ms,
            offset_index: OffsetIndex::open(storage, &path.with_extension("index"), false)?,
            time_index: TimeIndex::open(storage, &path.with_extension("timeindex"), false)?,
            txn_index: {
                let txn_path = path.with_extension("txnindex");
                let mut index = TxnIndex::open(storage, &txn_path)?;
                // A leftover of an earlier segment of the same name must not leak in.
                index.clear()?;
                index
            },
            path,
            file,
            bytes_since_index: 0,
            headers_read_at_open: 0,
        })
    }

    /// Opens an existing segment. With `recover` every batch is read and checked, a torn or
    /// corrupt tail is truncated away and the indexes are rebuilt; otherwise the indexes are
    /// trusted if sane and only the last batch is located. The aborted-transaction index is
    /// loaded as it is: rebuilding it takes the producer state, which is the log's
    /// ([`crate::Log::open`] clears and refills it for recovered segments).
    pub fn open(
        storage: &dyn Storage,
        path: &Path,
        base_offset: i64,
        recover: bool,
        index_interval_bytes: u32,
    ) -> Result<Self, LogError> {
        let file = storage.open(path, false, false).at(path)?;
        let size_bytes = file.len().at(path)?;
        let created_ms = file.modified_ms().unwrap_or(0);
        let offset_index = OffsetIndex::open(storage, &path.with_extension("index"), !recover)?;
        let time_index = TimeIndex::open(storage, &path.with_extension("timeindex"), !recover)?;
        let txn_index = TxnIndex::open(storage, &path.with_extension("txnindex"))?;
        let mut seg = Self {
            base_offset,
            next_offset: base_offset,
            size_bytes,
            max_timestamp_ms: -1,
            created_ms,
            path: path.to_path_buf(),
            file,
            offset_index,
            time_index,
            txn_index,
            bytes_since_index: 0,
            headers_read_at_open: 0,
        };
        let sane = seg.offset_index.is_sane(seg.size_bytes);
        match seg.offset_index.last_entry() {
            // A trusted index: only the batches after its last entry are walked to find the
            // segment's end (Kafka does the same), so a clean start costs O(segments).
            Some((relative, position)) if !recover && sane => {
                seg.next_offset = base_offset + i64::from(relative);
                seg.max_timestamp_ms = seg.time_index.last_timestamp().unwrap_or(-1);
                seg.scan_from(u64::from(position), false, index_interval_bytes)?;
            }
            _ => seg.scan(recover || !sane, index_interval_bytes)?,
        }
        Ok(seg)
    }

    /// Walks every batch from the start; with `rebuild`, checks CRCs, truncates at the first bad
    /// batch and rewrites the indexes. Always recomputes next offset and max timestamp.
    fn scan(&mut self, rebuild: bool, index_interval_bytes: u32) -> Result<(), LogError> {
        if rebuild {
            self.offset_index.clear()?;
            self.time_index.clear()?;
        }
        self.scan_from(0, rebuild, index_interval_bytes)
    }

    /// [`Segment::scan`] from the batch at `start` (whose base offset `next_offset` holds).
    fn scan_from(&mut self, start: u64, rebuild: bool, index_interval_bytes: u32) -> Result<(), LogError> {
        let file_len = self.size_bytes;
        let mut pos: u64 = start;
        let mut header_buf = [0u8; BATCH_HEADER_BYTES];
        let mut body = Vec::new();
        self.bytes_since_index = 0;
        while pos + BATCH_HEADER_BYTES as u64 <= file_len {
            // An I/O error is not a torn tail: fail rather than cut good data away.
            self.file.read_exact_at(&mut header_buf, pos).at(&self.path)?;
            self.headers_read_at_open += 1;
            let Ok(header) = BatchHeader::parse(&header_buf) else {
                break;
            };
            if header.validate_shape(usize::MAX).is_err()
                || header.base_offset < self.next_offset
                || header.last_offset() - self.base_offset >= i64::from(u32::MAX)
                || pos + header.total_bytes() as u64 > file_len
            {
                break;
            }
            if rebuild {
                body.resize(header.total_bytes(), 0);
                self.file.read_exact_at(&mut body, pos).at(&self.path)?;
                if batch::validate(&body).is_err() {
                    break;
                }
                self.index_batch(&header, pos as u32, index_interval_bytes)?;
            }
            self.next_offset = header.last_offset() + 1;
            self.max_timestamp_ms = self.max_timestamp_ms.max(header.max_timestamp);
            pos += header.total_bytes() as u64;
        }
        if pos != file_len {
            // A torn write or garbage after the last whole batch: cut it off.
            self.file.set_len(pos).at(&self.path)?;
            self.size_bytes = pos;
        }
        Ok(())
    }

    fn index_batch(&mut self, header: &BatchHeader, position: u32, index_interval_bytes: u32) -> Result<(), LogError> {
        let relative = (header.base_offset - self.base_offset) as u32;
        if position > 0 && self.bytes_since_index >= index_interval_bytes {
            self.offset_index.append(relative, position)?;
            // Kafka's cadence: a time index entry (the largest timestamp so far, at this
            // batch: every batch before it is older) with every offset index entry, not one
            // per batch (a write per append, and 12 bytes per batch of index).
            let newest = self.max_timestamp_ms.max(header.max_timestamp);
            self.time_index.maybe_append(newest, relative)?;
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.total_bytes() as u32;
        Ok(())
    }

    /// Appends one batch whose first 61 bytes are replaced by `patched_header`.
    pub fn append(
        &mut self,
        patched_header: &[u8; BATCH_HEADER_BYTES],
        batch: &[u8],
        index_interval_bytes: u32,
    ) -> Result<(), LogError> {
        let header = BatchHeader::parse(patched_header)?;
        let position = u32::try_from(self.size_bytes).map_err(|_| LogError::SegmentFull(self.path.clone()))?;
        if let Err(e) = self.file.append(&[patched_header, &batch[BATCH_HEADER_BYTES..]]) {
            // A short write (full disk) must not leave a torn batch that the next append would
            // land behind: cut the file back to the last whole batch. If even that fails the
            // segment cannot take more writes safely.
            if let Err(cut) = self.file.set_len(self.size_bytes) {
                return Err(LogError::TornTail {
                    path: self.path.clone(),
                    write: e,
                    truncate: cut,
                });
            }
            return Err(e).at(&self.path);
        }
        self.size_bytes += batch.len() as u64;
        self.next_offset = header.last_offset() + 1;
        self.max_timestamp_ms = self.max_timestamp_ms.max(header.max_timestamp);
        self.index_batch(&header, position, index_interval_bytes)
    }

    /// The position from which to scan for `offset` (an index hint at or before it).
    pub fn index_lookup(&self, offset: i64) -> u64 {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        u64::from(self.offset_index.lookup(relative))
    }

    /// Relative offset from which to scan for the first timestamp ≥ `timestamp_ms`.
    pub fn time_lookup(&self, timestamp_ms: i64) -> i64 {
        self.base_offset + i64::from(self.time_index.lookup(timestamp_ms))
    }

    /// Reads the header of the batch at `position`, if a whole one is there.
    pub fn header_at(&self, position: u64) -> Result<Option<BatchHeader>, LogError> {
        if position + BATCH_HEADER_BYTES as u64 > self.size_bytes {
            return Ok(None);
        }
        let mut buf = [0u8; BATCH_HEADER_BYTES];
        self.file.read_exact_at(&mut buf, position).at(&self.path)?;
        Ok(Some(BatchHeader::parse(&buf)?))
    }

    /// Finds the first batch whose last offset is ≥ `offset`: its position and header.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        self.find_batch_where(offset, |_| true)
    }

    /// Like [`Segment::find_batch`], but only batches `wanted` accepts count.
    pub fn find_batch_where(
        &self,
        offset: i64,
        wanted: impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let mut pos = self.index_lookup(offset);
        while let Some(header) = self.header_at(pos)? {
            if header.last_offset() >= offset && wanted(&header) {
                return Ok(Some((pos, header)));
            }
            pos += header.total_bytes() as u64;
        }
        Ok(None)
    }

    /// The `.log` file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A shared handle for positional reads outside the log's lock.
    pub fn file(&self) -> Arc<dyn StorageFile> {
        Arc::clone(&self.file)
    }

    /// Reads `len` bytes at `position` (a whole batch, found by its header).
    pub fn read_at(&self, position: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, position).at(&self.path)?;
        Ok(buf)
    }

    /// fsyncs the log and its indexes.
    pub fn sync(&self) -> Result<(), LogError> {
        self.file.sync_data().at(&self.path)?;
        self.offset_index.sync()?;
        self.time_index.sync()?;
        self.txn_index.sync()
    }

    /// Cuts the segment before the first batch whose base offset is at or past `offset`
    /// (whole batches only; a batch holding `offset` is cut too). The cut is fsynced. Returns
    /// the segment's new next offset.
    pub fn truncate_to(&mut self, offset: i64, index_interval_bytes: u32) -> Result<i64, LogError> {
        let mut pos = 0u64;
        while let Some(header) = self.header_at(pos)? {
            if header.last_offset() >= offset {
                break;
            }
            pos += header.total_bytes() as u64;
        }
        if pos == self.size_bytes {
            return Ok(self.next_offset);
        }
        self.file.set_len(pos).at(&self.path)?;
        self.file.sync_data().at(&self.path)?;
        self.size_bytes = pos;
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        self.offset_index.truncate_to_position(pos as u32)?;
        self.time_index.truncate_to_offset(relative)?;
        self.offset_index.sync()?;
        self.time_index.sync()?;
        // Recompute the next offset and the largest timestamp from what is left.
        self.next_offset = self.base_offset;
        self.max_timestamp_ms = -1;
        self.scan(false, index_interval_bytes)?;
        // Aborts whose markers were cut must go too, or readers would drop records of a
        // transaction the log no longer says was aborted.
        self.txn_index.truncate_to(self.next_offset)?;
        self.txn_index.sync()?;
        Ok(self.next_offset)
    }

    /// Empties both indexes durably: done before the segment's bytes are swapped for a
    /// cleaned copy, so a power cut can never pair the new bytes with the old positions.
    pub fn invalidate_indexes(&mut self) -> Result<(), LogError> {
        self.offset_index.clear()?;
        self.time_index.clear()?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Deletes the segment's files.
    pub fn delete(self, storage: &dyn Storage) -> Result<(), LogError> {
        storage.remove_file(&self.path).at(&self.path)?;
        self.offset_index.delete(storage)?;
        self.time_index.delete(storage)?;
        self.txn_index.delete(storage)
    }
}
