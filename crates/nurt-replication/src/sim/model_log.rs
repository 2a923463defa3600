//! A replica's log as the simulation models it: one entry per offset (the log starts at 0 and
//! is never cut at the front), the leader-epoch history kept exactly as `nurt-log`'s
//! `LeaderEpochCache` keeps it (an epoch is recorded only when newer than the latest, entries
//! at or past a truncation point go), and the high watermark clamped to the log as
//! `Log::set_high_watermark` clamps it. The entries and the epoch history survive a crash
//! (SIGKILL: the page cache keeps them); the high watermark does not.

/// One record: the leader epoch it was written in and the value the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub epoch: i32,
    pub value: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ModelLog {
    entries: Vec<Entry>,
    /// (epoch, first offset written in it), as in `leader-epoch-checkpoint`.
    epochs: Vec<(i32, i64)>,
    high_watermark: i64,
    /// The shortest the log has been since the checker last looked (it re-verifies from there).
    low_water: Option<i64>,
    /// An append whose epoch is older than the log's latest: logs are epoch-ordered, and the
    /// epoch history (which ignores such an entry) would no longer describe the log.
    pub epoch_regression: Option<i64>,
}

impl ModelLog {
    pub fn log_end_offset(&self) -> i64 {
        self.entries.len() as i64
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn entry(&self, offset: i64) -> Option<Entry> {
        usize::try_from(offset).ok().and_then(|o| self.entries.get(o).copied())
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Clamped to the log, as `Log::set_high_watermark` does.
    pub fn set_high_watermark(&mut self, offset: i64) {
        self.high_watermark = offset.clamp(0, self.log_end_offset());
    }

    /// The epoch of the last batch, -1 when empty (a follower's `last_fetched_epoch`).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.last().map(|e| e.0)
    }

    /// Appends at the log end; the epoch history records `entry.epoch` if it is newer.
    pub fn append(&mut self, entry: Entry) {
        let offset = self.log_end_offset();
        if self.latest_epoch().is_some_and(|latest| entry.epoch < latest) {
            self.epoch_regression.get_or_insert(offset);
        }
        if entry.epoch >= 0 && self.latest_epoch().is_none_or(|latest| latest < entry.epoch) {
            self.epochs.push((entry.epoch, offset));
        }
        self.entries.push(entry);
    }

    /// Drops everything at or past `offset` (`Log::truncate_to`); returns the new log end.
    pub fn truncate_to(&mut self, offset: i64) -> i64 {
        if offset < self.log_end_offset() {
            let keep = usize::try_from(offset.max(0)).unwrap_or(0);
            self.entries.truncate(keep);
            let end = self.log_end_offset();
            self.high_watermark = self.high_watermark.min(end);
            self.epochs.retain(|&(_, start)| start < end);
            self.low_water = Some(self.low_water.map_or(end, |w| w.min(end)));
        }
        self.log_end_offset()
    }

    /// `LeaderEpochCache::end_offset_for`: the largest epoch ≤ `epoch` and where the next one
    /// starts (the log end for the latest); None when no epoch ≤ `epoch` is known.
    pub fn end_offset_for(&self, epoch: i32) -> Option<(i32, i64)> {
        let idx = self.epochs.iter().rposition(|&(e, _)| e <= epoch)?;
        let end = self
            .epochs
            .get(idx + 1)
            .map_or(self.log_end_offset(), |&(_, start)| start);
        self.epochs.get(idx).map(|&(e, _)| (e, end))
    }

    /// The shortest length since the last call, if the log was truncated meanwhile.
    pub fn take_low_water(&mut self) -> Option<i64> {
        self.low_water.take()
    }

    /// The high watermark is not persisted with the log: a restart starts from the checkpoint.
    pub fn forget_high_watermark(&mut self) {
        self.high_watermark = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: i32) -> Entry {
        Entry { epoch, value: 0 }
    }

    #[test]
    fn epoch_history_follows_appends_and_truncation() {
        let mut log = ModelLog::default();
        for epoch in [0, 0, 3, 3, 3, 5] {
            log.append(e(epoch));
        }
        assert_eq!(log.end_offset_for(0), Some((0, 2)));
        assert_eq!(log.end_offset_for(4), Some((3, 5)));
        assert_eq!(log.end_offset_for(9), Some((5, 6)));
        assert_eq!(log.end_offset_for(-1), None);
        log.set_high_watermark(10);
        assert_eq!(log.high_watermark(), 6);
        assert_eq!(log.truncate_to(3), 3);
        assert_eq!(log.high_watermark(), 3);
        assert_eq!(log.latest_epoch(), Some(3));
        assert_eq!(log.end_offset_for(9), Some((3, 3)));
        assert_eq!(log.truncate_to(0), 0);
        assert_eq!(log.latest_epoch(), None);
    }
}
