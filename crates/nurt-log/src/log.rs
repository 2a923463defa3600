//! A partition's log: an ordered list of segments, the last one active.
//!
//! Offsets: `log_start_offset <= high_watermark <= log_end_offset`, and `flushed_offset` (the
//! recovery point) is how far the log is known to be on disk. The high watermark is set by the
//! owner (the replication layer: the smallest log end over the in-sync replicas); consumers read
//! below it, followers up to the log end. Retention and compaction only touch records below it.
//! The transactional side (producer state, markers, last stable offset, aborted-transaction
//! indexes, read_committed) is in [`txn`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nurt_records::batch::{self, BatchHeader, BATCH_HEADER_BYTES};

use crate::error::IoContext;
use crate::producer_state::ProducerStateTable;
use crate::segment::Segment;
use crate::storage::{create_dir_durable, write_atomic, Storage, StorageFile};
use crate::txn_index::AbortedTxn;
use crate::verification::Verifications;
use crate::{LeaderEpochCache, LogConfig, LogError};

const RECOVERY_POINT_FILE: &str = "recovery-point";
const LOG_START_FILE: &str = "log-start-offset";
const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

pub mod txn;

/// A rolled segment the cleaner may rewrite: read it through `file` without the log's lock.
#[derive(Debug, Clone)]
pub struct CleanableSegment {
    pub base_offset: i64,
    pub file: Arc<dyn StorageFile>,
    pub size_bytes: u64,
    pub path: PathBuf,
    /// Aborted transactions with records in this segment: the cleaner removes those records.
    pub aborted: Vec<AbortedTxn>,
    /// Base offsets of producers' last data batches in this segment: the cleaner keeps these
    /// batches (emptied if need be) so producer state can be rebuilt from the log.
    pub retained_batches: Vec<i64>,
}

/// Removes leftovers of interrupted deletions, cleanings and checkpoint writes.
fn tidy_dir(storage: &dyn Storage, dir: &Path) -> Result<(), LogError> {
    for name in storage.list_dir(dir).at(dir)? {
        if name.ends_with(".deleted") || name.ends_with(".cleaned") || name.ends_with(".tmp") {
            let path = dir.join(&name);
            storage.remove_file(&path).at(&path)?;
        }
    }
    Ok(())
}

/// What an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
}

/// A byte range of a segment file holding whole batches (the last may be cut by `max_bytes`),
/// to be read or sent without holding the log's lock.
#[derive(Debug, Clone)]
pub struct ReadSlice {
    pub file: Arc<dyn StorageFile>,
    pub position: u64,
    pub len: usize,
}

impl ReadSlice {
    /// Reads the range into memory.
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}

/// One partition's log.
#[derive(Debug)]
pub struct Log {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    config: LogConfig,
    segments: Vec<Segment>,
    log_start_offset: i64,
    flushed_offset: i64,
    high_watermark: i64,
    unflushed_messages: i64,
    first_unflushed_ms: Option<i64>,
    epochs: LeaderEpochCache,
    /// Set when a failed write could not be cut back (or an abort could not be indexed): no
    /// more appends until reopened, and no clean close.
    torn: bool,
    /// Producer sequences and transactions, kept up to date by every append.
    producers: ProducerStateTable,
    /// KIP-890 verifications in flight (leader-only, in memory).
    pub(crate) verifications: Verifications,
    /// What the small files on disk say, so a close that changes nothing writes nothing
    /// (closing 100,000 idle partitions must not cost 1,000,000 fsyncs): the recovery point,
    /// the log start (an absent file counts as 0) and the offset of the newest producer snapshot.
    recovery_point_written: i64,
    log_start_written: Option<i64>,
    pub(crate) snapshot_offset: Option<i64>,
}

