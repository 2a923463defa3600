//! DescribeCluster.

use nurt_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use nurt_protocol::kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::acl::{authorized_operations, Resource};
use super::sb;
use crate::Broker;

/// Every live broker (v2 with `include_fenced_brokers`: every registered one, fenced ones
/// marked), and the active controller (combined nodes are both).
pub fn describe_cluster(broker: &Broker, request: DescribeClusterRequest, version: i16) -> DescribeClusterResponse {
    let with_fenced = version >= 2 && request.include_fenced_brokers;
    let image = broker.image();
    let brokers = image
        .brokers()
        .filter(|b| with_fenced || !b.fenced())
        .filter_map(|b| {
            let e = b.endpoint(crate::config::CLIENT_LISTENER)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.registration.broker_id))
                    .with_host(sb(e.host.clone()))
                    .with_port(e.port)
                    .with_rack(b.registration.rack.clone().map(sb))
                    .with_is_fenced(b.fenced()),
            )
        })
        .collect();
    drop(image);
    DescribeClusterResponse::default()
        .with_cluster_id(sb(broker.cluster_id()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(authorized_operations(
            Resource::Cluster,
            request.include_cluster_authorized_operations,
        ))
}
