//! Produce: validate each partition's batch, append it, answer with its base offset. A batch
//! that would open a transaction is verified with its coordinator first (KIP-890 part 1,
//! `txn_verify.rs`).
//!
//! Acknowledgement: acks=1 answers once the batch is in the leader's page cache (fsynced
//! first when `flush.messages` says so). acks=all also waits until every in-sync replica has
//! it (the high watermark passed it), at most the request's `timeout_ms`; it is refused before
//! the append (NOT_ENOUGH_REPLICAS) while the ISR is smaller than `min.insync.replicas`. With
//! one replica the high watermark moves on the append itself. acks=0 gets no response.

use nurt_protocol::kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use nurt_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use nurt_log::VerificationGuard;

use super::sb;
use crate::partition::{AppendError, Partition, Verification};
use crate::txn_verify::{self, VerifyRequest};
use crate::{codes, now_ms, Broker};

fn error_for(e: &AppendError, version: i16) -> i16 {
    match e {
        AppendError::TooLarge { .. } => codes::MESSAGE_TOO_LARGE,
        AppendError::Corrupt(_) => codes::CORRUPT_MESSAGE,
        AppendError::InvalidRecord(_) | AppendError::InvalidRecords(_) => codes::INVALID_RECORD,
        AppendError::InvalidTimestamp(_) => codes::INVALID_TIMESTAMP,
        AppendError::OutOfOrderSequence => codes::OUT_OF_ORDER_SEQUENCE_NUMBER,
        // Kafka answers a stale epoch on Produce with INVALID_PRODUCER_EPOCH since 2.7 (not
        // PRODUCER_FENCED): librdkafka makes only that one a fatal fencing error.
        AppendError::ProducerFenced => codes::INVALID_PRODUCER_EPOCH,
        AppendError::InvalidTxnState => codes::INVALID_TXN_STATE,
        AppendError::NotInTransaction => txn_verify::for_produce(codes::TRANSACTION_ABORTABLE, version),
        AppendError::CoordinatorFenced => codes::TRANSACTION_COORDINATOR_FENCED,
        AppendError::Storage(_) => codes::KAFKA_STORAGE_ERROR,
        AppendError::NotLeader => codes::NOT_LEADER_OR_FOLLOWER,
    }
}

/// The answer for an append the partition refused.
fn refused(partition: &Partition, index: i32, e: AppendError, version: i16) -> PartitionProduceResponse {
    if matches!(e, AppendError::Storage(_)) {
        tracing::error!("append to {}-{} failed: {e}", partition.topic, partition.index);
    }
    let response = failed(index, error_for(&e, version), Some(e.to_string()));
    match e {
        AppendError::InvalidRecords(records) if version >= 8 => response.with_record_errors(
            records
                .into_iter()
                .map(|(i, m)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(i)
                        .with_batch_index_error_message(Some(sb(m)))
                })
                .collect(),
        ),
        _ => response,
    }
}

fn failed(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(sb))
}

