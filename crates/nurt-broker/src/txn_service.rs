//! The async side of transaction coordination (KIP-98), sharded like groups: a transactional
//! id belongs to partition `abs(hash(id)) % transaction.state.log.num.partitions` of
//! `__transaction_state`, and the node leading that partition coordinates it with a
//! `nurt-txn` coordinator rebuilt from the partition's log when it becomes the leader (its
//! coordinator epoch is the partition's leader epoch, so partition leaders can refuse the
//! markers of a deposed coordinator).
//!
//! Every change is appended to the partition and replicated before it is answered. The
//! markers of a transaction being committed or aborted are written (`txn_markers.rs`) once
//! its Prepare record is replicated, and its Complete record after the last marker; a new
//! coordinator writes the markers its predecessor still owed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use nurt_records::batch::Batches;
use nurt_records::record::decode_batch;
use nurt_records::{BatchBuilder, Compression};
use nurt_txn::{TxnConfig, TxnCoordinator, TxnMarkers, TxnRecord};

use crate::group_service::partition_for;
use crate::partition::Partition;
use crate::{codes, now_ms, BrokerConfig, BrokerError};

/// Kafka's internal topic of transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";
const TXN_BATCH_BYTES_MAX: usize = 64 << 20;
/// How long an answer waits for its records to be replicated.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Transaction settings from the broker config (Kafka names, Kafka defaults).
pub fn txn_config(config: &BrokerConfig) -> TxnConfig {
    TxnConfig {
        max_timeout_ms: config.txn_max_timeout_ms(),
        id_expiration_ms: config.txn_id_expiration_ms(),
        ..TxnConfig::default()
    }
}

/// The coordinator of the transactional ids of one led `__transaction_state` partition.
#[derive(Debug)]
struct Shard {
    partition: Arc<Partition>,
    leader_epoch: i32,
    coordinator: Mutex<TxnCoordinator>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Transaction coordination for this node.
#[derive(Debug)]
pub struct TxnService {
    cfg: TxnConfig,
    shards: RwLock<HashMap<i32, Arc<Shard>>>,
    /// Partitions of `__transaction_state` (0 until the topic exists).
    partitions: AtomicI32,
}

/// Replays a partition's transaction records into a fresh coordinator.
fn load(partition: &Partition, cfg: TxnConfig) -> Result<TxnCoordinator, BrokerError> {
    let mut coordinator = TxnCoordinator::new(cfg, partition.leader_epoch());
    let mut offset = partition.offsets().log_start_offset;
    let corrupt =
        |e: &dyn std::fmt::Display| BrokerError::CorruptMetadata(format!("{TXN_TOPIC}-{}: {e}", partition.index));
    while let (Some(slice), _) = partition.read_for_follower(offset, 1 << 20)? {
        let bytes = slice.read_to_vec().map_err(|e| corrupt(&e))?;
        for b in Batches::new(&bytes) {
            let (_, raw) = b.map_err(|e| corrupt(&e))?;
            let (header, records) = decode_batch(raw, TXN_BATCH_BYTES_MAX).map_err(|e| corrupt(&e))?;
            for r in records {
                let record = TxnRecord::decode(r.key.as_deref().unwrap_or_default(), r.value.as_deref())
                    .map_err(|e| corrupt(&format!("record at offset {} cannot be read: {e}", r.offset)))?;
                coordinator.replay(&record);
            }
            offset = header.last_offset() + 1;
        }
    }
    Ok(coordinator)
}

impl Shard {
    /// Waits until every in-sync replica has what `append` wrote (nothing to wait for if
    /// it wrote nothing).
    async fn replicated(&self, appended: Option<(i64, i32)>) -> Result<(), i16> {
        let Some((last_offset, leader_epoch)) = appended else {
            return Ok(());
        };
        self.partition
            .wait_replicated(last_offset, leader_epoch, REPLICATION_TIMEOUT)
            .await
            .map_err(|code| match code {
                codes::NOT_LEADER_OR_FOLLOWER => codes::NOT_COORDINATOR,
                _ => codes::COORDINATOR_NOT_AVAILABLE,
            })
    }

    /// Appends `records` as one batch: where it ends and its leader epoch, if anything was
    /// written.
    fn append(&self, records: &[TxnRecord]) -> Result<Option<(i64, i32)>, i16> {
        if records.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let mut builder = BatchBuilder::new(Compression::None, now);
        for r in records {
            let (key, value) = r.encode();
            builder.push(now, Some(&key), value.as_deref(), &[]);
        }
        let batch = builder.build().map_err(|_| codes::COORDINATOR_NOT_AVAILABLE)?;
        match self.partition.append(&batch, now) {
            Ok(appended) => Ok(Some((appended.last_offset, appended.leader_epoch))),
            Err(crate::partition::AppendError::NotLeader) => Err(codes::NOT_COORDINATOR),
            Err(e) => {
                tracing::error!(
                    "writing transaction records to {TXN_TOPIC}-{}: {e}",
                    self.partition.index
                );
                Err(codes::COORDINATOR_NOT_AVAILABLE)
            }
        }
    }
}

/// The answer of a call and the markers it asks for (written once the records are
/// replicated).
pub type Called<R> = (R, Option<TxnMarkers>);

impl TxnService {
    pub fn new(cfg: TxnConfig) -> Self {
        Self {
            cfg,
            shards: RwLock::new(HashMap::new()),
            partitions: AtomicI32::new(0),
        }
    }

