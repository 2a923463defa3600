//! The aborted-transaction index of a segment (`.txnindex`, Kafka's `TransactionIndex`).
//!
//! One 34-byte entry per transaction aborted by a marker in this segment, in marker order
//! (big endian): version i16 (0), producer id i64, first offset i64, last offset i64 (the abort
//! marker's offset), last stable offset i64 (the LSO once the abort was written). Unlike the
//! sparse indexes this one is not a hint: a read_committed consumer drops the records of the
//! transactions it lists, so it is trusted only when its segment is; the log rebuilds it from
//! the markers for every segment it recovers. It is kept in memory (it is small: one entry per
//! aborted transaction) and appended to its file.

use std::path::Path;

use crate::index::SegmentIndex;
use crate::storage::Storage;
use crate::LogError;

/// Bytes of one entry.
pub const ENTRY_BYTES: usize = 34;
const VERSION: i16 = 0;

/// A transaction that ended with an abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    /// The last stable offset right after the marker: no transaction aborted later can start
    /// below it, which lets a reader stop searching (see [`TxnIndex::collect`]).
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut e = [0u8; ENTRY_BYTES];
        e[..2].copy_from_slice(&VERSION.to_be_bytes());
        e[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        e[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        e[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        e[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        e
    }

    fn decode(e: &[u8]) -> Option<Self> {
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&e[at..at + 8]);
            i64::from_be_bytes(a)
        };
        // An unknown version means a file we cannot interpret: treat it as a torn tail.
        (i16::from_be_bytes([e[0], e[1]]) == VERSION).then(|| Self {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// The aborted-transaction index of one segment.
pub type TxnIndex = SegmentIndex<AbortedTxn>;

impl TxnIndex {
    /// Opens (creating) the index and loads its entries; a torn or unreadable tail is cut so
    /// appends stay aligned. Whether to trust the entries is the caller's decision
    /// ([`SegmentIndex::clear`] before a rebuild).
    pub fn open(storage: &dyn Storage, path: &Path) -> Result<Self, LogError> {
        let bytes = storage.read(path).unwrap_or_default();
        let mut entries: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
        for chunk in bytes.chunks_exact(ENTRY_BYTES) {
            match AbortedTxn::decode(chunk) {
                Some(e) if entries.last().is_none_or(|l| l.last_offset < e.last_offset) => entries.push(e),
                _ => break,
            }
        }
        Self::open_over(storage, path, ENTRY_BYTES, entries)
    }

    /// Adds an entry unless one for this marker (or a later one) is there already: replaying
    /// markers over an index that already holds them changes nothing.
    pub fn append(&mut self, txn: AbortedTxn) -> Result<(), LogError> {
        if self.entries.last().is_some_and(|l| l.last_offset >= txn.last_offset) {
            return Ok(());
        }
        self.push(txn, &txn.encode())
    }

    /// The entries, in marker order.
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Adds to `out` the transactions aborted here that overlap `[from, to)` (their marker at
    /// or after `from`, their first offset before `to`). Returns true when no later segment
    /// can hold another: an entry whose last stable offset reached `to` was written when every
    /// transaction still open started at or after `to`.
    pub fn collect(&self, from: i64, to: i64, out: &mut Vec<AbortedTxn>) -> bool {
        let start = self.entries.partition_point(|e| e.last_offset < from);
        for e in &self.entries[start..] {
            if e.first_offset < to {
                out.push(*e);
            }
            if e.last_stable_offset >= to {
                return true;
            }
        }
        false
    }

    /// Drops the entries of markers at or after `offset` (the segment was cut there).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        self.keep_first(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OsStorage;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_are_34_bytes_and_survive_reopen_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.txnindex");
        let fs = OsStorage;
        let mut idx = TxnIndex::open(&fs, &path).unwrap();
        idx.append(txn(1, 0, 5, 6)).unwrap();
        idx.append(txn(2, 3, 9, 10)).unwrap();
        idx.append(txn(2, 3, 9, 10)).unwrap(); // a replay: ignored
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * ENTRY_BYTES);
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &1i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &6i64.to_be_bytes());
        let mut torn = bytes.clone();
        torn.extend_from_slice(&[0u8; 10]);
        std::fs::write(&path, &torn).unwrap();
        let mut idx = TxnIndex::open(&fs, &path).unwrap();
        assert_eq!(idx.entries(), &[txn(1, 0, 5, 6), txn(2, 3, 9, 10)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * ENTRY_BYTES as u64);
        idx.truncate_to(9).unwrap();
        assert_eq!(idx.entries(), &[txn(1, 0, 5, 6)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), ENTRY_BYTES as u64);
    }

    #[test]
    fn collect_picks_overlapping_entries_and_knows_when_to_stop() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsStorage;
        let mut idx = TxnIndex::open(&fs, &dir.path().join("0.txnindex")).unwrap();
        idx.append(txn(1, 0, 5, 3)).unwrap(); // another transaction was open from 3
        idx.append(txn(2, 3, 9, 10)).unwrap();
        idx.append(txn(3, 12, 14, 15)).unwrap();
        let mut out = Vec::new();
        assert!(idx.collect(6, 10, &mut out));
        assert_eq!(out, vec![txn(2, 3, 9, 10)]);
        out.clear();
        assert!(!idx.collect(0, 100, &mut out));
        assert_eq!(out.len(), 3);
        out.clear();
        assert!(!idx.collect(15, 20, &mut out));
        assert!(out.is_empty());
    }
}
