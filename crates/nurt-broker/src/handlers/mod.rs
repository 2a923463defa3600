//! Request handlers, one module per API family. Each takes the decoded request and returns
//! the response body; Kafka error codes are chosen here and nowhere deeper.

mod api_versions;
mod cluster;
mod configs;
mod coordinator;
mod fetch;
mod list_offsets;
mod metadata;
mod produce;
mod producer_id;
mod topics;

use std::sync::Arc;

use nurt_protocol::kafka_protocol::messages::{RequestKind, ResponseKind};
use nurt_protocol::kafka_protocol::protocol::StrBytes;
use nurt_protocol::DecodedRequest;

use crate::Broker;

pub use api_versions::unsupported_version_response;

/// What a handler answers.
#[derive(Debug)]
pub enum Reply {
    /// Nothing is sent (Produce with acks=0).
    None,
    /// A response encoded by `kafka-protocol`.
    Message(Box<ResponseKind>),
    /// A Fetch response whose record sets are still file ranges.
    Fetch(fetch::FetchReply),
}

/// Handles one request.
pub async fn handle(broker: &Arc<Broker>, request: DecodedRequest) -> Reply {
    let v = request.header.api_version;
    Reply::Message(Box::new(match request.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, r, v)),
        RequestKind::Produce(r) => match produce::handle(broker, r, v) {
            Some(response) => ResponseKind::Produce(response),
            None => return Reply::None,
        },
        RequestKind::Fetch(r) => return Reply::Fetch(fetch::handle(broker, r, v).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(broker, r, v)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(list_offsets::offset_for_leader_epoch(broker, r))
        }
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(topics::create_topics(broker, r, v)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(topics::delete_topics(broker, r, v)),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(topics::create_partitions(broker, r)),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(configs::describe_configs(broker, r, v)),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(cluster::describe_cluster(broker, r)),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(coordinator::find_coordinator(broker, r, v)),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(producer_id::init_producer_id(broker, r)),
        // The version gate lets through only the APIs above.
        _ => return Reply::None,
    }))
}

/// A protocol string from an owned one.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
