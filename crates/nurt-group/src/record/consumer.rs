//! KIP-848 consumer-group records as Kafka's group coordinator lays them out in
//! `__consumer_offsets` (`ConsumerGroup*Key`/`*Value` in Kafka's group-coordinator schemas):
//! the group epoch (key version 3), each member's metadata (5), the target assignment's epoch
//! (6) and each member's target (7), and each member's current assignment (8). Keys are
//! non-flexible (an `i16` type, then `i16`-length strings); values are version 0, flexible
//! (compact strings and arrays, tagged fields). A `None` value is a tombstone.

use nurt_records::wire::{put_compact_opt_str, put_compact_str, put_str, put_uvarint, Reader};

use super::CorruptRecord;
use crate::TopicId;

/// Partitions by topic, as assignment records carry them.
pub type TopicPartitions = Vec<(TopicId, Vec<i32>)>;

/// `ConsumerGroupMetadataValue`: the group epoch, and (tag 0, KIP-1101) a hash of the
/// subscribed topics' metadata so a new coordinator knows whether it changed meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupEpoch {
    pub epoch: i32,
    pub metadata_hash: u64,
}

/// `ConsumerGroupMemberMetadataValue`: what a member told the coordinator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// Kafka's `MemberState` as stored in a current assignment.
pub mod member_state {
    pub const STABLE: i8 = 1;
    pub const UNREVOKED_PARTITIONS: i8 = 2;
    pub const UNRELEASED_PARTITIONS: i8 = 3;
}

/// `ConsumerGroupCurrentMemberAssignmentValue`: where a member is on its way to its target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// One of [`member_state`].
    pub state: i8,
    pub assigned: TopicPartitions,
    pub pending_revocation: TopicPartitions,
}

/// One KIP-848 record of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRecord {
    /// Key 3; a tombstone deletes the group.
    GroupEpoch(Option<GroupEpoch>),
    /// Key 5; a tombstone removes the member.
    Member {
        member_id: String,
        value: Option<MemberMetadata>,
    },
    /// Key 6: the epoch of the target assignment.
    TargetEpoch(Option<i32>),
    /// Key 7: one member's target assignment.
    Target {
        member_id: String,
        value: Option<TopicPartitions>,
    },
    /// Key 8: one member's current assignment.
    Current {
        member_id: String,
        value: Option<CurrentAssignment>,
    },
}

/// The key versions (record types) this module reads and writes.
pub const KEY_VERSIONS: [i16; 5] = [3, 5, 6, 7, 8];

fn put_partitions(out: &mut Vec<u8>, parts: &TopicPartitions) {
    put_uvarint(out, parts.len() as u64 + 1);
    for (topic, partitions) in parts {
        out.extend_from_slice(topic);
        put_uvarint(out, partitions.len() as u64 + 1);
        for p in partitions {
            out.extend_from_slice(&p.to_be_bytes());
        }
        out.push(0); // no tagged fields
    }
}

impl ConsumerRecord {
    /// The member the record is about, if it is about one.
    pub fn member_id(&self) -> Option<&str> {
        match self {
            Self::Member { member_id, .. } | Self::Target { member_id, .. } | Self::Current { member_id, .. } => {
                Some(member_id)
            }
            Self::GroupEpoch(_) | Self::TargetEpoch(_) => None,
        }
    }

