//! Metadata: brokers, controller, topics and partitions; auto-creates topics when allowed.

use std::collections::HashMap;

use nurt_metadata::{MetadataImage, TopicInfo};
use nurt_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use nurt_protocol::kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::acl::{authorized_operations, Resource};
use super::sb;
use crate::controller::{ControllerOp, CreateTopic, OpAnswer};
use crate::{codes, Broker};

/// Builds the topic entry of an existing topic: each partition's leader, epochs, replicas,
/// ISR and offline replicas (those on fenced brokers), as the image has them.
pub(crate) fn topic_entry(
    image: &MetadataImage,
    info: &TopicInfo,
    version: i16,
    operations: i32,
) -> MetadataResponseTopic {
    let ids = |v: &[i32]| -> Vec<BrokerId> { v.iter().map(|&b| BrokerId(b)).collect() };
    let partitions = info
        .partitions
        .iter()
        .map(|(&index, p)| {
            let offline: Vec<i32> = p.replicas.iter().copied().filter(|&r| !image.is_live(r)).collect();
            MetadataResponsePartition::default()
                .with_error_code(if p.leader < 0 {
                    codes::LEADER_NOT_AVAILABLE
                } else {
                    codes::NONE
                })
                .with_partition_index(index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_isr_nodes(ids(&p.isr))
                .with_replica_nodes(ids(&p.replicas))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    let entry = MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(info.name.clone()))))
        .with_is_internal(info.name.starts_with("__"))
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

/// The live brokers with their client endpoint (what clients may connect to).
pub(crate) fn live_brokers(image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .filter_map(|b| {
            let e = b.endpoint(crate::config::CLIENT_LISTENER)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.registration.broker_id))
                    .with_host(sb(e.host.clone()))
                    .with_port(e.port)
                    .with_rack(b.registration.rack.clone().map(sb)),
            )
        })
        .collect()
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

/// Creates `names` with the broker defaults (auto.create.topics.enable), in one controller
/// op; returns the code for each name that was not created.
pub(crate) async fn auto_create(broker: &Broker, names: &[String]) -> HashMap<String, i16> {
    let partitions = broker.config.num_partitions().max(1);
    let mut failed = HashMap::new();
    let fit = (AUTO_CREATE_PARTITIONS_MAX / partitions).max(0) as usize;
    let mut topics = Vec::new();
    for name in names {
        if topics.len() >= fit {
            failed.insert(name.clone(), codes::UNKNOWN_TOPIC_OR_PARTITION);
        } else if super::topics::reserved_topic(name).is_some() {
            failed.insert(name.clone(), codes::INVALID_TOPIC_EXCEPTION);
        } else {
            topics.push(CreateTopic {
                name: name.clone(),
                num_partitions: partitions,
                replication_factor: broker.config.default_replication_factor(),
                assignments: None,
                configs: vec![],
            });
        }
    }
    if topics.is_empty() {
        return failed;
    }
    let created = broker
        .controller
        .submit(ControllerOp::CreateTopics {
            topics: topics.clone(),
            validate_only: false,
        })
        .await;
    match created {
        Ok(OpAnswer::Topics(results)) => {
            let mut made = Vec::new();
            for (t, r) in topics.iter().zip(results) {
                match r {
                    Ok(_) => made.push(t.name.clone()),
                    // A concurrent request created it first: that is success.
                    Err(e) if e.code == codes::TOPIC_ALREADY_EXISTS => {}
                    Err(e) => {
                        failed.insert(t.name.clone(), e.code);
                    }
                }
            }
            if !made.is_empty() {
                tracing::info!(
                    "auto-created {} topic(s) with {partitions} partition(s) each: {}",
                    made.len(),
                    made.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
                );
                if let Err(e) = broker.reconcile(false) {
                    tracing::error!("opening auto-created partitions: {e}");
                }
            }
        }
        Ok(_) | Err(_) => {
            for t in topics {
                failed.entry(t.name).or_insert(codes::LEADER_NOT_AVAILABLE);
            }
        }
    }
    failed
}

pub async fn handle(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    let all = match &request.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let auto_create_allowed = broker.config.auto_create_topics() && (version < 4 || request.allow_auto_topic_creation);
    let topic_operations = authorized_operations(Resource::Topic, request.include_topic_authorized_operations);
    let mut topics = Vec::new();
    if all {
        let image = broker.image();
        topics.extend(
            image
                .topics()
                .map(|t| topic_entry(&image, t, version, topic_operations)),
        );
    } else {
        let wanted = request.topics.unwrap_or_default();
        let failed = if auto_create_allowed {
            let missing: Vec<String> = {
                let image = broker.image();
                wanted
                    .iter()
                    .filter_map(|w| w.name.as_ref().map(|n| n.0.to_string()))
                    .filter(|n| image.topic(n).is_none())
                    .collect()
            };
            auto_create(broker, &missing).await
        } else {
            HashMap::new()
        };
        let image = broker.image();
        for wanted in wanted {
            let by_id = wanted.topic_id != uuid::Uuid::nil();
            let name = wanted.name.map(|n| n.0.to_string());
            let found = match (&name, by_id) {
                (Some(n), _) => image.topic(n),
                (None, true) => image.topic_by_id(wanted.topic_id.as_bytes()),
                (None, false) => None,
            };
            let entry = match (found, name) {
                (Some(info), _) => topic_entry(&image, info, version, topic_operations),
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
        .with_brokers(live_brokers(&broker.image()))
        .with_cluster_id(Some(sb(broker.cluster_id())))
        .with_controller_id(BrokerId(broker.controller_id()))
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
