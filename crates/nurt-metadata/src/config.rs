//! Topic configs: Kafka's names, types, defaults, the broker keys that set their defaults,
//! and validation. A topic's effective value is its override, else the broker's static value
//! (`--set` / `--config`), else Kafka's default.

use std::collections::BTreeMap;

use crate::MetadataError;

/// Kafka's DescribeConfigs `config_type` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Where an effective value came from (Kafka's DescribeConfigs `config_source` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
    DynamicGroup = 8,
}

/// One topic-level config.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker config whose value is this config's default.
    pub broker_key: &'static str,
    pub default: &'static str,
    pub ty: ConfigType,
    /// For strings and lists: the allowed values. For numbers: nothing.
    pub allowed: &'static [&'static str],
    /// For numbers: the smallest allowed value.
    pub min: i64,
}

const fn def(
    name: &'static str,
    broker_key: &'static str,
    default: &'static str,
    ty: ConfigType,
    min: i64,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_key,
        default,
        ty,
        allowed: &[],
        min,
    }
}

const LONG_MAX: &str = "9223372036854775807";

/// Every topic config Nurt knows, sorted by name (as DescribeConfigs lists them).
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        allowed: &["delete", "compact"],
        ..def("cleanup.policy", "log.cleanup.policy", "delete", ConfigType::List, 0)
    },
    TopicConfigDef {
        allowed: &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
        ..def(
            "compression.type",
            "compression.type",
            "producer",
            ConfigType::String,
            0,
        )
    },
    def(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        "86400000",
        ConfigType::Long,
        0,
    ),
    def(
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        "60000",
        ConfigType::Long,
        0,
    ),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        LONG_MAX,
        ConfigType::Long,
        1,
    ),
    def("flush.ms", "log.flush.interval.ms", LONG_MAX, ConfigType::Long, 0),
    def(
        "index.interval.bytes",
        "log.index.interval.bytes",
        "4096",
        ConfigType::Int,
        0,
    ),
    def(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        LONG_MAX,
        ConfigType::Long,
        1,
    ),
    def("max.message.bytes", "message.max.bytes", "1048588", ConfigType::Int, 0),
    def(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        "3600000",
        ConfigType::Long,
        0,
    ),
    def(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        LONG_MAX,
        ConfigType::Long,
        0,
    ),
    TopicConfigDef {
        allowed: &["CreateTime", "LogAppendTime"],
        ..def(
            "message.timestamp.type",
            "log.message.timestamp.type",
            "CreateTime",
            ConfigType::String,
            0,
        )
    },
    def(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        "0.5",
        ConfigType::Double,
        0,
    ),
    def(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        "0",
        ConfigType::Long,
        0,
    ),
    def("min.insync.replicas", "min.insync.replicas", "1", ConfigType::Int, 1),
    def("preallocate", "log.preallocate", "false", ConfigType::Boolean, 0),
    def(
        "retention.bytes",
        "log.retention.bytes",
        "-1",
        ConfigType::Long,
        i64::MIN,
    ),
    def("retention.ms", "log.retention.ms", "604800000", ConfigType::Long, -1),
    def("segment.bytes", "log.segment.bytes", "1073741824", ConfigType::Int, 14),
    def(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        "10485760",
        ConfigType::Int,
        4,
    ),
    def("segment.jitter.ms", "log.roll.jitter.ms", "0", ConfigType::Long, 0),
    def("segment.ms", "log.roll.ms", "604800000", ConfigType::Long, 1),
    def(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        "false",
        ConfigType::Boolean,
        0,
    ),
];

