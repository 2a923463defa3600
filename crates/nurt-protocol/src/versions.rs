//! The ApiVersions table: what Nurt advertises.
//!
//! The maxima are Apache Kafka 4.1's for every API listed (the newest release whose schemas
//! `kafka-protocol` carries; clients such as kafka-python infer a broker release from them, so
//! they must be coherent with one real release), and only APIs the broker fully serves are
//! listed. Minima go lower than Kafka 4's where widely packaged tools still send versions
//! KIP-896 removed (ListOffsets v0, OffsetCommit v0–1, DescribeConfigs v0: `legacy.rs`), and
//! JoinGroup v0–1 are back as in Kafka 4.0.1/4.1 (KAFKA-19444). Produce advertises minimum 0
//! like Kafka does (KAFKA-18659: old librdkafka checks for it) although only v3+ (record
//! batch v2) is accepted. The transaction APIs follow Kafka 4.1 exactly: WriteTxnMarkers
//! (broker to broker) starts at v1 since KIP-896 removed v0, and AddPartitionsToTxn v0–3 are
//! what clients send, v4+ what brokers send to verify a producer's transaction.

/// (api key, min version, max version).
pub const SUPPORTED: &[(i16, i16, i16)] = &[
    (0, 0, 13), // Produce
    (1, 4, 18), // Fetch
    (2, 0, 10), // ListOffsets
    (3, 0, 13), // Metadata
    (8, 0, 9),  // OffsetCommit
    (9, 1, 9),  // OffsetFetch
    (10, 0, 6), // FindCoordinator
    (11, 0, 9), // JoinGroup
    (12, 0, 4), // Heartbeat
    (13, 0, 5), // LeaveGroup
    (14, 0, 5), // SyncGroup
    (15, 0, 6), // DescribeGroups
    (16, 0, 5), // ListGroups
    (18, 0, 4), // ApiVersions
    (19, 2, 7), // CreateTopics
    (20, 1, 6), // DeleteTopics
    (21, 0, 2), // DeleteRecords
    (22, 0, 5), // InitProducerId
    (23, 2, 4), // OffsetForLeaderEpoch
    (24, 0, 5), // AddPartitionsToTxn
    (25, 0, 4), // AddOffsetsToTxn
    (26, 0, 5), // EndTxn
    (27, 1, 1), // WriteTxnMarkers
    (28, 0, 5), // TxnOffsetCommit
    (32, 0, 4), // DescribeConfigs
    (33, 0, 2), // AlterConfigs
    (35, 1, 4), // DescribeLogDirs
    (37, 0, 3), // CreatePartitions
    (42, 0, 2), // DeleteGroups
    (43, 0, 2), // ElectLeaders
    (44, 0, 1), // IncrementalAlterConfigs
    (45, 0, 1), // AlterPartitionReassignments
    (46, 0, 0), // ListPartitionReassignments
    (47, 0, 0), // OffsetDelete
    (55, 0, 2), // DescribeQuorum
    (60, 0, 2), // DescribeCluster
    (61, 0, 0), // DescribeProducers
    (65, 0, 0), // DescribeTransactions
    (66, 0, 2), // ListTransactions
    (68, 0, 1), // ConsumerGroupHeartbeat
    (69, 0, 1), // ConsumerGroupDescribe
    (75, 0, 0), // DescribeTopicPartitions
];

/// The lowest Produce version actually accepted (record batch v2).
pub const PRODUCE_MIN_ACCEPTED: i16 = 3;

/// The advertised range of `api_key`, if served.
pub fn range(api_key: i16) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// Whether requests of `api_key` at `version` are decoded and served.
pub fn is_served(api_key: i16, version: i16) -> bool {
    let min_accepted = if api_key == 0 { PRODUCE_MIN_ACCEPTED } else { i16::MIN };
    range(api_key).is_some_and(|(min, max)| version >= min.max(min_accepted) && version <= max)
}
