//! InitProducerId: idempotent producers get a fresh producer id here; a `transactional.id`
//! goes to its transaction coordinator (`txn.rs`).

use nurt_protocol::kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use std::sync::Arc;

use crate::{codes, Broker};

/// A new producer id with epoch 0. As in Kafka, an idempotent (non-transactional) producer
/// always gets a fresh id, even when it names its old one (KIP-360 bumps apply to
/// transactional ids, which their coordinator serves).
pub async fn init_producer_id(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    if let Some(id) = request.transactional_id.clone().filter(|id| !id.0.is_empty()) {
        return super::txn::init_producer_id(broker, request, version, &id.0).await;
    }
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match broker.next_producer_id().await {
        Ok(id) => response.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::warn!("producer id allocation failed: {e}");
            response.with_error_code(codes::COORDINATOR_NOT_AVAILABLE)
        }
    }
}
