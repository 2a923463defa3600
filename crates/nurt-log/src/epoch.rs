//! Leader epoch → start offset history (KIP-101), persisted as `leader-epoch-checkpoint`
//! in Kafka's text format: a version line `0`, a count line, then `epoch start_offset` lines.

use std::path::{Path, PathBuf};

use crate::error::IoContext;
use crate::storage::{write_atomic, Storage};
use crate::LogError;

/// The epochs this log has seen and the first offset written in each.
#[derive(Debug, Clone)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir`, or starts empty; unreadable lines are ignored (the cache
    /// is rebuilt from batches as they are appended).
    pub fn load(storage: &dyn Storage, dir: &Path) -> Self {
        let path = dir.join("leader-epoch-checkpoint");
        let entries = storage
            .read(&path)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|text| {
                text.lines()
                    .skip(2)
                    .filter_map(|line| {
                        let mut parts = line.split_whitespace();
                        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { path, entries }
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `start_offset` if it is newer than the latest; returns
    /// whether anything changed (the caller then persists).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| latest >= epoch) {
            return false;
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// Drops entries starting at or after `offset` (after truncation of the log).
    pub fn truncate_from(&mut self, offset: i64) {
        self.entries.retain(|&(_, start)| start < offset);
    }

    /// OffsetForLeaderEpoch: the largest epoch ≤ `epoch` and the offset where the next epoch
    /// starts (or `log_end_offset` for the latest). None when no epoch ≤ `epoch` is known.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let idx = self.entries.iter().rposition(|&(e, _)| e <= epoch)?;
        let end = self.entries.get(idx + 1).map_or(log_end_offset, |&(_, start)| start);
        Some((self.entries[idx].0, end))
    }

    /// Writes the checkpoint atomically (temp file, fsync, rename, directory fsync).
    pub fn persist(&self, storage: &dyn Storage) -> Result<(), LogError> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        write_atomic(storage, &self.path, text.as_bytes()).at(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_like_offset_for_leader_epoch() {
        let storage = crate::storage::sim::SimStorage::new();
        let dir = Path::new("/");
        let mut cache = LeaderEpochCache::load(&storage, dir);
        assert!(cache.assign(0, 0));
        assert!(cache.assign(3, 100));
        assert!(!cache.assign(2, 150));
        cache.persist(&storage).unwrap();
        storage.power_cut(crate::storage::sim::CutMode::LoseAll);
        let cache = LeaderEpochCache::load(&storage, dir);
        assert_eq!(cache.end_offset_for(0, 500), Some((0, 100)));
        assert_eq!(cache.end_offset_for(2, 500), Some((0, 100)));
        assert_eq!(cache.end_offset_for(3, 500), Some((3, 500)));
        assert_eq!(cache.end_offset_for(-1, 500), None);
    }
}
