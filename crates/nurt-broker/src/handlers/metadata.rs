//! Metadata: brokers, controller, topics and partitions; auto-creates topics when allowed.

use nurt_metadata::controller::{create_topic, NewTopic};
use nurt_metadata::TopicInfo;
use nurt_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use nurt_protocol::kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::sb;
use crate::{codes, now_ms, Broker};

/// Builds the topic entry of an existing topic.
pub(crate) fn topic_entry(info: &TopicInfo, version: i16) -> MetadataResponseTopic {
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
        entry.with_topic_authorized_operations(i32::MIN)
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

/// Creates `name` with the broker defaults (auto.create.topics.enable).
pub(crate) fn auto_create(broker: &Broker, name: &str) -> Result<(), i16> {
    let topic = NewTopic {
        name: name.to_string(),
        num_partitions: broker.config.num_partitions(),
        replication_factor: broker.config.default_replication_factor(),
        configs: vec![],
    };
    let id = *uuid::Uuid::new_v4().as_bytes();
    let result = broker.metadata.commit(now_ms(), |image| {
        // A concurrent request may have created it first: that is success.
        if image.topic(name).is_some() {
            return Ok((vec![], ()));
        }
        Ok((create_topic(image, &topic, &broker.broker_ids(), id)?, ()))
    });
    match result {
        Ok(()) => {
            tracing::info!("auto-created topic {name} with {} partition(s)", topic.num_partitions);
            broker.reconcile(false).map_err(|e| {
                tracing::error!("opening partitions of {name}: {e}");
                codes::KAFKA_STORAGE_ERROR
            })
        }
        Err(e) => Err(codes::for_commit(&e).0),
    }
}

pub fn handle(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    let (host, port) = broker.config.advertised_host_port();
    let all = match &request.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let auto_create_allowed = broker.config.auto_create_topics() && (version < 4 || request.allow_auto_topic_creation);
    let mut topics = Vec::new();
    if all {
        let image = broker.metadata.image();
        topics.extend(image.topics().map(|t| topic_entry(t, version)));
    } else {
        for wanted in request.topics.unwrap_or_default() {
            let by_id = wanted.topic_id != uuid::Uuid::nil();
            let name = wanted.name.map(|n| n.0.to_string());
            let found = {
                let image = broker.metadata.image();
                match (&name, by_id) {
                    (Some(n), _) => image.topic(n).cloned(),
                    (None, true) => image.topic_by_id(wanted.topic_id.as_bytes()).cloned(),
                    (None, false) => None,
                }
            };
            let entry = match (found, name) {
                (Some(info), _) => topic_entry(&info, version),
                (None, None) => error_entry(None, wanted.topic_id, codes::UNKNOWN_TOPIC_ID),
                (None, Some(n)) if auto_create_allowed => match auto_create(broker, &n) {
                    Ok(()) => broker
                        .metadata
                        .image()
                        .topic(&n)
                        .map(|t| topic_entry(t, version))
                        .unwrap_or_else(|| error_entry(Some(n), uuid::Uuid::nil(), codes::UNKNOWN_TOPIC_OR_PARTITION)),
                    Err(code) => error_entry(Some(n), uuid::Uuid::nil(), code),
                },
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
        response.with_cluster_authorized_operations(i32::MIN)
    } else {
        response
    }
}
