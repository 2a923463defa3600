//! DescribeQuorum (the metadata quorum, answered by the active controller: brokers forward
//! it, as Kafka's do) and DescribeTopicPartitions (KIP-966: partitions with their ELR,
//! paginated by a cursor).

use nurt_protocol::kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData as QuorumPartition, ReplicaState, TopicData,
};
use nurt_protocol::kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use nurt_protocol::kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse, TopicName,
};

use super::acl::{authorized_operations, Resource};
use super::sb;
use crate::controller::{ControllerOp, OpAnswer, QuorumReplica};
use crate::{codes, Broker};

/// Kafka's name for the metadata log's topic.
const METADATA_TOPIC: &str = "__cluster_metadata";

fn replica_state(r: &QuorumReplica) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(r.replica_id))
        .with_log_end_offset(r.log_end_offset)
        .with_last_fetch_timestamp(r.last_fetch_timestamp)
        .with_last_caught_up_timestamp(r.last_caught_up_timestamp)
}

pub async fn describe_quorum(broker: &Broker, r: DescribeQuorumRequest, version: i16) -> DescribeQuorumResponse {
    let asks_metadata = r
        .topics
        .iter()
        .any(|t| t.topic_name.0.as_str() == METADATA_TOPIC && t.partitions.iter().any(|p| p.partition_index == 0));
    if !asks_metadata {
        return DescribeQuorumResponse::default()
            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
            .with_error_message((version >= 2).then(|| sb("only __cluster_metadata-0 is a quorum")));
    }
    let state = match broker.controller.submit(ControllerOp::DescribeQuorum).await {
        Ok(OpAnswer::Quorum(state)) => state,
        other => {
            return DescribeQuorumResponse::default()
                .with_error_code(codes::NOT_CONTROLLER)
                .with_error_message((version >= 2).then(|| sb(format!("no active controller answered: {other:?}"))))
        }
    };
    let partition = QuorumPartition::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(state.leader_id))
        .with_leader_epoch(state.leader_epoch)
        .with_high_watermark(state.high_watermark)
        .with_current_voters(state.voters.iter().map(replica_state).collect())
        .with_observers(state.observers.iter().map(replica_state).collect());
    let response = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(sb(METADATA_TOPIC)))
        .with_partitions(vec![partition])]);
    if version < 2 {
        return response;
    }
    // v2: the voters' endpoints (their controller listener).
    let nodes = state
        .voters
        .iter()
        .filter_map(|v| {
            let addr = broker.quorum.address_of(v.replica_id as u64)?;
            let (host, port) = crate::config::split_host_port(&addr)?;
            Some(
                Node::default()
                    .with_node_id(BrokerId(v.replica_id))
                    .with_listeners(vec![Listener::default()
                        .with_name(sb(crate::config::INTERNAL_LISTENER))
                        .with_host(sb(host))
                        .with_port(u16::try_from(port).unwrap_or(0))]),
            )
        })
        .collect();
    response.with_nodes(nodes)
}

/// DescribeTopicPartitions: the topics named (or all, by name), each partition with its
/// leader, epochs, replicas, ISR, eligible leader replicas and offline replicas; at most
/// `response_partition_limit` partitions per answer, continued from `cursor`.
pub fn describe_topic_partitions(
    broker: &Broker,
    r: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = broker.image();
    let limit = r.response_partition_limit.clamp(1, 2_000) as usize;
    let start = r
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let mut names: Vec<String> = if r.topics.is_empty() {
        image.topics().map(|t| t.name.clone()).collect()
    } else {
        r.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let operations = authorized_operations(Resource::Topic, false);
    let ids = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
    let mut left = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if start.as_ref().is_some_and(|(t, _)| name < *t) {
            continue;
        }
        let Some(info) = image.topic(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                    .with_name(Some(TopicName(sb(name)))),
            );
            continue;
        };
        let first = match &start {
            Some((t, p)) if *t == name => *p,
            _ => 0,
        };
        let mut partitions = Vec::new();
        for (&i, p) in info.partitions.range(first..) {
            if left == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(sb(name.clone())))
                        .with_partition_index(i),
                );
                break;
            }
            left -= 1;
            let offline: Vec<i32> = p.replicas.iter().copied().filter(|&r| !image.is_live(r)).collect();
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(i)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr))
                    .with_eligible_leader_replicas(Some(ids(&p.elr)))
                    .with_last_known_elr(Some(vec![]))
                    .with_offline_replicas(ids(&offline)),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(sb(name.clone()))))
                .with_topic_id(uuid::Uuid::from_bytes(info.topic_id))
                .with_is_internal(name.starts_with("__"))
                .with_partitions(partitions)
                .with_topic_authorized_operations(operations),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
