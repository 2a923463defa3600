//! Fetch: serve stored batches from each partition's log, long-polling until `min_bytes`
//! are available or `max_wait_ms` passes. Fetch sessions (KIP-227) are not kept: every
//! response says session 0, so clients send full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nurt_log::LogError;
use nurt_protocol::kafka_protocol::messages::fetch_request::FetchTopic;
use nurt_protocol::kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use nurt_protocol::kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use super::sb;
use crate::{codes, Broker};

/// Longest a fetch may wait, whatever the client asks.
const MAX_WAIT_CAP_MS: u64 = 30_000;

fn partition_error(index: i32, code: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
}

/// Reads every requested partition once; returns the topics and the record bytes found.
fn read_once(
    broker: &Broker,
    topics: &[FetchTopic],
    version: i16,
    max_bytes: usize,
    refuse_code: i16,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
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
            let partition = name.as_deref().and_then(|n| broker.partition(n, p.partition));
            let data = match partition {
                _ if refuse_code != codes::NONE => partition_error(p.partition, refuse_code),
                None if name.is_none() => partition_error(p.partition, codes::UNKNOWN_TOPIC_ID),
                None => partition_error(p.partition, codes::UNKNOWN_TOPIC_OR_PARTITION),
                Some(partition) => {
                    let epoch_code = codes::leader_epoch_check(p.current_leader_epoch, partition.leader_epoch);
                    if epoch_code != codes::NONE {
                        partition_error(p.partition, epoch_code)
                    } else {
                        // KIP-74: the first partition with data may exceed max_bytes by one batch.
                        let budget = max_bytes
                            .saturating_sub(total)
                            .min(p.partition_max_bytes.max(0) as usize);
                        let may_read = budget > 0 || total == 0;
                        match partition.read(p.fetch_offset, budget) {
                            Ok((slice, offsets)) => {
                                let records = match slice.filter(|_| may_read).map(|s| s.read_to_vec()) {
                                    Some(Ok(bytes)) => Bytes::from(bytes),
                                    Some(Err(e)) => {
                                        tracing::error!("reading {}-{}: {e}", partition.topic, partition.index);
                                        had_error = true;
                                        partitions.push(partition_error(p.partition, codes::KAFKA_STORAGE_ERROR));
                                        continue;
                                    }
                                    None => Bytes::new(),
                                };
                                total += records.len();
                                PartitionData::default()
                                    .with_partition_index(p.partition)
                                    .with_high_watermark(offsets.high_watermark)
                                    .with_last_stable_offset(offsets.high_watermark)
                                    .with_log_start_offset(offsets.log_start_offset)
                                    .with_records(Some(records))
                            }
                            Err(LogError::OffsetOutOfRange {
                                log_start_offset,
                                log_end_offset,
                                ..
                            }) => {
                                had_error = true;
                                partition_error(p.partition, codes::OFFSET_OUT_OF_RANGE)
                                    .with_high_watermark(log_end_offset)
                                    .with_last_stable_offset(log_end_offset)
                                    .with_log_start_offset(log_start_offset)
                            }
                            Err(e) => {
                                tracing::error!("fetch from {}-{}: {e}", partition.topic, partition.index);
                                had_error = true;
                                partition_error(p.partition, codes::KAFKA_STORAGE_ERROR)
                            }
                        }
                    }
                }
            };
            if data.error_code != codes::NONE {
                had_error = true;
            }
            partitions.push(data);
        }
        let entry = FetchableTopicResponse::default().with_partitions(partitions);
        out.push(if version >= 13 {
            entry.with_topic_id(topic.topic_id)
        } else {
            entry.with_topic(TopicName(sb(topic.topic.0.to_string())))
        });
    }
    (out, total, had_error)
}

pub async fn handle(broker: &Arc<Broker>, request: FetchRequest, version: i16) -> FetchResponse {
    // Only brokers replicate, and a client cannot prove it is one (CVE-2018-1288).
    let claims_replica = request.replica_id.0 >= 0 || request.replica_state.replica_id.0 >= 0;
    let refuse_code = if claims_replica {
        codes::CLUSTER_AUTHORIZATION_FAILED
    } else {
        codes::NONE
    };
    if request.session_id > 0 {
        return FetchResponse::default().with_error_code(codes::FETCH_SESSION_ID_NOT_FOUND);
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
            return FetchResponse::default().with_responses(topics);
        }
        if !matches!(tokio::time::timeout_at(deadline, data.changed()).await, Ok(Ok(()))) {
            // Timed out: one last read picks up anything that raced the deadline.
            let (topics, _, _) = read_once(broker, &request.topics, version, max_bytes, refuse_code);
            return FetchResponse::default().with_responses(topics);
        }
    }
}
