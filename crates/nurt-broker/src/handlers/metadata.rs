//! Metadata: brokers, controller, topics and partitions; auto-creates topics when allowed.

use std::collections::HashMap;

use nurt_metadata::controller::{create_topic, NewTopic};
use nurt_metadata::TopicInfo;
use nurt_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use nurt_protocol::kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::acl::{authorized_operations, Resource};
use super::sb;
use crate::{codes, now_ms, Broker};

/// Builds the topic entry of an existing topic.
pub(crate) fn topic_entry(info: &TopicInfo, version: i16, operations: i32) -> MetadataResponseTopic {
    let partitions = info
        .partitions
        .iter()
        .map(|(&index, p)| {
            let replicas: Vec<BrokerId> = p.replicas.iter().map(|&b| BrokerId(b)).collect();
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_isr_nodes(replicas.clone())
                .with_replica_nodes(replicas)
        })
        .collect();
    let entry = MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(info.name.clone()))))
        .with_partitions(partitions);
    let entry = if version >= 10 {
        entry.with_topic_id(uuid::Uuid::from_bytes(info.topic_id))
    } else {
        entry
    };
    if version >= 8 {
        entry.with_topic_authorized_operations(operations)
    } else {
        entry
    }
}

fn error_entry(name: Option<String>, topic_id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(|n| TopicName(sb(n))))
        .with_topic_id(topic_id)
        .with_error_code(code)
}

/// Partitions one request may auto-create (Kafka's controller refuses user operations of more
/// than 10,000 records); topics beyond it are answered UNKNOWN_TOPIC_OR_PARTITION and can be
/// created by a later request.
const AUTO_CREATE_PARTITIONS_MAX: i32 = 10_000;

/// Creates `names` with the broker defaults (auto.create.topics.enable), in one metadata
/// commit; returns the code for each name that was not created.
pub(crate) fn auto_create(broker: &Broker, names: &[String]) -> HashMap<String, i16> {
    let partitions = broker.config.num_partitions();
    let mut failed = HashMap::new();
    let result = broker.metadata.commit(now_ms(), |image| {
        let mut records = Vec::new();
        let mut budget = AUTO_CREATE_PARTITIONS_MAX;
        let mut created = Vec::new();
        for name in names {
            // A concurrent request may have created it first: that is success.
            if image.topic(name).is_some() || created.contains(name) {
                continue;
            }
            if budget < partitions {
                failed.insert(name.clone(), codes::UNKNOWN_TOPIC_OR_PARTITION);
                continue;
            }
            let topic = NewTopic {
                name: name.clone(),
                num_partitions: partitions,
                replication_factor: broker.config.default_replication_factor(),
                configs: vec![],
            };
            let id = *uuid::Uuid::new_v4().as_bytes();
            match create_topic(image, &topic, &broker.broker_ids(), id) {
                Ok(r) => {
                    records.extend(r);
                    budget -= partitions;
                    created.push(name.clone());
                }
                Err(e) => {
                    failed.insert(name.clone(), codes::for_metadata(&e).0);
                }
            }
        }
        Ok((records, created))
    });
    match result {
        Ok(created) if created.is_empty() => {}
        Ok(created) => {
            tracing::info!(
                "auto-created {} topic(s) with {partitions} partition(s) each: {}",
                created.len(),
                created.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
            );
            if let Err(e) = broker.reconcile(false) {
                tracing::error!("opening auto-created partitions: {e}");
                for name in created {
                    failed.insert(name, codes::KAFKA_STORAGE_ERROR);
                }
            }
        }
        Err(e) => {
            let code = codes::for_commit(&e).0;
            for name in names {
                failed.entry(name.clone()).or_insert(code);
            }
        }
    }
    failed
}

pub fn handle(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    let (host, port) = broker.config.advertised_host_port();
    let all = match &request.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let auto_create_allowed = broker.config.auto_create_topics() && (version < 4 || request.allow_auto_topic_creation);
    let topic_operations = authorized_operations(Resource::Topic, request.include_topic_authorized_operations);
    let mut topics = Vec::new();
    if all {
        let image = broker.metadata.image();
        topics.extend(image.topics().map(|t| topic_entry(t, version, topic_operations)));
    } else {
        let wanted = request.topics.unwrap_or_default();
        let failed = if auto_create_allowed {
            let missing: Vec<String> = {
                let image = broker.metadata.image();
                wanted
                    .iter()
                    .filter_map(|w| w.name.as_ref().map(|n| n.0.to_string()))
                    .filter(|n| image.topic(n).is_none())
                    .collect()
            };
            auto_create(broker, &missing)
        } else {
            HashMap::new()
        };
        let image = broker.metadata.image();
        for wanted in wanted {
            let by_id = wanted.topic_id != uuid::Uuid::nil();
            let name = wanted.name.map(|n| n.0.to_string());
            let found = match (&name, by_id) {
                (Some(n), _) => image.topic(n),
                (None, true) => image.topic_by_id(wanted.topic_id.as_bytes()),
                (None, false) => None,
            };
            let entry = match (found, name) {
                (Some(info), _) => topic_entry(info, version, topic_operations),
                (None, None) => error_entry(None, wanted.topic_id, codes::UNKNOWN_TOPIC_ID),
                (None, Some(n)) if auto_create_allowed => {
                    let code = failed.get(&n).copied().unwrap_or(codes::UNKNOWN_TOPIC_OR_PARTITION);
                    error_entry(Some(n), uuid::Uuid::nil(), code)
                }
                (None, Some(n)) => {
                    let code = if nurt_metadata::controller::validate_topic_name(&n).is_err() {
                        codes::INVALID_TOPIC_EXCEPTION
                    } else {
                        codes::UNKNOWN_TOPIC_OR_PARTITION
                    };
                    error_entry(Some(n), uuid::Uuid::nil(), code)
                }
            };
            topics.push(entry);
        }
    }
    let response = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id))
            .with_host(sb(host))
            .with_port(port)])
        .with_cluster_id(Some(sb(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.node_id))
        .with_topics(topics);
    if (8..=10).contains(&version) {
        response.with_cluster_authorized_operations(authorized_operations(
            Resource::Cluster,
            request.include_cluster_authorized_operations,
        ))
    } else {
        response
    }
}
