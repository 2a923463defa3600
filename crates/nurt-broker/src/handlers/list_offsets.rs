//! ListOffsets (earliest, latest, max timestamp, by timestamp; `read_committed` answers stop
//! at the last stable offset) and OffsetForLeaderEpoch.

use nurt_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use nurt_protocol::kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use nurt_protocol::kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use nurt_records::record::decode_batch;

use crate::partition::Partition;
use crate::{codes, Broker};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
/// Decoding one batch to find a record by timestamp may expand it this far.
const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// (timestamp, offset) answering `timestamp` on `partition`; (-1, -1) when nothing matches.
/// A `read_committed` lookup (isolation level 1) never answers at or past the last stable
/// offset, a `read_uncommitted` one never at or past the high watermark (Kafka's
/// `fetchOffsetForTimestamp`).
fn lookup(partition: &Partition, timestamp: i64, read_committed: bool) -> Result<(i64, i64), i16> {
    let offsets = partition.offsets();
    let bound = if read_committed {
        offsets.last_stable_offset
    } else {
        offsets.high_watermark
    };
    let visible = |found: (i64, i64)| if found.1 >= bound { (-1, -1) } else { found };
    let storage = |e: nurt_log::LogError| {
        tracing::error!("list offsets on {}-{}: {e}", partition.topic, partition.index);
        codes::KAFKA_STORAGE_ERROR
    };
    // The first record of `slice`'s batch, at or after the log start, that `wanted` accepts.
    let first_record = |slice: nurt_log::ReadSlice, wanted: &dyn Fn(i64) -> bool| {
        let bytes = slice.read_to_vec().map_err(|e| {
            storage(nurt_log::LogError::Io {
                path: Default::default(),
                source: e,
            })
        })?;
        let (_, records) = decode_batch(&bytes, DECOMPRESSED_BYTES_MAX).map_err(|_| codes::CORRUPT_MESSAGE)?;
        Ok(records
            .iter()
            .find(|r| wanted(r.timestamp_ms) && r.offset >= offsets.log_start_offset)
            .map_or((-1, -1), |r| (r.timestamp_ms, r.offset)))
    };
    match timestamp {
        LATEST => Ok((-1, bound)),
        EARLIEST | EARLIEST_LOCAL => Ok((-1, offsets.log_start_offset)),
        LATEST_TIERED => Ok((-1, -1)),
        // The first record carrying the largest timestamp, wherever it is (KAFKA-16310).
        MAX_TIMESTAMP => match partition.max_timestamp_batch().map_err(storage)? {
            Some((max, slice)) => first_record(slice, &|ts| ts == max).map(visible),
            None => Ok((-1, -1)),
        },
        ts if ts < 0 => Err(codes::INVALID_REQUEST),
        ts => match partition.find_by_timestamp(ts).map_err(storage)? {
            Some(slice) => first_record(slice, &|t| t >= ts).map(visible),
            None => Ok((-1, -1)),
        },
    }
}

pub fn handle(broker: &Broker, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let partition = match broker.led_partition(&topic.name.0, p.partition_index, p.current_leader_epoch)
                    {
                        Ok(partition) => partition,
                        Err(not) => return resp.with_error_code(not.code),
                    };
                    match lookup(&partition, p.timestamp, version >= 2 && request.isolation_level == 1) {
                        Ok((timestamp, offset)) => {
                            let resp = resp.with_timestamp(timestamp).with_offset(offset);
                            if version >= 4 {
                                resp.with_leader_epoch(partition.leader_epoch())
                            } else {
                                resp
                            }
                        }
                        Err(code) => resp.with_error_code(code),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

pub fn offset_for_leader_epoch(broker: &Broker, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let resp = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let partition = match broker.led_partition(&topic.topic.0, p.partition, p.current_leader_epoch) {
                        Ok(partition) => partition,
                        Err(not) => return resp.with_error_code(not.code),
                    };
                    match partition.end_offset_for_epoch(p.leader_epoch) {
                        Some((epoch, end)) => resp.with_leader_epoch(epoch).with_end_offset(end),
                        None => resp,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
