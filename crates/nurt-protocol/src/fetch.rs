//! Fetch responses encoded by hand, so record bytes can go from a segment file straight to
//! the socket: the encoder emits [`Part`]s, byte runs it wrote and record sets it did not
//! touch (only their length is written). The layout is checked against `kafka-protocol`'s
//! encoder for every served version in the tests.

use bytes::{BufMut, Bytes, BytesMut};

/// A piece of an encoded response.
#[derive(Debug, Clone)]
pub enum Part<R> {
    /// Bytes encoded here.
    Bytes(Bytes),
    /// A record set of the given length, supplied by the caller (e.g. a file range).
    Records(R, usize),
}

/// One partition of a Fetch response.
#[derive(Debug, Clone)]
pub struct FetchPartition<R> {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// To a `read_committed` consumer: the aborted transactions overlapping the records, as
    /// (producer id, first offset); `None` encodes null (a `read_uncommitted` fetch).
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// To a consumer (v11+, KIP-392): the replica to fetch this partition from instead, or
    /// -1 for none.
    pub preferred_read_replica: i32,
    /// The records and their length; `None` encodes an empty record set.
    pub records: Option<(R, usize)>,
    /// To a follower whose log diverges (v12+, tagged field 0): the largest epoch ≤ its last
    /// fetched epoch and where that epoch ends on the leader, as (epoch, end offset).
    pub diverging_epoch: Option<(i32, i64)>,
    /// With NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH (v12+, tagged field 1, KIP-951): the
    /// leader this broker knows, as (leader id, leader epoch).
    pub current_leader: Option<(i32, i32)>,
}

/// One topic of a Fetch response: by name up to v12, by id from v13.
#[derive(Debug, Clone)]
pub struct FetchTopic<R> {
    pub name: String,
    pub topic_id: [u8; 16],
    pub partitions: Vec<FetchPartition<R>>,
}

/// A whole Fetch response.
#[derive(Debug, Clone)]
pub struct FetchResponseParts<R> {
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchTopic<R>>,
}

struct Out<R> {
    parts: Vec<Part<R>>,
    buf: BytesMut,
    flexible: bool,
}

impl<R> Out<R> {
    fn len(&mut self, n: usize) {
        if self.flexible {
            put_uvarint(&mut self.buf, n as u32 + 1);
        } else {
            self.buf.put_i32(n as i32);
        }
    }
    fn string(&mut self, s: &str) {
        if self.flexible {
            put_uvarint(&mut self.buf, s.len() as u32 + 1);
        } else {
            self.buf.put_i16(s.len() as i16);
        }
        self.buf.put_slice(s.as_bytes());
    }
    fn no_tags(&mut self) {
        if self.flexible {
            self.buf.put_u8(0);
        }
    }
    fn records(&mut self, records: Option<(R, usize)>) {
        match records {
            None => self.len(0),
            Some((r, n)) => {
                self.len(n);
                let done = self.buf.split().freeze();
                self.parts.push(Part::Bytes(done));
                self.parts.push(Part::Records(r, n));
            }
        }
    }
}

