//! FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets`
//! partition, a transactional id's the leader of its `__transaction_state` partition (each
//! topic created on first need, as Kafka does).

use std::sync::Arc;

use nurt_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use nurt_protocol::kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use nurt_protocol::kafka_protocol::protocol::StrBytes;

use super::sb;
use crate::group_service::{partition_for, OFFSETS_TOPIC};
use crate::txn_service::TXN_TOPIC;
use crate::{codes, Broker};

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// Where one key's coordinator is: (error, message, node, host, port).
struct Found {
    error: i16,
    message: Option<StrBytes>,
    node: i32,
    host: String,
    port: i32,
}

impl Found {
    fn error(error: i16, message: &str) -> Self {
        Self {
            error,
            message: Some(sb(message.to_string())),
            node: -1,
            host: String::new(),
            port: -1,
        }
    }
}

fn lookup(broker: &Arc<Broker>, key_type: i8, key: &str) -> Found {
    let internal_topic = match key_type {
        GROUP => OFFSETS_TOPIC,
        TRANSACTION => TXN_TOPIC,
        _ => return Found::error(codes::INVALID_REQUEST, "unknown coordinator key type"),
    };
    let image = broker.image();
    let Some(topic) = image.topic(internal_topic) else {
        drop(image);
        let b = Arc::clone(broker);
        if key_type == GROUP {
            tokio::spawn(async move { b.ensure_offsets_topic().await });
        } else {
            tokio::spawn(async move { b.ensure_txn_topic().await });
        }
        return Found::error(
            codes::COORDINATOR_NOT_AVAILABLE,
            "the coordinator's topic is being created",
        );
    };
    let index = partition_for(key, topic.partitions.len() as i32);
    let leader = topic.partitions.get(&index).map_or(-1, |p| p.leader);
    let endpoint = image
        .broker(leader)
        .filter(|_| image.is_live(leader))
        .and_then(|b| b.endpoint(crate::config::CLIENT_LISTENER).cloned());
    match endpoint {
        Some(e) => Found {
            error: codes::NONE,
            message: None,
            node: leader,
            host: e.host,
            port: e.port,
        },
        None => Found::error(
            codes::COORDINATOR_NOT_AVAILABLE,
            "the coordinator's partition has no leader",
        ),
    }
}

pub fn find_coordinator(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version < 4 {
        let found = lookup(broker, request.key_type, &request.key);
        let response = FindCoordinatorResponse::default()
            .with_error_code(found.error)
            .with_node_id(BrokerId(found.node))
            .with_host(sb(found.host))
            .with_port(found.port);
        return if version >= 1 {
            response.with_error_message(found.message)
        } else {
            response
        };
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            let found = lookup(broker, request.key_type, &key);
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(found.node))
                .with_host(sb(found.host))
                .with_port(found.port)
                .with_error_code(found.error)
                .with_error_message(found.message)
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
