//! Controller operations: validate against the image, return the records that make the change.
//!
//! Nothing here mutates the image or touches a file; ids and the broker list come in as
//! arguments so tests (and a future Raft state machine) control them.

pub mod brokers;
pub mod partitions;
pub mod placement;

pub use placement::{Candidate, Seeds};

use std::collections::BTreeMap;

use crate::config::validate_topic_config;
use crate::record::{ConfigResourceType, PartitionRecord};
use crate::{MetadataError, MetadataImage, MetadataRecord, TopicId};

/// Kafka's longest legal topic name.
pub const TOPIC_NAME_MAX_CHARS: usize = 249;

/// Checks a topic name as Kafka does: 1-249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let bad = |reason: &str| {
        Err(MetadataError::InvalidTopicName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > TOPIC_NAME_MAX_CHARS {
        return bad("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The most records one user operation may write (Kafka's `MAX_RECORDS_PER_USER_OP`): a
/// CreateTopics or CreatePartitions asking for more partitions is refused (POLICY_VIOLATION).
pub const RECORDS_PER_USER_OP_MAX: usize = 10_000;

/// Where a new topic's (or new partitions') replicas go.
#[derive(Debug, Clone)]
pub enum Assignment {
    /// Placed by the controller over `brokers` (Kafka's rack-aware assignment).
    Auto {
        replication_factor: i32,
        brokers: Vec<Candidate>,
        seeds: Seeds,
    },
    /// Given by the client: replicas per partition, in partition order.
    Manual(Vec<Vec<i32>>),
}

/// A CreateTopics entry, after defaults (-1) are resolved by the caller.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub assignment: Assignment,
    pub configs: Vec<(String, String)>,
}

/// Replicas for partitions `first..first + count` as `assignment` says, each replica set
/// checked (distinct registered brokers, one replication factor for all).
fn place(
    image: &MetadataImage,
    assignment: &Assignment,
    first: i32,
    count: i32,
) -> Result<Vec<Vec<i32>>, MetadataError> {
    if count <= 0 {
        return Err(MetadataError::InvalidPartitions(first + count));
    }
    if count as usize > RECORDS_PER_USER_OP_MAX {
        return Err(MetadataError::TooManyPartitions {
            requested: count as usize,
            max: RECORDS_PER_USER_OP_MAX,
        });
    }
    match assignment {
        Assignment::Auto {
            replication_factor,
            brokers,
            seeds,
        } => placement::assign(brokers, first, count, *replication_factor, *seeds),
        Assignment::Manual(replicas) => {
            if replicas.len() != count as usize {
                return Err(MetadataError::InvalidReplicaAssignment);
            }
            let rf = replicas.first().map_or(0, Vec::len);
            for r in replicas {
                let mut seen = std::collections::BTreeSet::new();
                let ok =
                    r.len() == rf && !r.is_empty() && r.iter().all(|b| seen.insert(*b) && image.broker(*b).is_some());
                if !ok {
                    return Err(MetadataError::InvalidReplicaAssignment);
                }
            }
            Ok(replicas.clone())
        }
    }
}

/// The partition records for `replicas` (partition `first` onwards): every replica in sync,
/// the first live one leading.
fn partition_records(
    image: &MetadataImage,
    topic_id: TopicId,
    first: i32,
    replicas: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> + '_ {
    replicas.into_iter().enumerate().map(move |(i, replicas)| {
        // Before any broker registered (a brand-new single node), the first replica leads.
        let leader = if image.brokers().next().is_none() {
            replicas[0]
        } else {
            partitions::choose_leader(&replicas, &replicas, |b| image.is_live(b), false)
        };
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: first + i as i32,
            isr: replicas.clone(),
            replicas,
            elr: vec![],
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: vec![],
            removing_replicas: vec![],
        })
    })
}

/// The records that create `topic` with id `topic_id`.
pub fn create_topic(
    image: &MetadataImage,
    topic: &NewTopic,
    topic_id: TopicId,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    validate_topic_name(&topic.name)?;
    if image.topic(&topic.name).is_some() {
        return Err(MetadataError::TopicExists(topic.name.clone()));
    }
    if let Some(existing) = image.colliding_topic(&topic.name) {
        return Err(MetadataError::InvalidTopicName {
            name: topic.name.clone(),
            reason: format!("collides with existing topic: {existing}"),
        });
    }
    if topic.num_partitions <= 0 {
        return Err(MetadataError::InvalidPartitions(topic.num_partitions));
    }
    for (k, v) in &topic.configs {
        validate_topic_config(k, v)?;
    }
    let replicas = place(image, &topic.assignment, 0, topic.num_partitions)?;
    let mut records = vec![MetadataRecord::Topic {
        name: topic.name.clone(),
        topic_id,
    }];
    records.extend(partition_records(image, topic_id, 0, replicas));
    records.extend(topic.configs.iter().map(|(k, v)| MetadataRecord::TopicConfig {
        topic_id,
        key: k.clone(),
        value: Some(v.clone()),
    }));
    Ok(records)
}

