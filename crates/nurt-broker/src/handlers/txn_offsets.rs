//! TxnOffsetCommit (KIP-98; member fields KIP-447): a transactional producer's
//! `send_offsets_to_transaction`. The offsets are written to the group's `__consumer_offsets`
//! partition as one transactional batch of the producer and stay pending (invisible to
//! OffsetFetch, UNSTABLE_OFFSET_COMMIT with `require_stable`) until the transaction
//! coordinator's marker reaches that partition (`GroupService::on_txn_marker`).

use nurt_group::coordinator::OffsetCommit;
use nurt_group::GroupError;
use nurt_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use nurt_protocol::kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::groups::code;
use crate::group_service::TxnWriteError;
use crate::{codes, now_ms, Broker};

/// Kafka's INVALID_PRODUCER_EPOCH: what its log answers a coordinator's append from an
/// older producer epoch.
const INVALID_PRODUCER_EPOCH: i16 = 47;

pub async fn txn_offset_commit(broker: &Broker, r: TxnOffsetCommitRequest, version: i16) -> TxnOffsetCommitResponse {
    // Kafka (KafkaApis) answers UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist
    // and sends only the others to the coordinator; with none left it does not call it.
    let known: Vec<Vec<bool>> = {
        let image = broker.image();
        r.topics
            .iter()
            .map(|t| {
                let topic = image.topic(&t.name.0);
                t.partitions
                    .iter()
                    .map(|p| topic.is_some_and(|info| info.partitions.contains_key(&p.partition_index)))
                    .collect()
            })
            .collect()
    };
    let commits: Vec<OffsetCommit> = r
        .topics
        .iter()
        .zip(&known)
        .flat_map(|(t, known)| {
            t.partitions
                .iter()
                .zip(known)
                .filter(|(_, k)| **k)
                .map(|(p, _)| OffsetCommit {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                })
        })
        .collect();
    // v0-v2 carry no member: Kafka reads them as generation -1 without member id.
    let (generation, member_id, instance) = if version >= 3 {
        (
            r.generation_id,
            r.member_id.to_string(),
            r.group_instance_id.as_ref().map(|s| s.to_string()),
        )
    } else {
        (-1, String::new(), None)
    };
    let mut per_partition: Box<dyn Iterator<Item = i16>> = if commits.is_empty() {
        Box::new(std::iter::empty())
    } else if r.group_id.0.is_empty() {
        Box::new(std::iter::repeat(code(GroupError::InvalidGroupId)))
    } else {
        let now = now_ms();
        let group_id = r.group_id.0.to_string();
        let outcome = broker
            .groups
            .write_transactional(&group_id, r.producer_id.0, r.producer_epoch, |c| {
                c.txn_commit_offsets(&group_id, &member_id, instance.as_deref(), generation, commits, now)
            })
            .await;
        match outcome {
            Ok(Ok(errors)) => Box::new(
                errors
                    .into_iter()
                    .map(|e| e.map_or(codes::NONE, code))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Ok(Err(e)) | Err(TxnWriteError::Group(e)) => Box::new(std::iter::repeat(code(e))),
            Err(TxnWriteError::InvalidProducerEpoch) => Box::new(std::iter::repeat(INVALID_PRODUCER_EPOCH)),
        }
    };
    let topics = r
        .topics
        .into_iter()
        .zip(known)
        .map(|(t, known)| {
            let partitions = t
                .partitions
                .iter()
                .zip(known)
                .map(|(p, known)| {
                    let code = if known {
                        per_partition.next().unwrap_or(codes::NONE)
                    } else {
                        codes::UNKNOWN_TOPIC_OR_PARTITION
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
