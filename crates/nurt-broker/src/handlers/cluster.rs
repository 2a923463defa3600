//! DescribeCluster.

use nurt_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use nurt_protocol::kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::acl::{authorized_operations, Resource};
use super::sb;
use crate::Broker;

/// Endpoint type 1 is brokers; 2 (controllers) is answered with the same node, which is both.
pub fn describe_cluster(broker: &Broker, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let (host, port) = broker.config.advertised_host_port();
    DescribeClusterResponse::default()
        .with_cluster_id(sb(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.node_id))
            .with_host(sb(host))
            .with_port(port)])
        .with_cluster_authorized_operations(authorized_operations(
            Resource::Cluster,
            request.include_cluster_authorized_operations,
        ))
}
