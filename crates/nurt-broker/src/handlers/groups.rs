//! Classic group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups,
//! DescribeGroups, DeleteGroups.

use nurt_group::classic::{JoinRequest, SyncRequest};
use nurt_group::{Completion, Group, GroupError};
use nurt_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use nurt_protocol::kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use nurt_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use nurt_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use nurt_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use nurt_protocol::kafka_protocol::messages::*;

use nurt_protocol::kafka_protocol::protocol::StrBytes;

use super::acl::{authorized_operations, Resource};
use super::{sb, Context};
use crate::{codes, now_ms, Broker};

/// Kafka's code for a group error.
pub fn code(e: GroupError) -> i16 {
    match e {
        GroupError::InvalidGroupId => 24,
        GroupError::UnknownMemberId => 25,
        GroupError::IllegalGeneration => 22,
        GroupError::RebalanceInProgress => 27,
        GroupError::InconsistentGroupProtocol | GroupError::GroupTypeMismatch => 23,
        GroupError::InvalidSessionTimeout => 26,
        GroupError::MemberIdRequired => 79,
        GroupError::NonEmptyGroup => 68,
        GroupError::GroupIdNotFound => 69,
        GroupError::GroupSubscribedToTopic => 86,
        GroupError::FencedInstanceId => 82,
        GroupError::FencedMemberEpoch => 110,
        GroupError::StaleMemberEpoch => 113,
        GroupError::UnsupportedAssignor => 112,
        GroupError::OffsetMetadataTooLarge => 12,
        GroupError::InvalidRequest(_) => codes::INVALID_REQUEST,
        GroupError::CoordinatorNotAvailable => codes::COORDINATOR_NOT_AVAILABLE,
        GroupError::NotCoordinator => codes::NOT_COORDINATOR,
        GroupError::InvalidRegularExpression => 128,
    }
}

fn err_code(e: Option<GroupError>) -> i16 {
    e.map_or(codes::NONE, code)
}

fn fresh_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

pub async fn join_group(broker: &Broker, ctx: &Context, r: JoinGroupRequest, version: i16) -> JoinGroupResponse {
    let group = r.group_id.0.to_string();
    let req = JoinRequest {
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|s| s.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host(),
        session_timeout_ms: r.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        },
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata.to_vec()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let fresh = fresh_member_id(&ctx.client_id);
    let now = now_ms();
    let answer = broker
        .groups
        .delayed(&group, |c, token| c.join(&group, token, req, fresh, now))
        .await;
    let j = match answer {
        Ok(Completion::Join(j)) => j,
        Ok(_) => {
            return JoinGroupResponse::default()
                .with_error_code(code(GroupError::RebalanceInProgress))
                .with_generation_id(-1)
        }
        Err(e) => {
            return JoinGroupResponse::default()
                .with_error_code(code(e))
                .with_generation_id(-1)
        }
    };
    let response = JoinGroupResponse::default()
        .with_error_code(err_code(j.error))
        .with_generation_id(j.generation_id)
        .with_protocol_name(j.protocol_name.map(sb))
        .with_leader(sb(j.leader))
        .with_member_id(sb(j.member_id))
        .with_members(
            j.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(m.member_id))
                        .with_group_instance_id(if version >= 5 {
                            m.group_instance_id.map(sb)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata.into())
                })
                .collect(),
        );
    if version >= 7 {
        response.with_protocol_type(j.protocol_type.map(sb))
    } else {
        response
    }
}

pub async fn sync_group(broker: &Broker, r: SyncGroupRequest) -> SyncGroupResponse {
    let group = r.group_id.0.to_string();
    let req = SyncRequest {
        generation_id: r.generation_id,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|s| s.to_string()),
        protocol_type: r.protocol_type.map(|s| s.to_string()),
        protocol_name: r.protocol_name.map(|s| s.to_string()),
        assignments: r
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment.to_vec()))
            .collect(),
    };
    let now = now_ms();
    let answer = broker
        .groups
        .delayed(&group, |c, token| c.sync(&group, token, req, now))
        .await;
    let s = match answer {
        Ok(Completion::Sync(s)) => s,
        Ok(_) => return SyncGroupResponse::default().with_error_code(code(GroupError::RebalanceInProgress)),
        Err(e) => return SyncGroupResponse::default().with_error_code(code(e)),
    };
    SyncGroupResponse::default()
        .with_error_code(err_code(s.error))
        .with_protocol_type(s.protocol_type.map(sb))
        .with_protocol_name(s.protocol_name.map(sb))
        .with_assignment(s.assignment.into())
}

pub fn heartbeat(broker: &Broker, r: HeartbeatRequest) -> HeartbeatResponse {
    let result = broker
        .groups
        .with_coordinator(&r.group_id.0, |c| {
            c.heartbeat(
                &r.group_id.0,
                &r.member_id,
                r.group_instance_id.as_deref(),
                r.generation_id,
                now_ms(),
            )
        })
        .and_then(|r| r);
    HeartbeatResponse::default().with_error_code(err_code(result.err()))
}

