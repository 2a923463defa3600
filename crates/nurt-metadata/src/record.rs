//! The metadata records: every change to cluster metadata is one of these.
//!
//! Encoding: a type byte, a version byte, then the fields (big-endian, length-prefixed). A
//! reader refuses a type it does not know and a version newer than it writes: a binary never
//! misreads metadata written by a newer one (it stops with a clear error instead). Records of
//! the single-node format that came before (no version byte) are read only by
//! [`MetadataRecord::decode_legacy`], for the one-time migration.

use crate::wire::{Reader, Writer};
use crate::MetadataError;

/// A topic's id (Kafka's 16-byte UUID).
pub type TopicId = [u8; 16];

/// A partition's full state; a later record for the same partition replaces it (Kafka's
/// `PartitionRecord`, with `PartitionChangeRecord`'s effect folded in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub topic_id: TopicId,
    pub partition: i32,
    /// Replicas in preference order (the first is the preferred leader).
    pub replicas: Vec<i32>,
    /// In-sync replicas: the only ones a leader may be elected from.
    pub isr: Vec<i32>,
    /// Eligible leader replicas (KIP-966): replicas that left the ISR while it was below
    /// `min.insync.replicas` and still hold every committed record.
    pub elr: Vec<i32>,
    /// -1 when no replica can lead.
    pub leader: i32,
    /// Bumped whenever the leader changes.
    pub leader_epoch: i32,
    /// Bumped on every change (ISR, replicas, leader): fences stale AlterPartition requests.
    pub partition_epoch: i32,
    /// Replicas being added by a reassignment (already in `replicas`).
    pub adding_replicas: Vec<i32>,
    /// Replicas being removed by a reassignment (still in `replicas`).
    pub removing_replicas: Vec<i32>,
}

/// A listener a broker is reachable on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT` for clients, `CONTROLLER` for the internal listener).
    pub name: String,
    pub host: String,
    pub port: i32,
}

/// A broker's registration (Kafka's `RegisterBrokerRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    /// Random per process start: a new incarnation replaces the old registration.
    pub incarnation_id: [u8; 16],
    /// Chosen by the controller, rising with every registration: fences stale heartbeats.
    pub broker_epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// New registrations start fenced; the controller unfences a broker once it has caught up.
    pub fenced: bool,
}

/// Which resource a config record belongs to (Kafka's `ConfigResource.Type` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResourceType {
    /// A broker (`name` is its id) or every broker (`name` is empty).
    Broker,
    /// A consumer group (KIP-848 group configs).
    Group,
}

impl ConfigResourceType {
    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            Self::Broker => 4,
            Self::Group => 32,
        }
    }

    /// The type for Kafka's code.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            4 => Some(Self::Broker),
            32 => Some(Self::Group),
            _ => None,
        }
    }
}

/// One change to cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A topic comes into existence (its partitions follow as `Partition` records).
    Topic { name: String, topic_id: TopicId },
    /// A partition's placement, leadership and in-sync replicas.
    Partition(PartitionRecord),
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
    /// A broker registers (or re-registers with a new incarnation).
    RegisterBroker(BrokerRegistration),
    /// A broker is fenced (missed its heartbeats, or shut down) or unfenced (caught up).
    BrokerFencing {
        broker_id: i32,
        broker_epoch: i64,
        fenced: bool,
    },
    /// A broker leaves the cluster for good.
    UnregisterBroker { broker_id: i32 },
    /// The cluster's id, written once by the first controller (Kafka formats it into every
    /// node's `meta.properties`; here a node adopts it when it first joins).
    Cluster { cluster_id: String },
    /// A broker or group config is set (`Some`) or removed (`None`).
    Config {
        resource_type: ConfigResourceType,
        resource_name: String,
        key: String,
        value: Option<String>,
    },
}

const TOPIC: u8 = 1;
const PARTITION: u8 = 2;
const TOPIC_CONFIG: u8 = 3;
const REMOVE_TOPIC: u8 = 4;
const PRODUCER_IDS: u8 = 5;
const REGISTER_BROKER: u8 = 6;
const BROKER_FENCING: u8 = 7;
const UNREGISTER_BROKER: u8 = 8;
const CONFIG: u8 = 9;
const CLUSTER: u8 = 10;

