//! Producer state snapshots (`<offset>.snapshot`, as Kafka's `ProducerStateManager` keeps
//! them): the producer table as of an offset, so opening a log replays only the batches after
//! the newest usable snapshot instead of the whole log.
//!
//! Written at every roll (at the new segment's base offset, once the closed segment is synced)
//! and at a clean shutdown (at the log end), each atomically through the storage (temporary
//! file, fsync, rename, directory fsync): a power cut leaves a whole snapshot or none. A
//! snapshot is usable only if it lies within the log (`[first segment base, limit]`); those
//! below the first segment go with the segments, those above a truncation point go
//! (durably) with the truncation, so a snapshot never describes a history the log no longer has.
//!
//! Format (big endian; ours, not Kafka's, because it keeps all five remembered batches per
//! producer): version i16 = 1, crc u32 (CRC-32C of everything after it), producer count i32,
//! then per producer: producer id i64, epoch i16, coordinator epoch i32, open transaction's
//! first offset i64 (-1: none), last data batch offset i64 (-1: none), last timestamp i64,
//! batch count u8, then per batch: first sequence i32, last sequence i32, base offset i64.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::error::IoContext;
use crate::producer_state::{BatchSeq, ProducerEntry, ProducerStateTable, BATCHES_REMEMBERED};
use crate::storage::{write_atomic, Storage};
use crate::LogError;

const VERSION: i16 = 1;
const SUFFIX: &str = ".snapshot";

/// The snapshot file for `offset` in `dir`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{}{SUFFIX}", crate::segment::file_stem(offset)))
}

/// Offsets of the snapshots in `dir`, ascending.
pub fn list(storage: &dyn Storage, dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut offsets: Vec<i64> = storage
        .list_dir(dir)
        .at(dir)?
        .iter()
        .filter_map(|name| name.strip_suffix(SUFFIX)?.parse().ok())
        .collect();
    offsets.sort_unstable();
    Ok(offsets)
}

/// Writes the snapshot of `table` at `offset`, durably.
pub fn write(storage: &dyn Storage, dir: &Path, offset: i64, table: &ProducerStateTable) -> Result<(), LogError> {
    let path = snapshot_path(dir, offset);
    write_atomic(storage, &path, &encode(table)).at(&path)
}

/// The newest snapshot in `[from, to]` that reads back whole, with its offset. A damaged
/// one is skipped (an older one, or none, is used instead).
pub fn load_latest(
    storage: &dyn Storage,
    dir: &Path,
    from: i64,
    to: i64,
) -> Result<Option<(i64, ProducerStateTable)>, LogError> {
    for offset in list(storage, dir)?.into_iter().rev() {
        if offset > to {
            continue;
        }
        if offset < from {
            break;
        }
        if let Some(table) = storage.read(&snapshot_path(dir, offset)).ok().and_then(|b| decode(&b)) {
            return Ok(Some((offset, table)));
        }
    }
    Ok(None)
}

/// Removes the snapshots whose offset `doomed` accepts; returns how many went. The caller
/// syncs the directory when the removal must be durable.
pub fn delete_where(storage: &dyn Storage, dir: &Path, doomed: impl Fn(i64) -> bool) -> Result<usize, LogError> {
    let mut removed = 0;
    for offset in list(storage, dir)? {
        if doomed(offset) {
            let path = snapshot_path(dir, offset);
            storage.remove_file(&path).at(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn encode(table: &ProducerStateTable) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + table.producers.len() * 64);
    body.extend_from_slice(&(table.producers.len() as i32).to_be_bytes());
    let mut ids: Vec<&i64> = table.producers.keys().collect();
    ids.sort_unstable(); // the same table always gives the same bytes
    for id in ids {
        let e = &table.producers[id];
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&e.epoch.to_be_bytes());
        body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        body.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
        body.extend_from_slice(&e.last_batch_offset.to_be_bytes());
        body.extend_from_slice(&e.last_timestamp.to_be_bytes());
        body.push(e.batches.len() as u8);
        for b in &e.batches {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.base_offset.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(6 + body.len());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A cursor over snapshot bytes; every read fails past the end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

fn decode(bytes: &[u8]) -> Option<ProducerStateTable> {
    let mut r = Reader(bytes);
    if r.i16()? != VERSION {
        return None;
    }
    let crc = u32::from_be_bytes(r.take()?);
    if crc32c::crc32c(r.0) != crc {
        return None;
    }
    let count = usize::try_from(r.i32()?).ok()?;
    // Each producer takes at least 35 bytes: a count beyond that is damage, not a table.
    let mut producers = HashMap::with_capacity(count.min(r.0.len() / 35));
    for _ in 0..count {
        let id = r.i64()?;
        let epoch = r.i16()?;
        let coordinator_epoch = r.i32()?;
        let txn_first_offset = Some(r.i64()?).filter(|&o| o >= 0);
        let last_batch_offset = r.i64()?;
        let last_timestamp = r.i64()?;
        let [n] = r.take::<1>()?;
        if usize::from(n) > BATCHES_REMEMBERED {
            return None;
        }
        let mut batches = VecDeque::with_capacity(usize::from(n));
        for _ in 0..n {
            batches.push_back(BatchSeq {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                base_offset: r.i64()?,
            });
        }
        let entry = ProducerEntry {
            epoch,
            batches,
            coordinator_epoch,
            txn_first_offset,
            last_batch_offset,
            last_timestamp,
        };
        producers.insert(id, entry);
    }
    r.0.is_empty().then(|| ProducerStateTable::from_entries(producers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OsStorage;
    use nurt_records::{BatchBuilder, BatchHeader, Compression};

    fn table() -> ProducerStateTable {
        let mut t = ProducerStateTable::default();
        for (pid, offset) in [(1, 0), (2, 1), (1, 2)] {
            let mut b = BatchBuilder::new(Compression::None, 5).transactional(pid, 2, offset as i32);
            b.push(5, None, Some(b"x"), &[]);
            t.on_append(&BatchHeader::parse(&b.build().unwrap()).unwrap(), offset);
        }
        let mut b = BatchBuilder::new(Compression::None, 5).idempotent(3, 0, 0);
        b.push(5, None, Some(b"x"), &[]);
        t.on_append(&BatchHeader::parse(&b.build().unwrap()).unwrap(), 3);
        t
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_refused() {
        let t = table();
        let bytes = encode(&t);
        let back = decode(&bytes).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.open_transactions(), vec![(1, 0), (2, 1)]);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_none(), "flipped byte {i} accepted");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn the_newest_usable_snapshot_in_range_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsStorage;
        write(&fs, dir.path(), 10, &ProducerStateTable::default()).unwrap();
        write(&fs, dir.path(), 20, &table()).unwrap();
        write(&fs, dir.path(), 30, &table()).unwrap();
        std::fs::write(snapshot_path(dir.path(), 30), b"garbage").unwrap();
        assert_eq!(list(&fs, dir.path()).unwrap(), vec![10, 20, 30]);
        let (at, t) = load_latest(&fs, dir.path(), 0, 40).unwrap().unwrap();
        assert_eq!((at, t.len()), (20, 3));
        assert_eq!(load_latest(&fs, dir.path(), 0, 19).unwrap().unwrap().0, 10);
        assert!(load_latest(&fs, dir.path(), 11, 19).unwrap().is_none());
        assert_eq!(delete_where(&fs, dir.path(), |o| o > 15).unwrap(), 2);
        assert_eq!(list(&fs, dir.path()).unwrap(), vec![10]);
    }
}
