//! Transaction verification on the produce path (KIP-890 part 1, Kafka's
//! `AddPartitionsToTxnManager`): before a partition leader appends a transactional batch that
//! would open its producer's transaction there, it asks the producer's transaction coordinator
//! whether the partition is in the producer's ongoing transaction — the AddPartitionsToTxn
//! `VerifyOnly` question, answered here by the coordinator's shard directly or, on another
//! node, over the internal listener. One ask covers every such partition of a produce
//! request. The guard taken before asking (`nurt_log::verification`) makes a marker that
//! lands meanwhile void the answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nurt_txn::{Partitions, TxnError};
use serde::{Deserialize, Serialize};

use crate::replica_fetcher::internal_address;
use crate::rpc::{RpcClient, TXN_VERIFY};
use crate::txn_service::TXN_TOPIC;
use crate::{codes, Broker};

/// How long a leader waits for the coordinator's answer.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// One transaction's question (the internal request's body).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyRequest {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<(String, i32)>,
}

/// The coordinator's answer: one Kafka code per partition of the request, in its order, as
/// AddPartitionsToTxn `VerifyOnly` answers (TRANSACTION_ABORTABLE for a partition not in the
/// transaction).
#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyAnswer {
    pub errors: Vec<i16>,
}

/// Connections to other nodes' internal listeners, one per coordinator node so that a slow
/// node does not hold up asks to the others.
#[derive(Debug, Default)]
pub struct Verifier {
    clients: std::sync::Mutex<BTreeMap<i32, Arc<tokio::sync::Mutex<RpcClient>>>>,
}

/// The coordinator's answer for every partition of `req`, asked where it lives. Errors that
/// say "not here, not now" (no coordinator, a concurrent transaction, an unreachable node)
/// come back as they are; [`for_produce`] turns them into what a producer retries.
pub async fn ask(broker: &Broker, req: &VerifyRequest) -> Vec<i16> {
    let all = |code: i16| vec![code; req.partitions.len()];
    match broker.txns.read(&req.transactional_id, |c| answer(c, req)) {
        Ok(codes) => return codes,
        Err(code) if code != codes::NOT_COORDINATOR => return all(code),
        Err(_) => {}
    }
    // Not coordinated here: ask the leader of the transactional id's partition.
    let leader = {
        let image = broker.image();
        let index = broker.txns.partition_of(&req.transactional_id);
        index
            .and_then(|i| image.topic(TXN_TOPIC)?.partitions.get(&i).map(|p| p.leader))
            .filter(|&l| l >= 0 && l != broker.node_id)
    };
    let Some(leader) = leader else {
        return all(codes::NOT_COORDINATOR);
    };
    match remote(broker, leader, req).await {
        Some(errors) if errors.len() == req.partitions.len() => errors,
        _ => all(codes::COORDINATOR_NOT_AVAILABLE),
    }
}

/// The shard's answer: the coordinator's verdict per partition, in the request's order.
fn answer(c: &nurt_txn::TxnCoordinator, req: &VerifyRequest) -> Vec<i16> {
    let mut partitions = Partitions::new();
    for (topic, index) in &req.partitions {
        partitions.entry(topic.clone()).or_default().insert(*index);
    }
    match c.verify_partitions(&req.transactional_id, req.producer_id, req.producer_epoch, &partitions) {
        Err(e) => vec![e.kafka_code(); req.partitions.len()],
        Ok(verdicts) => {
            let verdicts: BTreeMap<_, _> = verdicts.into_iter().collect();
            req.partitions
                .iter()
                .map(|key| match verdicts.get(key) {
                    Some(Ok(())) => codes::NONE,
                    Some(Err(e)) => e.kafka_code(),
                    None => TxnError::PartitionNotInTransaction.kafka_code(),
                })
                .collect()
        }
    }
}

async fn remote(broker: &Broker, leader: i32, req: &VerifyRequest) -> Option<Vec<i16>> {
    let addr = internal_address(broker, leader)?;
    let client = {
        let mut clients = broker.txn_verifier.clients.lock().unwrap_or_else(|p| p.into_inner());
        let client = clients
            .entry(leader)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(RpcClient::new(addr.clone()))));
        if client.try_lock().is_ok_and(|c| c.addr() != addr) {
            // The node moved (a restart on another port): start over.
            *client = Arc::new(tokio::sync::Mutex::new(RpcClient::new(addr)));
        }
        Arc::clone(client)
    };
    let body = postcard::to_allocvec(req).ok()?;
    let answer = client.lock().await.call(TXN_VERIFY, &body, VERIFY_TIMEOUT).await;
    match answer {
        Ok(bytes) => postcard::from_bytes::<VerifyAnswer>(&bytes).ok().map(|a| a.errors),
        Err(e) => {
            tracing::debug!("verifying a transaction with broker {leader}: {e}");
            None
        }
    }
}

/// Serves another leader's question on the coordinator node.
pub async fn serve(broker: &Broker, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let req: VerifyRequest = postcard::from_bytes(body).map_err(std::io::Error::other)?;
    let errors = match broker.txns.read(&req.transactional_id, |c| answer(c, &req)) {
        Ok(errors) => errors,
        Err(code) => vec![code; req.partitions.len()],
    };
    postcard::to_allocvec(&VerifyAnswer { errors }).map_err(std::io::Error::other)
}

/// What a producer gets for the coordinator's `code`, as Kafka answers: errors that only mean
/// "ask again later" become NOT_ENOUGH_REPLICAS, which every client retries without a metadata
/// refresh; a partition not in the transaction is INVALID_TXN_STATE for clients from before
/// TRANSACTION_ABORTABLE (Produce below v12); a fenced producer gets INVALID_PRODUCER_EPOCH.
pub fn for_produce(code: i16, produce_version: i16) -> i16 {
    match code {
        codes::COORDINATOR_LOAD_IN_PROGRESS
        | codes::COORDINATOR_NOT_AVAILABLE
        | codes::NOT_COORDINATOR
        | codes::CONCURRENT_TRANSACTIONS => codes::NOT_ENOUGH_REPLICAS,
        codes::TRANSACTION_ABORTABLE if produce_version < 12 => codes::INVALID_TXN_STATE,
        // As for a stale epoch found by the log itself (see `handlers/produce.rs`).
        codes::PRODUCER_FENCED => codes::INVALID_PRODUCER_EPOCH,
        other => other,
    }
}
