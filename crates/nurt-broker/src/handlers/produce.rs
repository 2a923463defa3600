//! Produce: validate each partition's batch, append it, answer with its base offset.
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

use super::sb;
use crate::partition::AppendError;
use crate::{codes, now_ms, Broker};

fn error_for(e: &AppendError) -> i16 {
    match e {
        AppendError::TooLarge { .. } => codes::MESSAGE_TOO_LARGE,
        AppendError::Corrupt(_) => codes::CORRUPT_MESSAGE,
        AppendError::InvalidRecord(_) | AppendError::InvalidRecords(_) => codes::INVALID_RECORD,
        AppendError::InvalidTimestamp(_) => codes::INVALID_TIMESTAMP,
        AppendError::OutOfOrderSequence => codes::OUT_OF_ORDER_SEQUENCE_NUMBER,
        AppendError::ProducerFenced => codes::PRODUCER_FENCED,
        AppendError::InvalidTxnState => codes::INVALID_TXN_STATE,
        AppendError::CoordinatorFenced => codes::TRANSACTION_COORDINATOR_FENCED,
        AppendError::Storage(_) => codes::KAFKA_STORAGE_ERROR,
        AppendError::NotLeader => codes::NOT_LEADER_OR_FOLLOWER,
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

/// Handles a produce request; `None` for acks=0 (Kafka sends nothing back).
pub async fn handle(broker: &Broker, request: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    // acks=all appends still to be replicated: (topic slot, partition slot, partition, last
    // offset, leader epoch of the append).
    let mut waiting = Vec::new();
    let valid_acks = matches!(acks, -1..=1);
    let now = now_ms();
    let mut appended_any = false;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = if version >= 13 {
            broker.topic_name_by_id(topic.topic_id.as_bytes())
        } else {
            Some(topic.name.0.to_string())
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let partition = match name.as_deref() {
                None => Err(codes::UNKNOWN_TOPIC_ID),
                Some(n) => broker.led_partition(n, p.index, -1).map_err(|not| not.code),
            };
            let response = match (partition, p.records) {
                _ if !valid_acks => failed(p.index, codes::INVALID_REQUIRED_ACKS, None),
                (Err(code), _) => failed(p.index, code, None),
                (Ok(_), None) => failed(p.index, codes::CORRUPT_MESSAGE, Some("no records".into())),
                (Ok(partition), Some(_)) if acks == -1 && !partition.may_append_acks_all() => failed(
                    p.index,
                    codes::NOT_ENOUGH_REPLICAS,
                    Some("fewer in-sync replicas than min.insync.replicas".into()),
                ),
                (Ok(partition), Some(records)) => match partition.append(&records, now) {
                    Ok(a) => {
                        appended_any = true;
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
                            .with_index(p.index)
                            .with_base_offset(a.base_offset)
                            .with_log_append_time_ms(a.log_append_time_ms)
                            .with_log_start_offset(a.log_start_offset)
                    }
                    Err(e) => {
                        if matches!(e, AppendError::Storage(_)) {
                            tracing::error!("append to {}-{} failed: {e}", partition.topic, partition.index);
                        }
                        let response = failed(p.index, error_for(&e), Some(e.to_string()));
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
                },
            };
            partitions.push(response);
        }
        let entry = TopicProduceResponse::default().with_partition_responses(partitions);
        responses.push(if version >= 13 {
            entry.with_topic_id(topic.topic_id)
        } else {
            entry.with_name(TopicName(topic.name.0))
        });
    }
    if appended_any {
        broker.notify_data();
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
