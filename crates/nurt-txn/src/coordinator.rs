//! The transaction coordinator of one `__transaction_state` partition: every transactional
//! id it owns, the one path that changes them ([`TxnCoordinator::replay`]), undo points for
//! records that could not be persisted, and the completion of transactions once their
//! markers are written. The requests live in their own modules: InitProducerId in `init`,
//! AddPartitionsToTxn/AddOffsetsToTxn in `partitions`, EndTxn and fencing in `end`, timeouts
//! and expiration in `timeouts`, Describe/ListTransactions in `views`.

use std::collections::BTreeMap;

use crate::record::{Partitions, TxnLogValue, TxnRecord, TxnState};
use crate::txn_version::bumps_epoch;
use crate::{TxnConfig, TxnMarkers, TxnResult, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

/// What the coordinator holds per transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) value: TxnLogValue,
    /// The epoch before the last bump, when the client asked for it (KIP-360), so a retry of
    /// that request gets the same answer instead of a second bump. Kafka's log does not carry
    /// it either: a replayed entry starts without one, so such a retry across a reload is
    /// fenced, as in Kafka.
    pub(crate) last_producer_epoch: i16,
}

/// The state of some transactional ids before a call, to put back if the call's records
/// cannot be persisted: the coordinator must never run ahead of its log.
#[derive(Debug, Default)]
pub struct Undo(Vec<(String, Option<Entry>)>);

/// Every transactional id of one `__transaction_state` partition.
#[derive(Debug)]
pub struct TxnCoordinator {
    pub cfg: TxnConfig,
    /// The partition's leader epoch, carried by every marker.
    coordinator_epoch: i32,
    /// Ordered so that ticks, lists and expirations are deterministic.
    txns: BTreeMap<String, Entry>,
}

/// Epochs from here on are exhausted: the coordinator keeps `i16::MAX` for itself so it can
/// always fence the last epoch a client holds.
pub(crate) fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The start of every transition: Kafka records the producer id before the transition as
/// the previous one, and stamps the update time.
pub(crate) fn transition(cur: &TxnLogValue, state: TxnState, now_ms: i64) -> TxnLogValue {
    TxnLogValue {
        previous_producer_id: cur.producer_id,
        state,
        last_update_ms: now_ms,
        ..cur.clone()
    }
}

/// The Complete* value after the markers of `prepared` are written. A transaction version 2
/// producer whose epoch ran out continues with the next producer id at epoch 0.
pub(crate) fn completed(prepared: &TxnLogValue, now_ms: i64) -> TxnLogValue {
    let state = match prepared.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        _ => TxnState::CompleteAbort,
    };
    let mut v = transition(prepared, state, now_ms);
    if bumps_epoch(prepared.client_version) && prepared.next_producer_id != NO_PRODUCER_ID {
        v.producer_id = prepared.next_producer_id;
        v.producer_epoch = 0;
    }
    v.next_producer_id = NO_PRODUCER_ID;
    v.partitions = Partitions::new();
    v
}

impl TxnCoordinator {
    pub fn new(cfg: TxnConfig, coordinator_epoch: i32) -> Self {
        Self {
            cfg,
            coordinator_epoch,
            txns: BTreeMap::new(),
        }
    }

    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    /// Applies a record of `__transaction_state`: at load, on a follower, and for every record
    /// a request returns (which is applied before it is returned).
    pub fn replay(&mut self, record: &TxnRecord) {
        match &record.value {
            // A Dead value is an expiration in progress; Kafka writes a tombstone after it.
            Some(v) if v.state != TxnState::Dead => {
                let entry = Entry {
                    value: v.clone(),
                    last_producer_epoch: NO_PRODUCER_EPOCH,
                };
                self.txns.insert(record.transactional_id.clone(), entry);
            }
            _ => {
                self.txns.remove(&record.transactional_id);
            }
        }
    }

    /// The persisted state of a transactional id.
    pub fn get(&self, transactional_id: &str) -> Option<&TxnLogValue> {
        self.txns.get(transactional_id).map(|e| &e.value)
    }