/// The definition of topic config `name`.
pub fn topic_config(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> MetadataError {
    MetadataError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Checks `value` against the config's type and bounds.
pub fn validate(def: &TopicConfigDef, value: &str) -> Result<(), MetadataError> {
    let v = value.trim();
    match def.ty {
        ConfigType::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(invalid(def.name, value, "expected true or false"));
            }
        }
        ConfigType::Int | ConfigType::Long => {
            let n: i64 = v
                .parse()
                .map_err(|_| invalid(def.name, value, "expected a whole number"))?;
            if def.ty == ConfigType::Int && i32::try_from(n).is_err() {
                return Err(invalid(def.name, value, "out of range for an int"));
            }
            if n < def.min {
                return Err(invalid(def.name, value, format!("must be at least {}", def.min)));
            }
        }
        ConfigType::Double => {
            let x: f64 = v.parse().map_err(|_| invalid(def.name, value, "expected a number"))?;
            if !(0.0..=1.0).contains(&x) {
                return Err(invalid(def.name, value, "must be between 0 and 1"));
            }
        }
        ConfigType::String => {
            if !def.allowed.is_empty() && !def.allowed.contains(&v) {
                return Err(invalid(
                    def.name,
                    value,
                    format!("must be one of {}", def.allowed.join(", ")),
                ));
            }
        }
        ConfigType::List => {
            for item in v.split(',').map(str::trim) {
                if !def.allowed.contains(&item) {
                    return Err(invalid(
                        def.name,
                        value,
                        format!("each item must be one of {}", def.allowed.join(", ")),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Validates a topic config override by name.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), MetadataError> {
    let def = topic_config(key).ok_or_else(|| invalid(key, value, "unknown topic config"))?;
    validate(def, value)
}

/// A topic's effective configs, in Kafka's order of precedence: its overrides, this broker's
/// dynamic configs, the cluster-wide dynamic defaults, the broker's static values, Kafka's
/// defaults. Broker-level layers are keyed by the broker config names (`log.retention.ms`).
#[derive(Debug, Clone)]
pub struct TopicConfigs<'a> {
    pub overrides: &'a BTreeMap<String, String>,
    pub broker: &'a BTreeMap<String, String>,
    pub dynamic_broker: Option<&'a BTreeMap<String, String>>,
    pub dynamic_default: Option<&'a BTreeMap<String, String>>,
}

impl<'a> TopicConfigs<'a> {
    /// Overrides over the broker's static values only.
    pub fn new(overrides: &'a BTreeMap<String, String>, broker: &'a BTreeMap<String, String>) -> Self {
        Self {
            overrides,
            broker,
            dynamic_broker: None,
            dynamic_default: None,
        }
    }

    /// The effective value of `name` and where it came from.
    pub fn get(&self, def: &TopicConfigDef) -> (String, ConfigSource) {
        if let Some(v) = self.overrides.get(def.name) {
            return (v.clone(), ConfigSource::DynamicTopic);
        }
        if let Some(v) = self.dynamic_broker.and_then(|m| broker_value(m, def)) {
            return (v, ConfigSource::DynamicBroker);
        }
        if let Some(v) = self.dynamic_default.and_then(|m| broker_value(m, def)) {
            return (v, ConfigSource::DynamicDefaultBroker);
        }
        if let Some(v) = broker_value(self.broker, def) {
            return (v, ConfigSource::StaticBroker);
        }
        (def.default.to_string(), ConfigSource::Default)
    }

    /// The effective value of `name` as i64 (numbers only; falls back to Kafka's default).
    pub fn long(&self, name: &str) -> i64 {
        let def = topic_config(name).expect("known config name");
        let (v, _) = self.get(def);
        v.trim().parse().unwrap_or_else(|_| def.default.parse().unwrap_or(0))
    }

    /// The effective value of `name` as a string.
    pub fn string(&self, name: &str) -> String {
        let def = topic_config(name).expect("known config name");
        self.get(def).0
    }
}

/// The broker's value for a topic config's default, honouring Kafka's hour/minute variants
/// (`log.retention.hours`, `log.roll.hours`, ...) when the ms key is not set.
fn broker_value(broker: &BTreeMap<String, String>, def: &TopicConfigDef) -> Option<String> {
    if let Some(v) = broker.get(def.broker_key) {
        return Some(v.clone());
    }
    let stem = def.broker_key.strip_suffix(".ms")?;
    let scaled = |key: String, factor: i64| {
        broker
            .get(&key)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|n| (n.saturating_mul(factor)).to_string())
    };
    scaled(format!("{stem}.minutes"), 60_000).or_else(|| scaled(format!("{stem}.hours"), 3_600_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_by_type() {
        assert!(validate_topic_config("retention.ms", "1000").is_ok());
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("retention.ms", "soon").is_err());
        assert!(validate_topic_config("segment.bytes", "3").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("no.such.config", "1").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
    }

    #[test]
    fn effective_values_layer() {
        let mut broker = BTreeMap::new();
        broker.insert("log.retention.hours".to_string(), "2".to_string());
        broker.insert("log.segment.bytes".to_string(), "1000".to_string());
        let mut overrides = BTreeMap::new();
        overrides.insert("segment.bytes".to_string(), "5000".to_string());
        let mut dynamic = BTreeMap::new();
        dynamic.insert("log.flush.interval.ms".to_string(), "250".to_string());
        let c = TopicConfigs {
            dynamic_default: Some(&dynamic),
            ..TopicConfigs::new(&overrides, &broker)
        };
        assert_eq!(c.long("retention.ms"), 7_200_000);
        assert_eq!(c.long("segment.bytes"), 5000);
        assert_eq!(
            c.get(topic_config("segment.bytes").unwrap()).1,
            ConfigSource::DynamicTopic
        );
        assert_eq!(
            c.get(topic_config("flush.ms").unwrap()),
            ("250".to_string(), ConfigSource::DynamicDefaultBroker)
        );
        assert_eq!(c.get(topic_config("flush.messages").unwrap()).1, ConfigSource::Default);
    }
}

/// A group config (KIP-848's per-group settings, Kafka's `GroupConfig`): its default and the
/// broker configs that bound it.
#[derive(Debug)]
pub struct GroupConfigDef {
    pub name: &'static str,
    pub default: i64,
    /// (broker config, its default) bounding the value from below and above.
    pub min: (&'static str, i64),
    pub max: (&'static str, i64),
}

/// Every group config Nurt serves.
pub static GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: "consumer.heartbeat.interval.ms",
        default: 5_000,
        min: ("group.consumer.min.heartbeat.interval.ms", 5_000),
        max: ("group.consumer.max.heartbeat.interval.ms", 15_000),
    },
    GroupConfigDef {
        name: "consumer.session.timeout.ms",
        default: 45_000,
        min: ("group.consumer.min.session.timeout.ms", 45_000),
        max: ("group.consumer.max.session.timeout.ms", 60_000),
    },
];

/// The definition of group config `name`.
pub fn group_config(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks a group config value against its bounds.
pub fn validate_group_config(key: &str, value: &str) -> Result<(), MetadataError> {
    let def = group_config(key).ok_or_else(|| invalid(key, value, "unknown group config"))?;
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "expected a whole number"))?;
    if n < def.min.1 || n > def.max.1 {
        return Err(invalid(
            key,
            value,
            format!(
                "must be between {} ({}) and {} ({})",
                def.min.1, def.min.0, def.max.1, def.max.0
            ),
        ));
    }
    Ok(())
}

/// The topic config whose default the broker config `key` is, when `key` may be changed at
/// run time (every topic config's broker default, `unclean.leader.election.enable` among them).
pub fn dynamic_broker_config(key: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.broker_key == key)
}

/// Checks a dynamic broker config and its value.
pub fn validate_dynamic_broker_config(key: &str, value: &str) -> Result<(), MetadataError> {
    let def = dynamic_broker_config(key).ok_or_else(|| {
        invalid(
            key,
            value,
            "not a dynamic broker config (Nurt changes topic-config defaults such as log.retention.ms at run time)",
        )
    })?;
    validate(def, value)
}
