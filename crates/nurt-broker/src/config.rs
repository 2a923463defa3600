//! Broker configuration by Kafka's config names, from `--set key=value` and `--config FILE`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::BrokerError;

/// Broker keys Nurt reads itself (topic-config defaults are accepted too, by their broker key).
const BROKER_KEYS: &[&str] = &[
    "node.id",
    "process.roles",
    "controller.quorum.voters",
    "controller.listener.names",
    "listeners",
    "advertised.listeners",
    "inter.broker.listener.name",
    "broker.rack",
    "broker.session.timeout.ms",
    "broker.heartbeat.interval.ms",
    "controller.quorum.election.timeout.ms",
    "controlled.shutdown.enable",
    "auto.leader.rebalance.enable",
    "leader.imbalance.check.interval.seconds",
    "leader.imbalance.per.broker.percentage",
    "offsets.topic.num.partitions",
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transaction.max.timeout.ms",
    "transactional.id.expiration.ms",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "producer.id.expiration.ms",
    "max.partitions.per.broker",
    "producer.id.expiration.check.interval.ms",
    "offsets.topic.replication.factor",
    "replica.lag.time.max.ms",
    "replica.fetch.max.bytes",
    "replica.fetch.wait.max.ms",
    "replica.fetch.response.max.bytes",
    "replica.fetch.backoff.ms",
    "replica.high.watermark.checkpoint.interval.ms",
    "replica.selector.class",
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

/// Kafka's rack-aware replica selector (KIP-392), the one `replica.selector.class` takes.
pub const RACK_AWARE_REPLICA_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// The name of the client listener (Kafka's default listener name).
pub const CLIENT_LISTENER: &str = "PLAINTEXT";
/// The name of the internal listener: Raft, controller requests and replication.
pub const INTERNAL_LISTENER: &str = "CONTROLLER";

/// Everything `nurt serve` was told.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    /// `HOST:PORT` to bind.
    pub listen: String,
    /// `HOST:PORT` clients are told to connect to.
    pub advertise: String,
    /// The internal listener to bind (`--controller-listen`, or the `CONTROLLER://` entry of
    /// `listeners`); a cluster node needs one, the embedded single node none.
    pub controller_listen: Option<String>,
    /// The metadata quorum's voters: node id → internal listener `HOST:PORT`
    /// (`--voters`, `controller.quorum.voters`). Empty: the embedded single node.
    pub voters: BTreeMap<u64, String>,
    /// Every `key=value` given, by Kafka name.
    pub values: BTreeMap<String, String>,
}

/// Parses `controller.quorum.voters` (`1@host:port,2@host:port`).
pub fn parse_voters(text: &str) -> Result<BTreeMap<u64, String>, BrokerError> {
    let mut out = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('@').ok_or_else(|| {
            BrokerError::Config(format!(
                "voter '{part}': expected NODE_ID@HOST:PORT (e.g. 1@localhost:9093)"
            ))
        })?;
        let id: u64 = id
            .parse()
            .map_err(|_| BrokerError::Config(format!("voter '{part}': node id '{id}' is not a number")))?;
        if split_host_port(addr).is_none() {
            return Err(BrokerError::Config(format!(
                "voter '{part}': address '{addr}' is not HOST:PORT"
            )));
        }
        if out.insert(id, addr.to_string()).is_some() {
            return Err(BrokerError::Config(format!("voter {id} is named twice")));
        }
    }
    Ok(out)
}

/// Parses Kafka's `listeners`: `NAME://HOST:PORT,...` into (name, `HOST:PORT`) pairs.
fn parse_listeners(text: &str) -> Result<Vec<(String, String)>, BrokerError> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, addr) = p.split_once("://").ok_or_else(|| {
                BrokerError::Config(format!(
                    "listener '{p}': expected NAME://HOST:PORT (e.g. PLAINTEXT://localhost:9092)"
                ))
            })?;
            // An empty host means every interface, as in Kafka.
            let addr = if addr.starts_with(':') {
                format!("0.0.0.0{addr}")
            } else {
                addr.to_string()
            };
            Ok((name.to_string(), addr))
        })
        .collect()
}

impl BrokerConfig {
    /// The embedded default: `./nurt-data`, `localhost:9092`.
    pub fn new(data_dir: PathBuf, listen: String, advertise: Option<String>) -> Self {
        Self {
            data_dir,
            advertise: advertise.unwrap_or_else(|| listen.clone()),
            listen,
            controller_listen: None,
            voters: BTreeMap::new(),
            values: BTreeMap::new(),
        }
    }

    /// Whether this node is part of a cluster (as opposed to the embedded single node).
    pub fn is_cluster(&self) -> bool {
        !self.voters.is_empty()
    }

    /// Whether this node votes in the metadata quorum (and may be the active controller).
    pub fn is_voter(&self) -> bool {
        self.voters.contains_key(&(self.node_id() as u64))
    }

