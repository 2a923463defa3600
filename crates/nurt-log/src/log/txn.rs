//! The transactional side of a log (KIP-98): the producer state it keeps up to date, the
//! markers that end transactions, the last stable offset, the aborted-transaction indexes and
//! read_committed reads.
//!
//! Recovery: the producer table is loaded from the newest usable snapshot (see
//! `snapshot.rs`) at or before the first segment that needs recovering, and every batch after
//! it is replayed; the replay refills the `.txnindex` of each recovered segment (cleared when
//! it was opened) from the abort markers it meets, and leaves trusted ones as they are (an
//! entry is appended only past the index's last marker). Without any usable snapshot (a log
//! written before snapshots existed, or every snapshot lost) the replay starts at the first
//! segment: correct, only slower, once — the next roll or clean shutdown writes one.

use nurt_records::batch::BatchHeader;
use nurt_records::control::{marker_batch, parse_marker_batch};
use nurt_records::{ControlType, EndTxnMarker};

use super::Log;
use crate::error::IoContext;
use crate::producer_state::{CompletedTxn, MarkerCheck, ProducerStateTable};
use crate::snapshot;
use crate::txn_index::AbortedTxn;
use crate::verification::VerificationGuard;
use crate::{AppendInfo, LogError, ReadSlice};

/// Which records a consumer may see (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything below the high watermark, aborted transactions included.
    #[default]
    ReadUncommitted,
    /// Only below the last stable offset; the consumer drops the records of the aborted
    /// transactions [`Log::aborted_transactions`] lists.
    ReadCommitted,
}

impl Log {
    /// The producer state: sequences, epochs, open transactions.
    pub fn producer_state(&self) -> &ProducerStateTable {
        &self.producers
    }

