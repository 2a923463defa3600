//! Request versions Kafka 4 removed (KIP-896) that widely packaged tools still send: ListOffsets
//! v0 (Burrow 1.2.1), OffsetCommit v0–1 (Sarama 1.22's offset manager) and DescribeConfigs v0
//! (Sarama's ClusterAdmin). `kafka-protocol` knows only the versions Kafka 4.1 defines, so these
//! are decoded here by hand into its types at their lowest known version, and their answers are
//! encoded by hand from the same types. The guard has already walked every body against its
//! schema (`schema.rs` lists these versions' fields), so lengths here are trusted only as far
//! as the bytes go: every read is still bounds-checked.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::guard::Cursor;
use crate::ProtocolError;

/// The lowest version `kafka-protocol` decodes, per API this module serves below it.
pub fn lowest_known(api_key: i16) -> Option<i16> {
    match api_key {
        2 => Some(1),  // ListOffsets
        8 => Some(2),  // OffsetCommit
        32 => Some(1), // DescribeConfigs
        _ => None,
    }
}

/// Whether `version` of `api_key` is one this module decodes and encodes.
pub fn is_legacy(api_key: i16, version: i16) -> bool {
    lowest_known(api_key).is_some_and(|low| version < low)
}

fn short(what: &'static str) -> ProtocolError {
    ProtocolError::Malformed(format!("legacy request: {what}"))
}

struct Reader<'a>(Cursor<'a>);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        self.0.take(n, "field").map_err(|_| short("truncated"))
    }
    fn i8(&mut self) -> Result<i8, ProtocolError> {
        Ok(self.bytes(1)?[0] as i8)
    }
    fn i32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, ProtocolError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(i64::from_be_bytes(a))
    }
    fn string(&mut self) -> Result<Option<StrBytes>, ProtocolError> {
        let s = self.0.legacy_string().map_err(|_| short("string"))?;
        s.map(|b| {
            String::from_utf8(b.to_vec())
                .map(StrBytes::from_string)
                .map_err(|_| short("string is not UTF-8"))
        })
        .transpose()
    }
    fn name(&mut self) -> Result<StrBytes, ProtocolError> {
        self.string()?.ok_or_else(|| short("null string"))
    }
    /// An array length; null (-1) reads as `None`. Elements are read one by one, never
    /// pre-allocated from the length.
    fn array(&mut self) -> Result<Option<usize>, ProtocolError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        if n as usize > self.0.remaining() {
            return Err(short("array longer than the bytes left"));
        }
        Ok(Some(n as usize))
    }
}

/// Decodes a legacy-version body into the `kafka-protocol` type of the same API.
pub fn decode(api_key: i16, version: i16, body: &Bytes) -> Result<RequestKind, ProtocolError> {
    let mut r = Reader(Cursor::new(body));
    let request = match api_key {
        2 => RequestKind::ListOffsets(list_offsets_v0(&mut r)?),
        8 => RequestKind::OffsetCommit(offset_commit_v0_v1(&mut r, version)?),
        32 => RequestKind::DescribeConfigs(describe_configs_v0(&mut r)?),
        _ => return Err(ProtocolError::UnsupportedVersion { api_key, version }),
    };
    if r.0.remaining() != 0 {
        return Err(short("trailing bytes"));
    }
    Ok(request)
}

fn list_offsets_v0(r: &mut Reader<'_>) -> Result<ListOffsetsRequest, ProtocolError> {
    let replica_id = r.i32()?;
    let mut topics = Vec::new();
    for _ in 0..r.array()?.unwrap_or(0) {
        let name = r.name()?;
        let mut partitions = Vec::new();
        for _ in 0..r.array()?.unwrap_or(0) {
            let partition_index = r.i32()?;
            let timestamp = r.i64()?;
            let _max_num_offsets = r.i32()?; // v0 answers at most one offset (Kafka 3.x did too for these)
            partitions.push(
                ListOffsetsPartition::default()
                    .with_partition_index(partition_index)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp),
            );
        }
        topics.push(
            ListOffsetsTopic::default()
                .with_name(TopicName(name))
                .with_partitions(partitions),
        );
    }
    Ok(ListOffsetsRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(topics))
}

