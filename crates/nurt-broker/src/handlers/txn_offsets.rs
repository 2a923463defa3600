//! TxnOffsetCommit (KIP-98; member fields KIP-447): a transactional producer's
//! `send_offsets_to_transaction`. The offsets are written to the group's `__consumer_offsets`
//! partition as one transactional batch of the producer and stay pending (invisible to
//! OffsetFetch, UNSTABLE_OFFSET_COMMIT with `require_stable`) until the transaction
//! coordinator's marker reaches that partition (`GroupService::on_txn_marker`).

use nurt_group::coordinator::Committer;
use nurt_group::GroupError;
use nurt_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use nurt_protocol::kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::groups::code;
use super::offsets::{commit_answer, requested_commits};
use crate::group_service::TxnWriteError;
use crate::{now_ms, Broker};

/// Kafka's INVALID_PRODUCER_EPOCH: what its log answers a coordinator's append from an
/// older producer epoch.
const INVALID_PRODUCER_EPOCH: i16 = 47;

pub async fn txn_offset_commit(broker: &Broker, r: TxnOffsetCommitRequest, version: i16) -> TxnOffsetCommitResponse {
    // Kafka (KafkaApis) answers UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist
    // and sends only the others to the coordinator; with none left it does not call it.
    let (requested, commits) = requested_commits(broker, r.topics.iter().map(|t| (&t.name, t.partitions.as_slice())));
    // v0-v2 carry no member: Kafka reads them as generation -1 without member id.
    let committer = if version >= 3 {
        Committer::new(&r.member_id, r.group_instance_id.as_deref(), r.generation_id)
    } else {
        Committer::new("", None, -1)
    };
    let outcome = if commits.is_empty() {
        Ok(Vec::new())
    } else if r.group_id.0.is_empty() {
        Err(code(GroupError::InvalidGroupId))
    } else {
        let now = now_ms();
        let group_id = r.group_id.0.to_string();
        let outcome = broker
            .groups
            .write_transactional(&group_id, r.producer_id.0, r.producer_epoch, |c| {
                c.txn_commit_offsets(&group_id, committer, commits, now)
            })
            .await;
        match outcome {
            Ok(Ok(errors)) => Ok(errors),
            Ok(Err(e)) | Err(TxnWriteError::Group(e)) => Err(code(e)),
            Err(TxnWriteError::InvalidProducerEpoch) => Err(INVALID_PRODUCER_EPOCH),
        }
    };
    let topics = commit_answer(
        requested,
        outcome,
        |name, partitions| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        },
        |index, code| {
            TxnOffsetCommitResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(code)
        },
    );
    TxnOffsetCommitResponse::default().with_topics(topics)
}