    /// Forgets idle producers (`producer.id.expiration.ms`); see
    /// [`ProducerStateTable::expire_producers`]. The next snapshot leaves them out.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.expire_producers(now_ms, expiration_ms)
    }

    /// Whether appending `header`'s batch needs the coordinator's word first (KIP-890 part 1):
    /// a transactional data batch of a producer with no transaction open here would open one.
    pub fn needs_verification(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && header.producer_id >= 0
            && self.producers.open_transaction(header.producer_id).is_none()
    }

    /// Takes the guard for a verification of `producer_id` about to be asked.
    pub fn start_verification(&mut self, producer_id: i64) -> VerificationGuard {
        self.verifications.start(producer_id)
    }

    /// Whether `header`'s batch may be appended as far as verification goes: it needs none, or
    /// `guard` was taken for it and no marker of its producer came since.
    pub fn verified(&self, header: &BatchHeader, guard: Option<VerificationGuard>) -> bool {
        !self.needs_verification(header) || guard.is_some_and(|g| self.verifications.holds(header.producer_id, g))
    }

    /// The first offset of a transaction not yet stable (open, or ended by a marker the high
    /// watermark has not passed), if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.first_unstable_offset()
    }

    /// The last stable offset: read_committed consumers read below it. The smaller of the
    /// high watermark and the first unstable offset, never below the log start.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.first_unstable_offset()
            .map_or(hw, |fuo| fuo.min(hw))
            .max(self.log_start_offset())
    }

    /// Appends the marker that ends `producer_id`'s transaction (a control batch at the log
    /// end, stamped with `leader_epoch`), as the transaction coordinator's WriteTxnMarkers
    /// asks. Refused when the producer epoch is older than the producer's (ProducerFenced) or
    /// the coordinator epoch older than the last marker's (CoordinatorFenced). A marker for a
    /// producer without an open transaction is written too (it ends nothing).
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        control_type: ControlType,
        coordinator_epoch: i32,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let marker = EndTxnMarker {
            control_type,
            coordinator_epoch,
        };
        match self.producers.check_marker(producer_id, producer_epoch, marker) {
            MarkerCheck::Append => {}
            MarkerCheck::Fenced { current_epoch } => {
                return Err(LogError::ProducerFenced {
                    producer_id,
                    epoch: producer_epoch,
                    current_epoch,
                })
            }
            MarkerCheck::CoordinatorFenced {
                current_coordinator_epoch,
            } => {
                return Err(LogError::CoordinatorFenced {
                    producer_id,
                    coordinator_epoch,
                    current_coordinator_epoch,
                })
            }
        }
        let batch = marker_batch(producer_id, producer_epoch, marker, now_ms)?;
        self.append(&batch, leader_epoch, None, now_ms)
    }

    /// Like [`Log::read`], for a consumer of `isolation`: read_committed reads stop at the
    /// last stable offset.
    pub fn read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: IsolationLevel,
    ) -> Result<Option<ReadSlice>, LogError> {
        match isolation {
            IsolationLevel::ReadUncommitted => self.read(offset, max_bytes),
            IsolationLevel::ReadCommitted => self.read_below(offset, max_bytes, self.last_stable_offset()),
        }
    }

    /// The aborted transactions a read_committed fetch of `[from_offset, to_offset)` must
    /// drop, as (producer id, first offset), in marker order: those whose abort marker is at
    /// or after `from_offset` and whose first offset is before `to_offset`. Reads only the
    /// in-memory aborted-transaction indexes, from the segment holding `from_offset` on, and
    /// stops at the first entry proving no later one can qualify.
    pub fn aborted_transactions(&self, from_offset: i64, to_offset: i64) -> Vec<(i64, i64)> {
        self.aborted_txns(from_offset, to_offset)
            .into_iter()
            .map(|t| (t.producer_id, t.first_offset))
            .collect()
    }

    /// The index entries behind [`Log::aborted_transactions`].
    pub fn aborted_txns(&self, from_offset: i64, to_offset: i64) -> Vec<AbortedTxn> {
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= from_offset)
            .saturating_sub(1);
        let mut out = Vec::new();
        for seg in &self.segments[first..] {
            if seg.txn_index.collect(from_offset, to_offset, &mut out) {
                break;
            }
        }
        out
    }

    /// Updates the producer state with a batch just written at `base_offset` (`batch` is its
    /// bytes, header not yet patched); an abort goes into the active segment's txn index.
    pub(super) fn apply_to_producers(
        &mut self,
        header: &BatchHeader,
        batch: &[u8],
        base_offset: i64,
    ) -> Result<(), LogError> {
        if header.is_transactional() {
            // A marker ends what a pending verification was about; a data batch opened the
            // transaction it was for.
            self.verifications.clear(header.producer_id);
        }
        let index = self.segments.len() - 1;
        self.apply_batch(index, header, batch, base_offset)
    }

    fn apply_batch(
        &mut self,
        segment: usize,
        header: &BatchHeader,
        batch: &[u8],
        base_offset: i64,
    ) -> Result<(), LogError> {
        if !header.is_control() {
            self.producers.on_append(header, base_offset);
            return Ok(());
        }
        // A damaged or foreign control record still ends the transaction (the header says
        // whose), just without an outcome: it is written already and must not fail the log.
        let Some(marker) = parse_marker_batch(batch).ok().flatten() else {
            let mut h = *header;
            h.base_offset = base_offset;
            self.producers.on_append(&h, base_offset);
            return Ok(());
        };
        let done = self.producers.on_marker(
            header.producer_id,
            header.producer_epoch,
            marker,
            base_offset,
            header.max_timestamp,
        );
        match done {
            Some(txn @ CompletedTxn { aborted: true, .. }) => {
                let entry = AbortedTxn {
                    producer_id: txn.producer_id,
                    first_offset: txn.first_offset,
                    last_offset: txn.last_offset,
                    last_stable_offset: self.producers.last_stable_offset_after(&txn),
                };
                self.segments[segment].txn_index.append(entry)
            }
            _ => Ok(()),
        }
    }

    /// Rebuilds the producer state: the newest usable snapshot at or before `limit`, then
    /// every batch after it to the log end (refilling txn indexes; see the module docs).
    pub(super) fn rebuild_producer_state(&mut self, limit: i64) -> Result<(), LogError> {
        let first_base = self.segments[0].base_offset;
        let loaded = snapshot::load_latest(&*self.storage, &self.dir, first_base, limit)?;
        self.snapshot_offset = loaded.as_ref().map(|(offset, _)| *offset);
        let (start, table) = loaded.unwrap_or((first_base, ProducerStateTable::default()));
        self.producers = table;
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= start)
            .saturating_sub(1);
        for i in first..self.segments.len() {
            let mut pos = self.segments[i].index_lookup(start);
            while let Some(header) = self.segments[i].header_at(pos)? {
                let len = header.total_bytes();
                if header.base_offset >= start {
                    let batch = if header.is_control() {
                        self.segments[i].read_at(pos, len)?
                    } else {
                        Vec::new()
                    };
                    self.apply_batch(i, &header, &batch, header.base_offset)?;
                }
                pos += len as u64;
            }
        }
        self.producers.on_high_watermark(self.high_watermark);
        Ok(())
    }

    /// Saves the producer state as of the log end (at a roll or a clean shutdown).
    pub(super) fn snapshot_producers(&mut self) -> Result<(), LogError> {
        let end = self.log_end_offset();
        snapshot::write(&*self.storage, &self.dir, end, &self.producers)?;
        self.snapshot_offset = Some(end);
        Ok(())
    }

    /// Removes the snapshots past `end` durably: after a truncation they describe a history
    /// the log no longer has, and a later open must never load one.
    pub(super) fn drop_snapshots_after(&mut self, end: i64) -> Result<(), LogError> {
        if self.snapshot_offset.is_some_and(|o| o > end) {
            self.snapshot_offset = None;
        }
        if snapshot::delete_where(&*self.storage, &self.dir, |o| o > end)? > 0 {
            self.storage.sync_dir(&self.dir).at(&self.dir)?;
        }
        Ok(())
    }

    /// Removes the snapshots below the first segment (useless once it is gone; a leftover is
    /// ignored on open, so this need not be durable).
    pub(super) fn drop_snapshots_before(&mut self, first_base: i64) -> Result<(), LogError> {
        if self.snapshot_offset.is_some_and(|o| o < first_base) {
            self.snapshot_offset = None;
        }
        snapshot::delete_where(&*self.storage, &self.dir, |o| o < first_base).map(|_| ())
    }
}