/// The version this binary writes, per record type: a newer one is refused on reading.
fn current_version(record_type: u8) -> u8 {
    match record_type {
        // v1: ISR, ELR, epochs and reassignment (v0 was the single-node format).
        PARTITION => 1,
        _ => 0,
    }
}

impl MetadataRecord {
    fn type_byte(&self) -> u8 {
        match self {
            Self::Topic { .. } => TOPIC,
            Self::Partition(_) => PARTITION,
            Self::TopicConfig { .. } => TOPIC_CONFIG,
            Self::RemoveTopic { .. } => REMOVE_TOPIC,
            Self::ProducerIds { .. } => PRODUCER_IDS,
            Self::RegisterBroker(_) => REGISTER_BROKER,
            Self::BrokerFencing { .. } => BROKER_FENCING,
            Self::UnregisterBroker { .. } => UNREGISTER_BROKER,
            Self::Config { .. } => CONFIG,
            Self::Cluster { .. } => CLUSTER,
        }
    }

    /// Encodes the record as the value of a log record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let ty = self.type_byte();
        w.u8(ty).u8(current_version(ty));
        match self {
            Self::Topic { name, topic_id } => w.str(name).bytes16(topic_id),
            Self::Partition(p) => w
                .bytes16(&p.topic_id)
                .i32(p.partition)
                .i32s(&p.replicas)
                .i32s(&p.isr)
                .i32s(&p.elr)
                .i32(p.leader)
                .i32(p.leader_epoch)
                .i32(p.partition_epoch)
                .i32s(&p.adding_replicas)
                .i32s(&p.removing_replicas),
            Self::TopicConfig { topic_id, key, value } => w.bytes16(topic_id).str(key).opt_str(value.as_deref()),
            Self::RemoveTopic { topic_id } => w.bytes16(topic_id),
            Self::ProducerIds { next_producer_id } => w.i64(*next_producer_id),
            Self::RegisterBroker(b) => {
                w.i32(b.broker_id).bytes16(&b.incarnation_id).i64(b.broker_epoch);
                w.i32(b.endpoints.len() as i32);
                for e in &b.endpoints {
                    w.str(&e.name).str(&e.host).i32(e.port);
                }
                w.opt_str(b.rack.as_deref()).u8(u8::from(b.fenced))
            }
            Self::BrokerFencing {
                broker_id,
                broker_epoch,
                fenced,
            } => w.i32(*broker_id).i64(*broker_epoch).u8(u8::from(*fenced)),
            Self::UnregisterBroker { broker_id } => w.i32(*broker_id),
            Self::Cluster { cluster_id } => w.str(cluster_id),
            Self::Config {
                resource_type,
                resource_name,
                key,
                value,
            } => w
                .u8(resource_type.code() as u8)
                .str(resource_name)
                .str(key)
                .opt_str(value.as_deref()),
        };
        w.0
    }

    /// Decodes a record written by [`MetadataRecord::encode`] of this or an older binary.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataError> {
        let mut r = Reader(bytes);
        let ty = r.u8()?;
        let version = r.u8()?;
        let known = matches!(
            ty,
            TOPIC
                | PARTITION
                | TOPIC_CONFIG
                | REMOVE_TOPIC
                | PRODUCER_IDS
                | REGISTER_BROKER
                | BROKER_FENCING
                | UNREGISTER_BROKER
                | CONFIG
                | CLUSTER
        );
        if !known {
            return Err(MetadataError::NewerRecord {
                record_type: ty,
                version,
                supported: None,
            });
        }
        if version > current_version(ty) {
            return Err(MetadataError::NewerRecord {
                record_type: ty,
                version,
                supported: Some(current_version(ty)),
            });
        }
        let record = match ty {
            TOPIC => Self::Topic {
                name: r.str()?,
                topic_id: r.bytes16()?,
            },
            PARTITION => {
                if version == 0 {
                    return Err(MetadataError::CorruptRecord(
                        "partition record v0 outside the legacy log",
                    ));
                }
                Self::Partition(PartitionRecord {
                    topic_id: r.bytes16()?,
                    partition: r.i32()?,
                    replicas: r.i32s()?,
                    isr: r.i32s()?,
                    elr: r.i32s()?,
                    leader: r.i32()?,
                    leader_epoch: r.i32()?,
                    partition_epoch: r.i32()?,
                    adding_replicas: r.i32s()?,
                    removing_replicas: r.i32s()?,
                })
            }
            TOPIC_CONFIG => Self::TopicConfig {
                topic_id: r.bytes16()?,
                key: r.str()?,
                value: r.opt_str()?,
            },
            REMOVE_TOPIC => Self::RemoveTopic { topic_id: r.bytes16()? },
            PRODUCER_IDS => Self::ProducerIds {
                next_producer_id: r.i64()?,
            },
            REGISTER_BROKER => {
                let broker_id = r.i32()?;
                let incarnation_id = r.bytes16()?;
                let broker_epoch = r.i64()?;
                let n = r.count(12)?;
                let mut endpoints = Vec::with_capacity(n);
                for _ in 0..n {
                    endpoints.push(Endpoint {
                        name: r.str()?,
                        host: r.str()?,
                        port: r.i32()?,
                    });
                }
                Self::RegisterBroker(BrokerRegistration {
                    broker_id,
                    incarnation_id,
                    broker_epoch,
                    endpoints,
                    rack: r.opt_str()?,
                    fenced: r.bool()?,
                })
            }
            BROKER_FENCING => Self::BrokerFencing {
                broker_id: r.i32()?,
                broker_epoch: r.i64()?,
                fenced: r.bool()?,
            },
            UNREGISTER_BROKER => Self::UnregisterBroker { broker_id: r.i32()? },
            CLUSTER => Self::Cluster { cluster_id: r.str()? },
            CONFIG => Self::Config {
                resource_type: ConfigResourceType::from_code(r.u8()? as i8)
                    .ok_or(MetadataError::CorruptRecord("unknown config resource type"))?,
                resource_name: r.str()?,
                key: r.str()?,
                value: r.opt_str()?,
            },
            _ => unreachable!("checked above"),
        };
        if !r.0.is_empty() {
            return Err(MetadataError::CorruptRecord("trailing bytes"));
        }
        Ok(record)
    }

    /// Decodes a record of the single-node metadata log written before records carried a
    /// version (types 1–5, no version byte, partitions without ISR or epochs). The partition
    /// becomes v1 with the ISR its replicas and both epochs as they were.
    pub fn decode_legacy(bytes: &[u8]) -> Result<Self, MetadataError> {
        let mut r = Reader(bytes);
        let record = match r.u8()? {
            TOPIC => Self::Topic {
                name: r.str()?,
                topic_id: r.bytes16()?,
            },
            PARTITION => {
                let topic_id = r.bytes16()?;
                let partition = r.i32()?;
                let replicas = r.i32s()?;
                let leader = r.i32()?;
                let leader_epoch = r.i32()?;
                Self::Partition(PartitionRecord {
                    topic_id,
                    partition,
                    isr: replicas.clone(),
                    replicas,
                    elr: vec![],
                    leader,
                    leader_epoch,
                    partition_epoch: leader_epoch,
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                })
            }
            TOPIC_CONFIG => Self::TopicConfig {
                topic_id: r.bytes16()?,
                key: r.str()?,
                value: r.opt_str()?,
            },
            REMOVE_TOPIC => Self::RemoveTopic { topic_id: r.bytes16()? },
            PRODUCER_IDS => Self::ProducerIds {
                next_producer_id: r.i64()?,
            },
            _ => return Err(MetadataError::CorruptRecord("unknown legacy record type")),
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

    fn ids() -> impl Strategy<Value = Vec<i32>> {
        proptest::collection::vec(any::<i32>(), 0..4)
    }

    fn any_record() -> impl Strategy<Value = MetadataRecord> {
        let id = any::<[u8; 16]>();
        prop_oneof![
            ("[a-z._-]{1,20}", id).prop_map(|(name, topic_id)| MetadataRecord::Topic { name, topic_id }),
            (
                id,
                any::<i32>(),
                ids(),
                ids(),
                ids(),
                any::<(i32, i32, i32)>(),
                ids(),
                ids()
            )
                .prop_map(
                    |(
                        topic_id,
                        partition,
                        replicas,
                        isr,
                        elr,
                        (leader, leader_epoch, partition_epoch),
                        adding,
                        removing,
                    )| {
                        MetadataRecord::Partition(PartitionRecord {
                            topic_id,
                            partition,
                            replicas,
                            isr,
                            elr,
                            leader,
                            leader_epoch,
                            partition_epoch,
                            adding_replicas: adding,
                            removing_replicas: removing,
                        })
                    }
                ),
            (id, "[a-z.]{1,20}", proptest::option::of("[a-z0-9]{0,10}"))
                .prop_map(|(topic_id, key, value)| MetadataRecord::TopicConfig { topic_id, key, value }),
            id.prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
            any::<i64>().prop_map(|next_producer_id| MetadataRecord::ProducerIds { next_producer_id }),
            (
                any::<i32>(),
                id,
                any::<i64>(),
                proptest::collection::vec(("[A-Z]{1,10}", "[a-z0-9.]{1,10}", any::<i32>()), 0..3),
                proptest::option::of("[a-z0-9]{1,5}"),
                any::<bool>()
            )
                .prop_map(|(broker_id, incarnation_id, broker_epoch, eps, rack, fenced)| {
                    MetadataRecord::RegisterBroker(BrokerRegistration {
                        broker_id,
                        incarnation_id,
                        broker_epoch,
                        endpoints: eps
                            .into_iter()
                            .map(|(name, host, port)| Endpoint { name, host, port })
                            .collect(),
                        rack,
                        fenced,
                    })
                }),
            (any::<i32>(), any::<i64>(), any::<bool>()).prop_map(|(broker_id, broker_epoch, fenced)| {
                MetadataRecord::BrokerFencing {
                    broker_id,
                    broker_epoch,
                    fenced,
                }
            }),
            any::<i32>().prop_map(|broker_id| MetadataRecord::UnregisterBroker { broker_id }),
            "[a-zA-Z0-9_-]{0,22}".prop_map(|cluster_id| MetadataRecord::Cluster { cluster_id }),
            (
                any::<bool>(),
                "[0-9a-z]{0,5}",
                "[a-z.]{1,20}",
                proptest::option::of("[a-z0-9]{0,10}")
            )
                .prop_map(|(group, resource_name, key, value)| MetadataRecord::Config {
                    resource_type: if group {
                        ConfigResourceType::Group
                    } else {
                        ConfigResourceType::Broker
                    },
                    resource_name,
                    key,
                    value,
                }),
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

    #[test]
    fn newer_versions_and_types_are_refused_with_a_clear_error() {
        let mut bytes = MetadataRecord::RemoveTopic { topic_id: [1; 16] }.encode();
        bytes[1] = 7;
        let e = MetadataRecord::decode(&bytes).unwrap_err();
        assert_eq!(
            e,
            MetadataError::NewerRecord {
                record_type: REMOVE_TOPIC,
                version: 7,
                supported: Some(0)
            }
        );
        assert!(e.to_string().contains("newer"), "{e}");
        assert!(matches!(
            MetadataRecord::decode(&[200, 0]),
            Err(MetadataError::NewerRecord { supported: None, .. })
        ));
    }

    #[test]
    fn legacy_partitions_become_v1_with_the_replicas_in_sync() {
        // type, topic id, partition, replicas [1], leader 1, leader epoch 0: the old layout.
        let mut legacy = vec![PARTITION];
        legacy.extend_from_slice(&[9; 16]);
        legacy.extend_from_slice(&3i32.to_be_bytes());
        legacy.extend_from_slice(&1i32.to_be_bytes());
        legacy.extend_from_slice(&1i32.to_be_bytes());
        legacy.extend_from_slice(&1i32.to_be_bytes());
        legacy.extend_from_slice(&0i32.to_be_bytes());
        let MetadataRecord::Partition(p) = MetadataRecord::decode_legacy(&legacy).unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.partition, p.replicas.clone(), p.isr.clone(), p.leader),
            (3, vec![1], vec![1], 1)
        );
    }
}
