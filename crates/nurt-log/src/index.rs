//! Sparse indexes of a segment, kept in memory and appended to their files.
//!
//! Entries are only hints: a lookup returns a position at or before the wanted batch and the
//! caller scans forward, so a lost or stale index costs time, never correctness. On an unclean
//! start the indexes of recovered segments are rebuilt from the log itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::IoContext;
use crate::storage::{Storage, StorageFile};
use crate::LogError;

/// An index of a segment, kept in memory and appended to its file: fixed-size entries in
/// order, the file always a whole number of them. The sparse indexes ([`SparseIndex`]) and
/// the aborted-transaction index ([`crate::txn_index::TxnIndex`]) are this over their entries.
#[derive(Debug)]
pub struct SegmentIndex<T> {
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    entry_bytes: usize,
    pub(crate) entries: Vec<T>,
}

/// One sparse index (offset or time) over a segment: fixed-size entries, sorted by key.
pub type SparseIndex<const N: usize> = SegmentIndex<[u8; N]>;

/// Offset index entry: relative offset u32, position u32 (big endian, as Kafka lays it out).
pub type OffsetIndex = SparseIndex<8>;
/// Time index entry: max timestamp so far i64, relative offset u32.
pub type TimeIndex = SparseIndex<12>;

impl<T> SegmentIndex<T> {
    /// Opens (creating) the file at `path` over `entries`, those the caller loaded from it (or
    /// none), and cuts whatever follows them (a torn tail, or entries not trusted) so appends
    /// stay aligned.
    pub(crate) fn open_over(
        storage: &dyn Storage,
        path: &Path,
        entry_bytes: usize,
        entries: Vec<T>,
    ) -> Result<Self, LogError> {
        let file = storage.open(path, true, false).at(path)?;
        let whole = (entries.len() * entry_bytes) as u64;
        if file.len().at(path)? != whole {
            file.set_len(whole).at(path)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            entry_bytes,
            entries,
        })
    }

    /// Appends `entry`, whose encoding is `bytes`.
    pub(crate) fn push(&mut self, entry: T, bytes: &[u8]) -> Result<(), LogError> {
        debug_assert_eq!(bytes.len(), self.entry_bytes, "an entry of the wrong size");
        self.file.append(&[bytes]).at(&self.path)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Keeps the first `n` entries (after a truncation of the segment).
    pub(crate) fn keep_first(&mut self, n: usize) -> Result<(), LogError> {
        if n < self.entries.len() {
            self.entries.truncate(n);
            self.file.set_len((n * self.entry_bytes) as u64).at(&self.path)?;
        }
        Ok(())
    }

    /// Empties the index (before a rebuild or after truncation).
    pub fn clear(&mut self) -> Result<(), LogError> {
        self.entries.clear();
        self.file.set_len(0).at(&self.path)
    }

    /// Flushes the index file to disk.
    pub fn sync(&self) -> Result<(), LogError> {
        self.file.sync_data().at(&self.path)
    }

    /// Removes the file.
    pub fn delete(self, storage: &dyn Storage) -> Result<(), LogError> {
        storage.remove_file(&self.path).at(&self.path)
    }
}

impl<const N: usize> SparseIndex<N> {
    /// Opens (creating) the index file. With `trust` the existing entries are loaded, else the
    /// file is emptied and the caller rebuilds it.
    pub fn open(storage: &dyn Storage, path: &Path, trust: bool) -> Result<Self, LogError> {
        let mut entries = Vec::new();
        if trust {
            if let Ok(bytes) = storage.read(path) {
                entries = bytes
                    .chunks_exact(N)
                    .map(|c| {
                        let mut e = [0u8; N];
                        e.copy_from_slice(c);
                        e
                    })
                    .collect();
            }
        }
        // Without trust the caller rebuilds from empty; with it, a torn tail entry is dropped
        // so appends stay aligned.
        Self::open_over(storage, path, N, entries)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn u32_at(e: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]])
}

impl OffsetIndex {
    /// Adds an entry; relative offsets and positions must grow.
    pub fn append(&mut self, relative_offset: u32, position: u32) -> Result<(), LogError> {
        if let Some(last) = self.entries.last() {
            debug_assert!(u32_at(last, 0) <= relative_offset && u32_at(last, 4) <= position);
        }
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&relative_offset.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.push(e, &e)
    }

    /// Position of the last indexed batch whose relative offset is ≤ `relative_offset` (0 if none).
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let idx = self.entries.partition_point(|e| u32_at(e, 0) <= relative_offset);
        if idx == 0 {
            0
        } else {
            u32_at(&self.entries[idx - 1], 4)
        }
    }

    /// The last entry as (relative offset, position), if any.
    pub fn last_entry(&self) -> Option<(u32, u32)> {
        self.entries.last().map(|e| (u32_at(e, 0), u32_at(e, 4)))
    }

    /// Drops entries at or past `position` (the segment was cut there).
    pub fn truncate_to_position(&mut self, position: u32) -> Result<(), LogError> {
        let keep = self.entries.partition_point(|e| u32_at(e, 4) < position);
        self.keep_first(keep)
    }

    /// Checks entries are sorted and point inside a segment of `segment_bytes`.
    pub fn is_sane(&self, segment_bytes: u64) -> bool {
        self.entries
            .windows(2)
            .all(|w| u32_at(&w[0], 0) <= u32_at(&w[1], 0) && u32_at(&w[0], 4) < u32_at(&w[1], 4))
            && self
                .entries
                .last()
                .is_none_or(|e| u64::from(u32_at(e, 4)) < segment_bytes)
    }
}

impl TimeIndex {
    /// Adds an entry when `timestamp_ms` is newer than the last one.
    pub fn maybe_append(&mut self, timestamp_ms: i64, relative_offset: u32) -> Result<(), LogError> {
        if self.last_timestamp().is_some_and(|last| last >= timestamp_ms) {
            return Ok(());
        }
        let mut e = [0u8; 12];
        e[..8].copy_from_slice(&timestamp_ms.to_be_bytes());
        e[8..].copy_from_slice(&relative_offset.to_be_bytes());
        self.push(e, &e)
    }

    /// Drops entries for relative offsets at or past `relative_offset` (the segment was cut
    /// there).
    pub fn truncate_to_offset(&mut self, relative_offset: u32) -> Result<(), LogError> {
        let keep = self.entries.partition_point(|e| u32_at(e, 8) < relative_offset);
        self.keep_first(keep)
    }

    fn ts(e: &[u8; 12]) -> i64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&e[..8]);
        i64::from_be_bytes(a)
    }

    /// The newest indexed timestamp.
    pub fn last_timestamp(&self) -> Option<i64> {
        self.entries.last().map(Self::ts)
    }

    /// Relative offset of the last entry whose timestamp is < `timestamp_ms`: batches before it
    /// cannot hold a timestamp ≥ the target. 0 if none.
    pub fn lookup(&self, timestamp_ms: i64) -> u32 {
        let idx = self.entries.partition_point(|e| Self::ts(e) < timestamp_ms);
        if idx == 0 {
            0
        } else {
            u32_at(&self.entries[idx - 1], 8)
        }
    }
}
