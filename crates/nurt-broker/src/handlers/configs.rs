//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, brokers (one broker by
//! id, or every broker as the cluster-wide default: the resource name "") and consumer groups
//! (KIP-848's group configs). Changes are validated and committed by the controller as
//! metadata records; dynamic broker configs change the topic-config defaults at once.

use std::collections::BTreeMap;

use nurt_metadata::config::{ConfigSource, ConfigType, GROUP_CONFIGS, TOPIC_CONFIGS};
use nurt_metadata::{ConfigResourceType, MetadataImage, TopicConfigs};
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
use crate::controller::{ControllerOp, OpAnswer};
use crate::{codes, Broker};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;

fn entry(
    name: &str,
    value: String,
    source: ConfigSource,
    config_type: i8,
    read_only: bool,
    synonyms: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(sb(name))
        .with_value(Some(sb(value.clone())))
        .with_read_only(read_only)
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

/// A topic's effective configs on this broker, dynamic broker configs included.
pub(crate) fn topic_configs<'a>(
    broker: &'a Broker,
    image: &'a MetadataImage,
    overrides: &'a BTreeMap<String, String>,
) -> TopicConfigs<'a> {
    TopicConfigs {
        dynamic_broker: image.configs(ConfigResourceType::Broker, &broker.node_id.to_string()),
        dynamic_default: image.configs(ConfigResourceType::Broker, ""),
        ..TopicConfigs::new(overrides, &broker.config.values)
    }
}