/// One partition of a produce request on its way: where it goes (or the code refusing it, with
/// a message), its records, and the guard of its transaction verification.
struct Slot {
    index: i32,
    target: Result<Arc<Partition>, (i16, Option<&'static str>)>,
    records: Option<Bytes>,
    guard: Option<VerificationGuard>,
}

/// KIP-890 part 1: every batch that would open its producer's transaction on a partition is
/// verified with the producer's coordinator first (one ask per producer for the request); a
/// partition the coordinator does not confirm is refused.
async fn verify(
    broker: &Broker,
    transactional_id: Option<&str>,
    version: i16,
    topics: &mut [(Option<String>, Vec<Slot>)],
) {
    // (producer id, epoch) → the slots to verify, as (topic slot, partition slot, topic).
    type Asks = BTreeMap<(i64, i16), Vec<(usize, usize, String)>>;
    let mut asks = Asks::new();
    for (t, (name, slots)) in topics.iter_mut().enumerate() {
        for (i, slot) in slots.iter_mut().enumerate() {
            let (Ok(partition), Some(records)) = (&slot.target, &slot.records) else {
                continue;
            };
            let Some((header, guard)) = partition.start_verification(records) else {
                continue;
            };
            slot.guard = Some(guard);
            let topic = name.clone().unwrap_or_default();
            asks.entry((header.producer_id, header.producer_epoch))
                .or_default()
                .push((t, i, topic));
        }
    }
    for ((producer_id, producer_epoch), slots) in asks {
        let errors = match transactional_id {
            // Kafka would append these unverified; a transaction no coordinator knows of could
            // then never end, so they are refused.
            None => vec![codes::INVALID_TXN_STATE; slots.len()],
            Some(id) => {
                let req = VerifyRequest {
                    transactional_id: id.to_string(),
                    producer_id,
                    producer_epoch,
                    partitions: slots
                        .iter()
                        .map(|(t, i, topic)| (topic.clone(), topics[*t].1[*i].index))
                        .collect(),
                };
                txn_verify::ask(broker, &req).await
            }
        };
        for ((t, i, _), code) in slots.into_iter().zip(errors) {
            if code != codes::NONE {
                let message = "the partition could not be verified to be in the producer's ongoing transaction";
                topics[t].1[i].target = Err((txn_verify::for_produce(code, version), Some(message)));
            }
        }
    }
}

/// Handles a produce request; `None` for acks=0 (Kafka sends nothing back).
pub async fn handle(broker: &Broker, request: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    let valid_acks = matches!(acks, -1..=1);
    let mut topics = Vec::with_capacity(request.topic_data.len());
    let mut topic_keys = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = if version >= 13 {
            broker.topic_name_by_id(topic.topic_id.as_bytes())
        } else {
            Some(topic.name.0.to_string())
        };
        let slots = topic
            .partition_data
            .into_iter()
            .map(|p| Slot {
                index: p.index,
                target: match name.as_deref() {
                    _ if !valid_acks => Err((codes::INVALID_REQUIRED_ACKS, None)),
                    None => Err((codes::UNKNOWN_TOPIC_ID, None)),
                    Some(n) => broker.led_partition(n, p.index, -1).map_err(|not| (not.code, None)),
                },
                records: p.records,
                guard: None,
            })
            .collect();
        topics.push((name, slots));
        topic_keys.push((topic.topic_id, topic.name));
    }
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.as_str());
    verify(broker, transactional_id, version, &mut topics).await;
    // acks=all appends still to be replicated: (topic slot, partition slot, partition, last
    // offset, leader epoch of the append).
    let mut waiting = Vec::new();
    let now = now_ms();
    let mut responses = Vec::with_capacity(topics.len());
    for ((_, slots), (topic_id, topic_name)) in topics.into_iter().zip(topic_keys) {
        let mut partitions = Vec::with_capacity(slots.len());
        for slot in slots {
            let index = slot.index;
            let response = match (slot.target, slot.records) {
                (Err((code, message)), _) => failed(index, code, message.map(String::from)),
                (Ok(_), None) => failed(index, codes::CORRUPT_MESSAGE, Some("no records".into())),
                (Ok(partition), Some(_)) if acks == -1 && !partition.may_append_acks_all() => failed(
                    index,
                    codes::NOT_ENOUGH_REPLICAS,
                    Some("fewer in-sync replicas than min.insync.replicas".into()),
                ),
                (Ok(partition), Some(records)) => {
                    match partition.append(&records, now, Verification::Guarded(slot.guard)) {
                        Ok(a) => {
                            if acks == -1 {
                                waiting.push((
                                    responses.len(),
                                    partitions.len(),
                                    partition,
                                    a.last_offset,
                                    a.leader_epoch,
                                ));
                            }
                            PartitionProduceResponse::default()
                                .with_index(index)
                                .with_base_offset(a.base_offset)
                                .with_log_append_time_ms(a.log_append_time_ms)
                                .with_log_start_offset(a.log_start_offset)
                        }
                        Err(e) => refused(&partition, index, e, version),
                    }
                }
            };
            partitions.push(response);
        }
        let entry = TopicProduceResponse::default().with_partition_responses(partitions);
        responses.push(if version >= 13 {
            entry.with_topic_id(topic_id)
        } else {
            entry.with_name(TopicName(topic_name.0))
        });
    }
    // The purgatory: every acks=all append waits for its high watermark, all at once.
    let outcomes = futures_util::future::join_all(
        waiting
            .iter()
            .map(|(_, _, partition, last_offset, epoch)| partition.wait_replicated(*last_offset, *epoch, timeout)),
    )
    .await;
    for ((t, p, _, _, _), outcome) in waiting.iter().zip(outcomes) {
        if let Err(code) = outcome {
            let r = &mut responses[*t].partition_responses[*p];
            r.error_code = code;
        }
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}
