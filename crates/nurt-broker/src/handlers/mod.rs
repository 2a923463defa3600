//! Request handlers, one module per API family. Each takes the decoded request and returns
//! the response body; Kafka error codes are chosen here and nowhere deeper.

mod acl;
mod api_versions;
mod cluster;
mod configs;
mod consumer_groups;
mod coordinator;
mod delete_records;
mod fetch;
mod groups;
mod list_offsets;
mod log_dirs;
mod metadata;
mod offsets;
mod produce;
mod producer_id;
mod producers;
mod quorum;
mod reassignments;
mod topics;
mod txn;
mod txn_offsets;

use std::sync::Arc;

use nurt_protocol::kafka_protocol::messages::{RequestKind, ResponseKind};
use nurt_protocol::kafka_protocol::protocol::StrBytes;
use nurt_protocol::DecodedRequest;

use crate::Broker;

pub use api_versions::unsupported_version_response;
pub(crate) use configs::topic_configs;

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

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Context {
    pub peer: std::net::SocketAddr,
    pub client_id: String,
    /// The request came on the internal listener, from another node.
    pub internal: bool,
}

impl Context {
    /// Kafka's `client_host` form: "/" followed by the peer's IP.
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

/// Handles one request.
pub async fn handle(
    broker: &Arc<Broker>,
    peer: std::net::SocketAddr,
    internal: bool,
    request: DecodedRequest,
) -> Reply {
    let v = request.header.api_version;
    let ctx = Context {
        peer,
        client_id: request.header.client_id.clone().unwrap_or_default(),
        internal,
    };
    // Unit tests only: a way to make a handler panic, to show the broker survives it.
    #[cfg(test)]
    if ctx.client_id == crate::tests::PANIC_CLIENT_ID {
        panic!("test-injected handler panic");
    }
    Reply::Message(Box::new(match request.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, r, v).await),
        RequestKind::Produce(r) => match produce::handle(broker, r, v).await {
            Some(response) => ResponseKind::Produce(response),
            None => return Reply::None,
        },
        RequestKind::Fetch(r) => return Reply::Fetch(fetch::handle(broker, r, v, ctx.internal).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(broker, r, v)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(list_offsets::offset_for_leader_epoch(broker, r))
        }
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(topics::create_topics(broker, r, v).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(topics::delete_topics(broker, r, v).await),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(topics::create_partitions(broker, r).await),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(configs::alter_configs(broker, r).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter_configs(broker, r).await)
        }
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records::delete_records(broker, r)),
        RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(log_dirs::describe_log_dirs(broker, r)),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(configs::describe_configs(broker, r, v)),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(cluster::describe_cluster(broker, r, v)),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(coordinator::find_coordinator(broker, r, v)),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(groups::join_group(broker, &ctx, r, v).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync_group(broker, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(broker, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave_group(broker, r, v).await),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list_groups(broker, r, v)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(groups::describe_groups(broker, r, v)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(groups::delete_groups(broker, r).await),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offsets::offset_commit(broker, r).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offsets::offset_fetch(broker, r, v)),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(offsets::offset_delete(broker, r).await),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_groups::consumer_group_heartbeat(broker, &ctx, r).await)
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_groups::consumer_group_describe(broker, r))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(producer_id::init_producer_id(broker, r, v).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions_to_txn(broker, r, v).await)
        }
        RequestKind::AddOffsetsToTxn(r) => ResponseKind::AddOffsetsToTxn(txn::add_offsets_to_txn(broker, r, v).await),
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(broker, r, v).await),
        RequestKind::WriteTxnMarkers(r) => ResponseKind::WriteTxnMarkers(txn::write_txn_markers(r)),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn_offsets::txn_offset_commit(broker, r, v).await)
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn::describe_transactions(broker, r))
        }
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(txn::list_transactions(broker, r)),
        RequestKind::ElectLeaders(r) => ResponseKind::ElectLeaders(reassignments::elect_leaders(broker, r, v).await),
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(reassignments::alter_reassignments(broker, r, v).await)
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(reassignments::list_reassignments(broker, r))
        }
        RequestKind::DescribeQuorum(r) => ResponseKind::DescribeQuorum(quorum::describe_quorum(broker, r, v).await),
        RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(producers::describe_producers(broker, r)),
        RequestKind::DescribeTopicPartitions(r) => {
            ResponseKind::DescribeTopicPartitions(quorum::describe_topic_partitions(broker, r))
        }
        // The version gate lets through only the APIs above.
        _ => return Reply::None,
    }))
}

/// A protocol string from an owned one.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
