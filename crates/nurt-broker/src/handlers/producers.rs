//! DescribeProducers (KIP-664): the producers a partition's leader tracks — id, epoch, last
//! sequence and timestamp, coordinator epoch, and the start of an open transaction — as
//! `kafka-transactions.sh describe-producers` and Admin `describeProducers` show them.

use nurt_protocol::kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use nurt_protocol::kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::sb;
use crate::Broker;

pub fn describe_producers(broker: &Broker, request: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let answer = PartitionResponse::default().with_partition_index(index);
                    // Only the leader's producer state is authoritative (Kafka answers
                    // NOT_LEADER_OR_FOLLOWER elsewhere).
                    let partition = match broker.led_partition(&topic.name.0, index, -1) {
                        Ok(p) => p,
                        Err(not) => {
                            return answer
                                .with_error_code(not.code)
                                .with_error_message(Some(sb(format!("{}-{index} is not led here", topic.name.0))))
                        }
                    };
                    let producers = partition
                        .active_producers()
                        .into_iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(p.producer_id))
                                .with_producer_epoch(i32::from(p.producer_epoch))
                                .with_last_sequence(p.last_sequence)
                                .with_last_timestamp(p.last_timestamp_ms)
                                .with_coordinator_epoch(p.coordinator_epoch)
                                .with_current_txn_start_offset(p.current_txn_start_offset)
                        })
                        .collect();
                    answer.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
