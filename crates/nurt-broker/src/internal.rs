//! Requests from other nodes on the internal listener: Raft's RPCs, controller operations
//! forwarded to the active controller, transaction markers and verifications (see `rpc.rs` for the framing).

use crate::quorum::network;
use crate::rpc::{CONTROLLER_OP, RAFT_APPEND_ENTRIES, RAFT_SNAPSHOT, RAFT_VOTE, TXN_MARKERS, TXN_VERIFY};
use crate::Broker;

/// Handles one internal request: the encoded answer, or an error that closes the connection.
pub async fn handle(broker: &Broker, api_key: i16, body: &[u8]) -> std::io::Result<Vec<u8>> {
    match api_key {
        RAFT_APPEND_ENTRIES | RAFT_VOTE | RAFT_SNAPSHOT => network::serve(&broker.quorum.raft(), api_key, body).await,
        CONTROLLER_OP => broker.controller.serve_forwarded(body).await,
        TXN_MARKERS => crate::txn_markers::serve(broker, body).await,
        TXN_VERIFY => crate::txn_verify::serve(broker, body).await,
        other => Err(std::io::Error::other(format!("unknown internal request {other}"))),
    }
}
