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
    #[error("corrupt metadata record: {0}")]
    CorruptRecord(&'static str),
}