    /// Checks that the cluster settings fit together; call once everything is set.
    pub fn check_cluster(&self) -> Result<(), BrokerError> {
        let roles = self
            .values
            .get("process.roles")
            .map(String::as_str)
            .unwrap_or("broker,controller");
        let controller_role = roles.split(',').any(|r| r.trim() == "controller");
        if !self.is_cluster() {
            if self.controller_listen.is_some() {
                return Err(BrokerError::Config(
                    "--controller-listen needs --voters (controller.quorum.voters): which nodes vote in the metadata quorum".into(),
                ));
            }
            return Ok(());
        }
        if self.controller_listen.is_none() {
            return Err(BrokerError::Config(
                "a cluster node needs an internal listener: --controller-listen HOST:PORT (or CONTROLLER://HOST:PORT in listeners)".into(),
            ));
        }
        if controller_role && !self.is_voter() && self.values.contains_key("process.roles") {
            return Err(BrokerError::Config(format!(
                "process.roles includes controller but node {} is not in controller.quorum.voters",
                self.node_id()
            )));
        }
        Ok(())
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
        match key {
            "controller.quorum.voters" => self.voters = parse_voters(value)?,
            "listeners" => {
                for (name, addr) in parse_listeners(value)? {
                    match name.as_str() {
                        CLIENT_LISTENER => self.listen = addr,
                        INTERNAL_LISTENER => self.controller_listen = Some(addr),
                        other => {
                            return Err(BrokerError::Config(format!(
                                "listener {other}: Nurt has a {CLIENT_LISTENER} listener for clients and a {INTERNAL_LISTENER} listener between nodes"
                            )))
                        }
                    }
                }
            }
            "advertised.listeners" => {
                for (name, addr) in parse_listeners(value)? {
                    if name == CLIENT_LISTENER {
                        self.advertise = addr;
                    }
                }
            }
            "replica.selector.class" if !value.is_empty() && value != RACK_AWARE_REPLICA_SELECTOR => {
                return Err(BrokerError::Config(format!(
                    "replica.selector.class: Nurt has Kafka's {RACK_AWARE_REPLICA_SELECTOR} (KIP-392), not '{value}'"
                )))
            }
            "node.id" if value.parse::<i32>().is_err() => {
                return Err(BrokerError::Config(format!("node.id must be a number, got '{value}'")))
            }
            _ => {}
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
    /// `max.partitions.per.broker` (Nurt's; default 200,000): partition replicas one broker may
    /// host; CreateTopics/CreatePartitions (auto-creation too) past it get POLICY_VIOLATION
    /// before anything is written.
    pub fn partitions_per_broker_max(&self) -> usize {
        self.parsed("max.partitions.per.broker", 200_000)
    }
    /// `producer.id.expiration.ms` (Kafka: one day): a producer with no transaction open on a
    /// partition whose last batch is this old is forgotten there (its next batch starts anew).
    pub fn producer_id_expiration_ms(&self) -> i64 {
        self.parsed("producer.id.expiration.ms", 86_400_000)
    }
    /// `producer.id.expiration.check.interval.ms` (Kafka: 10 minutes).
    pub fn producer_id_expiration_check_interval_ms(&self) -> u64 {
        self.parsed("producer.id.expiration.check.interval.ms", 600_000)
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
    /// `replica.selector.class` names the rack-aware selector: consumers that give their
    /// `client.rack` are sent to an in-sync follower in that rack (KIP-392). Kafka's default
    /// (unset) keeps every consumer on the leader.
    pub fn rack_aware_replica_selector(&self) -> bool {
        self.values.get("replica.selector.class").map(String::as_str) == Some(RACK_AWARE_REPLICA_SELECTOR)
    }
    /// `broker.rack`
    pub fn rack(&self) -> Option<String> {
        self.values.get("broker.rack").cloned()
    }
    /// `broker.session.timeout.ms` (Kafka: 9000)
    pub fn broker_session_timeout_ms(&self) -> i64 {
        self.parsed("broker.session.timeout.ms", 9_000)
    }
    /// `broker.heartbeat.interval.ms` (Kafka: 2000)
    pub fn broker_heartbeat_interval_ms(&self) -> u64 {
        self.parsed("broker.heartbeat.interval.ms", 2_000)
    }
    /// `controller.quorum.election.timeout.ms` (Kafka: 1000)
    pub fn election_timeout_ms(&self) -> u64 {
        self.parsed("controller.quorum.election.timeout.ms", 1_000)
    }
    /// `auto.leader.rebalance.enable` (Kafka: true)
    pub fn auto_leader_rebalance(&self) -> bool {
        self.parsed("auto.leader.rebalance.enable", true)
    }
    /// `leader.imbalance.check.interval.seconds` (Kafka: 300), in ms
    pub fn leader_imbalance_check_interval_ms(&self) -> i64 {
        self.parsed::<i64>("leader.imbalance.check.interval.seconds", 300)
            .saturating_mul(1000)
    }
    /// `leader.imbalance.per.broker.percentage` (Kafka: 10)
    pub fn leader_imbalance_percent(&self) -> u32 {
        self.parsed("leader.imbalance.per.broker.percentage", 10)
    }
    /// `unclean.leader.election.enable` (Kafka: false)
    pub fn unclean_leader_election(&self) -> bool {
        self.parsed("unclean.leader.election.enable", false)
    }
    /// `offsets.topic.num.partitions` (Kafka: 50)
    pub fn offsets_topic_partitions(&self) -> i32 {
        self.parsed("offsets.topic.num.partitions", 50)
    }
    /// `offsets.topic.replication.factor` (Kafka: 3; the embedded single node: 1, as Kafka's
    /// single-node quick start configures it)
    pub fn offsets_topic_replication_factor(&self) -> i32 {
        self.parsed(
            "offsets.topic.replication.factor",
            if self.is_cluster() { 3 } else { 1 },
        )
    }
    /// `transaction.state.log.num.partitions` (Kafka: 50)
    pub fn txn_topic_partitions(&self) -> i32 {
        self.parsed("transaction.state.log.num.partitions", 50)
    }
    /// `transaction.state.log.replication.factor` (Kafka: 3; the embedded single node: 1)
    pub fn txn_topic_replication_factor(&self) -> i32 {
        self.parsed(
            "transaction.state.log.replication.factor",
            if self.is_cluster() { 3 } else { 1 },
        )
    }
    /// `transaction.state.log.min.isr` (Kafka: 2; the embedded single node: 1)
    pub fn txn_topic_min_isr(&self) -> i32 {
        self.parsed("transaction.state.log.min.isr", if self.is_cluster() { 2 } else { 1 })
    }
    /// `transaction.max.timeout.ms` (Kafka: 900000): the longest `transaction.timeout.ms` a
    /// producer may ask for.
    pub fn txn_max_timeout_ms(&self) -> i32 {
        self.parsed("transaction.max.timeout.ms", 900_000)
    }
    /// `transactional.id.expiration.ms` (Kafka: 7 days)
    pub fn txn_id_expiration_ms(&self) -> i64 {
        self.parsed("transactional.id.expiration.ms", 604_800_000)
    }
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (Kafka: 10000): how often
    /// transactions past their timeout are looked for.
    pub fn txn_timeout_check_interval_ms(&self) -> u64 {
        self.parsed("transaction.abort.timed.out.transaction.cleanup.interval.ms", 10_000)
    }
    /// `replica.lag.time.max.ms` (Kafka: 30000): a follower that has not caught up for this
    /// long leaves the ISR.
    pub fn replica_lag_time_max_ms(&self) -> i64 {
        self.parsed("replica.lag.time.max.ms", 30_000)
    }
    /// `replica.fetch.wait.max.ms` (Kafka: 500): how long a follower's fetch waits for data.
    pub fn replica_fetch_wait_max_ms(&self) -> i32 {
        self.parsed("replica.fetch.wait.max.ms", 500)
    }
    /// `replica.fetch.max.bytes` (Kafka: 1 MiB): bytes per partition per follower fetch.
    pub fn replica_fetch_max_bytes(&self) -> i32 {
        self.parsed("replica.fetch.max.bytes", 1 << 20)
    }
    /// `replica.fetch.response.max.bytes` (Kafka: 10 MiB): bytes per follower fetch.
    pub fn replica_fetch_response_max_bytes(&self) -> i32 {
        self.parsed("replica.fetch.response.max.bytes", 10 << 20)
    }
    /// `replica.fetch.backoff.ms` (Kafka: 1000): pause after a failed follower fetch.
    pub fn replica_fetch_backoff_ms(&self) -> u64 {
        self.parsed("replica.fetch.backoff.ms", 1_000)
    }
    /// `replica.high.watermark.checkpoint.interval.ms` (Kafka: 5000).
    pub fn high_watermark_checkpoint_interval_ms(&self) -> u64 {
        self.parsed("replica.high.watermark.checkpoint.interval.ms", 5_000)
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
        c.set("controller.quorum.voters", "1@localhost:9093, 2@127.0.0.1:9094")
            .unwrap();
        assert_eq!(c.voters.len(), 2);
        assert!(c.set("controller.quorum.voters", "1@nowhere").is_err());
        c.set("listeners", "PLAINTEXT://:9092,CONTROLLER://127.0.0.1:9093")
            .unwrap();
        assert_eq!(
            (c.listen.as_str(), c.controller_listen.as_deref()),
            ("0.0.0.0:9092", Some("127.0.0.1:9093"))
        );
        assert!(c.set("listeners", "SASL_SSL://:9094").is_err());
        assert!(
            c.set("queued.max.requests.per.second", "5").is_err(),
            "configs Nurt does not honour are refused"
        );
    }
}
