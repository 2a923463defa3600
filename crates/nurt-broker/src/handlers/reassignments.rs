//! Partition operations: ElectLeaders (preferred or unclean), AlterPartitionReassignments and
//! ListPartitionReassignments. Decisions are the controller's (`nurt-metadata`); this module
//! turns requests into controller ops and the image into answers.

use std::time::Duration;

use nurt_protocol::kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use nurt_protocol::kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use nurt_protocol::kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use nurt_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId, ElectLeadersRequest,
    ElectLeadersResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::sb;
use crate::controller::{ControllerOp, OpAnswer, OpError};
use crate::{codes, Broker};

/// What a request's `timeout_ms` gives the controller (at least a second).
fn timeout(timeout_ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0).max(1_000))
}

/// Per-item outcomes of an op, or the op's failure for each item.
async fn run_items(broker: &Broker, op: ControllerOp, n: usize, timeout_ms: i32) -> Vec<Result<(), OpError>> {
    match broker.controller.submit_within(op, timeout(timeout_ms)).await {
        Ok(OpAnswer::Items(items)) if items.len() == n => items,
        Ok(other) => vec![
            Err(OpError::new(
                codes::UNKNOWN_SERVER_ERROR,
                format!("unexpected answer {other:?}")
            ));
            n
        ],
        Err(e) => vec![Err(OpError::new(codes::REQUEST_TIMED_OUT, e.to_string())); n],
    }
}

/// ElectLeaders: election type 0 (preferred) or 1 (unclean); no partitions named means every
/// partition whose leader is not its preferred replica (Kafka's `all partitions`).
pub async fn elect_leaders(broker: &Broker, r: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    let election_type = if version >= 1 { r.election_type } else { 0 };
    let wanted: Vec<(String, i32)> = match r.topic_partitions {
        Some(topics) => topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect(),
        None => {
            let image = broker.image();
            image
                .topics()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .filter(|(_, p)| p.replicas.first() != Some(&p.leader))
                        .map(|(&i, _)| (t.name.clone(), i))
                })
                .collect()
        }
    };
    let op = ControllerOp::ElectLeaders {
        election_type,
        partitions: wanted.clone(),
    };
    let outcomes = run_items(broker, op, wanted.len(), r.timeout_ms).await;
    let mut by_topic: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, partition), outcome) in wanted.into_iter().zip(outcomes) {
        let (code, message) = match outcome {
            Ok(()) => (codes::NONE, None),
            Err(e) => (e.code, Some(sb(e.message))),
        };
        let result = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message);
        match by_topic.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partition_result.push(result),
            None => by_topic.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(sb(topic)))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(by_topic)
}

/// AlterPartitionReassignments: each partition gets its target replicas (or `null`: the
/// reassignment in progress is cancelled). The controller adds the new replicas, and once
/// they are in sync removes the old ones (ListPartitionReassignments shows it meanwhile).
pub async fn alter_reassignments(
    broker: &Broker,
    r: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let may_change_rf = version < 1 || r.allow_replication_factor_change;
    let mut items = Vec::new();
    let mut early: Vec<Option<OpError>> = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            let target: Option<Vec<i32>> = p.replicas.as_ref().map(|rs| rs.iter().map(|b| b.0).collect());
            let current = broker
                .image()
                .partition(&t.name, p.partition_index)
                .map(|c| c.replicas.len());
            let refused = match (&target, current) {
                (_, None) => Some(OpError::new(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    "unknown topic or partition",
                )),
                (Some(target), Some(n)) if !may_change_rf && target.len() != n => Some(OpError::new(
                    codes::INVALID_REPLICATION_FACTOR,
                    "the reassignment would change the replication factor, which the request does not allow",
                )),
                _ => None,
            };
            if refused.is_none() {
                items.push((t.name.to_string(), p.partition_index, target));
            }
            early.push(refused);
        }
    }
    let n = items.len();
    let mut outcomes = run_items(broker, ControllerOp::Reassign { items }, n, r.timeout_ms)
        .await
        .into_iter();
    let mut early = early.into_iter();
    let responses = r
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let outcome = match early.next().flatten() {
                        Some(e) => Err(e),
                        None => outcomes.next().unwrap_or(Ok(())),
                    };
                    let (code, message) = match outcome {
                        Ok(()) => (codes::NONE, None),
                        Err(e) => (e.code, Some(sb(e.message))),
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_error_message(message)
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default().with_responses(responses)
}

/// ListPartitionReassignments: the partitions being reassigned (of the topics named, or all).
pub fn list_reassignments(broker: &Broker, r: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let image = broker.image();
    let wanted: Option<Vec<(String, Vec<i32>)>> = r.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let ids = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
    let topics = image
        .topics()
        .filter_map(|t| {
            let only: Option<&Vec<i32>> = match &wanted {
                None => None,
                Some(w) => Some(&w.iter().find(|(n, _)| *n == t.name)?.1),
            };
            let partitions: Vec<OngoingPartitionReassignment> = t
                .partitions
                .iter()
                .filter(|(i, p)| p.is_reassigning() && only.is_none_or(|o| o.contains(i)))
                .map(|(&i, p)| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(i)
                        .with_replicas(ids(&p.replicas))
                        .with_adding_replicas(ids(&p.adding_replicas))
                        .with_removing_replicas(ids(&p.removing_replicas))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(sb(t.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