    /// Every transactional id and its persisted state, in id order.
    pub fn transactions(&self) -> impl Iterator<Item = (&String, &TxnLogValue)> {
        self.txns.iter().map(|(id, e)| (id, &e.value))
    }

    /// Remembers the current state of `transactional_id` (present or absent).
    pub fn undo_point(&self, transactional_id: &str) -> Undo {
        let entry = self.txns.get(transactional_id).cloned();
        Undo(vec![(transactional_id.to_string(), entry)])
    }

    /// Puts back what `undo` remembered (the records of the call were not persisted).
    pub fn undo(&mut self, undo: Undo) {
        for (id, entry) in undo.0 {
            match entry {
                Some(e) => self.txns.insert(id, e),
                None => self.txns.remove(&id),
            };
        }
    }

    /// Markers to (re)write for every transaction whose outcome is decided: after a load, the
    /// new coordinator finishes what the old one started.
    pub fn pending_markers(&self) -> Vec<TxnMarkers> {
        self.txns
            .iter()
            .filter(|(_, e)| e.value.state.is_prepare())
            .map(|(id, e)| self.markers(id, &e.value))
            .collect()
    }

    /// Every marker of `markers` is written: the Complete* record to persist. Nothing when the
    /// transaction is no longer the one the markers were for (a stale callback).
    pub fn markers_written(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        now_ms: i64,
    ) -> Vec<TxnRecord> {
        let Some(entry) = self.txns.get(transactional_id) else {
            return Vec::new();
        };
        let v = &entry.value;
        if !v.state.is_prepare() || v.producer_id != producer_id || v.producer_epoch != producer_epoch {
            return Vec::new();
        }
        let (value, last) = (completed(v, now_ms), entry.last_producer_epoch);
        vec![self.persist(transactional_id, value, last)]
    }

    pub(crate) fn entry(&self, transactional_id: &str) -> Option<&Entry> {
        self.txns.get(transactional_id)
    }

    /// Applies `value` through [`TxnCoordinator::replay`] and returns its record; `last_epoch`
    /// is the leader-only KIP-360 retry epoch to keep with it.
    pub(crate) fn persist(&mut self, transactional_id: &str, value: TxnLogValue, last_epoch: i16) -> TxnRecord {
        let record = TxnRecord {
            transactional_id: transactional_id.to_string(),
            value: Some(value),
        };
        self.replay(&record);
        if let Some(e) = self.txns.get_mut(transactional_id) {
            e.last_producer_epoch = last_epoch;
        }
        record
    }

    /// Persists the Prepare* value `prepared` and returns its records and the markers to write.
    /// A transaction without partitions has no marker to wait for: its Complete* record
    /// follows at once (Kafka completes it the same way, without sending anything).
    pub(crate) fn prepare_end(
        &mut self,
        transactional_id: &str,
        prepared: TxnLogValue,
        last_epoch: i16,
        now_ms: i64,
    ) -> (Vec<TxnRecord>, Option<TxnMarkers>) {
        let done = prepared.partitions.is_empty().then(|| completed(&prepared, now_ms));
        let markers = self.markers(transactional_id, &prepared);
        let mut records = vec![self.persist(transactional_id, prepared, last_epoch)];
        match done {
            Some(v) => {
                records.push(self.persist(transactional_id, v, last_epoch));
                (records, None)
            }
            None => (records, Some(markers)),
        }
    }

    fn markers(&self, transactional_id: &str, v: &TxnLogValue) -> TxnMarkers {
        TxnMarkers {
            transactional_id: transactional_id.to_string(),
            producer_id: v.producer_id,
            producer_epoch: v.producer_epoch,
            result: match v.state {
                TxnState::PrepareCommit => TxnResult::Commit,
                _ => TxnResult::Abort,
            },
            coordinator_epoch: self.coordinator_epoch,
            partitions: v.partitions.clone(),
        }
    }
}

impl Undo {
    /// Adds the ids `other` remembers (the first point of an id wins: it is the oldest).
    pub fn absorb(&mut self, other: Undo) {
        for (id, entry) in other.0 {
            if !self.0.iter().any(|(known, _)| *known == id) {
                self.0.push((id, entry));
            }
        }
    }
}
