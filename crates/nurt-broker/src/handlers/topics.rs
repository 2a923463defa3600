//! CreateTopics, DeleteTopics, CreatePartitions: controller operations committed to the
//! metadata log, then reconciled into hosted partitions.

use std::collections::HashSet;

use nurt_metadata::config::TOPIC_CONFIGS;
use nurt_metadata::controller::{self, NewTopic};
use nurt_metadata::{MetadataError, TopicConfigs};
use nurt_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use nurt_protocol::kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use nurt_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use nurt_protocol::kafka_protocol::messages::*;

use super::sb;
use crate::metadata_store::CommitError;
use crate::{codes, now_ms, Broker};

fn reconcile(broker: &Broker) -> Result<(), (i16, String)> {
    broker.reconcile(false).map_err(|e| {
        tracing::error!("applying metadata: {e}");
        (codes::KAFKA_STORAGE_ERROR, e.to_string())
    })
}

pub fn create_topics(broker: &Broker, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.0.to_string();
        let result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if duplicates.contains(&name) {
            results.push(
                result
                    .with_error_code(codes::INVALID_REQUEST)
                    .with_error_message(Some(sb("topic named more than once in one request"))),
            );
            continue;
        }
        let manual = !t.assignments.is_empty();
        let new_topic = NewTopic {
            name: name.clone(),
            num_partitions: if manual {
                t.assignments.len() as i32
            } else if t.num_partitions == -1 {
                broker.config.num_partitions()
            } else {
                t.num_partitions
            },
            replication_factor: if manual {
                t.assignments.first().map_or(0, |a| a.broker_ids.len() as i32)
            } else if t.replication_factor == -1 {
                broker.config.default_replication_factor()
            } else {
                i32::from(t.replication_factor)
            },
            configs: t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect(),
        };
        let brokers = broker.broker_ids();
        let bad_assignment = manual
            && t.assignments
                .iter()
                .any(|a| a.broker_ids.is_empty() || a.broker_ids.iter().any(|b| !brokers.contains(&b.0)));
        let id = *uuid::Uuid::new_v4().as_bytes();
        let outcome = broker.metadata.commit(now_ms(), |image| {
            if bad_assignment {
                return Err(MetadataError::InvalidReplicaAssignment);
            }
            let records = controller::create_topic(image, &new_topic, &brokers, id)?;
            Ok((if request.validate_only { vec![] } else { records }, ()))
        });
        let outcome = outcome.map_err(|e: CommitError| codes::for_commit(&e)).and_then(|()| {
            if request.validate_only {
                Ok(())
            } else {
                reconcile(broker)
            }
        });
        results.push(match outcome {
            Err((code, message)) => result.with_error_code(code).with_error_message(Some(sb(message))),
            Ok(()) => {
                let mut ok = result
                    .with_num_partitions(new_topic.num_partitions)
                    .with_replication_factor(new_topic.replication_factor as i16);
                if version >= 7 && !request.validate_only {
                    ok = ok.with_topic_id(uuid::Uuid::from_bytes(id));
                }
                if version >= 5 {
                    let overrides = new_topic.configs.iter().cloned().collect();
                    let configs = TopicConfigs {
                        overrides: &overrides,
                        broker: &broker.config.values,
                    };
                    ok = ok.with_configs(Some(
                        TOPIC_CONFIGS
                            .iter()
                            .map(|def| {
                                let (value, source) = configs.get(def);
                                CreatableTopicConfigs::default()
                                    .with_name(sb(def.name))
                                    .with_value(Some(sb(value)))
                                    .with_config_source(source as i8)
                            })
                            .collect(),
                    ));
                }
                tracing::info!("created topic {name} with {} partition(s)", new_topic.num_partitions);
                ok
            }
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub fn delete_topics(broker: &Broker, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    // v6+ names topics by name or id; older versions by name only.
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut results = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let name = name.or_else(|| broker.topic_name_by_id(id.as_bytes()));
        let result = DeletableTopicResult::default().with_topic_id(if version >= 6 { id } else { uuid::Uuid::nil() });
        let Some(name) = name else {
            results.push(result.with_error_code(codes::UNKNOWN_TOPIC_ID));
            continue;
        };
        let result = result.with_name(Some(TopicName(sb(name.clone()))));
        let outcome = broker
            .metadata
            .commit(now_ms(), |image| Ok((controller::delete_topic(image, &name)?, ())))
            .map_err(|e| codes::for_commit(&e))
            .and_then(|()| reconcile(broker));
        results.push(match outcome {
            Ok(()) => {
                tracing::info!("deleted topic {name}");
                match broker.groups.forget_deleted_topics(|t| t == name) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("deleted {n} committed offset(s) of topic {name}"),
                    // Retried at the next start, before any group is served.
                    Err(e) => tracing::error!("deleting the committed offsets of topic {name}: {e}"),
                }
                result
            }
            Err((code, message)) => {
                result
                    .with_error_code(code)
                    .with_error_message(if version >= 5 { Some(sb(message)) } else { None })
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(results)
}

pub fn create_partitions(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = request
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let brokers = broker.broker_ids();
            let outcome = broker
                .metadata
                .commit(now_ms(), |image| {
                    let records = controller::create_partitions(image, &name, t.count, &brokers)?;
                    Ok((if request.validate_only { vec![] } else { records }, ()))
                })
                .map_err(|e| codes::for_commit(&e))
                .and_then(|()| reconcile(broker));
            match outcome {
                Ok(()) => result,
                Err((code, message)) => result.with_error_code(code).with_error_message(Some(sb(message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
