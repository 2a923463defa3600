//! InitProducerId for idempotent producers (KIP-98; epoch bumps per KIP-360).

use nurt_protocol::kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::{codes, Broker};

/// A new producer id with epoch 0. As in Kafka, an idempotent (non-transactional) producer
/// always gets a fresh id, even when it names its old one (KIP-360 bumps only apply to
/// transactional ids, which need the transaction coordinator: not yet).
pub async fn init_producer_id(broker: &Broker, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        return response.with_error_code(codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    match broker.next_producer_id().await {
        Ok(id) => response.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::warn!("producer id allocation failed: {e}");
            response.with_error_code(codes::COORDINATOR_NOT_AVAILABLE)
        }
    }
}
