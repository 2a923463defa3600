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