    /// Encodes as a (key, value) pair of `group`'s record.
    pub fn encode(&self, group: &str) -> (Vec<u8>, Option<Vec<u8>>) {
        let key_version: i16 = match self {
            Self::GroupEpoch(_) => 3,
            Self::Member { .. } => 5,
            Self::TargetEpoch(_) => 6,
            Self::Target { .. } => 7,
            Self::Current { .. } => 8,
        };
        let mut key = key_version.to_be_bytes().to_vec();
        put_str(&mut key, group);
        if let Some(member_id) = self.member_id() {
            put_str(&mut key, member_id);
        }
        let mut value = 0i16.to_be_bytes().to_vec();
        match self {
            Self::GroupEpoch(None)
            | Self::Member { value: None, .. }
            | Self::TargetEpoch(None)
            | Self::Target { value: None, .. }
            | Self::Current { value: None, .. } => return (key, None),
            Self::GroupEpoch(Some(g)) => {
                value.extend_from_slice(&g.epoch.to_be_bytes());
                // Tagged fields: MetadataHash (tag 0), 8 bytes.
                value.extend_from_slice(&[1, 0, 8]);
                value.extend_from_slice(&g.metadata_hash.to_be_bytes());
            }
            Self::Member { value: Some(m), .. } => {
                put_compact_opt_str(&mut value, m.instance_id.as_deref());
                put_compact_opt_str(&mut value, m.rack_id.as_deref());
                put_compact_str(&mut value, &m.client_id);
                put_compact_str(&mut value, &m.client_host);
                put_uvarint(&mut value, m.subscribed_topic_names.len() as u64 + 1);
                for t in &m.subscribed_topic_names {
                    put_compact_str(&mut value, t);
                }
                put_compact_opt_str(&mut value, m.subscribed_topic_regex.as_deref());
                value.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
                put_compact_opt_str(&mut value, m.server_assignor.as_deref());
                value.push(0);
            }
            Self::TargetEpoch(Some(epoch)) => {
                value.extend_from_slice(&epoch.to_be_bytes());
                value.push(0);
            }
            Self::Target { value: Some(parts), .. } => {
                put_partitions(&mut value, parts);
                value.push(0);
            }
            Self::Current { value: Some(c), .. } => {
                value.extend_from_slice(&c.member_epoch.to_be_bytes());
                value.extend_from_slice(&c.previous_member_epoch.to_be_bytes());
                value.push(c.state as u8);
                put_partitions(&mut value, &c.assigned);
                put_partitions(&mut value, &c.pending_revocation);
                value.push(0);
            }
        }
        (key, Some(value))
    }

    /// Decodes the rest of a key whose version is one of [`KEY_VERSIONS`] (the group id
    /// already read into `group`), and its value.
    pub(super) fn decode(key_version: i16, k: &mut Reader<'_>, value: Option<&[u8]>) -> Result<Self, CorruptRecord> {
        let mut member = || k.str();
        let mut v = match value {
            Some(v) => {
                let mut r = Reader::new(v);
                if r.i16()? != 0 {
                    return Err(CorruptRecord("unsupported consumer-group record version"));
                }
                Some(r)
            }
            None => None,
        };
        let record = match key_version {
            3 => Self::GroupEpoch(v.as_mut().map(decode_group_epoch).transpose()?),
            5 => Self::Member {
                member_id: member()?,
                value: v.as_mut().map(decode_member).transpose()?,
            },
            6 => Self::TargetEpoch(v.as_mut().map(|r| r.i32()).transpose()?),
            7 => Self::Target {
                member_id: member()?,
                value: v.as_mut().map(read_partitions).transpose()?,
            },
            8 => Self::Current {
                member_id: member()?,
                value: v.as_mut().map(decode_current).transpose()?,
            },
            _ => return Err(CorruptRecord("unknown key version")),
        };
        if let Some(r) = v.as_mut() {
            if !matches!(record, Self::GroupEpoch(_)) {
                r.skip_tagged_fields()?;
            }
        }
        Ok(record)
    }
}

fn decode_group_epoch(r: &mut Reader<'_>) -> Result<GroupEpoch, CorruptRecord> {
    let epoch = r.i32()?;
    let mut metadata_hash = 0;
    let fields = r.uvarint()?;
    for _ in 0..fields {
        let (tag, body) = r.tagged_field()?;
        if tag == 0 {
            let bytes: [u8; 8] = body.try_into().map_err(|_| CorruptRecord("metadata hash size"))?;
            metadata_hash = u64::from_be_bytes(bytes);
        }
    }
    Ok(GroupEpoch { epoch, metadata_hash })
}

fn decode_member(r: &mut Reader<'_>) -> Result<MemberMetadata, CorruptRecord> {
    let instance_id = r.compact_opt_str()?;
    let rack_id = r.compact_opt_str()?;
    let client_id = r.compact_str()?;
    let client_host = r.compact_str()?;
    let n = compact_count(r)?;
    let mut subscribed_topic_names = Vec::with_capacity(n);
    for _ in 0..n {
        subscribed_topic_names.push(r.compact_str()?);
    }
    Ok(MemberMetadata {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex: r.compact_opt_str()?,
        rebalance_timeout_ms: r.i32()?,
        server_assignor: r.compact_opt_str()?,
    })
}

