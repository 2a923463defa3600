//! DescribeCluster.

use nurt_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use nurt_protocol::kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::acl::{authorized_operations, Resource};
use super::sb;
use crate::Broker;

/// Every live broker, and the active controller (combined nodes are both).
pub fn describe_cluster(broker: &Broker, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let brokers = super::metadata::live_brokers(&broker.image())
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(b.node_id)
                .with_host(b.host)
                .with_port(b.port)
                .with_rack(b.rack)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(sb(broker.cluster_id()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(authorized_operations(
            Resource::Cluster,
            request.include_cluster_authorized_operations,
        ))
}
