//! The metadata records: every change to cluster metadata is one of these.

use crate::wire::{Reader, Writer};
use crate::MetadataError;

/// A topic's id (Kafka's 16-byte UUID).
pub type TopicId = [u8; 16];

/// One change to cluster metadata. The encoding starts with a type byte so that new record
/// types can be added; an unknown type is an error rather than silently skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A topic comes into existence (its partitions follow as `Partition` records).
    Topic { name: String, topic_id: TopicId },
    /// A partition and its replica placement; a later record for the same partition replaces it.
    Partition {
        topic_id: TopicId,
        partition: i32,
        replicas: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
    },
    /// A topic config override is set (`Some`) or removed (`None`).
    TopicConfig {
        topic_id: TopicId,
        key: String,
        value: Option<String>,
    },
    /// The topic and all its partitions are gone.
    RemoveTopic { topic_id: TopicId },
    /// Producer ids below `next_producer_id` are handed out (InitProducerId).
    ProducerIds { next_producer_id: i64 },
}

const TOPIC: u8 = 1;
const PARTITION: u8 = 2;
const TOPIC_CONFIG: u8 = 3;
const REMOVE_TOPIC: u8 = 4;
const PRODUCER_IDS: u8 = 5;

impl MetadataRecord {
    /// Encodes the record as the value of a log record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Self::Topic { name, topic_id } => w.u8(TOPIC).str(name).bytes16(topic_id),
            Self::Partition {
                topic_id,
                partition,
                replicas,
                leader,
                leader_epoch,
            } => w
                .u8(PARTITION)
                .bytes16(topic_id)
                .i32(*partition)
                .i32s(replicas)
                .i32(*leader)
                .i32(*leader_epoch),
            Self::TopicConfig { topic_id, key, value } => {
                w.u8(TOPIC_CONFIG).bytes16(topic_id).str(key).opt_str(value.as_deref())
            }
            Self::RemoveTopic { topic_id } => w.u8(REMOVE_TOPIC).bytes16(topic_id),
            Self::ProducerIds { next_producer_id } => w.u8(PRODUCER_IDS).i64(*next_producer_id),
        };
        w.0
    }

    /// Decodes a record written by [`MetadataRecord::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataError> {
        let mut r = Reader(bytes);
        let record = match r.u8()? {
            TOPIC => Self::Topic {
                name: r.str()?,
                topic_id: r.bytes16()?,
            },
            PARTITION => Self::Partition {
                topic_id: r.bytes16()?,
                partition: r.i32()?,
                replicas: r.i32s()?,
                leader: r.i32()?,
                leader_epoch: r.i32()?,
            },
            TOPIC_CONFIG => Self::TopicConfig {
                topic_id: r.bytes16()?,
                key: r.str()?,
                value: r.opt_str()?,
            },
            REMOVE_TOPIC => Self::RemoveTopic { topic_id: r.bytes16()? },
            PRODUCER_IDS => Self::ProducerIds {
                next_producer_id: r.i64()?,
            },
            _ => return Err(MetadataError::CorruptRecord("unknown record type")),
        };
        if !r.0.is_empty() {
            return Err(MetadataError::CorruptRecord("trailing bytes"));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_record() -> impl Strategy<Value = MetadataRecord> {
        let id = any::<[u8; 16]>();
        prop_oneof![
            ("[a-z._-]{1,20}", id).prop_map(|(name, topic_id)| MetadataRecord::Topic { name, topic_id }),
            (
                id,
                any::<i32>(),
                proptest::collection::vec(any::<i32>(), 0..4),
                any::<i32>(),
                any::<i32>()
            )
                .prop_map(|(topic_id, partition, replicas, leader, leader_epoch)| {
                    MetadataRecord::Partition {
                        topic_id,
                        partition,
                        replicas,
                        leader,
                        leader_epoch,
                    }
                }),
            (id, "[a-z.]{1,20}", proptest::option::of("[a-z0-9]{0,10}"))
                .prop_map(|(topic_id, key, value)| MetadataRecord::TopicConfig { topic_id, key, value }),
            id.prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
            any::<i64>().prop_map(|next_producer_id| MetadataRecord::ProducerIds { next_producer_id }),
        ]
    }

    proptest! {
        #[test]
        fn records_round_trip(r in any_record()) {
            prop_assert_eq!(MetadataRecord::decode(&r.encode()).unwrap(), r);
        }

        /// Decoding is strict: any bytes it accepts are exactly the encoding of what it
        /// returns, so a damaged record is refused rather than read as another valid one.
        #[test]
        fn damaged_records_are_errors_or_canonical(r in any_record(), at in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = r.encode();
            let at = at % bytes.len();
            bytes[at] = byte;
            if let Ok(record) = MetadataRecord::decode(&bytes) {
                prop_assert_eq!(record.encode(), bytes);
            }
        }
    }
}
