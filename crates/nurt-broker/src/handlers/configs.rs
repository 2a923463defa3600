//! DescribeConfigs for topics (every topic config with its source) and for this broker.

use nurt_metadata::config::TOPIC_CONFIGS;
use nurt_metadata::{ConfigSource, TopicConfigs};
use nurt_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use nurt_protocol::kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

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