fn offset_commit_v0_v1(r: &mut Reader<'_>, version: i16) -> Result<OffsetCommitRequest, ProtocolError> {
    let group_id = r.name()?;
    // v0 commits outside any generation, as admin tools do in later versions with -1.
    let (generation, member_id) = if version >= 1 {
        (r.i32()?, r.name()?)
    } else {
        (-1, StrBytes::default())
    };
    let mut topics = Vec::new();
    for _ in 0..r.array()?.unwrap_or(0) {
        let name = r.name()?;
        let mut partitions = Vec::new();
        for _ in 0..r.array()?.unwrap_or(0) {
            let partition_index = r.i32()?;
            let committed_offset = r.i64()?;
            if version == 1 {
                let _commit_timestamp = r.i64()?; // v1 only; the broker's clock is used, as in Kafka
            }
            let metadata = r.string()?;
            partitions.push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(partition_index)
                    .with_committed_offset(committed_offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(metadata),
            );
        }
        topics.push(
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(name))
                .with_partitions(partitions),
        );
    }
    Ok(OffsetCommitRequest::default()
        .with_group_id(GroupId(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(member_id)
        .with_retention_time_ms(-1)
        .with_topics(topics))
}

fn describe_configs_v0(r: &mut Reader<'_>) -> Result<DescribeConfigsRequest, ProtocolError> {
    let mut resources = Vec::new();
    for _ in 0..r.array()?.unwrap_or(0) {
        let resource_type = r.i8()?;
        let resource_name = r.name()?;
        let names = match r.array()? {
            None => None,
            Some(n) => Some((0..n).map(|_| r.name()).collect::<Result<Vec<_>, _>>()?),
        };
        resources.push(
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(resource_name)
                .with_configuration_keys(names),
        );
    }
    Ok(DescribeConfigsRequest::default().with_resources(resources))
}

fn put_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        None => out.put_i16(-1),
        Some(s) => {
            // Every string here came from a request (≤ 32,767 bytes) or from the broker.
            let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
            out.put_i16(bytes.len() as i16);
            out.put_slice(bytes);
        }
    }
}

fn put_len(out: &mut BytesMut, n: usize) {
    out.put_i32(i32::try_from(n).unwrap_or(i32::MAX));
}

/// Encodes the body of a legacy-version response.
pub fn encode(out: &mut BytesMut, version: i16, response: &ResponseKind) -> Result<(), ProtocolError> {
    match response {
        ResponseKind::ListOffsets(r) => {
            // v0: [topic [partition, error, old_style_offsets[]]]
            put_len(out, r.topics.len());
            for t in &r.topics {
                put_string(out, Some(&t.name.0));
                put_len(out, t.partitions.len());
                for p in &t.partitions {
                    out.put_i32(p.partition_index);
                    out.put_i16(p.error_code);
                    if p.error_code == 0 && p.offset >= 0 {
                        out.put_i32(1);
                        out.put_i64(p.offset);
                    } else {
                        out.put_i32(0);
                    }
                }
            }
        }
        ResponseKind::OffsetCommit(r) => {
            // v0–1: [topic [partition, error]] (no throttle time before v3)
            put_len(out, r.topics.len());
            for t in &r.topics {
                put_string(out, Some(&t.name.0));
                put_len(out, t.partitions.len());
                for p in &t.partitions {
                    out.put_i32(p.partition_index);
                    out.put_i16(p.error_code);
                }
            }
        }
        ResponseKind::DescribeConfigs(r) => {
            // v0: throttle, [error, message, type, name, [name, value, read_only, is_default, is_sensitive]]
            out.put_i32(r.throttle_time_ms);
            put_len(out, r.results.len());
            for res in &r.results {
                out.put_i16(res.error_code);
                put_string(out, res.error_message.as_deref());
                out.put_i8(res.resource_type);
                put_string(out, Some(&res.resource_name));
                put_len(out, res.configs.len());
                for c in &res.configs {
                    put_string(out, Some(&c.name));
                    put_string(out, c.value.as_deref());
                    out.put_u8(u8::from(c.read_only));
                    // v1 replaced is_default with config_source; 5 is DEFAULT_CONFIG.
                    out.put_u8(u8::from(c.config_source == 5));
                    out.put_u8(u8::from(c.is_sensitive));
                }
            }
        }
        _ => {
            return Err(ProtocolError::Malformed(format!(
                "no legacy encoding for this response at v{version}"
            )))
        }
    }
    Ok(())
}
