//! OffsetCommit, OffsetFetch and OffsetDelete.

use nurt_group::coordinator::{Committer, OffsetCommit};
use nurt_group::GroupError;
use nurt_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use nurt_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use nurt_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use nurt_protocol::kafka_protocol::messages::*;

use super::groups::code;
use super::sb;
use crate::{codes, now_ms, Broker};

/// A partition of an OffsetCommit or TxnOffsetCommit request (the same fields).
pub(super) trait CommitPartition {
    fn commit(&self, topic: &TopicName) -> OffsetCommit;
    fn index(&self) -> i32;
}

macro_rules! commit_partition {
    ($($partition:ty),*) => {$(
        impl CommitPartition for $partition {
            fn commit(&self, topic: &TopicName) -> OffsetCommit {
                OffsetCommit {
                    topic: topic.0.to_string(),
                    partition: self.partition_index,
                    offset: self.committed_offset,
                    leader_epoch: self.committed_leader_epoch,
                    metadata: self.committed_metadata.as_ref().map(|m| m.to_string()),
                }
            }

            fn index(&self) -> i32 {
                self.partition_index
            }
        }
    )*};
}

commit_partition!(
    offset_commit_request::OffsetCommitRequestPartition,
    txn_offset_commit_request::TxnOffsetCommitRequestPartition
);

/// The partitions of an (Txn)OffsetCommit request, topic by topic, each with whether it
/// exists here.
pub(super) type Requested = Vec<(TopicName, Vec<(i32, bool)>)>;

/// The partitions a commit request names, and the commits of those that exist. Kafka
/// answers UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist, and stores nothing
/// for them.
pub(super) fn requested_commits<'a, P: CommitPartition + 'a>(
    broker: &Broker,
    topics: impl IntoIterator<Item = (&'a TopicName, &'a [P])>,
) -> (Requested, Vec<OffsetCommit>) {
    let image = broker.image();
    let mut commits = Vec::new();
    let requested = topics
        .into_iter()
        .map(|(name, partitions)| {
            let topic = image.topic(&name.0);
            let partitions = partitions
                .iter()
                .map(|p| {
                    let known = topic.is_some_and(|info| info.partitions.contains_key(&p.index()));
                    if known {
                        commits.push(p.commit(name));
                    }
                    (p.index(), known)
                })
                .collect();
            (name.clone(), partitions)
        })
        .collect();
    (requested, commits)
}

/// The answer to a commit request: per known partition, in order, the coordinator's code
/// (or `outcome`'s one code for all), UNKNOWN_TOPIC_OR_PARTITION for the others; shaped by
/// `topic` and `partition` into the response's types.
pub(super) fn commit_answer<T, P>(
    requested: Requested,
    outcome: Result<Vec<Option<GroupError>>, i16>,
    topic: impl Fn(TopicName, Vec<P>) -> T,
    partition: impl Fn(i32, i16) -> P,
) -> Vec<T> {
    let mut per_partition: Box<dyn Iterator<Item = i16>> = match outcome {
        Ok(errors) => Box::new(
            errors
                .into_iter()
                .map(|e| e.map_or(codes::NONE, code))
                .collect::<Vec<_>>()
                .into_iter(),
        ),
        Err(code) => Box::new(std::iter::repeat(code)),
    };
    requested
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, known)| {
                    let code = if known {
                        per_partition.next().unwrap_or(codes::NONE)
                    } else {
                        codes::UNKNOWN_TOPIC_OR_PARTITION
                    };
                    partition(index, code)
                })
                .collect();
            topic(name, partitions)
        })
        .collect()
}

pub async fn offset_commit(broker: &Broker, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let (requested, commits) = requested_commits(broker, r.topics.iter().map(|t| (&t.name, t.partitions.as_slice())));
    let now = now_ms();
    let committer = Committer::new(
        &r.member_id,
        r.group_instance_id.as_deref(),
        r.generation_id_or_member_epoch,
    );
    let outcome = broker
        .groups
        .write(&r.group_id.0, |c| {
            c.commit_offsets(&r.group_id.0, committer, commits, now)
        })
        .await;
    // One code for every known partition, or per-partition codes from the coordinator.
    let outcome = match outcome {
        Ok(Ok(errors)) => Ok(errors),
        Ok(Err(e)) | Err(e) => Err(code(e)),
    };
    let topics = commit_answer(
        requested,
        outcome,
        |name, partitions| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        },
        |index, code| {
            OffsetCommitResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(code)
        },
    );
    OffsetCommitResponse::default().with_topics(topics)
}