pub fn describe_configs(broker: &Broker, request: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let image = broker.image();
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
            let synonyms = request.include_synonyms;
            let result = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match res.resource_type {
                TOPIC => {
                    let Some(topic) = image.topic(&name) else {
                        return result
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(sb(format!("topic '{name}' does not exist"))));
                    };
                    let configs = topic_configs(broker, &image, &topic.configs);
                    let entries = TOPIC_CONFIGS
                        .iter()
                        .filter(|d| wanted(d.name))
                        .map(|d| {
                            let (value, source) = configs.get(d);
                            entry(d.name, value, source, d.ty as i8, false, synonyms, version)
                        })
                        .collect();
                    result.with_configs(entries)
                }
                BROKER => {
                    let id_ok = name.is_empty() || name.parse::<i32>().is_ok_and(|id| image.broker(id).is_some());
                    if !id_ok {
                        return result
                            .with_error_code(codes::INVALID_REQUEST)
                            .with_error_message(Some(sb(format!("broker '{name}' is not registered"))));
                    }
                    let dynamic = image.configs(ConfigResourceType::Broker, &name);
                    let default = image.configs(ConfigResourceType::Broker, "");
                    // Dynamic configs first (this broker's, then the cluster default), then the
                    // static ones this node was started with.
                    let mut seen = std::collections::BTreeSet::new();
                    let mut entries = Vec::new();
                    let layers = [
                        (
                            dynamic,
                            if name.is_empty() {
                                ConfigSource::DynamicDefaultBroker
                            } else {
                                ConfigSource::DynamicBroker
                            },
                        ),
                        (
                            if name.is_empty() { None } else { default },
                            ConfigSource::DynamicDefaultBroker,
                        ),
                        (Some(&broker.config.values), ConfigSource::StaticBroker),
                    ];
                    for (values, source) in layers {
                        for (k, v) in values.into_iter().flatten() {
                            if wanted(k) && seen.insert(k.clone()) {
                                let read_only = nurt_metadata::config::dynamic_broker_config(k).is_none();
                                entries.push(entry(
                                    k,
                                    v.clone(),
                                    source,
                                    ConfigType::String as i8,
                                    read_only,
                                    synonyms,
                                    version,
                                ));
                            }
                        }
                    }
                    result.with_configs(entries)
                }
                GROUP => {
                    let set = image.configs(ConfigResourceType::Group, &name);
                    let entries = GROUP_CONFIGS
                        .iter()
                        .filter(|d| wanted(d.name))
                        .map(|d| {
                            let (value, source) = match set.and_then(|s| s.get(d.name)) {
                                Some(v) => (v.clone(), ConfigSource::DynamicGroup),
                                None => (d.default.to_string(), ConfigSource::Default),
                            };
                            entry(d.name, value, source, ConfigType::Int as i8, false, synonyms, version)
                        })
                        .collect();
                    result.with_configs(entries)
                }
                other => result
                    .with_error_code(codes::INVALID_REQUEST)
                    .with_error_message(Some(sb(format!("resource type {other} is not supported")))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// A change to one config: set (`Some`) or remove (`None`).
type Change = (String, Option<String>);

/// Has the controller commit `changes` to a resource (or only validate them).
async fn alter(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    changes: Result<Vec<Change>, (i16, String)>,
    validate_only: bool,
) -> (i16, Option<String>) {
    let changes = match changes {
        Ok(c) => c,
        Err((code, message)) => return (code, Some(message)),
    };
    let op = match resource_type {
        TOPIC => ControllerOp::AlterTopicConfigs {
            topic: name.to_string(),
            changes: changes.clone(),
            validate_only,
        },
        BROKER | GROUP => ControllerOp::AlterConfigs {
            resource_type,
            resource_name: name.to_string(),
            changes: changes.clone(),
            validate_only,
        },
        other => {
            return (
                codes::INVALID_REQUEST,
                Some(format!("resource type {other} has no configs to alter")),
            )
        }
    };
    match broker.controller.submit(op).await {
        Ok(OpAnswer::Items(items)) => match items.into_iter().next() {
            Some(Ok(())) => {
                if !validate_only {
                    if let Err(e) = broker.reconcile(false) {
                        return (codes::KAFKA_STORAGE_ERROR, Some(e.to_string()));
                    }
                    tracing::info!("altered configs of {name:?} (resource type {resource_type}): {changes:?}");
                }
                (codes::NONE, None)
            }
            Some(Err(e)) => (e.code, Some(e.message)),
            None => (codes::UNKNOWN_SERVER_ERROR, None),
        },
        Ok(other) => (
            codes::UNKNOWN_SERVER_ERROR,
            Some(format!("unexpected answer {other:?}")),
        ),
        Err(e) => (codes::REQUEST_TIMED_OUT, Some(e.to_string())),
    }
}

/// The configs currently set on a resource.
fn current(broker: &Broker, resource_type: i8, name: &str) -> BTreeMap<String, String> {
    let image = broker.image();
    match resource_type {
        TOPIC => image.topic(name).map(|t| t.configs.clone()),
        BROKER => image.configs(ConfigResourceType::Broker, name).cloned(),
        GROUP => image.configs(ConfigResourceType::Group, name).cloned(),
        _ => None,
    }
    .unwrap_or_default()
}

/// AlterConfigs: the given set replaces every config set on the resource.
pub async fn alter_configs(broker: &Broker, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for res in &request.resources {
        let name = res.resource_name.to_string();
        let wanted: Vec<Change> = res
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let mut changes: Vec<Change> = current(broker, res.resource_type, &name)
            .into_keys()
            .filter(|k| !wanted.iter().any(|(w, _)| w == k))
            .map(|k| (k, None))
            .collect();
        changes.extend(wanted);
        let (code, message) = alter(broker, res.resource_type, &name, Ok(changes), request.validate_only).await;
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(sb))
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone()),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// The new value of list config `key` after APPEND/SUBTRACT `items` on `resource`.
fn list_change(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    key: &str,
    operation: i8,
    items_text: Option<String>,
) -> Result<String, (i16, String)> {
    let def = nurt_metadata::config::topic_config(key)
        .or_else(|| nurt_metadata::config::dynamic_broker_config(key))
        .filter(|d| d.ty == ConfigType::List && resource_type != GROUP);
    let Some(def) = def else {
        return Err((
            codes::INVALID_CONFIG,
            format!("{key} is not a list config: APPEND and SUBTRACT need one"),
        ));
    };
    let image = broker.image();
    let set = current(broker, resource_type, name);
    let current_value = match resource_type {
        TOPIC => topic_configs(broker, &image, &set).get(def).0,
        _ => set.get(key).cloned().unwrap_or_else(|| def.default.to_string()),
    };
    let mut items: Vec<String> = current_value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for item in items_text
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if operation == APPEND && !items.iter().any(|i| i == item) {
            items.push(item.to_string());
        } else if operation == SUBTRACT {
            items.retain(|i| i != item);
        }
    }
    Ok(items.join(","))
}

/// IncrementalAlterConfigs: SET, DELETE, and APPEND/SUBTRACT on list configs.
pub async fn incremental_alter_configs(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for res in &request.resources {
        let name = res.resource_name.to_string();
        let changes = res
            .configs
            .iter()
            .map(|c| {
                let key = c.name.to_string();
                let value = c.value.as_ref().map(|v| v.to_string());
                match c.config_operation {
                    SET => Ok((key, value)),
                    DELETE => Ok((key, None)),
                    op @ (APPEND | SUBTRACT) => {
                        let v = list_change(broker, res.resource_type, &name, &key, op, value)?;
                        Ok((key, Some(v)))
                    }
                    other => Err((codes::INVALID_REQUEST, format!("unknown config operation {other}"))),
                }
            })
            .collect::<Result<Vec<Change>, (i16, String)>>();
        let (code, message) = alter(broker, res.resource_type, &name, changes, request.validate_only).await;
        responses.push(
            IncrementalAlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(sb))
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone()),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
