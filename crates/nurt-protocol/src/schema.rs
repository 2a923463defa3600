//! Request schemas as the guard needs them: field types and the versions they exist in.
//!
//! Transcribed from Kafka's message definitions (`clients/src/main/resources/common/message`).
//! Only what decides the byte layout is kept: nullability does not (the decoder rejects a null
//! where none is allowed), and flexible versions switch every length to a compact varint.
//! Every request the broker serves must have an entry; the tests round-trip each through
//! `kafka-protocol`'s encoder to prove the layouts agree.

/// A field's wire type.
#[derive(Debug)]
pub enum Ty {
    Bool,
    I8,
    I16,
    I32,
    I64,
    Uuid,
    /// String: i16 length (compact varint when flexible).
    Str,
    /// Bytes or records: i32 length (compact varint when flexible).
    Bytes,
    /// Array of structs.
    Array(&'static Struct),
    /// Array of primitives.
    Values(&'static Ty),
    /// A struct inline (only inside tagged fields).
    Struct(&'static Struct),
    /// A nullable struct: an `i8` marker (-1: null), then the struct.
    OptStruct(&'static Struct),
}

/// A field present in versions `min..=max`.
#[derive(Debug)]
pub struct Field {
    pub ty: Ty,
    pub min: i16,
    pub max: i16,
}

/// A tagged field the decoder understands (it reads the value in place, not by size).
#[derive(Debug)]
pub struct Tag {
    pub tag: u32,
    pub ty: Ty,
    pub min_version: i16,
}

/// A struct: its fields in wire order, and its known tagged fields.
#[derive(Debug)]
pub struct Struct {
    pub fields: &'static [Field],
    pub tags: &'static [Tag],
}

const fn f(ty: Ty) -> Field {
    Field {
        ty,
        min: 0,
        max: i16::MAX,
    }
}

impl Field {
    const fn since(mut self, v: i16) -> Self {
        self.min = v;
        self
    }
    const fn until(mut self, v: i16) -> Self {
        self.max = v;
        self
    }
}

const fn s(fields: &'static [Field]) -> Struct {
    Struct { fields, tags: &[] }
}

use Ty::*;

const API_VERSIONS: Struct = s(&[f(Str).since(3), f(Str).since(3)]);

const METADATA_TOPIC: Struct = s(&[f(Uuid).since(10), f(Str)]);
const METADATA: Struct = s(&[
    f(Array(&METADATA_TOPIC)),
    f(Bool).since(4),
    f(Bool).since(8).until(10),
    f(Bool).since(8),
]);

const PRODUCE_PARTITION: Struct = s(&[f(I32), f(Bytes)]);
const PRODUCE_TOPIC: Struct = s(&[f(Str).until(12), f(Uuid).since(13), f(Array(&PRODUCE_PARTITION))]);
const PRODUCE: Struct = s(&[f(Str), f(I16), f(I32), f(Array(&PRODUCE_TOPIC))]);

const FETCH_PARTITION: Struct = Struct {
    fields: &[
        f(I32),
        f(I32).since(9),
        f(I64),
        f(I32).since(12),
        f(I64).since(5),
        f(I32),
    ],
    tags: &[
        Tag {
            tag: 0,
            ty: Uuid,
            min_version: 17,
        },
        Tag {
            tag: 1,
            ty: I64,
            min_version: 18,
        },
    ],
};
const FETCH_TOPIC: Struct = s(&[f(Str).until(12), f(Uuid).since(13), f(Array(&FETCH_PARTITION))]);
const FETCH_FORGOTTEN: Struct = s(&[f(Str).until(12), f(Uuid).since(13), f(Values(&I32))]);
const FETCH_REPLICA_STATE: Struct = s(&[f(I32), f(I64)]);
const FETCH: Struct = Struct {
    fields: &[
        f(I32).until(14),
        f(I32),
        f(I32),
        f(I32),
        f(I8),
        f(I32).since(7),
        f(I32).since(7),
        f(Array(&FETCH_TOPIC)),
        f(Array(&FETCH_FORGOTTEN)).since(7),
        f(Str).since(11),
    ],
    tags: &[
        Tag {
            tag: 0,
            ty: Str,
            min_version: 12,
        },
        Tag {
            tag: 1,
            ty: Struct(&FETCH_REPLICA_STATE),
            min_version: 15,
        },
    ],
};

// v0's max_num_offsets comes after the timestamp.
const LIST_OFFSETS_PARTITION: Struct = s(&[f(I32), f(I32).since(4), f(I64), f(I32).until(0)]);
const LIST_OFFSETS_TOPIC: Struct = s(&[f(Str), f(Array(&LIST_OFFSETS_PARTITION))]);
const LIST_OFFSETS: Struct = s(&[f(I32), f(I8).since(2), f(Array(&LIST_OFFSETS_TOPIC)), f(I32).since(10)]);

const OFFSET_FOR_LEADER_PARTITION: Struct = s(&[f(I32), f(I32), f(I32)]);
const OFFSET_FOR_LEADER_TOPIC: Struct = s(&[f(Str), f(Array(&OFFSET_FOR_LEADER_PARTITION))]);
const OFFSET_FOR_LEADER_EPOCH: Struct = s(&[f(I32).since(3), f(Array(&OFFSET_FOR_LEADER_TOPIC))]);

const CREATE_TOPICS_ASSIGNMENT: Struct = s(&[f(I32), f(Values(&I32))]);
const CREATE_TOPICS_CONFIG: Struct = s(&[f(Str), f(Str)]);
const CREATE_TOPICS_TOPIC: Struct = s(&[
    f(Str),
    f(I32),
    f(I16),
    f(Array(&CREATE_TOPICS_ASSIGNMENT)),
    f(Array(&CREATE_TOPICS_CONFIG)),
]);
const CREATE_TOPICS: Struct = s(&[f(Array(&CREATE_TOPICS_TOPIC)), f(I32), f(Bool)]);

const DELETE_TOPICS_STATE: Struct = s(&[f(Str), f(Uuid)]);
const DELETE_TOPICS: Struct = s(&[
    f(Array(&DELETE_TOPICS_STATE)).since(6),
    f(Values(&Str)).until(5),
    f(I32),
]);

const CREATE_PARTITIONS_ASSIGNMENT: Struct = s(&[f(Values(&I32))]);
const CREATE_PARTITIONS_TOPIC: Struct = s(&[f(Str), f(I32), f(Array(&CREATE_PARTITIONS_ASSIGNMENT))]);
const CREATE_PARTITIONS: Struct = s(&[f(Array(&CREATE_PARTITIONS_TOPIC)), f(I32), f(Bool)]);

const DESCRIBE_CONFIGS_RESOURCE: Struct = s(&[f(I8), f(Str), f(Values(&Str))]);
const DESCRIBE_CONFIGS: Struct = s(&[f(Array(&DESCRIBE_CONFIGS_RESOURCE)), f(Bool).since(1), f(Bool).since(3)]);

const DESCRIBE_CLUSTER: Struct = s(&[f(Bool), f(I8).since(1), f(Bool).since(2)]);

const FIND_COORDINATOR: Struct = s(&[f(Str).until(3), f(I8).since(1), f(Values(&Str)).since(4)]);

const INIT_PRODUCER_ID: Struct = s(&[f(Str), f(I32), f(I64).since(3), f(I16).since(3)]);

// v1 alone carries a commit timestamp after the offset.
const OFFSET_COMMIT_PARTITION: Struct = s(&[f(I32), f(I64), f(I32).since(6), f(I64).since(1).until(1), f(Str)]);
const OFFSET_COMMIT_TOPIC: Struct = s(&[f(Str), f(Array(&OFFSET_COMMIT_PARTITION))]);
// v0 has neither generation nor member id; retention time exists in v2–4.
const OFFSET_COMMIT: Struct = s(&[
    f(Str),
    f(I32).since(1),
    f(Str).since(1),
    f(Str).since(7),
    f(I64).since(2).until(4),
    f(Array(&OFFSET_COMMIT_TOPIC)),
]);

const OFFSET_FETCH_TOPIC: Struct = s(&[f(Str), f(Values(&I32))]);
const OFFSET_FETCH_GROUP: Struct = s(&[f(Str), f(Str).since(9), f(I32).since(9), f(Array(&OFFSET_FETCH_TOPIC))]);
const OFFSET_FETCH: Struct = s(&[
    f(Str).until(7),
    f(Array(&OFFSET_FETCH_TOPIC)).until(7),
    f(Array(&OFFSET_FETCH_GROUP)).since(8),
    f(Bool).since(7),
]);

const JOIN_GROUP_PROTOCOL: Struct = s(&[f(Str), f(Bytes)]);
const JOIN_GROUP: Struct = s(&[
    f(Str),
    f(I32),
    f(I32).since(1),
    f(Str),
    f(Str).since(5),
    f(Str),
    f(Array(&JOIN_GROUP_PROTOCOL)),
    f(Str).since(8),
]);

const HEARTBEAT: Struct = s(&[f(Str), f(I32), f(Str), f(Str).since(3)]);

const LEAVE_GROUP_MEMBER: Struct = s(&[f(Str), f(Str), f(Str).since(5)]);
const LEAVE_GROUP: Struct = s(&[f(Str), f(Str).until(2), f(Array(&LEAVE_GROUP_MEMBER)).since(3)]);

const SYNC_GROUP_ASSIGNMENT: Struct = s(&[f(Str), f(Bytes)]);
const SYNC_GROUP: Struct = s(&[
    f(Str),
    f(I32),
    f(Str),
    f(Str).since(3),
    f(Str).since(5),
    f(Str).since(5),
    f(Array(&SYNC_GROUP_ASSIGNMENT)),
]);

const DESCRIBE_GROUPS: Struct = s(&[f(Values(&Str)), f(Bool).since(3)]);
const LIST_GROUPS: Struct = s(&[f(Values(&Str)).since(4), f(Values(&Str)).since(5)]);
const DELETE_GROUPS: Struct = s(&[f(Values(&Str))]);

const OFFSET_DELETE_PARTITION: Struct = s(&[f(I32)]);
const OFFSET_DELETE_TOPIC: Struct = s(&[f(Str), f(Array(&OFFSET_DELETE_PARTITION))]);
const OFFSET_DELETE: Struct = s(&[f(Str), f(Array(&OFFSET_DELETE_TOPIC))]);

const CONSUMER_GROUP_HEARTBEAT_TOPIC: Struct = s(&[f(Uuid), f(Values(&I32))]);
const CONSUMER_GROUP_HEARTBEAT: Struct = s(&[
    f(Str),
    f(Str),
    f(I32),
    f(Str),
    f(Str),
    f(I32),
    f(Values(&Str)),
    f(Str).since(1),
    f(Str),
    f(Array(&CONSUMER_GROUP_HEARTBEAT_TOPIC)),
]);
const CONSUMER_GROUP_DESCRIBE: Struct = s(&[f(Values(&Str)), f(Bool)]);

const DELETE_RECORDS_PARTITION: Struct = s(&[f(I32), f(I64)]);
const DELETE_RECORDS_TOPIC: Struct = s(&[f(Str), f(Array(&DELETE_RECORDS_PARTITION))]);
const DELETE_RECORDS: Struct = s(&[f(Array(&DELETE_RECORDS_TOPIC)), f(I32)]);

const ALTER_CONFIGS_CONFIG: Struct = s(&[f(Str), f(Str)]);
const ALTER_CONFIGS_RESOURCE: Struct = s(&[f(I8), f(Str), f(Array(&ALTER_CONFIGS_CONFIG))]);
const ALTER_CONFIGS: Struct = s(&[f(Array(&ALTER_CONFIGS_RESOURCE)), f(Bool)]);

const INCREMENTAL_ALTER_CONFIGS_CONFIG: Struct = s(&[f(Str), f(I8), f(Str)]);
const INCREMENTAL_ALTER_CONFIGS_RESOURCE: Struct = s(&[f(I8), f(Str), f(Array(&INCREMENTAL_ALTER_CONFIGS_CONFIG))]);
const INCREMENTAL_ALTER_CONFIGS: Struct = s(&[f(Array(&INCREMENTAL_ALTER_CONFIGS_RESOURCE)), f(Bool)]);

const DESCRIBE_LOG_DIRS_TOPIC: Struct = s(&[f(Str), f(Values(&I32))]);
const DESCRIBE_LOG_DIRS: Struct = s(&[f(Array(&DESCRIBE_LOG_DIRS_TOPIC))]);

const ELECT_LEADERS_TOPIC: Struct = s(&[f(Str), f(Values(&I32))]);
const ELECT_LEADERS: Struct = s(&[f(I8).since(1), f(Array(&ELECT_LEADERS_TOPIC)), f(I32)]);

const ALTER_REASSIGNMENTS_PARTITION: Struct = s(&[f(I32), f(Values(&I32))]);
const ALTER_REASSIGNMENTS_TOPIC: Struct = s(&[f(Str), f(Array(&ALTER_REASSIGNMENTS_PARTITION))]);
const ALTER_PARTITION_REASSIGNMENTS: Struct = s(&[f(I32), f(Bool).since(1), f(Array(&ALTER_REASSIGNMENTS_TOPIC))]);

const LIST_REASSIGNMENTS_TOPIC: Struct = s(&[f(Str), f(Values(&I32))]);
const LIST_PARTITION_REASSIGNMENTS: Struct = s(&[f(I32), f(Array(&LIST_REASSIGNMENTS_TOPIC))]);

const DESCRIBE_QUORUM_PARTITION: Struct = s(&[f(I32)]);
const DESCRIBE_QUORUM_TOPIC: Struct = s(&[f(Str), f(Array(&DESCRIBE_QUORUM_PARTITION))]);
const DESCRIBE_QUORUM: Struct = s(&[f(Array(&DESCRIBE_QUORUM_TOPIC))]);

const DESCRIBE_TOPIC_PARTITIONS_TOPIC: Struct = s(&[f(Str)]);
const DESCRIBE_TOPIC_PARTITIONS_CURSOR: Struct = s(&[f(Str), f(I32)]);
const DESCRIBE_TOPIC_PARTITIONS: Struct = s(&[
    f(Array(&DESCRIBE_TOPIC_PARTITIONS_TOPIC)),
    f(I32),
    f(OptStruct(&DESCRIBE_TOPIC_PARTITIONS_CURSOR)),
]);

const DESCRIBE_PRODUCERS_TOPIC: Struct = s(&[f(Str), f(Values(&I32))]);
const DESCRIBE_PRODUCERS: Struct = s(&[f(Array(&DESCRIBE_PRODUCERS_TOPIC))]);

// Transactions. AddPartitionsToTxn v4+ (brokers verifying for a producer) batches several
// transactions; v0–3 (clients) name one transaction in the `V3AndBelow*` fields.
const ADD_PARTITIONS_TO_TXN_TOPIC: Struct = s(&[f(Str), f(Values(&I32))]);
const ADD_PARTITIONS_TO_TXN_TRANSACTION: Struct =
    s(&[f(Str), f(I64), f(I16), f(Bool), f(Array(&ADD_PARTITIONS_TO_TXN_TOPIC))]);
const ADD_PARTITIONS_TO_TXN: Struct = s(&[
    f(Array(&ADD_PARTITIONS_TO_TXN_TRANSACTION)).since(4),
    f(Str).until(3),
    f(I64).until(3),
    f(I16).until(3),
    f(Array(&ADD_PARTITIONS_TO_TXN_TOPIC)).until(3),
]);

const ADD_OFFSETS_TO_TXN: Struct = s(&[f(Str), f(I64), f(I16), f(Str)]);

const END_TXN: Struct = s(&[f(Str), f(I64), f(I16), f(Bool)]);

const WRITE_TXN_MARKERS_TOPIC: Struct = s(&[f(Str), f(Values(&I32))]);
const WRITE_TXN_MARKERS_MARKER: Struct = s(&[f(I64), f(I16), f(Bool), f(Array(&WRITE_TXN_MARKERS_TOPIC)), f(I32)]);
const WRITE_TXN_MARKERS: Struct = s(&[f(Array(&WRITE_TXN_MARKERS_MARKER))]);

// The committed leader epoch from v2; generation, member and instance ids from v3.
const TXN_OFFSET_COMMIT_PARTITION: Struct = s(&[f(I32), f(I64), f(I32).since(2), f(Str)]);
const TXN_OFFSET_COMMIT_TOPIC: Struct = s(&[f(Str), f(Array(&TXN_OFFSET_COMMIT_PARTITION))]);
const TXN_OFFSET_COMMIT: Struct = s(&[
    f(Str),
    f(Str),
    f(I64),
    f(I16),
    f(I32).since(3),
    f(Str).since(3),
    f(Str).since(3),
    f(Array(&TXN_OFFSET_COMMIT_TOPIC)),
]);

const DESCRIBE_TRANSACTIONS: Struct = s(&[f(Values(&Str))]);

// State and producer id filters; the duration filter from v1, the transactional id pattern
// from v2.
const LIST_TRANSACTIONS: Struct = s(&[f(Values(&Str)), f(Values(&I64)), f(I64).since(1), f(Str).since(2)]);

/// The schema of request `api_key`, if the broker serves it.
pub fn request(api_key: i16) -> Option<&'static Struct> {
    Some(match api_key {
        0 => &PRODUCE,
        1 => &FETCH,
        2 => &LIST_OFFSETS,
        3 => &METADATA,
        8 => &OFFSET_COMMIT,
        9 => &OFFSET_FETCH,
        10 => &FIND_COORDINATOR,
        11 => &JOIN_GROUP,
        12 => &HEARTBEAT,
        13 => &LEAVE_GROUP,
        14 => &SYNC_GROUP,
        15 => &DESCRIBE_GROUPS,
        16 => &LIST_GROUPS,
        18 => &API_VERSIONS,
        19 => &CREATE_TOPICS,
        20 => &DELETE_TOPICS,
        21 => &DELETE_RECORDS,
        22 => &INIT_PRODUCER_ID,
        23 => &OFFSET_FOR_LEADER_EPOCH,
        24 => &ADD_PARTITIONS_TO_TXN,
        25 => &ADD_OFFSETS_TO_TXN,
        26 => &END_TXN,
        27 => &WRITE_TXN_MARKERS,
        28 => &TXN_OFFSET_COMMIT,
        32 => &DESCRIBE_CONFIGS,
        33 => &ALTER_CONFIGS,
        35 => &DESCRIBE_LOG_DIRS,
        37 => &CREATE_PARTITIONS,
        42 => &DELETE_GROUPS,
        43 => &ELECT_LEADERS,
        44 => &INCREMENTAL_ALTER_CONFIGS,
        45 => &ALTER_PARTITION_REASSIGNMENTS,
        46 => &LIST_PARTITION_REASSIGNMENTS,
        47 => &OFFSET_DELETE,
        55 => &DESCRIBE_QUORUM,
        60 => &DESCRIBE_CLUSTER,
        61 => &DESCRIBE_PRODUCERS,
        65 => &DESCRIBE_TRANSACTIONS,
        66 => &LIST_TRANSACTIONS,
        68 => &CONSUMER_GROUP_HEARTBEAT,
        69 => &CONSUMER_GROUP_DESCRIBE,
        75 => &DESCRIBE_TOPIC_PARTITIONS,
        _ => return None,
    })
}
