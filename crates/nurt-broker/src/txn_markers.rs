//! Transaction markers (Kafka's `TransactionMarkerChannelManager` and WriteTxnMarkers): once a
//! transaction's Prepare record is replicated, its coordinator writes a COMMIT or ABORT
//! control batch to every partition of the transaction — appended by that partition's leader
//! and replicated to its ISR, as Kafka writes markers with acks=all — and then persists the
//! Complete record. Markers for partitions led here are appended directly; the others go to
//! their leaders over the internal listener. Until every marker is written, a partition's
//! last stable offset stays at the transaction's first offset, so `read_committed` readers
//! wait rather than read a transaction whose outcome is not everywhere yet. A marker written
//! twice (a retry, or a new coordinator finishing its predecessor's work) ends nothing the
//! second time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nurt_txn::{TxnMarkers, TxnResult};
use serde::{Deserialize, Serialize};

use crate::group_service::OFFSETS_TOPIC;
use crate::partition::AppendError;
use crate::replica_fetcher::internal_address;
use crate::rpc::{RpcClient, TXN_MARKERS};
use crate::{codes, now_ms, Broker};

/// How long a marker waits for its partition's in-sync replicas.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait between two rounds of markers that could not be written yet.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Markers for some partitions of one leader (the internal request's body).
#[derive(Debug, Serialize, Deserialize)]
pub struct MarkerRequest {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
    pub partitions: Vec<(String, i32)>,
}

/// One Kafka error code per partition of the request, in its order.
#[derive(Debug, Serialize, Deserialize)]
pub struct MarkerAnswer {
    pub errors: Vec<i16>,
}

/// Writes one marker on a partition led here and waits for its replicas; a marker on a
/// `__consumer_offsets` partition also settles the producer's transactional offsets there.
async fn write_local(broker: &Broker, topic: &str, index: i32, m: &MarkerRequest) -> i16 {
    let Some(partition) = broker.partition(topic, index).filter(|p| p.is_leader()) else {
        return broker.not_led_here(topic, index).code;
    };
    let appended = partition.append_marker(m.producer_id, m.producer_epoch, m.commit, m.coordinator_epoch, now_ms());
    let appended = match appended {
        Ok(a) => a,
        Err(AppendError::NotLeader) => return codes::NOT_LEADER_OR_FOLLOWER,
        Err(AppendError::ProducerFenced) => return codes::PRODUCER_FENCED,
        Err(AppendError::CoordinatorFenced) => return codes::TRANSACTION_COORDINATOR_FENCED,
        Err(e) => {
            tracing::error!("writing a transaction marker to {topic}-{index}: {e}");
            return codes::KAFKA_STORAGE_ERROR;
        }
    };
    if topic == OFFSETS_TOPIC {
        broker.groups.on_txn_marker(index, m.producer_id, m.commit);
    }
    match partition
        .wait_replicated(appended.last_offset, appended.leader_epoch, REPLICATION_TIMEOUT)
        .await
    {
        Ok(()) => codes::NONE,
        Err(code) => code,
    }
}

/// Serves markers another node's transaction coordinator sends (internal listener only).
pub async fn serve(broker: &Broker, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let request: MarkerRequest =
        postcard::from_bytes(body).map_err(|e| std::io::Error::other(format!("marker request: {e}")))?;
    let mut errors = Vec::with_capacity(request.partitions.len().min(1 << 16));
    for (topic, index) in &request.partitions {
        errors.push(write_local(broker, topic, *index, &request).await);
    }
    postcard::to_allocvec(&MarkerAnswer { errors }).map_err(|e| std::io::Error::other(format!("marker answer: {e}")))
}

/// Writes `markers` in the background and then completes the transaction.
pub fn spawn(broker: Arc<Broker>, markers: TxnMarkers) {
    tokio::spawn(async move { write_all(&broker, markers).await });
}

/// Whether a partition's error means: try again later (leadership moving, replicas lagging).
fn retriable(code: i16) -> bool {
    matches!(
        code,
        codes::NOT_LEADER_OR_FOLLOWER | codes::REQUEST_TIMED_OUT | codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND
    ) || code == codes::UNKNOWN_TOPIC_OR_PARTITION
}

async fn write_all(broker: &Arc<Broker>, markers: TxnMarkers) {
    let request = |partitions: Vec<(String, i32)>| MarkerRequest {
        producer_id: markers.producer_id,
        producer_epoch: markers.producer_epoch,
        commit: markers.result == TxnResult::Commit,
        coordinator_epoch: markers.coordinator_epoch,
        partitions,
    };
    let mut pending: Vec<(String, i32)> = markers
        .partitions
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
        .collect();
    let mut backoff = Duration::from_millis(50);
    let mut clients: BTreeMap<i32, RpcClient> = BTreeMap::new();
    while !pending.is_empty() {
        if !broker
            .txns
            .coordinates(&markers.transactional_id, markers.coordinator_epoch)
        {
            // Another coordinator took over: it writes what is still owed.
            return;
        }
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        {
            let image = broker.image();
            for (topic, index) in pending.drain(..) {
                // A deleted topic needs no marker (Kafka drops those too).
                let Some(t) = image.topic(&topic) else { continue };
                let leader = t.partitions.get(&index).map_or(-1, |p| p.leader);
                by_leader.entry(leader).or_default().push((topic, index));
            }
        }
        for (leader, partitions) in by_leader {
            let errors = if leader == broker.node_id {
                let req = request(Vec::new());
                let mut errors = Vec::with_capacity(partitions.len());
                for (topic, index) in &partitions {
                    errors.push(write_local(broker, topic, *index, &req).await);
                }
                errors
            } else {
                remote(broker, &mut clients, leader, &request(partitions.clone())).await
            };
            for ((topic, index), code) in partitions.into_iter().zip(errors) {
                match code {
                    codes::NONE => {}
                    code if retriable(code) || leader < 0 => pending.push((topic, index)),
                    code => tracing::warn!(
                        "transaction marker for producer {} on {topic}-{index} refused with error {code}",
                        markers.producer_id
                    ),
                }
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }
    if let Err(code) = broker.txns.markers_written(&markers).await {
        tracing::warn!(
            "completing the transaction of {}: error {code} (the next coordinator completes it)",
            markers.transactional_id
        );
    }
}

/// Sends markers to another leader; every partition answers a retriable error if it could not
/// be asked.
async fn remote(broker: &Broker, clients: &mut BTreeMap<i32, RpcClient>, leader: i32, req: &MarkerRequest) -> Vec<i16> {
    let unreachable = vec![codes::NOT_LEADER_OR_FOLLOWER; req.partitions.len()];
    let Some(addr) = internal_address(broker, leader) else {
        return unreachable;
    };
    let client = clients.entry(leader).or_insert_with(|| RpcClient::new(addr));
    let Ok(body) = postcard::to_allocvec(req) else {
        return unreachable;
    };
    match client.call(TXN_MARKERS, &body, REPLICATION_TIMEOUT * 2).await {
        Ok(answer) => match postcard::from_bytes::<MarkerAnswer>(&answer) {
            Ok(a) if a.errors.len() == req.partitions.len() => a.errors,
            _ => unreachable,
        },
        Err(e) => {
            tracing::debug!("sending transaction markers to broker {leader}: {e}");
            unreachable
        }
    }
}
