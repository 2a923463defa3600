//! KIP-848: ConsumerGroupHeartbeat and ConsumerGroupDescribe.

use std::collections::BTreeMap;

use nurt_group::consumer::HeartbeatRequest;
use nurt_group::{Group, Output, TopicId};
use nurt_protocol::kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, DescribedGroup, Member,
};
use nurt_protocol::kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use nurt_protocol::kafka_protocol::messages::*;

use super::acl::{authorized_operations, Resource};
use super::groups::code;
use super::{sb, Context};
use crate::{now_ms, Broker};

/// Every topic's id and partition count, as assignors need them.
fn topic_view(broker: &Broker) -> BTreeMap<String, (TopicId, i32)> {
    broker
        .image()
        .topics()
        .map(|t| (t.name.clone(), (t.topic_id, t.partitions.len() as i32)))
        .collect()
}

/// The answer goes out once the group state it changed is on every in-sync replica of the
/// group's `__consumer_offsets` partition (the group state is records, as in Kafka).
pub async fn consumer_group_heartbeat(
    broker: &Broker,
    ctx: &Context,
    r: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let req = HeartbeatRequest {
        member_id: r.member_id.to_string(),
        member_epoch: r.member_epoch,
        instance_id: r.instance_id.map(|s| s.to_string()),
        rack_id: r.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        subscribed_topic_names: r
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: r.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: r.server_assignor.map(|s| s.to_string()),
        owned: r.topic_partitions.map(|tps| {
            tps.into_iter()
                .map(|tp| (*tp.topic_id.as_bytes(), tp.partitions))
                .collect()
        }),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host(),
    };
    let topics = topic_view(broker);
    let fresh = uuid::Uuid::new_v4().to_string();
    let answer = broker
        .groups
        .immediate(
            &r.group_id.0,
            |c| {
                let (answer, records) = c.consumer_heartbeat(&r.group_id.0, req, &topics, fresh, now_ms());
                let output = Output {
                    completions: Vec::new(),
                    records,
                };
                (Ok(answer), output)
            },
            Err,
        )
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            return ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code(e))
                .with_error_message(Some(sb(e.to_string())))
        }
    };
    let response = ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(sb(answer.member_id)))
        .with_member_epoch(answer.member_epoch)
        .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
        .with_assignment(answer.assignment.map(|a| {
            Assignment::default().with_topic_partitions(
                a.into_iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(uuid::Uuid::from_bytes(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            )
        }));
    match answer.error {
        Some(e) => response
            .with_error_code(code(e))
            .with_error_message(Some(sb(e.to_string()))),
        None => response,
    }
}

pub fn consumer_group_describe(broker: &Broker, r: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let names: BTreeMap<TopicId, String> = broker.image().topics().map(|t| (t.topic_id, t.name.clone())).collect();
    let to_assignment = |parts: Vec<(TopicId, Vec<i32>)>| {
        describe::Assignment::default().with_topic_partitions(
            parts
                .into_iter()
                .map(|(t, ps)| {
                    describe::TopicPartitions::default()
                        .with_topic_id(uuid::Uuid::from_bytes(t))
                        .with_topic_name(TopicName(sb(names.get(&t).cloned().unwrap_or_default())))
                        .with_partitions(ps)
                })
                .collect(),
        )
    };
    let operations = authorized_operations(Resource::Group, r.include_authorized_operations);
    let groups = r
        .group_ids
        .iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(operations);
            let group = broker.groups.with_coordinator(id, |c| c.group(id).cloned());
            let group = match group {
                Ok(g) => g,
                Err(e) => return base.with_error_code(code(e)),
            };
            match group.as_ref() {
                Some(Group::Consumer(g)) => {
                    let members = g
                        .members()
                        .map(|m| {
                            let mut current: BTreeMap<TopicId, Vec<i32>> = BTreeMap::new();
                            for (t, p) in &m.assigned {
                                current.entry(*t).or_default().push(*p);
                            }
                            Member::default()
                                .with_member_id(sb(m.member_id.clone()))
                                .with_instance_id(m.instance_id.clone().map(sb))
                                .with_rack_id(m.rack_id.clone().map(sb))
                                .with_member_epoch(m.epoch)
                                .with_client_id(sb(m.client_id.clone()))
                                .with_client_host(sb(m.client_host.clone()))
                                .with_subscribed_topic_names(
                                    m.subscribed.iter().map(|t| TopicName(sb(t.clone()))).collect(),
                                )
                                .with_subscribed_topic_regex(m.regex.as_ref().map(|r| {
                                    // Stored anchored (`^(?:re)$`); described as given.
                                    let s = r.as_str();
                                    sb(s.strip_prefix("^(?:")
                                        .and_then(|s| s.strip_suffix(")$"))
                                        .unwrap_or(s)
                                        .to_string())
                                }))
                                .with_assignment(to_assignment(current.into_iter().collect()))
                                .with_target_assignment(to_assignment(g.target_of(&m.member_id)))
                        })
                        .collect();
                    base.with_group_state(sb(g.state_name()))
                        .with_group_epoch(g.epoch)
                        .with_assignment_epoch(g.assignment_epoch)
                        .with_assignor_name(sb(g
                            .members()
                            .find_map(|m| m.assignor.clone())
                            .unwrap_or_else(|| nurt_group::assignor::ASSIGNORS[0].to_string())))
                        .with_members(members)
                }
                Some(Group::Classic(_)) => base
                    .with_error_code(code(nurt_group::GroupError::GroupIdNotFound))
                    .with_error_message(Some(sb(format!("group {} is a classic group", id.0)))),
                None => base
                    .with_error_code(code(nurt_group::GroupError::GroupIdNotFound))
                    .with_error_message(Some(sb(format!("group {} not found", id.0)))),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
