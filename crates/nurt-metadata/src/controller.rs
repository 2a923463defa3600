//! Controller operations: validate against the image, return the records that make the change.
//!
//! Nothing here mutates the image or touches a file; ids and the broker list come in as
//! arguments so tests (and a future Raft state machine) control them.

use crate::config::validate_topic_config;
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

/// A CreateTopics entry, after defaults (-1) are resolved by the caller.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i32,
    pub configs: Vec<(String, String)>,
}

/// The records that create `topic` with id `topic_id`, replicas placed round-robin over `brokers`.
pub fn create_topic(
    image: &MetadataImage,
    topic: &NewTopic,
    brokers: &[i32],
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
    let broker_count = brokers.len() as i32;
    if topic.replication_factor <= 0 || topic.replication_factor > broker_count {
        return Err(MetadataError::InvalidReplicationFactor {
            factor: topic.replication_factor,
            brokers: broker_count,
        });
    }
    for (k, v) in &topic.configs {
        validate_topic_config(k, v)?;
    }
    let mut records = vec![MetadataRecord::Topic {
        name: topic.name.clone(),
        topic_id,
    }];
    records.extend(partition_records(
        topic_id,
        0..topic.num_partitions,
        topic.replication_factor,
        brokers,
    ));
    records.extend(topic.configs.iter().map(|(k, v)| MetadataRecord::TopicConfig {
        topic_id,
        key: k.clone(),
        value: Some(v.clone()),
    }));
    Ok(records)
}

fn partition_records(
    topic_id: TopicId,
    partitions: std::ops::Range<i32>,
    replication_factor: i32,
    brokers: &[i32],
) -> impl Iterator<Item = MetadataRecord> + '_ {
    partitions.map(move |p| {
        let replicas: Vec<i32> = (0..replication_factor)
            .map(|r| brokers[((p + r) as usize) % brokers.len()])
            .collect();
        MetadataRecord::Partition {
            topic_id,
            partition: p,
            leader: replicas[0],
            replicas,
            leader_epoch: 0,
        }
    })
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

/// The records that grow topic `name` to `total` partitions (never shrink, as in Kafka).
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    total: i32,
    brokers: &[i32],
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    let current = topic.partitions.len() as i32;
    if total <= current {
        return Err(MetadataError::InvalidPartitions(total));
    }
    let rf = topic.partitions.values().next().map_or(1, |p| p.replicas.len() as i32);
    Ok(partition_records(topic.topic_id, current..total, rf, brokers).collect())
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
mod tests {
    use super::*;

    fn applied(image: &mut MetadataImage, records: Vec<MetadataRecord>) {
        for r in records {
            image.apply(&r).unwrap();
        }
    }

    #[test]
    fn create_then_grow_then_delete() {
        let mut image = MetadataImage::default();
        let t = NewTopic {
            name: "orders".into(),
            num_partitions: 3,
            replication_factor: 1,
            configs: vec![("retention.ms".into(), "1000".into())],
        };
        let recs = create_topic(&image, &t, &[1], [7; 16]).unwrap();
        applied(&mut image, recs);
        let info = image.topic("orders").unwrap();
        assert_eq!(info.partitions.len(), 3);
        assert_eq!(info.configs.get("retention.ms").map(String::as_str), Some("1000"));
        assert_eq!(
            create_topic(&image, &t, &[1], [8; 16]),
            Err(MetadataError::TopicExists("orders".into()))
        );
        assert!(matches!(
            create_partitions(&image, "orders", 2, &[1]),
            Err(MetadataError::InvalidPartitions(2))
        ));
        let recs = create_partitions(&image, "orders", 5, &[1]).unwrap();
        applied(&mut image, recs);
        assert_eq!(image.topic("orders").unwrap().partitions.len(), 5);
        let recs = delete_topic(&image, "orders").unwrap();
        applied(&mut image, recs);
        assert!(image.topic("orders").is_none());
        assert!(image.topic_by_id(&[7; 16]).is_none());
    }

    #[test]
    fn refuses_bad_requests() {
        let image = MetadataImage::default();
        let mut t = NewTopic {
            name: "bad name!".into(),
            num_partitions: 1,
            replication_factor: 1,
            configs: vec![],
        };
        assert!(matches!(
            create_topic(&image, &t, &[1], [0; 16]),
            Err(MetadataError::InvalidTopicName { .. })
        ));
        t.name = "ok".into();
        t.replication_factor = 3;
        assert!(matches!(
            create_topic(&image, &t, &[1], [0; 16]),
            Err(MetadataError::InvalidReplicationFactor { .. })
        ));
        t.replication_factor = 1;
        t.num_partitions = 0;
        assert!(matches!(
            create_topic(&image, &t, &[1], [0; 16]),
            Err(MetadataError::InvalidPartitions(0))
        ));
        t.num_partitions = 1;
        t.configs = vec![("segment.bytes".into(), "x".into())];
        assert!(matches!(
            create_topic(&image, &t, &[1], [0; 16]),
            Err(MetadataError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn names_differing_only_by_dot_and_underscore_collide() {
        let mut image = MetadataImage::default();
        let t = |name: &str| NewTopic {
            name: name.into(),
            num_partitions: 1,
            replication_factor: 1,
            configs: vec![],
        };
        let records = create_topic(&image, &t("orders_eu"), &[1], [1; 16]).unwrap();
        applied(&mut image, records);
        let refused = create_topic(&image, &t("orders.eu"), &[1], [2; 16]);
        assert!(
            matches!(&refused, Err(MetadataError::InvalidTopicName { reason, .. }) if reason == "collides with existing topic: orders_eu"),
            "{refused:?}"
        );
        // Once the first is gone, the name is free.
        let records = delete_topic(&image, "orders_eu").unwrap();
        applied(&mut image, records);
        assert!(create_topic(&image, &t("orders.eu"), &[1], [2; 16]).is_ok());
    }

    #[test]
    fn producer_ids_never_repeat_across_replay() {
        let mut image = MetadataImage::default();
        let (first, rec) = allocate_producer_ids(&image, 10);
        image.apply(&rec).unwrap();
        let (second, _) = allocate_producer_ids(&image, 10);
        assert_eq!((first, second), (0, 10));
    }
}
