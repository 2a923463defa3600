//! CreateTopics, DeleteTopics, CreatePartitions: controller operations committed to the
//! metadata log (by the active controller, wherever the request arrived), then reconciled
//! into hosted partitions.

use std::collections::HashSet;

use nurt_metadata::config::TOPIC_CONFIGS;
use nurt_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use nurt_protocol::kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use nurt_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use nurt_protocol::kafka_protocol::messages::*;

use super::configs::topic_configs;
use super::sb;
use crate::controller::{ControllerOp, CreateTopic, CreatedTopic, NewPartitions, OpAnswer, OpError};
use crate::{codes, Broker};

/// Internal topics are created by the broker itself, and the metadata log's name is reserved.
pub(crate) fn reserved_topic(name: &str) -> Option<&'static str> {
    match name {
        "__cluster_metadata" => Some("__cluster_metadata is the metadata log's name and cannot be a topic"),
        "__consumer_offsets" | "__transaction_state" => Some("internal topics are created by the broker"),
        _ => None,
    }
}

fn reconcile(broker: &Broker) {
    if let Err(e) = broker.reconcile(false) {
        tracing::error!("applying metadata: {e}");
    }
}

/// What a controller op answered per item, or the op's failure for every item.
/// The time a request's `timeout_ms` gives the controller (at least a second: a smaller
/// value would fail requests that take effect anyway).
fn request_timeout(timeout_ms: i32) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0).max(1_000))
}

fn items<T>(
    answer: Result<OpAnswer, crate::controller::OpFailure>,
    n: usize,
    pick: impl Fn(OpAnswer) -> Option<Vec<Result<T, OpError>>>,
) -> Vec<Result<T, OpError>> {
    match answer {
        Ok(a) => pick(a).unwrap_or_default(),
        Err(e) => (0..n)
            .map(|_| Err(OpError::new(codes::REQUEST_TIMED_OUT, e.to_string())))
            .collect(),
    }
}

pub async fn create_topics(broker: &Broker, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    // Resolve defaults here (this node's configs), refuse what needs no controller.
    let mut to_create = Vec::new();
    let mut early: Vec<Option<OpError>> = Vec::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        let refusal = if duplicates.contains(&name) {
            Some(OpError::new(
                codes::INVALID_REQUEST,
                "topic named more than once in one request",
            ))
        } else {
            reserved_topic(&name).map(|why| OpError::new(codes::INVALID_REQUEST, why))
        };
        if let Some(r) = refusal {
            early.push(Some(r));
            continue;
        }
        early.push(None);
        let manual = !t.assignments.is_empty();
        to_create.push(CreateTopic {
            name,
            num_partitions: if manual {
                t.assignments.len() as i32
            } else if t.num_partitions == -1 {
                broker.config.num_partitions()
            } else {
                t.num_partitions
            },
            replication_factor: if t.replication_factor == -1 {
                broker.config.default_replication_factor()
            } else {
                i32::from(t.replication_factor)
            },
            assignments: manual.then(|| {
                let mut a: Vec<_> = t.assignments.iter().collect();
                a.sort_by_key(|a| a.partition_index);
                a.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect()
            }),
            configs: t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect(),
        });
    }
    let n = to_create.len();
    let answer = broker
        .controller
        .submit_within(
            ControllerOp::CreateTopics {
                topics: to_create,
                validate_only: request.validate_only,
            },
            request_timeout(request.timeout_ms),
        )
        .await;
    let mut created = items(answer, n, |a| match a {
        OpAnswer::Topics(t) => Some(t),
        _ => None,
    })
    .into_iter();
    if !request.validate_only {
        reconcile(broker);
    }
    let results = request
        .topics
        .into_iter()
        .zip(early)
        .map(|(t, early)| {
            let result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            let outcome = match early {
                Some(e) => Err(e),
                None => created
                    .next()
                    .unwrap_or_else(|| Err(OpError::new(codes::UNKNOWN_SERVER_ERROR, "no answer"))),
            };
            match outcome {
                Err(e) => result.with_error_code(e.code).with_error_message(Some(sb(e.message))),
                Ok(CreatedTopic {
                    topic_id,
                    num_partitions: partitions,
                    replication_factor: rf,
                }) => {
                    let mut ok = result
                        .with_num_partitions(partitions)
                        .with_replication_factor(rf as i16);
                    if version >= 7 && !request.validate_only {
                        ok = ok.with_topic_id(uuid::Uuid::from_bytes(topic_id));
                    }
                    if version >= 5 {
                        let overrides = t
                            .configs
                            .iter()
                            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                            .collect();
                        let image = broker.image();
                        let configs = topic_configs(broker, &image, &overrides);
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
                    ok
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(broker: &Broker, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
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
        let outcome = if reserved_topic(&name).is_some() && name != "__cluster_metadata" {
            Err(OpError::new(
                codes::INVALID_REQUEST,
                "internal topics cannot be deleted",
            ))
        } else {
            let answer = broker
                .controller
                .submit_within(
                    ControllerOp::DeleteTopics {
                        names: vec![name.clone()],
                    },
                    request_timeout(request.timeout_ms),
                )
                .await;
            items(answer, 1, |a| match a {
                OpAnswer::Items(i) => Some(i),
                _ => None,
            })
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(OpError::new(codes::UNKNOWN_SERVER_ERROR, "no answer")))
        };
        results.push(match outcome {
            Ok(()) => {
                reconcile(broker);
                // Groups coordinated elsewhere forget it when their coordinator applies the
                // deletion (and every coordinator checks again when it starts).
                match broker.groups.forget_deleted_topics(|t| t == name) {
                    0 => {}
                    n => tracing::info!("deleted {n} committed offset(s) of topic {name}"),
                }
                result
            }
            Err(e) => {
                result
                    .with_error_code(e.code)
                    .with_error_message(if version >= 5 { Some(sb(e.message)) } else { None })
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(results)
}

pub async fn create_partitions(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let topics: Vec<NewPartitions> = request
        .topics
        .iter()
        .map(|t| {
            let manual = t
                .assignments
                .as_ref()
                .map(|a| a.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect());
            NewPartitions {
                topic: t.name.0.to_string(),
                total: t.count,
                assignments: manual,
            }
        })
        .collect();
    let n = topics.len();
    let answer = broker
        .controller
        .submit_within(
            ControllerOp::CreatePartitions {
                topics,
                validate_only: request.validate_only,
            },
            request_timeout(request.timeout_ms),
        )
        .await;
    let outcomes = items(answer, n, |a| match a {
        OpAnswer::Items(i) => Some(i),
        _ => None,
    });
    if !request.validate_only {
        reconcile(broker);
    }
    let results = request
        .topics
        .iter()
        .zip(outcomes)
        .map(|(t, outcome)| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(()) => result,
                Err(e) => result.with_error_code(e.code).with_error_message(Some(sb(e.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
