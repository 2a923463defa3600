//! FindCoordinator: this node coordinates every group; transactions are not served yet.

use nurt_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use nurt_protocol::kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use nurt_protocol::kafka_protocol::protocol::StrBytes;

use super::sb;
use crate::{codes, Broker};

const GROUP: i8 = 0;

/// (error, message) for a coordinator lookup of `key_type`.
fn lookup(key_type: i8) -> (i16, Option<StrBytes>) {
    if key_type == GROUP {
        (codes::NONE, None)
    } else {
        (
            codes::COORDINATOR_NOT_AVAILABLE,
            Some(sb("transactions are not supported yet")),
        )
    }
}

pub fn find_coordinator(broker: &Broker, request: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let (host, port) = broker.config.advertised_host_port();
    let (error, message) = lookup(request.key_type);
    let node = if error == codes::NONE { broker.node_id } else { -1 };
    if version < 4 {
        let response = FindCoordinatorResponse::default()
            .with_error_code(error)
            .with_node_id(BrokerId(node))
            .with_host(sb(if node >= 0 { host } else { String::new() }))
            .with_port(if node >= 0 { port } else { -1 });
        return if version >= 1 {
            response.with_error_message(message)
        } else {
            response
        };
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(node))
                .with_host(sb(if node >= 0 { host.clone() } else { String::new() }))
                .with_port(if node >= 0 { port } else { -1 })
                .with_error_code(error)
                .with_error_message(message.clone())
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