pub async fn leave_group(broker: &Broker, r: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        r.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    let now = now_ms();
    let results = broker
        .groups
        .immediate(
            &r.group_id.0,
            |c| c.leave(&r.group_id.0, &members, now),
            |e| members.iter().map(|_| Err(e)).collect(),
        )
        .await;
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(err_code(results.first().and_then(|r| r.err())));
    }
    LeaveGroupResponse::default().with_members(
        members
            .into_iter()
            .zip(results)
            .map(|((id, instance), res)| {
                MemberResponse::default()
                    .with_member_id(sb(id))
                    .with_group_instance_id(instance.map(sb))
                    .with_error_code(err_code(res.err()))
            })
            .collect(),
    )
}

pub fn list_groups(broker: &Broker, r: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = r.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = r.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut listed = Vec::new();
    broker.groups.for_each_coordinator(|c| listed.extend(c.list()));
    let groups = listed
        .into_iter()
        .filter(|(_, _, state, _)| states.is_empty() || states.contains(&state.to_lowercase()))
        .filter(|(_, _, _, ty)| types.is_empty() || types.iter().any(|t| t == ty))
        .map(|(id, protocol_type, state, ty)| {
            let g = ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb(protocol_type));
            let g = if version >= 4 { g.with_group_state(sb(state)) } else { g };
            if version >= 5 {
                g.with_group_type(sb(ty))
            } else {
                g
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub fn describe_groups(broker: &Broker, r: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let operations = authorized_operations(Resource::Group, r.include_authorized_operations);
    let groups = r
        .groups
        .iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(operations);
            broker
                .groups
                .with_coordinator(id, |coordinator| describe_group(coordinator, id, base.clone(), version))
                .unwrap_or_else(|e| base.with_error_code(code(e)))
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

fn describe_group(
    coordinator: &nurt_group::GroupCoordinator,
    id: &GroupId,
    base: DescribedGroup,
    version: i16,
) -> DescribedGroup {
    {
        {
            match coordinator.group(id) {
                Some(Group::Classic(g)) => {
                    let stable = g.state() == nurt_group::classic::ClassicState::Stable;
                    let protocol = g.protocol().unwrap_or_default().to_string();
                    let members = g
                        .members()
                        .map(|m| {
                            let (metadata, assignment) = if stable {
                                (
                                    m.protocols
                                        .iter()
                                        .find(|(n, _)| *n == protocol)
                                        .map(|(_, md)| md.clone())
                                        .unwrap_or_default(),
                                    m.assignment.clone(),
                                )
                            } else {
                                (vec![], vec![])
                            };
                            DescribedGroupMember::default()
                                .with_member_id(sb(m.member_id.clone()))
                                .with_group_instance_id(if version >= 4 {
                                    m.group_instance_id.clone().map(sb)
                                } else {
                                    None
                                })
                                .with_client_id(sb(m.client_id.clone()))
                                .with_client_host(sb(m.client_host.clone()))
                                .with_member_metadata(metadata.into())
                                .with_member_assignment(assignment.into())
                        })
                        .collect();
                    base.with_group_state(sb(g.state().name()))
                        .with_protocol_type(sb(g.protocol_type().unwrap_or_default()))
                        .with_protocol_data(sb(if stable { protocol } else { String::new() }))
                        .with_members(members)
                }
                Some(Group::Consumer(g)) => base
                    .with_group_state(sb(Group::Consumer(g.clone()).summary().1))
                    .with_protocol_type(sb("consumer"))
                    .with_members(
                        g.members()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(sb(m.member_id.clone()))
                                    .with_client_id(sb(m.client_id.clone()))
                                    .with_client_host(sb(m.client_host.clone()))
                            })
                            .collect(),
                    ),
                // Unknown ids cost no allocation each: a request may name very many.
                None if coordinator.committed_all(id).is_empty() && version >= 6 => base
                    .with_error_code(code(GroupError::GroupIdNotFound))
                    .with_group_state(StrBytes::from_static_str("Dead")),
                None if coordinator.committed_all(id).is_empty() => {
                    base.with_group_state(StrBytes::from_static_str("Dead"))
                }
                None => base.with_group_state(StrBytes::from_static_str("Empty")),
            }
        }
    }
}

pub async fn delete_groups(broker: &Broker, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(r.groups_names.len());
    for id in &r.groups_names {
        let outcome = broker
            .groups
            .write(id, |c| c.delete_group(id).map(|records| (records, ())))
            .await;
        let error = match outcome {
            Ok(Ok(())) => codes::NONE,
            Ok(Err(e)) | Err(e) => code(e),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(error),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
