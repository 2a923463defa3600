//! The metadata image: the state obtained by replaying every metadata record in order.

use std::collections::{BTreeMap, HashMap};

use crate::{MetadataError, MetadataRecord, TopicId};

/// A partition's placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub replicas: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
}

/// A topic with its partitions and config overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: TopicId,
    pub partitions: BTreeMap<i32, PartitionInfo>,
    pub configs: BTreeMap<String, String>,
}

/// Everything the cluster knows about topics and producer ids.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    topics: BTreeMap<String, TopicInfo>,
    names_by_id: HashMap<TopicId, String>,
    /// Topic names by their metric name (`.` read as `_`): two topics may not share one.
    names_by_metric_name: HashMap<String, String>,
    next_producer_id: i64,
}

impl MetadataImage {
    /// Applies one record. Records must come in the order they were produced; a record that
    /// names a topic the image does not have is corrupt.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), MetadataError> {
        match record {
            MetadataRecord::Topic { name, topic_id } => {
                self.names_by_id.insert(*topic_id, name.clone());
                self.names_by_metric_name.insert(metric_name(name), name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicInfo {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: BTreeMap::new(),
                        configs: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                leader,
                leader_epoch,
            } => {
                let topic = self.topic_by_id_mut(topic_id)?;
                topic.partitions.insert(
                    *partition,
                    PartitionInfo {
                        replicas: replicas.clone(),
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                    },
                );
            }
            MetadataRecord::TopicConfig { topic_id, key, value } => {
                let topic = self.topic_by_id_mut(topic_id)?;
                match value {
                    Some(v) => topic.configs.insert(key.clone(), v.clone()),
                    None => topic.configs.remove(key),
                };
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name = self
                    .names_by_id
                    .remove(topic_id)
                    .ok_or(MetadataError::CorruptRecord("removal of an unknown topic"))?;
                self.names_by_metric_name.remove(&metric_name(&name));
                self.topics.remove(&name);
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
        }
        Ok(())
    }

    fn topic_by_id_mut(&mut self, id: &TopicId) -> Result<&mut TopicInfo, MetadataError> {
        let name = self
            .names_by_id
            .get(id)
            .ok_or(MetadataError::CorruptRecord("record for an unknown topic id"))?;
        self.topics
            .get_mut(name)
            .ok_or(MetadataError::CorruptRecord("topic index out of step"))
    }

    /// The topic called `name`.
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }

    /// An existing topic whose name differs from `name` only by `.` versus `_` (Kafka refuses
    /// such a pair: their metric names would be the same).
    pub fn colliding_topic(&self, name: &str) -> Option<&str> {
        self.names_by_metric_name
            .get(&metric_name(name))
            .map(String::as_str)
            .filter(|existing| *existing != name)
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: &TopicId) -> Option<&TopicInfo> {
        self.names_by_id.get(id).and_then(|n| self.topics.get(n))
    }

    /// All topics, by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicInfo> {
        self.topics.values()
    }

    /// The first producer id not yet handed out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }
}

/// The name a topic's metrics use: `.` becomes `_` (Kafka's `Topic.unifyCollisionChars`).
fn metric_name(name: &str) -> String {
    name.replace('.', "_")
}
