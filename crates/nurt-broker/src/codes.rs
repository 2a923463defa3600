//! Kafka error codes the broker answers with (the protocol edge is the only place they live).

pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const INVALID_TIMESTAMP: i16 = 32;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const NOT_CONTROLLER: i16 = 41;
pub const INVALID_REQUEST: i16 = 42;
pub const POLICY_VIOLATION: i16 = 44;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 76;
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
pub const ELECTION_NOT_NEEDED: i16 = 84;
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
pub const INVALID_RECORD: i16 = 87;
pub const PRODUCER_FENCED: i16 = 90;
pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const INELIGIBLE_REPLICA: i16 = 107;
pub const INCONSISTENT_CLUSTER_ID: i16 = 104;
pub const INVALID_UPDATE_VERSION: i16 = 108;
pub const TRANSACTION_ABORTABLE: i16 = 120;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;

use nurt_metadata::MetadataError;

/// The Kafka error code and message for a controller's refusal.
pub fn for_metadata(e: &MetadataError) -> (i16, String) {
    let code = match e {
        MetadataError::TopicExists(_) => TOPIC_ALREADY_EXISTS,
        MetadataError::UnknownTopic(_) => UNKNOWN_TOPIC_OR_PARTITION,
        MetadataError::InvalidTopicName { .. } => INVALID_TOPIC_EXCEPTION,
        MetadataError::InvalidPartitions(_) => INVALID_PARTITIONS,
        MetadataError::InvalidReplicationFactor { .. } => INVALID_REPLICATION_FACTOR,
        MetadataError::InvalidConfig { .. } => INVALID_CONFIG,
        MetadataError::InvalidReplicaAssignment => INVALID_REPLICA_ASSIGNMENT,
        MetadataError::InvalidRequest(_) => INVALID_REQUEST,
        MetadataError::NoReassignmentInProgress => NO_REASSIGNMENT_IN_PROGRESS,
        MetadataError::TooManyPartitions { .. } | MetadataError::TooManyPartitionsOnBroker { .. } => POLICY_VIOLATION,
        MetadataError::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
        MetadataError::FencedLeaderEpoch => FENCED_LEADER_EPOCH,
        MetadataError::InvalidUpdateVersion => INVALID_UPDATE_VERSION,
        MetadataError::IneligibleReplica => INELIGIBLE_REPLICA,
        MetadataError::ElectionNotNeeded => ELECTION_NOT_NEEDED,
        MetadataError::PreferredLeaderNotAvailable => PREFERRED_LEADER_NOT_AVAILABLE,
        MetadataError::EligibleLeadersNotAvailable => ELIGIBLE_LEADERS_NOT_AVAILABLE,
        MetadataError::InconsistentClusterId { .. } => INCONSISTENT_CLUSTER_ID,
        MetadataError::CorruptRecord(_) | MetadataError::NewerRecord { .. } => UNKNOWN_SERVER_ERROR,
    };
    (code, e.to_string())
}

/// Checks a request's `current_leader_epoch` against the partition's (-1 skips the check).
pub fn leader_epoch_check(requested: i32, current: i32) -> i16 {
    if requested < 0 || requested == current {
        NONE
    } else if requested < current {
        FENCED_LEADER_EPOCH
    } else {
        UNKNOWN_LEADER_EPOCH
    }
}
