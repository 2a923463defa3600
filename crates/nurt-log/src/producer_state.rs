//! Producer state of one partition (KIP-98): per producer id, its epoch and the last five
//! batches' sequence ranges, to refuse gaps and answer retried batches with their original
//! offsets instead of writing them twice; and its transaction: the first offset of the
//! transaction it has open here, ended by a control batch (a commit or abort marker).
//!
//! The smallest first offset of the open transactions is the first unstable offset: read
//! committed consumers stop before it (the last stable offset is the smaller of it and the high
//! watermark). A transaction that was ended by a marker stays unstable until the high watermark
//! passes the marker (Kafka's "unreplicated" transactions), so a consumer never reads a
//! transaction's records before every in-sync replica has its outcome.
//!
//! The log keeps one table, updated by every append, saved in snapshots (`snapshot.rs`) and
//! rebuilt on open from the newest usable snapshot plus the batches after it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use nurt_records::{BatchHeader, ControlType, EndTxnMarker};

/// Batches remembered per producer, as Kafka does (max.in.flight.requests ≤ 5).
pub const BATCHES_REMEMBERED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSeq {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) base_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub(crate) epoch: i16,
    pub(crate) batches: VecDeque<BatchSeq>,
    /// Epoch of the transaction coordinator that wrote this producer's last marker (-1: none).
    pub(crate) coordinator_epoch: i32,
    /// First offset of the transaction this producer has open here.
    pub(crate) txn_first_offset: Option<i64>,
    /// Base offset of its last data batch (-1: none): compaction keeps that batch's header.
    pub(crate) last_batch_offset: i64,
    /// Max timestamp of its last batch or marker.
    pub(crate) last_timestamp: i64,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        Self {
            epoch: 0,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            txn_first_offset: None,
            last_batch_offset: -1,
            last_timestamp: -1,
        }
    }
}

impl ProducerEntry {
    /// A new epoch starts a new sequence stream.
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or the next in sequence: append it.
    Append,
    /// A retry of a batch already written at this base offset: answer success, write nothing.
    Duplicate { base_offset: i64 },
    /// The epoch is older than the producer's current one (PRODUCER_FENCED).
    Fenced,
    /// A gap in sequence numbers (OUT_OF_ORDER_SEQUENCE_NUMBER).
    OutOfOrder,
}

/// Whether a transaction marker may be written (Kafka's legacy marker rules, TV0/TV1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerCheck {
    /// Write it.
    Append,
    /// The marker's producer epoch is older than the producer's (INVALID_PRODUCER_EPOCH).
    Fenced { current_epoch: i16 },
    /// The marker comes from an older transaction coordinator than the last one that wrote a
    /// marker for this producer (TRANSACTION_COORDINATOR_FENCED).
    CoordinatorFenced { current_coordinator_epoch: i32 },
}

/// A transaction a marker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// One producer as DescribeProducers reports it (-1 where nothing is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The sequence number of its last record.
    pub last_sequence: i32,
    /// The max timestamp of its last batch or marker.
    pub last_timestamp_ms: i64,
    /// The epoch of the coordinator that wrote its last transaction marker.
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction.
    pub current_txn_start_offset: i64,
}

/// Producer id → state, and the transactions not yet stable.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateTable {
    pub(crate) producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Ended transactions whose marker the high watermark has not passed yet: first offset →
    /// marker offset. Not saved in snapshots (Kafka does not either): after a restart the
    /// owner's high watermark is at or past what was replicated before.
    unreplicated: BTreeMap<i64, i64>,
}

fn last_seq(header: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX.
    ((i64::from(header.base_sequence) + i64::from(header.last_offset_delta)) % (i64::from(i32::MAX) + 1)) as i32
}

