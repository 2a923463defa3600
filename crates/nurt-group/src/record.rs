//! Group records as Kafka lays them out in `__consumer_offsets`: offset commits (key v1,
//! value v3), classic group metadata (key v2, value v3) and KIP-848 group state
//! ([`consumer`], keys v3 and v5–v8). A `None` value is a tombstone.

pub mod consumer;

use consumer::ConsumerRecord;
use nurt_records::wire::{put_bytes, put_opt_str, put_str, Reader, WireError};

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// A member of a classic group as persisted when the group becomes stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A classic group's persisted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// One record of the offsets log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupMetadataValue>,
    },
    /// KIP-848 group state.
    Consumer { group: String, record: ConsumerRecord },
}

/// Why a stored record could not be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt group record: {0}")]
pub struct CorruptRecord(pub &'static str);

impl From<WireError> for CorruptRecord {
    fn from(e: WireError) -> Self {
        Self(e.0)
    }
}

/// `i32`-length bytes, null read as empty.
fn read_bytes(r: &mut Reader<'_>) -> Result<Vec<u8>, CorruptRecord> {
    Ok(r.opt_bytes()?.unwrap_or_default().to_vec())
}

impl GroupRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            Self::Offset { group, .. } | Self::Group { group, .. } | Self::Consumer { group, .. } => group,
        }
    }

    /// Encodes as a (key, value) pair of a log record.
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut key = Vec::new();
        match self {
            Self::Consumer { group, record } => record.encode(group),
            Self::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                key.extend_from_slice(&1i16.to_be_bytes());
                put_str(&mut key, group);
                put_str(&mut key, topic);
                key.extend_from_slice(&partition.to_be_bytes());
                let value = value.as_ref().map(|v| {
                    let mut out = 3i16.to_be_bytes().to_vec();
                    out.extend_from_slice(&v.offset.to_be_bytes());
                    out.extend_from_slice(&v.leader_epoch.to_be_bytes());
                    put_str(&mut out, &v.metadata);
                    out.extend_from_slice(&v.commit_timestamp_ms.to_be_bytes());
                    out
                });
                (key, value)
            }
            Self::Group { group, value } => {
                key.extend_from_slice(&2i16.to_be_bytes());
                put_str(&mut key, group);
                let value = value.as_ref().map(|g| {
                    let mut out = 3i16.to_be_bytes().to_vec();
                    put_str(&mut out, &g.protocol_type);
                    out.extend_from_slice(&g.generation.to_be_bytes());
                    put_opt_str(&mut out, g.protocol.as_deref());
                    put_opt_str(&mut out, g.leader.as_deref());
                    out.extend_from_slice(&g.state_timestamp_ms.to_be_bytes());
                    out.extend_from_slice(&(g.members.len() as i32).to_be_bytes());
                    for m in &g.members {
                        put_str(&mut out, &m.member_id);
                        put_opt_str(&mut out, m.group_instance_id.as_deref());
                        put_str(&mut out, &m.client_id);
                        put_str(&mut out, &m.client_host);
                        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
                        out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
                        put_bytes(&mut out, &m.subscription);
                        put_bytes(&mut out, &m.assignment);
                    }
                    out
                });
                (key, value)
            }
        }
    }

    /// Decodes a (key, value) pair written by [`GroupRecord::encode`] (or by Kafka).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, CorruptRecord> {
        let mut k = Reader::new(key);
        match k.i16()? {
            0 | 1 => {
                let (group, topic, partition) = (k.str()?, k.str()?, k.i32()?);
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader::new(v);
                        let version = r.i16()?;
                        let offset = r.i64()?;
                        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
                        let metadata = r.str()?;
                        let commit_timestamp_ms = r.i64()?;
                        Some(OffsetValue {
                            offset,
                            leader_epoch,
                            metadata,
                            commit_timestamp_ms,
                        })
                    }
                };
                Ok(Self::Offset {
                    group,
                    topic,
                    partition,
                    value,
                })
            }
            2 => {
                let group = k.str()?;
                let value = match value {
                    None => None,
                    Some(v) => Some(decode_group_value(v)?),
                };
                Ok(Self::Group { group, value })
            }
            v if consumer::KEY_VERSIONS.contains(&v) => {
                let group = k.str()?;
                let record = ConsumerRecord::decode(v, &mut k, value)?;
                Ok(Self::Consumer { group, record })
            }
            _ => Err(CorruptRecord("unknown key version")),
        }
    }
}

fn decode_group_value(v: &[u8]) -> Result<GroupMetadataValue, CorruptRecord> {
    let mut r = Reader::new(v);
    let version = r.i16()?;
    if version != 3 {
        return Err(CorruptRecord("unsupported group metadata version"));
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.opt_str()?;
    let leader = r.opt_str()?;
    let state_timestamp_ms = r.i64()?;
    let n = r.i32()?;
    if n < 0 || n as usize > r.remaining() {
        return Err(CorruptRecord("member count"));
    }
    let mut members = Vec::with_capacity(n as usize);
    for _ in 0..n {
        members.push(MemberValue {
            member_id: r.str()?,
            group_instance_id: r.opt_str()?,
            client_id: r.str()?,
            client_host: r.str()?,
            rebalance_timeout_ms: r.i32()?,
            session_timeout_ms: r.i32()?,
            subscription: read_bytes(&mut r)?,
            assignment: read_bytes(&mut r)?,
        });
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let records = [
            GroupRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(OffsetValue {
                    offset: 42,
                    leader_epoch: 1,
                    metadata: "m".into(),
                    commit_timestamp_ms: 9,
                }),
            },
            GroupRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: None,
            },
            GroupRecord::Group {
                group: "g".into(),
                value: Some(GroupMetadataValue {
                    protocol_type: "consumer".into(),
                    generation: 4,
                    protocol: Some("range".into()),
                    leader: Some("m1".into()),
                    state_timestamp_ms: 5,
                    members: vec![MemberValue {
                        member_id: "m1".into(),
                        group_instance_id: None,
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        rebalance_timeout_ms: 1,
                        session_timeout_ms: 2,
                        subscription: vec![1, 2],
                        assignment: vec![3],
                    }],
                }),
            },
            GroupRecord::Group {
                group: "g".into(),
                value: None,
            },
        ];
        for r in records {
            let (k, v) = r.encode();
            assert_eq!(GroupRecord::decode(&k, v.as_deref()).unwrap(), r);
        }
        assert!(GroupRecord::decode(&[0, 9], None).is_err());
        assert!(GroupRecord::decode(&[0, 2, 0, 1], Some(&[0, 3, 0])).is_err());
    }
}