/// `max.partitions.per.broker`: refuses new partitions (the `Partition` records of a
/// CreateTopics or CreatePartitions) that would give any broker more than `max` partition
/// replicas, counting what the image already places there. Checked before anything is
/// written, so a refused request leaves nothing behind (POLICY_VIOLATION).
pub fn check_partitions_per_broker(
    image: &MetadataImage,
    records: &[MetadataRecord],
    max: usize,
) -> Result<(), MetadataError> {
    let mut added: BTreeMap<i32, usize> = BTreeMap::new();
    for r in records {
        if let MetadataRecord::Partition(p) = r {
            for &b in &p.replicas {
                *added.entry(b).or_default() += 1;
            }
        }
    }
    if added.is_empty() {
        return Ok(());
    }
    let mut hosted: BTreeMap<i32, usize> = BTreeMap::new();
    for p in image.topics().flat_map(|t| t.partitions.values()) {
        for b in p.replicas.iter().filter(|b| added.contains_key(b)) {
            *hosted.entry(*b).or_default() += 1;
        }
    }
    for (broker, n) in added {
        let would_host = hosted.get(&broker).copied().unwrap_or(0) + n;
        if would_host > max {
            return Err(MetadataError::TooManyPartitionsOnBroker {
                broker,
                would_host,
                max,
            });
        }
    }
    Ok(())
}

/// The records that delete topic `name`.
pub fn delete_topic(image: &MetadataImage, name: &str) -> Result<Vec<MetadataRecord>, MetadataError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    Ok(vec![MetadataRecord::RemoveTopic {
        topic_id: topic.topic_id,
    }])
}

/// The records that grow topic `name` to `total` partitions (never shrink, as in Kafka). An
/// automatic assignment uses the topic's replication factor, whatever it was given.
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    total: i32,
    assignment: Assignment,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    let current = topic.partitions.len() as i32;
    if total <= current {
        return Err(MetadataError::InvalidPartitions(total));
    }
    let assignment = match assignment {
        Assignment::Auto { brokers, seeds, .. } => Assignment::Auto {
            replication_factor: topic.partitions.values().next().map_or(1, |p| p.replicas.len() as i32),
            brokers,
            seeds,
        },
        manual => manual,
    };
    let replicas = place(image, &assignment, current, total - current)?;
    Ok(partition_records(image, topic.topic_id, current, replicas).collect())
}

/// Sets (`Some`) or removes (`None`) config overrides of topic `name`.
pub fn alter_topic_configs(
    image: &MetadataImage,
    name: &str,
    changes: &[(String, Option<String>)],
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    for (k, v) in changes {
        match v {
            Some(v) => validate_topic_config(k, v)?,
            None => {
                crate::config::topic_config(k).ok_or_else(|| MetadataError::InvalidConfig {
                    key: k.clone(),
                    value: String::new(),
                    reason: "unknown topic config".into(),
                })?;
            }
        }
    }
    Ok(changes
        .iter()
        .map(|(k, v)| MetadataRecord::TopicConfig {
            topic_id: topic.topic_id,
            key: k.clone(),
            value: v.clone(),
        })
        .collect())
}

/// Sets (`Some`) or removes (`None`) configs of a broker (`name` its id, or empty for the
/// cluster-wide default) or of a consumer group, each validated.
pub fn alter_resource_configs(
    image: &MetadataImage,
    resource_type: ConfigResourceType,
    name: &str,
    changes: &[(String, Option<String>)],
) -> Result<Vec<MetadataRecord>, MetadataError> {
    match resource_type {
        ConfigResourceType::Broker => {
            if !name.is_empty() {
                let id: i32 = name
                    .parse()
                    .map_err(|_| MetadataError::InvalidRequest(format!("broker '{name}' is not a broker id")))?;
                if image.broker(id).is_none() {
                    return Err(MetadataError::InvalidRequest(format!("broker {id} is not registered")));
                }
            }
            for (k, v) in changes {
                match v {
                    Some(v) => crate::config::validate_dynamic_broker_config(k, v)?,
                    None if crate::config::dynamic_broker_config(k).is_none() => {
                        return Err(MetadataError::InvalidConfig {
                            key: k.clone(),
                            value: String::new(),
                            reason: "not a dynamic broker config".into(),
                        })
                    }
                    None => {}
                }
            }
        }
        ConfigResourceType::Group => {
            if name.is_empty() {
                return Err(MetadataError::InvalidRequest("a group config needs a group id".into()));
            }
            for (k, v) in changes {
                match v {
                    Some(v) => crate::config::validate_group_config(k, v)?,
                    None if crate::config::group_config(k).is_none() => {
                        return Err(MetadataError::InvalidConfig {
                            key: k.clone(),
                            value: String::new(),
                            reason: "unknown group config".into(),
                        })
                    }
                    None => {}
                }
            }
        }
    }
    Ok(changes
        .iter()
        .map(|(k, v)| MetadataRecord::Config {
            resource_type,
            resource_name: name.to_string(),
            key: k.clone(),
            value: v.clone(),
        })
        .collect())
}

/// Hands out a block of `count` producer ids: returns the first and the record to persist.
pub fn allocate_producer_ids(image: &MetadataImage, count: i64) -> (i64, MetadataRecord) {
    let first = image.next_producer_id();
    (
        first,
        MetadataRecord::ProducerIds {
            next_producer_id: first + count,
        },
    )
}

#[cfg(test)]
mod tests;