impl ProducerStateTable {
    /// Checks a batch before it is appended.
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // Unknown producer (new, or its state expired): accept any starting sequence.
            return SequenceCheck::Append;
        };
        if header.producer_epoch < entry.epoch {
            return SequenceCheck::Fenced;
        }
        if header.producer_epoch > entry.epoch {
            return if header.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        let last = last_seq(header);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last)
        {
            return SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| if b.last_seq == i32::MAX { 0 } else { b.last_seq + 1 });
        if header.base_sequence == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::OutOfOrder
        }
    }

    /// True when a data batch breaks its producer's transaction: a non-transactional batch
    /// while the producer has one open here (Kafka's INVALID_TXN_STATE).
    pub fn breaks_transaction(&self, header: &BatchHeader) -> bool {
        !header.is_transactional() && !header.is_control() && self.open_transaction(header.producer_id).is_some()
    }

    /// Records a batch that was appended at `base_offset` (also used to replay the log). A
    /// transactional data batch opens its producer's transaction if none is open. A control
    /// batch ends it without knowing how (only the header is here): callers that can read
    /// the marker use [`ProducerStateTable::on_marker`], which also reports aborts.
    pub fn on_append(&mut self, header: &BatchHeader, base_offset: i64) {
        if header.producer_id < 0 {
            return;
        }
        if header.is_control() {
            let marker = EndTxnMarker {
                control_type: ControlType::Commit,
                coordinator_epoch: -1,
            };
            self.on_marker(
                header.producer_id,
                header.producer_epoch,
                marker,
                base_offset,
                header.max_timestamp,
            );
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        entry.set_epoch(header.producer_epoch);
        entry.last_batch_offset = base_offset;
        entry.last_timestamp = header.max_timestamp;
        if header.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(base_offset);
            self.ongoing.insert(base_offset, header.producer_id);
        }
        if header.base_sequence < 0 {
            return;
        }
        if entry.batches.len() == BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchSeq {
            first_seq: header.base_sequence,
            last_seq: last_seq(header),
            base_offset,
        });
    }

    /// Checks a marker before it is written: its producer epoch must not be older than the
    /// producer's, nor its coordinator epoch older than the last marker's. (Kafka's
    /// transaction version 2, where markers must carry a bumped epoch, is not modelled.)
    pub fn check_marker(&self, producer_id: i64, producer_epoch: i16, marker: EndTxnMarker) -> MarkerCheck {
        let Some(entry) = self.producers.get(&producer_id) else {
            return MarkerCheck::Append;
        };
        if producer_epoch < entry.epoch {
            return MarkerCheck::Fenced {
                current_epoch: entry.epoch,
            };
        }
        if marker.coordinator_epoch < entry.coordinator_epoch {
            return MarkerCheck::CoordinatorFenced {
                current_coordinator_epoch: entry.coordinator_epoch,
            };
        }
        MarkerCheck::Append
    }

    /// Records a marker written at `offset`: the producer takes the marker's epoch (a newer
    /// one restarts its sequences) and coordinator epoch, and its open transaction, if any,
    /// ends. Returns that transaction; none when the producer had none open (a marker
    /// without data changes no offset a reader sees). Applied unchecked: replicas and
    /// recovery take what the leader wrote.
    pub fn on_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
        offset: i64,
        timestamp_ms: i64,
    ) -> Option<CompletedTxn> {
        let entry = self.producers.entry(producer_id).or_default();
        entry.set_epoch(producer_epoch);
        entry.coordinator_epoch = entry.coordinator_epoch.max(marker.coordinator_epoch);
        entry.last_timestamp = timestamp_ms;
        let first_offset = entry.txn_first_offset.take()?;
        self.ongoing.remove(&first_offset);
        self.unreplicated.insert(first_offset, offset);
        Some(CompletedTxn {
            producer_id,
            first_offset,
            last_offset: offset,
            aborted: marker.control_type == ControlType::Abort,
        })
    }

    /// The last stable offset right after `completed` ended, as recorded in the aborted
    /// transaction index: the first offset of the oldest transaction still open, or the
    /// offset after the marker.
    pub fn last_stable_offset_after(&self, completed: &CompletedTxn) -> i64 {
        self.ongoing.keys().next().copied().unwrap_or(completed.last_offset + 1)
    }

    /// The high watermark moved: transactions whose marker it passed are stable.
    pub fn on_high_watermark(&mut self, high_watermark: i64) {
        self.unreplicated.retain(|_, marker| *marker >= high_watermark);
    }

    /// The smallest first offset of a transaction not yet stable (open, or ended by a marker
    /// the high watermark has not passed). None when every transaction is stable.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let open = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        match (open, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// First offset of the transaction `producer_id` has open here.
    pub fn open_transaction(&self, producer_id: i64) -> Option<i64> {
        self.producers.get(&producer_id)?.txn_first_offset
    }

    /// Open transactions as (producer id, first offset), oldest first.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.ongoing.iter().map(|(&first, &pid)| (pid, first)).collect()
    }

    /// The producer's current epoch, if it is known.
    pub fn producer_epoch(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }

    /// Base offsets of every producer's last data batch in `[from, to)`: compaction keeps
    /// those batches (emptied if need be) so a rebuild from the log finds each producer's
    /// last sequence and epoch, as Kafka's cleaner does.
    pub fn last_batch_offsets(&self, from: i64, to: i64) -> Vec<i64> {
        let mut offsets: Vec<i64> = self
            .producers
            .values()
            .map(|e| e.last_batch_offset)
            .filter(|o| (from..to).contains(o))
            .collect();
        offsets.sort_unstable();
        offsets
    }

    /// Rebuilds the open-transaction map from the entries (after a snapshot is loaded).
    pub(crate) fn from_entries(producers: HashMap<i64, ProducerEntry>) -> Self {
        let ongoing = producers
            .iter()
            .filter_map(|(&pid, e)| Some((e.txn_first_offset?, pid)))
            .collect();
        Self {
            producers,
            ongoing,
            unreplicated: BTreeMap::new(),
        }
    }

    /// Every producer tracked, by producer id, as DescribeProducers (KIP-664) reports them.
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ActiveProducer {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp_ms: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_unstable_by_key(|p| p.producer_id);
        out
    }

    /// Forgets producers without an open transaction whose last batch or marker is at least
    /// `expiration_ms` old (`producer.id.expiration.ms`, Kafka's `isProducerExpired`); returns
    /// how many. A forgotten producer's next batch is taken as from a new producer.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nurt_records::{BatchBuilder, Compression};

    fn header(pid: i64, epoch: i16, seq: i32, n: usize) -> BatchHeader {
        let mut b = BatchBuilder::new(Compression::None, 0).idempotent(pid, epoch, seq);
        for _ in 0..n {
            b.push(0, None, Some(b"x"), &[]);
        }
        BatchHeader::parse(&b.build().unwrap()).unwrap()
    }

    #[test]
    fn idle_producers_expire_but_not_inside_a_transaction() {
        let mut t = ProducerStateTable::default();
        let mut idle = BatchBuilder::new(Compression::None, 1_000).idempotent(1, 0, 0);
        idle.push(1_000, None, Some(b"x"), &[]);
        t.on_append(&BatchHeader::parse(&idle.build().unwrap()).unwrap(), 0);
        let mut open = BatchBuilder::new(Compression::None, 1_000).transactional(2, 0, 0);
        open.push(1_000, None, Some(b"x"), &[]);
        t.on_append(&BatchHeader::parse(&open.build().unwrap()).unwrap(), 1);
        assert_eq!(t.expire_producers(1_999, 1_000), 0, "not old enough yet");
        assert_eq!(t.expire_producers(2_000, 1_000), 1);
        assert_eq!(t.producer_epoch(1), None);
        assert_eq!(t.open_transaction(2), Some(1), "an open transaction keeps its producer");
    }

    #[test]
    fn sequences_dedupe_and_fence() {
        let mut t = ProducerStateTable::default();
        let h0 = header(7, 0, 0, 3);
        assert_eq!(t.check(&h0), SequenceCheck::Append);
        t.on_append(&h0, 100);
        assert_eq!(t.check(&h0), SequenceCheck::Duplicate { base_offset: 100 });
        assert_eq!(t.check(&header(7, 0, 5, 1)), SequenceCheck::OutOfOrder);
        let h1 = header(7, 0, 3, 2);
        assert_eq!(t.check(&h1), SequenceCheck::Append);
        t.on_append(&h1, 103);
        let bumped = header(7, 1, 0, 1);
        assert_eq!(t.check(&bumped), SequenceCheck::Append);
        t.on_append(&bumped, 105);
        assert_eq!(t.check(&header(7, 0, 5, 1)), SequenceCheck::Fenced);
        assert_eq!(t.check(&header(-1, -1, -1, 1)), SequenceCheck::Append);
    }

    fn txn_header(pid: i64, epoch: i16, seq: i32) -> BatchHeader {
        let mut b = BatchBuilder::new(Compression::None, 0).transactional(pid, epoch, seq);
        b.push(0, None, Some(b"x"), &[]);
        BatchHeader::parse(&b.build().unwrap()).unwrap()
    }

    fn marker(control_type: ControlType, coordinator_epoch: i32) -> EndTxnMarker {
        EndTxnMarker {
            control_type,
            coordinator_epoch,
        }
    }

    #[test]
    fn transactions_open_commit_and_abort() {
        let mut t = ProducerStateTable::default();
        t.on_append(&txn_header(1, 0, 0), 10);
        t.on_append(&txn_header(1, 0, 1), 11); // same transaction: first offset stays
        t.on_append(&txn_header(2, 0, 0), 12);
        assert_eq!(t.open_transactions(), vec![(1, 10), (2, 12)]);
        assert_eq!(t.first_unstable_offset(), Some(10));
        assert!(t.breaks_transaction(&header(1, 0, 2, 1)));
        assert!(!t.breaks_transaction(&header(3, 0, 0, 1)));

        let done = t.on_marker(1, 0, marker(ControlType::Commit, 0), 13, 0).unwrap();
        assert_eq!(
            done,
            CompletedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 13,
                aborted: false
            }
        );
        // Ended, but unstable until the high watermark passes its marker.
        assert_eq!(t.first_unstable_offset(), Some(10));
        t.on_high_watermark(13);
        assert_eq!(t.first_unstable_offset(), Some(10));
        t.on_high_watermark(14);
        assert_eq!(t.first_unstable_offset(), Some(12));
        assert_eq!(t.last_stable_offset_after(&done), 12);

        let aborted = t.on_marker(2, 0, marker(ControlType::Abort, 0), 14, 0).unwrap();
        assert!(aborted.aborted);
        assert_eq!((aborted.first_offset, aborted.last_offset), (12, 14));
        assert_eq!(t.last_stable_offset_after(&aborted), 15);
        t.on_high_watermark(15);
        assert_eq!(t.first_unstable_offset(), None);
        // A marker without an open transaction ends nothing.
        assert_eq!(t.on_marker(2, 0, marker(ControlType::Abort, 0), 15, 0), None);
        // The next transactional batch opens a new transaction.
        t.on_append(&txn_header(1, 0, 2), 16);
        assert_eq!(t.open_transaction(1), Some(16));
    }

    #[test]
    fn marker_epoch_rules() {
        let mut t = ProducerStateTable::default();
        t.on_append(&txn_header(5, 3, 0), 0);
        assert_eq!(
            t.check_marker(5, 2, marker(ControlType::Commit, 0)),
            MarkerCheck::Fenced { current_epoch: 3 }
        );
        assert_eq!(
            t.check_marker(5, 3, marker(ControlType::Commit, 4)),
            MarkerCheck::Append
        );
        assert_eq!(t.check_marker(9, 0, marker(ControlType::Abort, 0)), MarkerCheck::Append);
        // A marker with a newer epoch bumps the producer's epoch and restarts its sequences.
        t.on_marker(5, 4, marker(ControlType::Abort, 4), 1, 0).unwrap();
        assert_eq!(t.producer_epoch(5), Some(4));
        assert_eq!(t.check(&txn_header(5, 3, 1)), SequenceCheck::Fenced);
        assert_eq!(t.check(&txn_header(5, 4, 0)), SequenceCheck::Append);
        assert_eq!(
            t.check_marker(5, 4, marker(ControlType::Commit, 3)),
            MarkerCheck::CoordinatorFenced {
                current_coordinator_epoch: 4
            }
        );
        // A control batch seen by header only ends the transaction too.
        t.on_append(&txn_header(5, 4, 0), 2);
        let control = nurt_records::control::marker_batch(5, 4, marker(ControlType::Commit, 4), 0).unwrap();
        t.on_append(&BatchHeader::parse(&control).unwrap(), 3);
        assert_eq!(t.open_transaction(5), None);
        assert_eq!(t.last_batch_offsets(0, 10), vec![2]);
    }
}
