//! DescribeConfigs for topics (every topic config with its source) and for this broker;
//! AlterConfigs and IncrementalAlterConfigs for topics (validated, persisted as metadata).

use nurt_metadata::config::TOPIC_CONFIGS;
use nurt_metadata::{ConfigSource, TopicConfigs};
use nurt_protocol::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use nurt_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use nurt_protocol::kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalAlterConfigsResourceResponse;
use nurt_protocol::kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::sb;
use crate::{codes, Broker};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn entry(
    name: &str,
    value: String,
    source: ConfigSource,
    config_type: i8,
    synonyms: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(sb(name))
        .with_value(Some(sb(value.clone())))
        .with_config_source(source as i8);
    if synonyms {
        e = e.with_synonyms(vec![DescribeConfigsSynonym::default()
            .with_name(sb(name))
            .with_value(Some(sb(value)))
            .with_source(source as i8)]);
    }
    if version >= 3 {
        e = e.with_config_type(config_type);
    }
    e
}

pub fn describe_configs(broker: &Broker, request: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let results = request
        .resources
        .iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let wanted = |key: &str| {
                res.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == key))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match res.resource_type {
                TOPIC => {
                    let image = broker.metadata.image();
                    let Some(topic) = image.topic(&name) else {
                        return result
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(sb(format!("topic '{name}' does not exist"))));
                    };
                    let configs = TopicConfigs {
                        overrides: &topic.configs,
                        broker: &broker.config.values,
                    };
                    let entries = TOPIC_CONFIGS
                        .iter()
                        .filter(|d| wanted(d.name))
                        .map(|d| {
                            let (value, source) = configs.get(d);
                            entry(d.name, value, source, d.ty as i8, request.include_synonyms, version)
                        })
                        .collect();
                    result.with_configs(entries)
                }
                BROKER if name.is_empty() || name == broker.node_id.to_string() => {
                    let entries = broker
                        .config
                        .values
                        .iter()
                        .filter(|(k, _)| wanted(k))
                        .map(|(k, v)| {
                            entry(
                                k,
                                v.clone(),
                                ConfigSource::StaticBroker,
                                2,
                                request.include_synonyms,
                                version,
                            )
                        })
                        .collect();
                    result.with_configs(entries)
                }
                BROKER => result
                    .with_error_code(codes::INVALID_REQUEST)
                    .with_error_message(Some(sb(format!("this is broker {}, not {name}", broker.node_id)))),
                other => result
                    .with_error_code(codes::INVALID_REQUEST)
                    .with_error_message(Some(sb(format!("resource type {other} is not supported")))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// A change to one topic config: set (`Some`) or remove (`None`).
type Change = (String, Option<String>);

/// Commits `changes` to topic `name` (or only validates them), then applies them.
fn alter_topic(
    broker: &Broker,
    name: &str,
    changes: Result<Vec<Change>, (i16, String)>,
    validate_only: bool,
) -> (i16, Option<String>) {
    let changes = match changes {
        Ok(c) => c,
        Err((code, message)) => return (code, Some(message)),
    };
    let outcome = broker.metadata.commit(crate::now_ms(), |image| {
        let records = nurt_metadata::controller::alter_topic_configs(image, name, &changes)?;
        Ok((if validate_only { vec![] } else { records }, ()))
    });
    match outcome {
        Ok(()) => {
            if !validate_only {
                if let Err(e) = broker.reconcile(false) {
                    return (codes::KAFKA_STORAGE_ERROR, Some(e.to_string()));
                }
                tracing::info!("altered configs of topic {name}: {changes:?}");
            }
            (codes::NONE, None)
        }
        Err(e) => {
            let (code, message) = codes::for_commit(&e);
            (code, Some(message))
        }
    }
}

fn not_a_topic(resource_type: i8) -> (i16, Option<String>) {
    let what = if resource_type == BROKER {
        "dynamic broker configs are not supported: set them with --set or --config at start"
    } else {
        "only topic configs can be altered"
    };
    (codes::INVALID_REQUEST, Some(what.to_string()))
}

/// AlterConfigs: the given set replaces every override of the topic.
pub fn alter_configs(broker: &Broker, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = request
        .resources
        .iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let (code, message) = if res.resource_type != TOPIC {
                not_a_topic(res.resource_type)
            } else {
                let current: Vec<String> = broker
                    .metadata
                    .image()
                    .topic(&name)
                    .map(|t| t.configs.keys().cloned().collect())
                    .unwrap_or_default();
                let wanted: Vec<Change> = res
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                let mut changes: Vec<Change> = current
                    .into_iter()
                    .filter(|k| !wanted.iter().any(|(w, _)| w == k))
                    .map(|k| (k, None))
                    .collect();
                changes.extend(wanted);
                alter_topic(broker, &name, Ok(changes), request.validate_only)
            };
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(sb))
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone())
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// IncrementalAlterConfigs: SET, DELETE, and APPEND/SUBTRACT on list configs.
pub fn incremental_alter_configs(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = request
        .resources
        .iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let (code, message) = if res.resource_type != TOPIC {
                not_a_topic(res.resource_type)
            } else {
                let changes = res
                    .configs
                    .iter()
                    .map(|c| {
                        let key = c.name.to_string();
                        let value = c.value.as_ref().map(|v| v.to_string());
                        match c.config_operation {
                            SET => Ok((key, value)),
                            DELETE => Ok((key, None)),
                            APPEND | SUBTRACT => {
                                let def = nurt_metadata::config::topic_config(&key)
                                    .filter(|d| d.ty == nurt_metadata::config::ConfigType::List);
                                let Some(def) = def else {
                                    return Err((
                                        codes::INVALID_CONFIG,
                                        format!("{key} is not a list config: APPEND and SUBTRACT need one"),
                                    ));
                                };
                                let image = broker.metadata.image();
                                let overrides = image.topic(&name).map(|t| t.configs.clone()).unwrap_or_default();
                                let (current, _) = TopicConfigs {
                                    overrides: &overrides,
                                    broker: &broker.config.values,
                                }
                                .get(def);
                                let mut items: Vec<String> = current
                                    .split(',')
                                    .map(|s| s.trim().to_string())
                                    .filter(|s| !s.is_empty())
                                    .collect();
                                for item in value
                                    .unwrap_or_default()
                                    .split(',')
                                    .map(str::trim)
                                    .filter(|s| !s.is_empty())
                                {
                                    if c.config_operation == APPEND && !items.iter().any(|i| i == item) {
                                        items.push(item.to_string());
                                    } else if c.config_operation == SUBTRACT {
                                        items.retain(|i| i != item);
                                    }
                                }
                                Ok((key, Some(items.join(","))))
                            }
                            other => Err((codes::INVALID_REQUEST, format!("unknown config operation {other}"))),
                        }
                    })
                    .collect::<Result<Vec<Change>, (i16, String)>>();
                alter_topic(broker, &name, changes, request.validate_only)
            };
            IncrementalAlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(sb))
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone())
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
