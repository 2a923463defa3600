//! The one error type of this crate, named by meaning; the broker maps each to a Kafka code.

/// Why the controller refused an operation, or a record could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("invalid number of partitions {0}")]
    InvalidPartitions(i32),
    #[error("invalid replication factor {factor}: this cluster has {brokers} broker(s)")]
    InvalidReplicationFactor { factor: i32, brokers: i32 },
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig { key: String, value: String, reason: String },
    #[error("manual replica assignment names broker(s) not in the cluster")]
    InvalidReplicaAssignment,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no reassignment is in progress for this partition")]
    NoReassignmentInProgress,
    #[error("unable to perform excessively large batch operation: {requested} partitions, at most {max} per request")]
    TooManyPartitions { requested: usize, max: usize },
    #[error("broker {broker} would host {would_host} partition replicas, more than max.partitions.per.broker ({max})")]
    TooManyPartitionsOnBroker { broker: i32, would_host: usize, max: usize },
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error("the requester is not the leader, or its leader epoch is stale")]
    FencedLeaderEpoch,
    #[error("the partition epoch is stale")]
    InvalidUpdateVersion,
    #[error("a proposed in-sync replica is not a live replica")]
    IneligibleReplica,
    #[error("the leader is already the preferred one")]
    ElectionNotNeeded,
    #[error("the preferred leader is not in sync or not available")]
    PreferredLeaderNotAvailable,
    #[error("no live replica can lead")]
    EligibleLeadersNotAvailable,
    /// A broker's data directory belongs to another cluster.
    #[error("the broker's data directory belongs to cluster {broker}, this cluster is {cluster}")]
    InconsistentClusterId { broker: String, cluster: String },
    #[error("corrupt metadata record: {0}")]
    CorruptRecord(&'static str),
    /// A record of a type or version this binary does not know: written by a newer Nurt.
    #[error("metadata record type {record_type} version {version} is newer than this binary reads ({}); upgrade Nurt to read this data directory", supported.map_or("an unknown type".to_string(), |v| format!("up to version {v}")))]
    NewerRecord {
        record_type: u8,
        version: u8,
        supported: Option<u8>,
    },
}
