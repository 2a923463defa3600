//! Broker configuration by Kafka's config names, from `--set key=value` and `--config FILE`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::BrokerError;

/// Broker keys Nurt reads itself (topic-config defaults are accepted too, by their broker key).
const BROKER_KEYS: &[&str] = &[
    "node.id",
    "auto.create.topics.enable",
    "num.partitions",
    "default.replication.factor",
    "socket.request.max.bytes",
    "connections.max.idle.ms",
    "max.connections",
    "max.connections.per.ip",
    "queued.max.request.bytes",
    "log.flush.scheduler.interval.ms",
    "log.dirs",
    "log.dir",
    "log.retention.hours",
    "log.retention.minutes",
    "log.roll.hours",
    "log.roll.minutes",
    "offsets.retention.minutes",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.session.timeout.ms",
    "offset.metadata.max.bytes",
    "log.retention.check.interval.ms",
    "log.cleaner.backoff.ms",
    "log.cleaner.enable",
];

/// Everything `nurt serve` was told.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    /// `HOST:PORT` to bind.
    pub listen: String,
    /// `HOST:PORT` clients are told to connect to.
    pub advertise: String,
    /// Every `key=value` given, by Kafka name.
    pub values: BTreeMap<String, String>,
}

impl BrokerConfig {
    /// The embedded default: `./nurt-data`, `localhost:9092`.
    pub fn new(data_dir: PathBuf, listen: String, advertise: Option<String>) -> Self {
        Self {
            data_dir,
            advertise: advertise.unwrap_or_else(|| listen.clone()),
            listen,
            values: BTreeMap::new(),
        }
    }

    /// Sets `key` after checking it is a config Nurt knows and its value has the right type.
    /// `log.dirs` / `log.dir` (one directory) set the data directory, as in Kafka.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), BrokerError> {
        let key = key.trim();
        let value = value.trim();
        if key == "log.dirs" || key == "log.dir" {
            if value.contains(',') {
                return Err(BrokerError::Config(format!(
                    "{key}: one data directory only (got '{value}')"
                )));
            }
            self.data_dir = value.into();
        }
        let topic_def = nurt_metadata::config::TOPIC_CONFIGS
            .iter()
            .find(|d| d.broker_key == key);
        let stem_known = ["log.retention", "log.roll"].iter().any(|s| key.starts_with(s));
        if topic_def.is_none() && !BROKER_KEYS.contains(&key) && !stem_known {
            return Err(BrokerError::Config(format!(
                "unknown or unsupported config '{key}': Nurt takes the Kafka broker configs listed in docs/COMPATIBILITY.md (e.g. num.partitions, log.segment.bytes)"
            )));
        }
        if let Some(def) = topic_def {
            nurt_metadata::config::validate(def, value).map_err(|e| BrokerError::Config(e.to_string()))?;
        }
        self.values.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Loads `key=value` lines (Java properties style: `#` comments, blank lines) from `text`.
    pub fn load_properties(&mut self, text: &str) -> Result<(), BrokerError> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .or_else(|| line.split_once(':'))
                .ok_or_else(|| BrokerError::Config(format!("line {}: expected key=value, got '{line}'", n + 1)))?;
            self.set(k, v)?;
        }
        Ok(())
    }

    fn parsed<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        self.values.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    pub fn node_id(&self) -> i32 {
        self.parsed("node.id", 1)
    }
    pub fn auto_create_topics(&self) -> bool {
        self.parsed("auto.create.topics.enable", true)
    }
    pub fn num_partitions(&self) -> i32 {
        self.parsed("num.partitions", 1)
    }
    pub fn default_replication_factor(&self) -> i32 {
        self.parsed("default.replication.factor", 1)
    }
    pub fn socket_request_max_bytes(&self) -> usize {
        self.parsed(
            "socket.request.max.bytes",
            nurt_protocol::frame::SOCKET_REQUEST_MAX_BYTES,
        )
    }
    /// `queued.max.request.bytes`: the memory requests in flight may take (-1: unbounded).
    pub fn queued_max_request_bytes(&self) -> usize {
        match self.parsed::<i64>(
            "queued.max.request.bytes",
            crate::budget::QUEUED_MAX_REQUEST_BYTES as i64,
        ) {
            n if n < 0 => u32::MAX as usize * 1024,
            n => (n as usize).max(self.socket_request_max_bytes()),
        }
    }
    pub fn connections_max_idle_ms(&self) -> u64 {
        self.parsed("connections.max.idle.ms", 600_000)
    }
    pub fn max_connections(&self) -> usize {
        self.parsed("max.connections", usize::MAX)
    }
    pub fn max_connections_per_ip(&self) -> usize {
        self.parsed("max.connections.per.ip", usize::MAX)
    }
    pub fn retention_check_interval_ms(&self) -> u64 {
        self.parsed("log.retention.check.interval.ms", 300_000)
    }
    pub fn cleaner_backoff_ms(&self) -> u64 {
        self.parsed("log.cleaner.backoff.ms", 15_000)
    }
    pub fn cleaner_enabled(&self) -> bool {
        self.parsed("log.cleaner.enable", true)
    }
    pub fn flush_scheduler_interval_ms(&self) -> u64 {
        self.parsed("log.flush.scheduler.interval.ms", 1000)
    }

    /// `(host, port)` of the advertised listener.
    pub fn advertised_host_port(&self) -> (String, i32) {
        split_host_port(&self.advertise).unwrap_or_else(|| ("localhost".to_string(), 9092))
    }
}

/// Splits `HOST:PORT` (IPv6 hosts in brackets).
pub fn split_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_names_and_refuses_typos() {
        let mut c = BrokerConfig::new("d".into(), "localhost:9092".into(), None);
        c.set("auto.create.topics.enable", "false").unwrap();
        c.set("log.flush.interval.messages", "1").unwrap();
        c.set("log.retention.hours", "1").unwrap();
        assert!(!c.auto_create_topics());
        assert!(c.set("auto.create.topic.enable", "false").is_err());
        assert!(c.set("log.segment.bytes", "lots").is_err());
        c.load_properties("# comment\nnum.partitions = 6\n\n").unwrap();
        assert_eq!(c.num_partitions(), 6);
        assert!(c.load_properties("garbage line").is_err());
        assert_eq!(split_host_port("[::1]:9093"), Some(("::1".to_string(), 9093)));
        c.set("log.dirs", "/var/lib/nurt").unwrap();
        assert_eq!(c.data_dir, std::path::PathBuf::from("/var/lib/nurt"));
        assert!(c.set("log.dirs", "/a,/b").is_err());
        assert!(
            c.set("queued.max.requests.per.second", "5").is_err(),
            "configs Nurt does not honour are refused"
        );
    }
}