/// A partition's tagged fields, in tag order (only in flexible versions).
fn partition_tags<R>(o: &mut Out<R>, diverging_epoch: Option<(i32, i64)>, current_leader: Option<(i32, i32)>) {
    if !o.flexible {
        return;
    }
    let count = u32::from(diverging_epoch.is_some()) + u32::from(current_leader.is_some());
    put_uvarint(&mut o.buf, count);
    if let Some((epoch, end_offset)) = diverging_epoch {
        // tag 0, 13 bytes: epoch, end offset, no tagged fields of its own
        put_uvarint(&mut o.buf, 0);
        put_uvarint(&mut o.buf, 13);
        o.buf.put_i32(epoch);
        o.buf.put_i64(end_offset);
        o.buf.put_u8(0);
    }
    if let Some((leader_id, leader_epoch)) = current_leader {
        // tag 1, 9 bytes: leader id, leader epoch, no tagged fields of its own
        put_uvarint(&mut o.buf, 1);
        put_uvarint(&mut o.buf, 9);
        o.buf.put_i32(leader_id);
        o.buf.put_i32(leader_epoch);
        o.buf.put_u8(0);
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Encodes `[length][header][body]` of a Fetch response at `version` (4..=18).
pub fn encode_fetch_response<R>(version: i16, correlation_id: i32, response: FetchResponseParts<R>) -> Vec<Part<R>> {
    let flexible = version >= 12;
    let mut o = Out {
        parts: Vec::new(),
        buf: BytesMut::with_capacity(256),
        flexible,
    };
    o.buf.put_i32(0); // frame length, patched below
    o.buf.put_i32(correlation_id);
    o.no_tags(); // response header v1 in flexible versions
    o.buf.put_i32(0); // throttle_time_ms
    if version >= 7 {
        o.buf.put_i16(response.error_code);
        o.buf.put_i32(response.session_id);
    }
    o.len(response.topics.len());
    for topic in response.topics {
        if version >= 13 {
            o.buf.put_slice(&topic.topic_id);
        } else {
            o.string(&topic.name);
        }
        o.len(topic.partitions.len());
        for p in topic.partitions {
            o.buf.put_i32(p.partition_index);
            o.buf.put_i16(p.error_code);
            o.buf.put_i64(p.high_watermark);
            o.buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                o.buf.put_i64(p.log_start_offset);
            }
            match p.aborted_transactions {
                None if flexible => o.buf.put_u8(0),
                None => o.buf.put_i32(-1),
                Some(aborted) => {
                    o.len(aborted.len());
                    for (producer_id, first_offset) in aborted {
                        o.buf.put_i64(producer_id);
                        o.buf.put_i64(first_offset);
                        o.no_tags();
                    }
                }
            }
            if version >= 11 {
                o.buf.put_i32(p.preferred_read_replica);
            }
            o.records(p.records);
            partition_tags(&mut o, p.diverging_epoch, p.current_leader);
        }
        o.no_tags();
    }
    o.no_tags();
    let tail = o.buf.split().freeze();
    o.parts.push(Part::Bytes(tail));
    let total: usize = o
        .parts
        .iter()
        .map(|p| match p {
            Part::Bytes(b) => b.len(),
            Part::Records(_, n) => *n,
        })
        .sum();
    // The first part starts with the length prefix; rebuild it with the real value.
    if let Some(Part::Bytes(first)) = o.parts.first_mut() {
        let mut patched = BytesMut::from(&first[..]);
        patched[..4].copy_from_slice(&((total - 4) as i32).to_be_bytes());
        *first = patched.freeze();
    }
    o.parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
    };
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchResponse, ProducerId, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn sample(records: &[&'static [u8]], version: i16) -> (FetchResponseParts<Bytes>, FetchResponse) {
        let parts: Vec<FetchPartition<Bytes>> = records
            .iter()
            .enumerate()
            .map(|(i, r)| FetchPartition {
                partition_index: i as i32,
                error_code: if r.is_empty() { 1 } else { 0 },
                high_watermark: 100 + i as i64,
                last_stable_offset: 90,
                log_start_offset: 7,
                aborted_transactions: (i == 2).then(|| vec![(7, 100), (8, 101)]),
                // Versions before 11 have no field for it (kafka-protocol refuses to drop it).
                preferred_read_replica: if i == 1 && version >= 11 { 2 } else { -1 },
                records: (!r.is_empty()).then(|| (Bytes::from_static(r), r.len())),
                diverging_epoch: (i == 0).then_some((4, 1234)),
                current_leader: (i != 2).then_some((3, 9)),
            })
            .collect();
        let crate_parts: Vec<PartitionData> = parts
            .iter()
            .map(|p| {
                PartitionData::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(p.error_code)
                    .with_high_watermark(p.high_watermark)
                    .with_last_stable_offset(p.last_stable_offset)
                    .with_log_start_offset(p.log_start_offset)
                    .with_aborted_transactions(p.aborted_transactions.as_ref().map(|a| {
                        a.iter()
                            .map(|&(producer_id, first_offset)| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(producer_id))
                                    .with_first_offset(first_offset)
                            })
                            .collect()
                    }))
                    .with_preferred_read_replica(BrokerId(p.preferred_read_replica))
                    .with_records(Some(p.records.as_ref().map_or_else(Bytes::new, |r| r.0.clone())))
                    .with_diverging_epoch(p.diverging_epoch.map_or_else(Default::default, |(epoch, end_offset)| {
                        EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset)
                    }))
                    .with_current_leader(p.current_leader.map_or_else(Default::default, |(id, epoch)| {
                        LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(id))
                            .with_leader_epoch(epoch)
                    }))
            })
            .collect();
        let id = [9u8; 16];
        let ours = FetchResponseParts {
            error_code: 0,
            session_id: 0,
            topics: vec![FetchTopic {
                name: "topic-a".into(),
                topic_id: id,
                partitions: parts,
            }],
        };
        let theirs = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("topic-a")))
            .with_topic_id(uuid::Uuid::from_bytes(id))
            .with_partitions(crate_parts)]);
        (ours, theirs)
    }

    #[test]
    fn matches_kafka_protocol_for_every_served_version() {
        for version in 4..=18 {
            let (ours, theirs) = sample(&[b"batch-bytes-one", b"", b"two"], version);
            let mut flat = BytesMut::new();
            for part in encode_fetch_response(version, 77, ours) {
                match part {
                    Part::Bytes(b) | Part::Records(b, _) => flat.extend_from_slice(&b),
                }
            }
            let responses = theirs.responses.clone().into_iter();
            let theirs = if version >= 13 {
                theirs.with_responses(
                    responses
                        .map(|t| t.with_topic(TopicName(StrBytes::from_static_str(""))))
                        .collect(),
                )
            } else {
                theirs.with_responses(responses.map(|t| t.with_topic_id(uuid::Uuid::nil())).collect())
            };
            let mut expected = BytesMut::new();
            crate::encode_response(&mut expected, ApiKey::Fetch, version, 77, &ResponseKind::Fetch(theirs)).unwrap();
            assert_eq!(flat, expected, "Fetch v{version}");
        }
    }
}