fn decode_current(r: &mut Reader<'_>) -> Result<CurrentAssignment, CorruptRecord> {
    Ok(CurrentAssignment {
        member_epoch: r.i32()?,
        previous_member_epoch: r.i32()?,
        state: r.i8()?,
        assigned: read_partitions(r)?,
        pending_revocation: read_partitions(r)?,
    })
}

/// A compact array length, null read as empty. Never more than the bytes left, so no
/// allocation is sized by a corrupt length.
fn compact_count(r: &mut Reader<'_>) -> Result<usize, CorruptRecord> {
    Ok(r.compact_len(1)?.unwrap_or(0))
}

fn read_partitions(r: &mut Reader<'_>) -> Result<TopicPartitions, CorruptRecord> {
    let topics = compact_count(r)?;
    let mut out = Vec::with_capacity(topics);
    for _ in 0..topics {
        let topic: TopicId = r.array()?;
        let n = compact_count(r)?;
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            partitions.push(r.i32()?);
        }
        r.skip_tagged_fields()?;
        out.push((topic, partitions));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GroupRecord;

    fn round_trip(record: ConsumerRecord) {
        let wrapped = GroupRecord::Consumer {
            group: "g".into(),
            record,
        };
        let (k, v) = wrapped.encode();
        assert_eq!(GroupRecord::decode(&k, v.as_deref()).unwrap(), wrapped);
    }

    #[test]
    fn every_record_round_trips_with_and_without_a_value() {
        let parts = vec![([7; 16], vec![0, 2]), ([9; 16], vec![])];
        round_trip(ConsumerRecord::GroupEpoch(Some(GroupEpoch {
            epoch: 4,
            metadata_hash: u64::MAX - 3,
        })));
        round_trip(ConsumerRecord::GroupEpoch(None));
        round_trip(ConsumerRecord::Member {
            member_id: "m".into(),
            value: Some(MemberMetadata {
                instance_id: Some("i".into()),
                rack_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                subscribed_topic_names: vec!["a".into(), "b".into()],
                subscribed_topic_regex: Some("^x.*".into()),
                rebalance_timeout_ms: 300_000,
                server_assignor: Some("uniform".into()),
            }),
        });
        round_trip(ConsumerRecord::Member {
            member_id: "m".into(),
            value: None,
        });
        round_trip(ConsumerRecord::TargetEpoch(Some(3)));
        round_trip(ConsumerRecord::Target {
            member_id: "m".into(),
            value: Some(parts.clone()),
        });
        round_trip(ConsumerRecord::Current {
            member_id: "m".into(),
            value: Some(CurrentAssignment {
                member_epoch: 5,
                previous_member_epoch: 4,
                state: member_state::UNREVOKED_PARTITIONS,
                assigned: parts.clone(),
                pending_revocation: vec![([1; 16], vec![3])],
            }),
        });
        round_trip(ConsumerRecord::Current {
            member_id: "m".into(),
            value: None,
        });
    }

    #[test]
    fn the_layout_is_kafkas() {
        // ConsumerGroupTargetAssignmentMetadata: key 6, "g"; value v0, epoch 3, no tags.
        let (k, v) = ConsumerRecord::TargetEpoch(Some(3)).encode("g");
        assert_eq!(k, [0, 6, 0, 1, b'g']);
        assert_eq!(v.unwrap(), [0, 0, 0, 0, 0, 3, 0]);
        // Unknown tagged fields are skipped, as Kafka's readers do.
        let value = [0, 0, 0, 0, 0, 3, 1, 5, 2, 0xaa, 0xbb];
        let r = GroupRecord::decode(&k, Some(&value)).unwrap();
        assert_eq!(
            r,
            GroupRecord::Consumer {
                group: "g".into(),
                record: ConsumerRecord::TargetEpoch(Some(3))
            }
        );
    }

    #[test]
    fn corrupt_values_are_errors_not_allocations() {
        let (k, _) = ConsumerRecord::Target {
            member_id: "m".into(),
            value: None,
        }
        .encode("g");
        // A topic count of 2^62 in a 12-byte value.
        let value = [0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0];
        assert!(GroupRecord::decode(&k, Some(&value)).is_err());
        assert!(GroupRecord::decode(&k, Some(&[0, 1])).is_err(), "value version 1");
        assert!(GroupRecord::decode(&[0, 8, 0, 1, b'g'], None).is_err(), "no member id");
    }
}
