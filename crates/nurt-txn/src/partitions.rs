//! AddPartitionsToTxn and AddOffsetsToTxn: partitions join the transaction (starting it when
//! none is open), and the verification of KIP-890 part 1 that partition leaders ask before
//! they accept a transactional write ("is this partition in the ongoing transaction of this
//! producer id and epoch?"), which changes nothing.

use crate::coordinator::transition;
use crate::record::{Partitions, TxnLogValue, TxnState};
use crate::{Output, TxnCoordinator, TxnError, OFFSETS_TOPIC};

/// One partition's verification result.
pub type Verified = Vec<((String, i32), Result<(), TxnError>)>;

fn contains_all(have: &Partitions, want: &Partitions) -> bool {
    want.iter()
        .all(|(topic, ids)| have.get(topic).is_some_and(|h| ids.is_subset(h)))
}

impl TxnCoordinator {
    /// AddPartitionsToTxn (v0-3 from clients; v4+ from partition leaders adding on behalf of
    /// a transaction version 2 client). `client_version` is the transaction version the
    /// request speaks. One answer for all partitions, as Kafka gives.
    #[allow(clippy::too_many_arguments)]
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &Partitions,
        client_version: i16,
        now_ms: i64,
    ) -> Output<Result<(), TxnError>> {
        if transactional_id.is_empty() {
            return Output::answer(Err(TxnError::InvalidRequest("empty transactional id")));
        }
        let Some(entry) = self.entry(transactional_id) else {
            return Output::answer(Err(TxnError::InvalidProducerIdMapping));
        };
        let (cur, last) = (&entry.value, entry.last_producer_epoch);
        // A version 2 producer whose epochs ran out was given the next producer id as soon as
        // its end was prepared: it must wait for the markers, not be told it is unknown.
        if cur.state.is_prepare() && producer_id == cur.next_producer_id {
            return Output::answer(Err(TxnError::ConcurrentTransactions));
        }
        if cur.producer_id != producer_id {
            return Output::answer(Err(TxnError::InvalidProducerIdMapping));
        }
        if cur.producer_epoch != producer_epoch {
            return Output::answer(Err(TxnError::ProducerFenced));
        }
        if cur.state.is_prepare() || cur.state == TxnState::PrepareEpochFence {
            return Output::answer(Err(TxnError::ConcurrentTransactions));
        }
        if cur.state == TxnState::Ongoing && contains_all(&cur.partitions, partitions) {
            return Output::answer(Ok(()));
        }
        let mut value = TxnLogValue {
            client_version,
            ..transition(cur, TxnState::Ongoing, now_ms)
        };
        if cur.state != TxnState::Ongoing {
            value.start_ms = now_ms;
        }
        for (topic, ids) in partitions {
            value.partitions.entry(topic.clone()).or_default().extend(ids);
        }
        let record = self.persist(transactional_id, value, last);
        Output {
            response: Ok(()),
            records: vec![record],
            markers: None,
        }
    }

    /// AddOffsetsToTxn: adds the `__consumer_offsets` partition of `group_id`, which
    /// `offsets_partition` computes (the group coordinator's partitioning).
    #[allow(clippy::too_many_arguments)]
    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
        offsets_partition: impl Fn(&str) -> i32,
        client_version: i16,
        now_ms: i64,
    ) -> Output<Result<(), TxnError>> {
        let partitions = Partitions::from([(OFFSETS_TOPIC.to_string(), [offsets_partition(group_id)].into())]);
        self.add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            &partitions,
            client_version,
            now_ms,
        )
    }

    /// AddPartitionsToTxn v4+ with `VerifyOnly` (KIP-890 part 1): whether each partition is
    /// in the ongoing transaction of `producer_id`/`producer_epoch`. An error for the whole
    /// transaction applies to every partition.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &Partitions,
    ) -> Result<Verified, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest("empty transactional id"));
        }
        let cur = self.get(transactional_id).ok_or(TxnError::InvalidProducerIdMapping)?;
        if cur.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if cur.producer_epoch != producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        if cur.state.is_prepare() {
            return Err(TxnError::ConcurrentTransactions);
        }
        let verdict = |topic: &String, p: i32| {
            let known = cur.partitions.get(topic).is_some_and(|ids| ids.contains(&p));
            known.then_some(()).ok_or(TxnError::PartitionNotInTransaction)
        };
        Ok(partitions
            .iter()
            .flat_map(|(topic, ids)| ids.iter().map(move |p| ((topic.clone(), *p), verdict(topic, *p))))
            .collect())
    }
}
