//! Fetch: serve stored batches from each partition's log, long-polling until `min_bytes`
//! are available or `max_wait_ms` passes. Fetch sessions (KIP-227) are not kept: every
//! response says session 0, so clients send full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use nurt_log::{LogError, ReadSlice};
use nurt_protocol::fetch::{FetchPartition, FetchResponseParts, FetchTopic as TopicOut};
use nurt_protocol::kafka_protocol::messages::fetch_request::{FetchPartition as RequestPartition, FetchTopic};
use nurt_protocol::kafka_protocol::messages::FetchRequest;

use crate::partition::Partition;
use crate::{codes, Broker};

/// The response: record sets stay file ranges until the connection writes them.
pub type FetchReply = FetchResponseParts<ReadSlice>;

/// Longest a fetch may wait, whatever the client asks.
const MAX_WAIT_CAP_MS: u64 = 30_000;

fn partition_error(index: i32, code: i16) -> FetchPartition<ReadSlice> {
    FetchPartition {
        partition_index: index,
        error_code: code,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        records: None,
    }
}

/// Locates one partition's records (a file range, not yet read) within `budget` bytes.
fn read_partition(
    partition: &Partition,
    request: &RequestPartition,
    budget: usize,
    first: bool,
) -> FetchPartition<ReadSlice> {
    let epoch_code = codes::leader_epoch_check(request.current_leader_epoch, partition.leader_epoch());
    if epoch_code != codes::NONE {
        return partition_error(request.partition, epoch_code);
    }
    // KIP-74: the first partition with data may exceed the budget by one batch.
    let may_read = budget > 0 || first;
    match partition.read(request.fetch_offset, budget) {
        Ok((slice, offsets)) => FetchPartition {
            partition_index: request.partition,
            error_code: codes::NONE,
            high_watermark: offsets.high_watermark,
            last_stable_offset: offsets.high_watermark,
            log_start_offset: offsets.log_start_offset,
            records: slice.filter(|_| may_read).map(|s| {
                let len = s.len;
                (s, len)
            }),
        },
        Err(LogError::OffsetOutOfRange {
            log_start_offset,
            log_end_offset,
            ..
        }) => FetchPartition {
            high_watermark: log_end_offset,
            last_stable_offset: log_end_offset,
            log_start_offset,
            ..partition_error(request.partition, codes::OFFSET_OUT_OF_RANGE)
        },
        Err(e) => {
            tracing::error!("fetch from {}-{}: {e}", partition.topic, partition.index);
            partition_error(request.partition, codes::KAFKA_STORAGE_ERROR)
        }
    }
}

/// Reads every requested partition once; returns the topics, the record bytes found, and
/// whether any partition answered with an error (which ends a long poll).
fn read_once(
    broker: &Broker,
    topics: &[FetchTopic],
    version: i16,
    max_bytes: usize,
    refuse_code: i16,
) -> (Vec<TopicOut<ReadSlice>>, usize, bool) {
    let mut total = 0usize;
    let mut had_error = false;
    let mut out = Vec::with_capacity(topics.len());
    for topic in topics {
        let name = if version >= 13 {
            broker.topic_name_by_id(topic.topic_id.as_bytes())
        } else {
            Some(topic.topic.0.to_string())
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let led = name.as_deref().map(|n| match broker.partition(n, p.partition) {
                Some(partition) if partition.is_leader() => Ok(partition),
                _ => Err(broker.not_led_here(n, p.partition).code),
            });
            let data = match led {
                _ if refuse_code != codes::NONE => partition_error(p.partition, refuse_code),
                None => partition_error(p.partition, codes::UNKNOWN_TOPIC_ID),
                Some(Err(code)) => partition_error(p.partition, code),
                Some(Ok(partition)) => {
                    let budget = max_bytes
                        .saturating_sub(total)
                        .min(p.partition_max_bytes.max(0) as usize);
                    read_partition(&partition, p, budget, total == 0)
                }
            };
            total += data.records.as_ref().map_or(0, |r| r.1);
            had_error |= data.error_code != codes::NONE;
            partitions.push(data);
        }
        out.push(TopicOut {
            name: topic.topic.0.to_string(),
            topic_id: *topic.topic_id.as_bytes(),
            partitions,
        });
    }
    (out, total, had_error)
}

fn reply(topics: Vec<TopicOut<ReadSlice>>) -> FetchReply {
    FetchResponseParts {
        error_code: codes::NONE,
        session_id: 0,
        topics,
    }
}

pub async fn handle(broker: &Arc<Broker>, request: FetchRequest, version: i16) -> FetchReply {
    // Only brokers replicate, and a client cannot prove it is one (CVE-2018-1288).
    let claims_replica = request.replica_id.0 >= 0 || request.replica_state.replica_id.0 >= 0;
    let refuse_code = if claims_replica {
        codes::CLUSTER_AUTHORIZATION_FAILED
    } else {
        codes::NONE
    };
    if request.session_id > 0 {
        return FetchResponseParts {
            error_code: codes::FETCH_SESSION_ID_NOT_FOUND,
            session_id: 0,
            topics: vec![],
        };
    }
    let max_bytes = request.max_bytes.max(0) as usize;
    let min_bytes = request.min_bytes.max(0) as usize;
    let wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP_MS));
    let deadline = tokio::time::Instant::now() + wait;
    let mut data = broker.subscribe_data();
    loop {
        data.borrow_and_update();
        let (topics, bytes, had_error) = read_once(broker, &request.topics, version, max_bytes, refuse_code);
        let expired = tokio::time::Instant::now() >= deadline;
        if bytes >= min_bytes || had_error || expired {
            return reply(topics);
        }
        if !matches!(tokio::time::timeout_at(deadline, data.changed()).await, Ok(Ok(()))) {
            // Timed out: one last read picks up anything that raced the deadline.
            let (topics, _, _) = read_once(broker, &request.topics, version, max_bytes, refuse_code);
            return reply(topics);
        }
    }
}
