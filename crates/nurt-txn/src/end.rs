//! EndTxn (commit or abort) and the aborts the coordinator starts itself (an InitProducerId
//! that finds the previous incarnation's transaction open, a timeout). Transaction version 2
//! (KIP-890 part 2) bumps the epoch at the end of every transaction and returns it; once the
//! epochs run out the producer continues with a fresh producer id at epoch 0.

use crate::coordinator::{epoch_exhausted, transition};
use crate::record::{TxnLogValue, TxnRecord, TxnState};
use crate::txn_version::{bumps_epoch, TV_0};
use crate::{
    Output, ProducerIdAndEpoch, TxnCoordinator, TxnError, TxnMarkers, TxnResult, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

/// EndTxn's answer: with transaction version 2, the producer id and epoch to continue with.
pub type EndAnswer = Output<Result<Option<ProducerIdAndEpoch>, TxnError>>;

type Prepared = Result<(Vec<TxnRecord>, Option<TxnMarkers>), TxnError>;

fn prepare_state(result: TxnResult) -> TxnState {
    match result {
        TxnResult::Commit => TxnState::PrepareCommit,
        TxnResult::Abort => TxnState::PrepareAbort,
    }
}

/// What the producer continues with once `prepared` completes.
fn continuation(prepared: &TxnLogValue) -> ProducerIdAndEpoch {
    if prepared.next_producer_id != NO_PRODUCER_ID {
        return ProducerIdAndEpoch {
            producer_id: prepared.next_producer_id,
            epoch: 0,
        };
    }
    ProducerIdAndEpoch {
        producer_id: prepared.producer_id,
        epoch: prepared.producer_epoch,
    }
}

fn wrap(prepared: Prepared, response: Option<ProducerIdAndEpoch>) -> EndAnswer {
    match prepared {
        Ok((records, markers)) => Output {
            response: Ok(response),
            records,
            markers,
        },
        Err(e) => Output::answer(Err(e)),
    }
}

impl TxnCoordinator {
    /// EndTxn. `client_version` is the transaction version the request speaks (Kafka: 2 for
    /// EndTxn v5+, else 0); the answer carries a producer id and epoch only at version 2.
    #[allow(clippy::too_many_arguments)]
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        result: TxnResult,
        client_version: i16,
        fresh_producer_id: &mut impl FnMut() -> Option<i64>,
        now_ms: i64,
    ) -> EndAnswer {
        if transactional_id.is_empty() {
            return Output::answer(Err(TxnError::InvalidRequest("empty transactional id")));
        }
        let Some(cur) = self.get(transactional_id).cloned() else {
            return Output::answer(Err(TxnError::InvalidProducerIdMapping));
        };
        if bumps_epoch(client_version) {
            let req = ProducerIdAndEpoch {
                producer_id,
                epoch: producer_epoch,
            };
            return self.end_v2(
                transactional_id,
                &cur,
                req,
                result,
                client_version,
                fresh_producer_id,
                now_ms,
            );
        }
        if cur.producer_id != producer_id {
            return Output::answer(Err(TxnError::InvalidProducerIdMapping));
        }
        if cur.producer_epoch != producer_epoch {
            return Output::answer(Err(TxnError::ProducerFenced));
        }
        use {TxnResult::*, TxnState::*};
        match (cur.state, result) {
            (Ongoing, _) => {
                // Kafka records version 0 for an end at the older versions.
                let prepared = TxnLogValue {
                    client_version: TV_0,
                    ..transition(&cur, prepare_state(result), now_ms)
                };
                let last = self.last_epoch(transactional_id);
                let (records, markers) = self.prepare_end(transactional_id, prepared, last, now_ms);
                Output {
                    response: Ok(None),
                    records,
                    markers,
                }
            }
            (CompleteCommit, Commit) | (CompleteAbort, Abort) => Output::answer(Ok(None)),
            (PrepareCommit, Commit) | (PrepareAbort, Abort) => Output::answer(Err(TxnError::ConcurrentTransactions)),
            _ => Output::answer(Err(TxnError::InvalidTxnState)),
        }
    }

    /// EndTxn at transaction version 2: a retry is recognised by the epoch the end bumped
    /// (or, after the epochs ran out, by the previous producer id), and an abort is accepted
    /// without an open transaction, since the client may not know whether one began.
    #[allow(clippy::too_many_arguments)]
    fn end_v2(
        &mut self,
        transactional_id: &str,
        cur: &TxnLogValue,
        req: ProducerIdAndEpoch,
        result: TxnResult,
        client_version: i16,
        fresh_producer_id: &mut impl FnMut() -> Option<i64>,
        now_ms: i64,
    ) -> EndAnswer {
        use {TxnResult::*, TxnState::*};
        let retry_on_overflow =
            cur.previous_producer_id == req.producer_id && req.epoch == i16::MAX - 1 && cur.producer_epoch == 0;
        let retry_on_bump = i32::from(cur.producer_epoch) == i32::from(req.epoch) + 1;
        let retry = retry_on_bump || retry_on_overflow;
        let same_epoch = req.epoch == cur.producer_epoch;
        let valid_epoch = match cur.state {
            PrepareCommit | PrepareAbort => retry_on_bump,
            CompleteCommit | CompleteAbort => retry || same_epoch,
            Empty | Ongoing | Dead | PrepareEpochFence => same_epoch,
        };
        if cur.producer_id != req.producer_id && !retry_on_overflow {
            return Output::answer(Err(TxnError::InvalidProducerIdMapping));
        }
        if !valid_epoch {
            return Output::answer(Err(TxnError::ProducerFenced));
        }
        let current = ProducerIdAndEpoch {
            producer_id: cur.producer_id,
            epoch: cur.producer_epoch,
        };
        let mut prepare = |c: &mut Self, no_partition_added| {
            c.prepare_v2(
                transactional_id,
                cur,
                result,
                client_version,
                no_partition_added,
                fresh_producer_id,
                now_ms,
            )
        };
        match (cur.state, result) {
            (Ongoing, _) => prepare(self, false),
            (CompleteCommit, Commit) | (CompleteAbort, Abort) if retry => Output::answer(Ok(Some(current))),
            (CompleteCommit, Abort) | (CompleteAbort, Abort) | (Empty, Abort) if !retry => prepare(self, true),
            (PrepareCommit, Commit) | (PrepareAbort, Abort) => Output::answer(Err(TxnError::ConcurrentTransactions)),
            _ => Output::answer(Err(TxnError::InvalidTxnState)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn prepare_v2(
        &mut self,
        transactional_id: &str,
        cur: &TxnLogValue,
        result: TxnResult,
        client_version: i16,
        no_partition_added: bool,
        fresh_producer_id: &mut impl FnMut() -> Option<i64>,
        now_ms: i64,
    ) -> EndAnswer {
        let next_producer_id = if epoch_exhausted(cur.producer_epoch) {
            match fresh_producer_id() {
                Some(id) => id,
                None => return Output::answer(Err(TxnError::ProducerIdUnavailable)),
            }
        } else {
            NO_PRODUCER_ID
        };
        let prepared = TxnLogValue {
            // Never past i16::MAX: a client never holds i16::MAX, so only an abort of an
            // already fenced transaction can start there.
            producer_epoch: cur.producer_epoch.saturating_add(1),
            next_producer_id,
            client_version,
            // An abort without an open transaction starts (and ends) now.
            start_ms: if no_partition_added { now_ms } else { cur.start_ms },
            ..transition(cur, prepare_state(result), now_ms)
        };
        let response = continuation(&prepared);
        // A retry of the InitProducerId that follows may name the epoch this end replaced.
        let out = self.prepare_end(transactional_id, prepared, cur.producer_epoch, now_ms);
        wrap(Ok(out), Some(response))
    }

    /// Fences the producer of the open transaction of `transactional_id` (its epoch is bumped
    /// so nothing it sends is accepted any more) and aborts that transaction, at the server's
    /// transaction version. The fenced epoch is never returned to a client.
    pub(crate) fn fence_and_abort(
        &mut self,
        transactional_id: &str,
        fresh_producer_id: &mut impl FnMut() -> Option<i64>,
        now_ms: i64,
    ) -> Prepared {
        let Some(cur) = self.get(transactional_id).cloned() else {
            return Err(TxnError::InvalidProducerIdMapping);
        };
        let version = self.cfg.transaction_version;
        let fenced = cur.producer_epoch.saturating_add(1);
        // At version 2 the completion moves to a fresh producer id when the fence used the
        // last epochs (KAFKA-20090); before, the next InitProducerId does.
        let next_producer_id = if bumps_epoch(version) && epoch_exhausted(fenced) {
            fresh_producer_id().ok_or(TxnError::ProducerIdUnavailable)?
        } else {
            NO_PRODUCER_ID
        };
        let prepared = TxnLogValue {
            producer_epoch: fenced,
            next_producer_id,
            client_version: if bumps_epoch(version) { version } else { TV_0 },
            ..transition(&cur, TxnState::PrepareAbort, now_ms)
        };
        Ok(self.prepare_end(transactional_id, prepared, NO_PRODUCER_EPOCH, now_ms))
    }

    fn last_epoch(&self, transactional_id: &str) -> i16 {
        self.entry(transactional_id)
            .map_or(NO_PRODUCER_EPOCH, |e| e.last_producer_epoch)
    }
}
