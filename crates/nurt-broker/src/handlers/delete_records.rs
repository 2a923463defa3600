//! DeleteRecords: moves partitions' log start offsets forward.

use nurt_log::LogError;
use nurt_protocol::kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use nurt_protocol::kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::{codes, Broker};

pub fn delete_records(broker: &Broker, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let partition = match broker.led_partition(&t.name.0, p.partition_index, -1) {
                        Ok(partition) => partition,
                        Err(not) => return result.with_error_code(not.code),
                    };
                    match partition.delete_records_before(p.offset) {
                        Ok(low) => result.with_low_watermark(low),
                        Err(LogError::OffsetOutOfRange { .. }) => result.with_error_code(codes::OFFSET_OUT_OF_RANGE),
                        Err(e) => {
                            tracing::error!("delete records of {}-{}: {e}", t.name.0, p.partition_index);
                            result.with_error_code(codes::KAFKA_STORAGE_ERROR)
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
