//! InitProducerId with a transactional id: a new id gets a fresh producer id at epoch 0, an
//! existing one an epoch bump (or a fresh producer id once its epochs run out), an open
//! transaction of the previous incarnation is aborted first, and KIP-360 clients may name
//! the producer id and epoch they hold to recover without being fenced.

use crate::coordinator::{epoch_exhausted, transition, Entry};
use crate::record::{Partitions, TxnLogValue, TxnState};
use crate::txn_version::TV_0;
use crate::{Output, ProducerIdAndEpoch, TxnCoordinator, TxnError, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

type InitAnswer = Output<Result<ProducerIdAndEpoch, TxnError>>;

impl TxnCoordinator {
    /// InitProducerId for `transactional_id` (an idempotent producer without one needs no
    /// coordinator state: the broker hands it a fresh producer id at epoch 0 itself).
    /// `expected` is the request's producer id and epoch when the client sent them (KIP-360);
    /// `fresh_producer_id` allocates a producer id, `None` when none is available yet.
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        fresh_producer_id: &mut impl FnMut() -> Option<i64>,
        now_ms: i64,
    ) -> InitAnswer {
        if transactional_id.is_empty() {
            return Output::answer(Err(TxnError::InvalidRequest("empty transactional id")));
        }
        if timeout_ms <= 0 || timeout_ms > self.cfg.max_timeout_ms {
            return Output::answer(Err(TxnError::InvalidTransactionTimeout));
        }
        let Some(entry) = self.entry(transactional_id).cloned() else {
            return self.init_new(transactional_id, timeout_ms, fresh_producer_id, now_ms);
        };
        if let Some(e) = expected {
            if !holds_producer_id(&entry.value, e) {
                return Output::answer(Err(TxnError::ProducerFenced));
            }
        }
        match entry.value.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Output::answer(Err(TxnError::ConcurrentTransactions)),
            // The previous incarnation's transaction is aborted first; the client retries
            // and gets its epoch once the abort completed (so a fence that exhausts the epochs
            // leads to a fresh producer id on the retry).
            TxnState::Ongoing | TxnState::PrepareEpochFence => {
                match self.fence_and_abort(transactional_id, fresh_producer_id, now_ms) {
                    Ok((records, markers)) => Output {
                        response: Err(TxnError::ConcurrentTransactions),
                        records,
                        markers,
                    },
                    Err(e) => Output::answer(Err(e)),
                }
            }
            TxnState::Dead => Output::answer(Err(TxnError::InvalidTxnState)),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => self.init_idle(
                transactional_id,
                &entry,
                timeout_ms,
                expected,
                fresh_producer_id,
                now_ms,
            ),
        }
    }

    fn init_new(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        fresh_producer_id: &mut impl FnMut() -> Option<i64>,
        now_ms: i64,
    ) -> InitAnswer {
        let Some(producer_id) = fresh_producer_id() else {
            return Output::answer(Err(TxnError::ProducerIdUnavailable));
        };
        // Kafka creates the id with this producer id and epoch -1 before its first transition,
        // so the first record names the producer id as its previous one too.
        let value = TxnLogValue {
            producer_id,
            previous_producer_id: producer_id,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: Partitions::new(),
            last_update_ms: now_ms,
            start_ms: -1,
            client_version: TV_0,
        };
        let record = self.persist(transactional_id, value, NO_PRODUCER_EPOCH);
        Output {
            response: Ok(ProducerIdAndEpoch { producer_id, epoch: 0 }),
            records: vec![record],
            markers: None,
        }
    }

    /// No transaction is open: bump the epoch, or move to a fresh producer id once the
    /// epochs are exhausted.
    fn init_idle(
        &mut self,
        transactional_id: &str,
        entry: &Entry,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        fresh_producer_id: &mut impl FnMut() -> Option<i64>,
        now_ms: i64,
    ) -> InitAnswer {
        let cur = &entry.value;
        let mut value = TxnLogValue {
            timeout_ms,
            partitions: Partitions::new(),
            start_ms: -1,
            next_producer_id: NO_PRODUCER_ID,
            ..transition(cur, TxnState::Empty, now_ms)
        };
        let rotate = epoch_exhausted(cur.producer_epoch) && expected.is_none_or(|e| e.epoch == cur.producer_epoch);
        let last_epoch = if rotate {
            let Some(producer_id) = fresh_producer_id() else {
                return Output::answer(Err(TxnError::ProducerIdUnavailable));
            };
            value.producer_id = producer_id;
            value.producer_epoch = 0;
            // A client that named its epoch may retry this request: remember what it held.
            expected.map_or(NO_PRODUCER_EPOCH, |_| cur.producer_epoch)
        } else {
            match bumped_epoch(entry, expected) {
                Ok((epoch, last)) => {
                    value.producer_epoch = epoch;
                    last
                }
                Err(e) => return Output::answer(Err(e)),
            }
        };
        let response = ProducerIdAndEpoch {
            producer_id: value.producer_id,
            epoch: value.producer_epoch,
        };
        let record = self.persist(transactional_id, value, last_epoch);
        Output {
            response: Ok(response),
            records: vec![record],
            markers: None,
        }
    }
}

/// Whether a KIP-360 client holding `e` may continue: it holds the current producer id, or
/// the previous one with exhausted epochs (a retry of the request that moved it on).
fn holds_producer_id(cur: &TxnLogValue, e: ProducerIdAndEpoch) -> bool {
    e.producer_id == cur.producer_id || (e.producer_id == cur.previous_producer_id && epoch_exhausted(e.epoch))
}

/// The epoch to hand out and the one to remember for retries, when the epochs are not
/// exhausted.
fn bumped_epoch(entry: &Entry, expected: Option<ProducerIdAndEpoch>) -> Result<(i16, i16), TxnError> {
    let cur = entry.value.producer_epoch;
    match expected {
        // A new producer instance: whoever held the previous epoch is fenced for good.
        None => Ok((cur + 1, NO_PRODUCER_EPOCH)),
        // The producer continues after an error with the epoch it holds.
        Some(e) if e.epoch == cur => Ok((cur + 1, cur)),
        // A retry of a bump that succeeded: same answer, no second bump.
        Some(e) if e.epoch >= 0 && e.epoch == entry.last_producer_epoch => Ok((cur, entry.last_producer_epoch)),
        Some(_) => Err(TxnError::ProducerFenced),
    }
}
