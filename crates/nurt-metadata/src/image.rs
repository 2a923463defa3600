//! The metadata image: the state obtained by replaying every metadata record in order.
//!
//! Replay never fails on a well-formed log: a record that does not fit the image (a partition
//! of an unknown topic, say) is corrupt data, and `apply` says so.

use std::collections::{BTreeMap, HashMap};

use crate::record::{BrokerRegistration, ConfigResourceType, Endpoint, PartitionRecord};
use crate::{MetadataError, MetadataRecord, TopicId};

/// A partition's placement, leadership and in-sync replicas: its latest record.
pub type PartitionInfo = PartitionRecord;

impl PartitionRecord {
    /// Whether a reassignment is under way.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }
}

/// A topic with its partitions and config overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: TopicId,
    pub partitions: BTreeMap<i32, PartitionInfo>,
    pub configs: BTreeMap<String, String>,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub registration: BrokerRegistration,
}

impl BrokerInfo {
    /// Whether the broker may lead and serve partitions.
    pub fn fenced(&self) -> bool {
        self.registration.fenced
    }

    /// The endpoint of listener `name`.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.registration.endpoints.iter().find(|e| e.name == name)
    }
}

/// Everything the cluster knows: topics, brokers, configs and producer ids.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    topics: BTreeMap<String, TopicInfo>,
    names_by_id: HashMap<TopicId, String>,
    /// Topic names by their metric name (`.` read as `_`): two topics may not share one.
    names_by_metric_name: HashMap<String, String>,
    brokers: BTreeMap<i32, BrokerInfo>,
    /// Broker and group configs: (resource type, resource name) → key → value.
    configs: BTreeMap<(ConfigResourceType, String), BTreeMap<String, String>>,
    next_producer_id: i64,
    /// The highest broker epoch handed out so far.
    last_broker_epoch: i64,
    cluster_id: Option<String>,
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
            MetadataRecord::Partition(p) => {
                let topic = self.topic_by_id_mut(&p.topic_id)?;
                topic.partitions.insert(p.partition, p.clone());
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
            MetadataRecord::RegisterBroker(registration) => {
                self.last_broker_epoch = self.last_broker_epoch.max(registration.broker_epoch);
                self.brokers.insert(
                    registration.broker_id,
                    BrokerInfo {
                        registration: registration.clone(),
                    },
                );
            }
            MetadataRecord::BrokerFencing {
                broker_id,
                broker_epoch,
                fenced,
            } => {
                let broker = self
                    .brokers
                    .get_mut(broker_id)
                    .ok_or(MetadataError::CorruptRecord("fencing of an unknown broker"))?;
                // A record for an older registration changes nothing.
                if broker.registration.broker_epoch == *broker_epoch {
                    broker.registration.fenced = *fenced;
                }
            }
            MetadataRecord::UnregisterBroker { broker_id } => {
                self.brokers.remove(broker_id);
            }
            MetadataRecord::Cluster { cluster_id } => {
                if self.cluster_id.as_ref().is_some_and(|c| c != cluster_id) {
                    return Err(MetadataError::CorruptRecord("a second, different cluster id"));
                }
                self.cluster_id = Some(cluster_id.clone());
            }
            MetadataRecord::Config {
                resource_type,
                resource_name,
                key,
                value,
            } => {
                let resource = (*resource_type, resource_name.clone());
                match value {
                    Some(v) => {
                        self.configs.entry(resource).or_default().insert(key.clone(), v.clone());
                    }
                    None => {
                        if let Some(configs) = self.configs.get_mut(&resource) {
                            configs.remove(key);
                            if configs.is_empty() {
                                self.configs.remove(&resource);
                            }
                        }
                    }
                }
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

    /// The partition `index` of `topic`.
    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionInfo> {
        self.topics.get(topic)?.partitions.get(&index)
    }

    /// The cluster's id, once the first controller has written it.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// The first producer id not yet handed out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Every registered broker, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values()
    }

    /// The broker `id`, if registered.
    pub fn broker(&self, id: i32) -> Option<&BrokerInfo> {
        self.brokers.get(&id)
    }

    /// Registered brokers that are not fenced, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values().filter(|b| !b.fenced())
    }

    /// Whether broker `id` is registered and unfenced.
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced())
    }

    /// The highest broker epoch handed out so far.
    pub fn last_broker_epoch(&self) -> i64 {
        self.last_broker_epoch
    }

    /// The configs set on a broker or group resource.
    pub fn configs(&self, resource_type: ConfigResourceType, name: &str) -> Option<&BTreeMap<String, String>> {
        self.configs.get(&(resource_type, name.to_string()))
    }

    /// Every resource that has configs, with them.
    pub fn all_configs(&self) -> impl Iterator<Item = (&(ConfigResourceType, String), &BTreeMap<String, String>)> {
        self.configs.iter()
    }

    /// The records that recreate this image from nothing (a snapshot), in an order `apply`
    /// accepts: brokers, topics with their partitions and configs, configs, producer ids.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            out.push(MetadataRecord::Cluster {
                cluster_id: cluster_id.clone(),
            });
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(b.registration.clone()));
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.topic_id,
            });
            for p in t.partitions.values() {
                out.push(MetadataRecord::Partition(p.clone()));
            }
            for (k, v) in &t.configs {
                out.push(MetadataRecord::TopicConfig {
                    topic_id: t.topic_id,
                    key: k.clone(),
                    value: Some(v.clone()),
                });
            }
        }
        for ((resource_type, resource_name), configs) in &self.configs {
            for (k, v) in configs {
                out.push(MetadataRecord::Config {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    key: k.clone(),
                    value: Some(v.clone()),
                });
            }
        }
        if self.next_producer_id > 0 {
            out.push(MetadataRecord::ProducerIds {
                next_producer_id: self.next_producer_id,
            });
        }
        out
    }
}

/// The name a topic's metrics use: `.` becomes `_` (Kafka's `Topic.unifyCollisionChars`).
fn metric_name(name: &str) -> String {
    name.replace('.', "_")
}