/// A checkpoint holding one number; absent or unreadable reads as `None`.
fn read_i64_file(storage: &dyn Storage, path: &Path) -> Option<i64> {
    let bytes = storage.read(path).ok()?;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

/// Replaces a one-number checkpoint durably (old or new value after a power cut).
fn write_i64_file(storage: &dyn Storage, path: &Path, value: i64) -> Result<(), LogError> {
    write_atomic(storage, path, format!("{value}\n").as_bytes()).at(path)
}

impl Log {
    /// Opens the log in `dir` (creating it). After an unclean shutdown (`clean == false`) every
    /// segment from the recovery point on is scanned, its torn tail cut and its indexes rebuilt.
    pub fn open(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        config: LogConfig,
        clean: bool,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        let fs = &**storage;
        create_dir_durable(fs, dir).at(dir)?;
        tidy_dir(fs, dir)?;
        let recovery_point = read_i64_file(fs, &dir.join(RECOVERY_POINT_FILE)).unwrap_or(0);
        let mut bases: Vec<i64> = fs
            .list_dir(dir)
            .at(dir)?
            .iter()
            .filter_map(|name| name.strip_suffix(".log")?.parse::<i64>().ok())
            .collect();
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let mut first_recovered = None;
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let recover = !clean && next_base.is_none_or(|n| n > recovery_point);
            let path = dir.join(format!("{}.log", crate::segment::file_stem(base)));
            let mut seg = Segment::open(fs, &path, base, recover, config.index_interval_bytes)?;
            if recover {
                // Its aborted-transaction index may miss or hold entries of lost markers:
                // rebuilt below from the markers that survived.
                seg.txn_index.clear()?;
                first_recovered.get_or_insert(base);
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            segments.push(Segment::create(fs, dir, 0, now_ms)?);
            // The first segment's entry must be durable before anything in it is acknowledged.
            fs.sync_dir(dir).at(dir)?;
        }
        let log_end = segments.last().map_or(0, |s| s.next_offset);
        // An absent file reads as 0, the same as a file holding 0.
        let log_start_on_disk = read_i64_file(fs, &dir.join(LOG_START_FILE)).unwrap_or(0);
        let log_start_offset = log_start_on_disk.clamp(segments[0].base_offset, log_end);
        let mut epochs = LeaderEpochCache::load(fs, dir);
        epochs.truncate_from(log_end + 1);
        let mut log = Self {
            storage: Arc::clone(storage),
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            // After a crash what was read back may be only in the page cache: the next flush
            // (a clean close at the latest) must fsync it.
            flushed_offset: if clean { log_end } else { recovery_point.min(log_end) },
            // Nothing is known committed until the owner says so (from its checkpoint).
            high_watermark: log_start_offset,
            unflushed_messages: 0,
            first_unflushed_ms: None,
            epochs,
            torn: false,
            producers: ProducerStateTable::default(),
            verifications: Verifications::default(),
            recovery_point_written: recovery_point,
            log_start_written: Some(log_start_on_disk),
            snapshot_offset: None,
        };
        log.drop_snapshots_after(log_end)?;
        log.rebuild_producer_state(first_recovered.unwrap_or(log_end))?;
        Ok(log)
    }

    /// Batch headers read to open the segments (see [`Segment::headers_read_at_open`]).
    pub fn headers_read_at_open(&self) -> u64 {
        self.segments.iter().map(|s| s.headers_read_at_open).sum()
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the settings (topic config change); applies from the next append.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// The first offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Every offset below this is committed (on every in-sync replica).
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Sets the high watermark (clamped to the log's start and end). It may move back only
    /// when a follower learns a lower one from a new leader.
    pub fn set_high_watermark(&mut self, offset: i64) {
        self.high_watermark = offset.clamp(self.log_start_offset, self.log_end_offset());
        self.producers.on_high_watermark(self.high_watermark);
    }

    /// How far the log is known to be fsynced.
    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset
    }

    /// The leader epoch history.
    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size_bytes).sum()
    }

    fn active(&self) -> &Segment {
        self.segments.last().expect("a log always has an active segment")
    }

    fn check_not_torn(&self) -> Result<(), LogError> {
        if self.torn {
            return Err(LogError::TornTail {
                path: self.dir.clone(),
                write: std::io::Error::other("an earlier write left a torn tail"),
                truncate: std::io::Error::other("reopen the log to recover it"),
            });
        }
        Ok(())
    }

    /// Appends one validated batch, assigning offsets from the log end and stamping
    /// `leader_epoch`; with `log_append_time_ms` the batch's timestamps become the broker's.
    /// Flushes when `flush.messages` / `flush.ms` say so.
    pub fn append(
        &mut self,
        batch: &[u8],
        leader_epoch: i32,
        log_append_time_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_not_torn()?;
        let header = BatchHeader::parse(batch)?;
        debug_assert_eq!(header.total_bytes(), batch.len());
        let base_offset = self.log_end_offset();
        let mut patched = [0u8; BATCH_HEADER_BYTES];
        patched.copy_from_slice(&batch[..BATCH_HEADER_BYTES]);
        batch::set_base_offset(&mut patched, base_offset);
        batch::set_partition_leader_epoch(&mut patched, leader_epoch);
        let owned;
        let body: &[u8] = match log_append_time_ms {
            Some(ts) => {
                let mut copy = batch.to_vec();
                copy[..BATCH_HEADER_BYTES].copy_from_slice(&patched);
                batch::set_log_append_time(&mut copy, ts);
                patched.copy_from_slice(&copy[..BATCH_HEADER_BYTES]);
                owned = copy;
                &owned
            }
            None => batch,
        };
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        self.write(&patched, body, &header, leader_epoch, base_offset, last_offset, now_ms)
    }

    /// Appends one batch replicated from the leader, keeping the leader's offsets and leader
    /// epoch. Its base offset must be at or past the log end (compaction may leave gaps).
    pub fn append_as_follower(&mut self, batch: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        self.check_not_torn()?;
        let header = BatchHeader::parse(batch)?;
        debug_assert_eq!(header.total_bytes(), batch.len());
        if header.base_offset < self.log_end_offset() {
            return Err(LogError::OffsetsGoBack {
                offset: header.base_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        let mut patched = [0u8; BATCH_HEADER_BYTES];
        patched.copy_from_slice(&batch[..BATCH_HEADER_BYTES]);
        let epoch = header.partition_leader_epoch;
        self.write(
            &patched,
            batch,
            &header,
            epoch,
            header.base_offset,
            header.last_offset(),
            now_ms,
        )
    }

    /// Writes a batch whose header (`patched`) already carries its offsets and epoch.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        patched: &[u8; BATCH_HEADER_BYTES],
        body: &[u8],
        header: &BatchHeader,
        leader_epoch: i32,
        base_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.maybe_roll(body.len() as u64, last_offset, now_ms)?;
        if self.epochs.assign(leader_epoch, base_offset) {
            self.epochs.persist(&*self.storage)?;
        }
        let interval = self.config.index_interval_bytes;
        let appended = self
            .segments
            .last_mut()
            .expect("a log always has an active segment")
            .append(patched, body, interval);
        if let Err(e @ LogError::TornTail { .. }) = appended {
            self.torn = true;
            return Err(e);
        }
        appended?;
        if let Err(e) = self.apply_to_producers(header, body, base_offset) {
            // The batch is written but its abort is not indexed: readers could see aborted
            // records after a clean restart, so refuse more writes and a clean close; the
            // next open recovers this segment and rebuilds its index.
            self.torn = true;
            return Err(e);
        }
        self.unflushed_messages += i64::from(header.record_count.max(1));
        self.first_unflushed_ms.get_or_insert(now_ms);
        if self.unflushed_messages >= self.config.flush_messages {
            self.flush()?;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
        })
    }

    fn maybe_roll(&mut self, incoming_bytes: u64, last_offset: i64, now_ms: i64) -> Result<(), LogError> {
        let active = self.active();
        if active.size_bytes == 0 {
            return Ok(());
        }
        let full = active.size_bytes + incoming_bytes > u64::from(self.config.segment_bytes);
        let old = now_ms - active.created_ms >= self.config.segment_ms;
        let offsets_overflow = last_offset - active.base_offset >= i64::from(u32::MAX);
        if full || old || offsets_overflow {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Removes everything at or after `offset` (whole batches: a batch holding `offset` goes
    /// too), as a follower does to drop what its leader never committed. The leader-epoch
    /// history is cut to match; the cut is durable when this returns. Returns the new log end.
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64, LogError> {
        if offset >= self.log_end_offset() {
            return Ok(self.log_end_offset());
        }
        if offset <= self.log_start_offset {
            self.truncate_fully_and_start_at(offset)?;
            return Ok(self.log_end_offset());
        }
        let mut removed_segment = false;
        while self.segments.len() > 1 && self.active().base_offset >= offset {
            let seg = self.segments.pop().expect("more than one segment");
            seg.delete(&*self.storage)?;
            removed_segment = true;
        }
        let interval = self.config.index_interval_bytes;
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
            .truncate_to(offset, interval)?;
        if removed_segment {
            self.storage.sync_dir(&self.dir).at(&self.dir)?;
        }
        let end = self.log_end_offset();
        self.high_watermark = self.high_watermark.min(end);
        self.drop_snapshots_after(end)?;
        self.rebuild_producer_state(end)?;
        self.epochs.truncate_from(end);
        self.epochs.persist(&*self.storage)?;
        self.flushed_offset = self.flushed_offset.min(end);
        if read_i64_file(&*self.storage, &self.dir.join(RECOVERY_POINT_FILE)).is_some_and(|rp| rp > end) {
            self.set_recovery_point(self.active().base_offset)?;
        }
        Ok(end)
    }

    /// Deletes every segment and starts the log empty at `offset` (a follower whose leader's
    /// log starts past its own end, or a Raft log replaced by a snapshot).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        let storage = Arc::clone(&self.storage);
        let fs = &*storage;
        for seg in std::mem::take(&mut self.segments) {
            seg.delete(fs)?;
        }
        self.segments.push(Segment::create(fs, &self.dir, offset, 0)?);
        fs.sync_dir(&self.dir).at(&self.dir)?;
        self.log_start_offset = offset;
        self.high_watermark = offset;
        self.producers = ProducerStateTable::default();
        crate::snapshot::delete_where(fs, &self.dir, |_| true)?;
        fs.sync_dir(&self.dir).at(&self.dir)?;
        self.snapshot_offset = None;
        self.write_log_start(offset)?;
        self.set_recovery_point(offset)?;
        self.flushed_offset = offset;
        self.unflushed_messages = 0;
        self.first_unflushed_ms = None;
        self.epochs.truncate_from(i64::MIN);
        self.epochs.persist(fs)?;
        Ok(())
    }

    /// Starts a new active segment at the log end; the old one is fsynced first so the
    /// recovery point can move past it.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        let next = self.log_end_offset();
        self.active().sync()?;
        // The state as of the new segment's base: recovering that segment starts from it.
        self.snapshot_producers()?;
        self.set_recovery_point(self.active().base_offset.max(self.flushed_offset))?;
        self.segments
            .push(Segment::create(&*self.storage, &self.dir, next, now_ms)?);
        self.storage.sync_dir(&self.dir).at(&self.dir)?;
        Ok(())
    }

    fn set_recovery_point(&mut self, offset: i64) -> Result<(), LogError> {
        // The recovery point names the first segment that needs scanning after a crash.
        if offset != self.recovery_point_written {
            write_i64_file(&*self.storage, &self.dir.join(RECOVERY_POINT_FILE), offset)?;
            self.recovery_point_written = offset;
        }
        Ok(())
    }

    /// Persists the log start offset (unless the file already holds it).
    fn write_log_start(&mut self, offset: i64) -> Result<(), LogError> {
        if self.log_start_written != Some(offset) {
            write_i64_file(&*self.storage, &self.dir.join(LOG_START_FILE), offset)?;
            self.log_start_written = Some(offset);
        }
        Ok(())
    }

    /// fsyncs everything appended so far.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.active().sync()?;
        self.flushed_offset = self.log_end_offset();
        self.unflushed_messages = 0;
        self.first_unflushed_ms = None;
        Ok(())
    }

    /// Flushes when the oldest unflushed message is older than `flush.ms`.
    pub fn maybe_flush_by_time(&mut self, now_ms: i64) -> Result<(), LogError> {
        match self.first_unflushed_ms {
            Some(first) if now_ms - first >= self.config.flush_ms => self.flush(),
            _ => Ok(()),
        }
    }

    /// The bytes to serve a consumer's fetch at `offset`: whole batches from the one holding
    /// `offset`, up to `max_bytes` (but always the first batch whole, KIP-74), never past the
    /// high watermark. None when `offset` is the high watermark. Errors with OffsetOutOfRange
    /// outside `[log start, high watermark]`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Option<ReadSlice>, LogError> {
        self.read_below(offset, max_bytes, self.high_watermark())
    }

    /// Like [`Log::read`] up to the log end: what a follower replicates.
    pub fn read_for_follower(&self, offset: i64, max_bytes: usize) -> Result<Option<ReadSlice>, LogError> {
        self.read_below(offset, max_bytes, self.log_end_offset())
    }

    fn read_below(&self, offset: i64, max_bytes: usize, end: i64) -> Result<Option<ReadSlice>, LogError> {
        if offset < self.log_start_offset || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: end,
            });
        }
        if offset == end {
            return Ok(None);
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        // Compaction leaves record-less batches behind (to keep offsets); serving those alone
        // makes clients think a message is too large, so start at the next batch with records.
        // Only when nothing but empty batches remains is one served, to move readers past it.
        let with_records = self.locate(first, offset, |h| h.record_count != 0)?;
        let found = match with_records {
            Some(hit) => Some(hit),
            None => self.locate(first, offset, |_| true)?,
        };
        let Some((seg, position, header)) = found.filter(|(_, _, h)| h.base_offset < end) else {
            return Ok(None);
        };
        // Batches at or past `end` are not served: cut the range at the batch holding it.
        let limit = if end < seg.next_offset {
            seg.find_batch(end)?.map_or(seg.size_bytes, |(pos, _)| pos)
        } else {
            seg.size_bytes
        };
        let available = limit.saturating_sub(position) as usize;
        Ok(Some(ReadSlice {
            file: seg.file(),
            position,
            len: available.min(max_bytes.max(header.total_bytes())),
        }))
    }

    /// The first batch from segment `first` on that ends at or after `offset` and is `wanted`.
    fn locate(
        &self,
        first: usize,
        offset: i64,
        wanted: impl Fn(&BatchHeader) -> bool + Copy,
    ) -> Result<Option<(&Segment, u64, BatchHeader)>, LogError> {
        for seg in &self.segments[first..] {
            if let Some((position, header)) = seg.find_batch_where(offset, wanted)? {
                return Ok(Some((seg, position, header)));
            }
        }
        Ok(None)
    }

    /// ListOffsets by timestamp: the first batch whose max timestamp is ≥ `timestamp_ms`, as
    /// (its bytes, so the caller can find the exact record). None if no such batch.
    pub fn find_by_timestamp(&self, timestamp_ms: i64) -> Result<Option<ReadSlice>, LogError> {
        for seg in &self.segments {
            if seg.max_timestamp_ms < timestamp_ms {
                continue;
            }
            let from = seg.time_lookup(timestamp_ms).max(self.log_start_offset);
            let Some((mut pos, _)) = seg.find_batch(from)? else {
                continue;
            };
            while let Some(header) = seg.header_at(pos)? {
                if header.max_timestamp >= timestamp_ms && header.last_offset() >= self.log_start_offset {
                    return Ok(Some(ReadSlice {
                        file: seg.file(),
                        position: pos,
                        len: header.total_bytes(),
                    }));
                }
                pos += header.total_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// The first batch (in offset order) holding the log's largest timestamp, and that
    /// timestamp: the caller finds the first record carrying it (ListOffsets MAX_TIMESTAMP,
    /// KAFKA-16310). None when the log has no timestamped record.
    pub fn max_timestamp_batch(&self) -> Result<Option<(i64, ReadSlice)>, LogError> {
        let max = self.segments.iter().map(|s| s.max_timestamp_ms).max().unwrap_or(-1);
        if max < 0 {
            return Ok(None);
        }
        for seg in self.segments.iter().filter(|s| s.max_timestamp_ms == max) {
            let mut pos = 0;
            while let Some(header) = seg.header_at(pos)? {
                if header.max_timestamp == max
                    && header.last_offset() >= self.log_start_offset
                    && header.record_count > 0
                {
                    let slice = ReadSlice {
                        file: seg.file(),
                        position: pos,
                        len: header.total_bytes(),
                    };
                    return Ok(Some((max, slice)));
                }
                pos += header.total_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// Calls `f` with the header of every batch in the last `last_segments` segments, in order
    /// (to rebuild state kept beside the log, such as producer sequences).
    pub fn scan_headers(&self, last_segments: usize, mut f: impl FnMut(&BatchHeader)) -> Result<(), LogError> {
        let from = self.segments.len().saturating_sub(last_segments);
        for seg in &self.segments[from..] {
            let mut pos = 0;
            while let Some(header) = seg.header_at(pos)? {
                f(&header);
                pos += header.total_bytes() as u64;
            }
        }
        Ok(())
    }

    /// DeleteRecords: moves the log start offset to `offset` (≤ high watermark) and deletes
    /// segments that fall entirely below it. Returns the new log start offset.
    ///
    /// Segments go first, then the new log start is persisted: on a full disk the deletion is
    /// what makes room for the checkpoint. A crash in between is safe: a log start that lags
    /// the first segment is raised to it when the log opens.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        let hw = self.high_watermark();
        if offset < 0 || offset > hw {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: hw,
            });
        }
        let moved = offset > self.log_start_offset;
        if moved {
            self.log_start_offset = offset;
        }
        while self.segments.len() > 1 && self.segments[1].base_offset <= self.log_start_offset {
            self.delete_oldest_segment()?;
        }
        if moved {
            self.write_log_start(self.log_start_offset)?;
        }
        Ok(self.log_start_offset)
    }

    /// Deletes the oldest segment (its files are renamed `.deleted` and removed), then moves
    /// the log start past it, persisted. A crash in between leaves a log start below the first
    /// segment (raised on open) or `.deleted` files (removed on open).
    fn delete_oldest_segment(&mut self) -> Result<(), LogError> {
        debug_assert!(self.segments.len() > 1, "the active segment is never deleted");
        let next_base = self.segments[1].base_offset;
        let seg = self.segments.remove(0);
        seg.delete(&*self.storage)?;
        self.drop_snapshots_before(next_base)?;
        if self.log_start_offset < next_base {
            self.log_start_offset = next_base;
            self.high_watermark = self.high_watermark.max(next_base);
            self.producers.on_high_watermark(self.high_watermark);
            self.write_log_start(next_base)?;
        }
        Ok(())
    }

    /// Retention: deletes the oldest segments whose newest record is older than
    /// `retention_ms` (-1: no limit), and while the log is larger than `retention_bytes` (-1:
    /// no limit) by at least the oldest segment. An expired active segment is rolled first so
    /// it can go too. Returns how many segments were deleted.
    pub fn enforce_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> Result<usize, LogError> {
        let expired = |seg: &Segment| {
            retention_ms >= 0 && seg.size_bytes > 0 && seg.max_timestamp_ms < now_ms.saturating_sub(retention_ms)
        };
        if expired(self.active()) {
            self.roll(now_ms)?;
        }
        let mut deleted = 0;
        // Only segments wholly below the high watermark go (Kafka's `deletableSegments`).
        while self.segments.len() > 1 && self.segments[1].base_offset <= self.high_watermark {
            let oldest = &self.segments[0];
            let over_size =
                retention_bytes >= 0 && self.size_bytes().saturating_sub(oldest.size_bytes) >= retention_bytes as u64;
            if !(expired(oldest) || over_size) {
                break;
            }
            self.delete_oldest_segment()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Rolled segments whose records are all older than `min_compaction_lag_ms`, oldest first:
    /// what the cleaner may rewrite.
    pub fn cleanable_segments(&self, now_ms: i64, min_compaction_lag_ms: i64) -> Vec<CleanableSegment> {
        let horizon = now_ms.saturating_sub(min_compaction_lag_ms);
        // Only segments wholly below the last stable offset (Kafka's first uncleanable
        // offset): the high watermark, and no open or unreplicated transaction's records.
        let stable = self.last_stable_offset();
        let below = self.segments[1..]
            .iter()
            .take_while(|s| s.base_offset <= stable)
            .count();
        self.segments[..below]
            .iter()
            .zip(&self.segments[1..])
            .take_while(|(s, _)| s.max_timestamp_ms <= horizon)
            .map(|(s, next)| CleanableSegment {
                base_offset: s.base_offset,
                file: s.file(),
                size_bytes: s.size_bytes,
                path: s.path().to_path_buf(),
                aborted: self.aborted_txns(s.base_offset, next.base_offset),
                retained_batches: self.producers.last_batch_offsets(s.base_offset, next.base_offset),
            })
            .collect()
    }

    /// Base offset of the first segment (rolled or active) starting after `offset`, or the
    /// log end offset if there is none.
    pub fn next_segment_base(&self, offset: i64) -> i64 {
        self.segments
            .iter()
            .map(|s| s.base_offset)
            .find(|&b| b > offset)
            .unwrap_or_else(|| self.log_end_offset())
    }

    /// The first offset not yet cleaned (the cleaner's checkpoint).
    pub fn cleaned_up_to(&self) -> i64 {
        read_i64_file(&*self.storage, &self.dir.join(CLEANER_CHECKPOINT_FILE)).unwrap_or(0)
    }

    /// Records how far the log has been cleaned.
    pub fn set_cleaned_up_to(&self, offset: i64) -> Result<(), LogError> {
        write_i64_file(&*self.storage, &self.dir.join(CLEANER_CHECKPOINT_FILE), offset)
    }

    /// The storage this log lives on (the cleaner writes its copies there).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Bytes of rolled segments at or after the cleaner checkpoint, over all rolled bytes.
    pub fn dirty_ratio(&self) -> f64 {
        let cleaned_to = self.cleaned_up_to();
        let rolled = &self.segments[..self.segments.len() - 1];
        let total: u64 = rolled.iter().map(|s| s.size_bytes).sum();
        let dirty: u64 = rolled
            .iter()
            .filter(|s| s.base_offset >= cleaned_to)
            .map(|s| s.size_bytes)
            .sum();
        if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        }
    }

    /// The segments a compaction pass should clean now, if any: rolled segments older than
    /// `min_compaction_lag_ms`, when the dirty share reaches `min_dirty_ratio` (or any dirty
    /// data is `overdue`).
    pub fn plan_compaction(
        &self,
        now_ms: i64,
        min_compaction_lag_ms: i64,
        min_dirty_ratio: f64,
        overdue: bool,
    ) -> Option<Vec<CleanableSegment>> {
        let segments = self.cleanable_segments(now_ms, min_compaction_lag_ms);
        let dirty = self.dirty_ratio();
        let due = dirty >= min_dirty_ratio || (overdue && dirty > 0.0);
        (!segments.is_empty() && due).then_some(segments)
    }

    /// Installs the cleaned copies of a pass and moves the cleaner checkpoint past them.
    pub fn install_compaction(&mut self, cleaned: Vec<(CleanableSegment, PathBuf)>) -> Result<(), LogError> {
        let mut last = None;
        for (seg, path) in cleaned {
            if self.install_cleaned(seg.base_offset, &path, seg.size_bytes)? {
                last = Some(seg.base_offset);
            }
        }
        if let Some(last) = last {
            self.set_cleaned_up_to(self.next_segment_base(last))?;
        }
        Ok(())
    }

    /// Swaps a cleaned copy in for segment `base_offset`, if that segment is still there and
    /// unchanged (`expected_size_bytes`). The rename is atomic: a crash leaves the old or the
    /// new segment, and a leftover `.cleaned` file is removed on open.
    pub fn install_cleaned(
        &mut self,
        base_offset: i64,
        cleaned: &Path,
        expected_size_bytes: u64,
    ) -> Result<bool, LogError> {
        let fs = &*self.storage;
        let Some(i) = self.segments.iter().position(|s| s.base_offset == base_offset) else {
            fs.remove_file(cleaned).at(cleaned)?;
            return Ok(false);
        };
        if i + 1 == self.segments.len() || self.segments[i].size_bytes != expected_size_bytes {
            fs.remove_file(cleaned).at(cleaned)?;
            return Ok(false);
        }
        // Old indexes must never meet the new bytes: empty them durably first (an empty index
        // is valid, just slower), then swap the bytes, then rebuild.
        self.segments[i].invalidate_indexes()?;
        let path = self.segments[i].path().to_path_buf();
        fs.rename(cleaned, &path).at(&path)?;
        fs.sync_dir(&self.dir).at(&self.dir)?;
        self.segments[i] = Segment::open(fs, &path, base_offset, true, self.config.index_interval_bytes)?;
        Ok(true)
    }

    /// Flushes and persists the checkpoints, for a clean shutdown.
    pub fn close(&mut self) -> Result<(), LogError> {
        self.check_not_torn()?;
        let end = self.log_end_offset();
        // Each step is skipped when the disk already says it: an idle log closes for free.
        if self.flushed_offset < end {
            self.flush()?;
        }
        let empty = end == self.log_start_offset && self.producers.is_empty();
        if self.snapshot_offset != Some(end) && !empty {
            self.snapshot_producers()?;
        }
        self.set_recovery_point(end)?;
        self.write_log_start(self.log_start_offset)
    }

    /// Removes the log and its directory.
    pub fn delete(self) -> Result<(), LogError> {
        self.storage.remove_dir_all(&self.dir).at(&self.dir)
    }
}