/// Kafka's UNSTABLE_OFFSET_COMMIT (KIP-447): an open transaction has a pending offset for
/// the partition, and the fetch asked for stable offsets only.
const UNSTABLE_OFFSET_COMMIT: i16 = 88;

/// A topic's partitions with their (offset, leader epoch, metadata, error code).
type Committed = Vec<(String, Vec<(i32, i64, i32, String, i16)>)>;

/// The committed offsets of `group` for `topics` (every committed partition when `None`);
/// partitions with nothing committed get Kafka's (-1, -1, ""). Pending transactional
/// offsets are never returned; with `require_stable` (OffsetFetch v7+) a partition that has
/// one is answered UNSTABLE_OFFSET_COMMIT with (-1, -1, ""), as Kafka's
/// `OffsetMetadataManager.fetchOffsets` does.
fn committed(
    c: &nurt_group::GroupCoordinator,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Committed {
    let topics = topics.unwrap_or_else(|| {
        let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
        for ((t, p), _) in c.committed_all(group) {
            by_topic.entry(t).or_default().push(p);
        }
        by_topic
            .into_iter()
            .map(|(t, mut ps)| {
                ps.sort_unstable();
                (t, ps)
            })
            .collect()
    });
    topics
        .into_iter()
        .map(|(t, ps)| {
            let parts = ps
                .into_iter()
                .map(|p| {
                    if require_stable && c.has_pending_offset(group, &t, p) {
                        return (p, -1, -1, String::new(), UNSTABLE_OFFSET_COMMIT);
                    }
                    c.committed(group, &t, p)
                        .map_or((p, -1, -1, String::new(), codes::NONE), |v| {
                            (p, v.offset, v.leader_epoch, v.metadata.clone(), codes::NONE)
                        })
                })
                .collect();
            (t, parts)
        })
        .collect()
}

pub fn offset_fetch(broker: &Broker, r: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let require_stable = version >= 7 && r.require_stable;
    if version >= 8 {
        let groups = r
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let found = broker
                    .groups
                    .with_coordinator(&g.group_id.0, |c| committed(c, &g.group_id.0, wanted, require_stable));
                let found = match found {
                    Ok(found) => found,
                    Err(e) => {
                        return OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(code(e))
                    }
                };
                let topics = found
                    .into_iter()
                    .map(|(t, parts)| {
                        let partitions = parts
                            .into_iter()
                            .map(|(p, offset, epoch, metadata, error)| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(sb(metadata)))
                                    .with_error_code(error)
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = r.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let found = match broker
        .groups
        .with_coordinator(&r.group_id.0, |c| committed(c, &r.group_id.0, wanted, require_stable))
    {
        Ok(found) => found,
        Err(e) => return OffsetFetchResponse::default().with_error_code(code(e)),
    };
    let topics = found
        .into_iter()
        .map(|(t, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, offset, epoch, metadata, error)| {
                    let part = OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_metadata(Some(sb(metadata)))
                        .with_error_code(error);
                    if version >= 5 {
                        part.with_committed_leader_epoch(epoch)
                    } else {
                        part
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(sb(t)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub async fn offset_delete(broker: &Broker, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let mut top_error = codes::NONE;
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        {
            let partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            let outcome = broker
                .groups
                .write(&r.group_id.0, |c| {
                    c.delete_offsets(&r.group_id.0, &t.name.0, &partitions)
                        .map(|records| (records, ()))
                })
                .await;
            let error = match outcome {
                Ok(Ok(())) => codes::NONE,
                Ok(Err(nurt_group::GroupError::GroupIdNotFound)) => {
                    top_error = code(nurt_group::GroupError::GroupIdNotFound);
                    codes::NONE
                }
                Ok(Err(e)) | Err(e) => code(e),
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error)
                })
                .collect();
            topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
    }
    if top_error != codes::NONE {
        return OffsetDeleteResponse::default().with_error_code(top_error);
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