    /// The `__transaction_state` partition of `transactional_id` (Kafka's rule, the same as
    /// for groups), if the topic exists.
    pub fn partition_of(&self, transactional_id: &str) -> Option<i32> {
        let partitions = self.partitions.load(Ordering::SeqCst);
        (partitions > 0).then(|| partition_for(transactional_id, partitions))
    }

    fn shard_for(&self, transactional_id: &str) -> Result<Arc<Shard>, i16> {
        let index = self
            .partition_of(transactional_id)
            .ok_or(codes::COORDINATOR_NOT_AVAILABLE)?;
        self.shards
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&index)
            .cloned()
            .ok_or(codes::NOT_COORDINATOR)
    }

    /// Brings the shards in line with the `__transaction_state` partitions led here; returns
    /// the markers that newly loaded shards still owe (their predecessors' Prepare records
    /// without a Complete), for the caller to write.
    pub fn sync_shards(&self, partitions: i32, hosted: &[Arc<Partition>]) -> Vec<TxnMarkers> {
        self.partitions.store(partitions, Ordering::SeqCst);
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        let led: HashMap<i32, &Arc<Partition>> =
            hosted.iter().filter(|p| p.is_leader()).map(|p| (p.index, p)).collect();
        shards.retain(|index, shard| led.get(index).is_some_and(|p| p.leader_epoch() == shard.leader_epoch));
        let mut owed = Vec::new();
        for (index, partition) in led {
            if shards.contains_key(&index) {
                continue;
            }
            match load(partition, self.cfg.clone()) {
                Ok(coordinator) => {
                    tracing::debug!("coordinating the transactions of {TXN_TOPIC}-{index}");
                    owed.extend(coordinator.pending_markers());
                    shards.insert(
                        index,
                        Arc::new(Shard {
                            partition: Arc::clone(partition),
                            leader_epoch: partition.leader_epoch(),
                            coordinator: Mutex::new(coordinator),
                        }),
                    );
                }
                Err(e) => tracing::error!("cannot load the transactions of {TXN_TOPIC}-{index}: {e}"),
            }
        }
        owed
    }

    /// Runs a call on `transactional_id`'s coordinator: its records are appended (the change
    /// undone if that fails) and replicated before the answer is returned, with the markers
    /// the call asks for. The error is a Kafka code (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE).
    pub async fn call<R>(
        &self,
        transactional_id: &str,
        f: impl FnOnce(&mut TxnCoordinator) -> nurt_txn::Output<R>,
    ) -> Result<Called<R>, i16> {
        let shard = self.shard_for(transactional_id)?;
        let (out, appended) = {
            let mut coordinator = lock(&shard.coordinator);
            let undo = coordinator.undo_point(transactional_id);
            let out = f(&mut coordinator);
            match shard.append(&out.records) {
                Ok(appended) => (out, appended),
                Err(code) => {
                    coordinator.undo(undo);
                    return Err(code);
                }
            }
        };
        // The records are in the log: wait for the replicas without holding the lock.
        shard.replicated(appended).await?;
        Ok((out.response, out.markers))
    }

    /// Whether this node still coordinates `transactional_id` in `coordinator_epoch`.
    pub fn coordinates(&self, transactional_id: &str, coordinator_epoch: i32) -> bool {
        self.shard_for(transactional_id)
            .is_ok_and(|s| s.leader_epoch == coordinator_epoch)
    }

    /// Reads `transactional_id`'s coordinator without changing it.
    pub fn read<T>(&self, transactional_id: &str, f: impl FnOnce(&TxnCoordinator) -> T) -> Result<T, i16> {
        let shard = self.shard_for(transactional_id)?;
        let coordinator = lock(&shard.coordinator);
        Ok(f(&coordinator))
    }

    /// Runs `f` on every shard's coordinator (ListTransactions).
    pub fn for_each(&self, mut f: impl FnMut(&TxnCoordinator)) {
        let shards: Vec<Arc<Shard>> = self
            .shards
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for shard in shards {
            f(&lock(&shard.coordinator));
        }
    }

    /// Every markers-written callback: the Complete record of `markers`' transaction.
    pub async fn markers_written(&self, markers: &TxnMarkers) -> Result<(), i16> {
        self.call(&markers.transactional_id, |c| nurt_txn::Output {
            response: (),
            records: c.markers_written(
                &markers.transactional_id,
                markers.producer_id,
                markers.producer_epoch,
                now_ms(),
            ),
            markers: None,
        })
        .await
        .map(|_| ())
    }

    /// Transactions past their timeout, in every shard: fenced and aborted (their records
    /// persisted); returns the markers to write.
    pub async fn abort_timed_out(&self) -> Vec<TxnMarkers> {
        let now = now_ms();
        let shards: Vec<Arc<Shard>> = self
            .shards
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut markers = Vec::new();
        for shard in shards {
            let (outputs, appended) = {
                let mut coordinator = lock(&shard.coordinator);
                // A fence that needs a new producer id waits for a later tick.
                let mut kept = Vec::new();
                let mut appended = None;
                for (undo, out) in coordinator.tick(now, &mut || None) {
                    match shard.append(&out.records) {
                        Ok(a) => {
                            appended = a.or(appended);
                            kept.push(out);
                        }
                        Err(_) => coordinator.undo(undo),
                    }
                }
                (kept, appended)
            };
            if shard.replicated(appended).await.is_ok() {
                markers.extend(outputs.into_iter().filter_map(|o| o.markers));
            }
        }
        markers
    }
}
