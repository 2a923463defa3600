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

use std::sync::{Arc, Mutex};

use nurt_txn::{TxnConfig, TxnCoordinator, TxnMarkers, TxnRecord};

use crate::coordinator_log::{self, lock, CoordinatorLog, NotAppended, NotReplicated, Shards};
use crate::partition::Partition;
use crate::{codes, now_ms, BrokerConfig, BrokerError};

/// Kafka's internal topic of transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";

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

impl coordinator_log::Shard for Shard {
    fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
}

/// Transaction coordination for this node.
#[derive(Debug)]
pub struct TxnService {
    cfg: TxnConfig,
    /// The shards of the `__transaction_state` partitions led here.
    shards: Shards<Shard>,
}

/// Replays a partition's transaction records into a fresh coordinator.
fn load(partition: &Partition, cfg: TxnConfig) -> Result<TxnCoordinator, BrokerError> {
    let mut coordinator = TxnCoordinator::new(cfg, partition.leader_epoch());
    let log = CoordinatorLog {
        topic: TXN_TOPIC,
        partition,
    };
    log.read_batches(|_, _, records| {
        for r in records {
            coordinator.replay(&log.decode::<TxnRecord>(&r)?);
        }
        Ok(())
    })?;
    Ok(coordinator)
}

impl Shard {
    fn log(&self) -> CoordinatorLog<'_> {
        CoordinatorLog {
            topic: TXN_TOPIC,
            partition: &self.partition,
        }
    }

    /// Waits until every in-sync replica has what `append` wrote (nothing to wait for if
    /// it wrote nothing).
    async fn replicated(&self, appended: Option<(i64, i32)>) -> Result<(), i16> {
        coordinator_log::replicated(&self.partition, appended)
            .await
            .map_err(|e| match e {
                NotReplicated::NotLeader => codes::NOT_COORDINATOR,
                NotReplicated::Unavailable => codes::COORDINATOR_NOT_AVAILABLE,
            })
    }

    /// Appends `records` as one batch: where it ends and its leader epoch, if anything was
    /// written.
    fn append(&self, records: &[TxnRecord]) -> Result<Option<(i64, i32)>, i16> {
        self.log().append("transaction", records, None).map_err(|e| match e {
            NotAppended::NotLeader => codes::NOT_COORDINATOR,
            NotAppended::ProducerFenced | NotAppended::Unavailable => codes::COORDINATOR_NOT_AVAILABLE,
        })
    }
}

/// The answer of a call and the markers it asks for (written once the records are
/// replicated).
pub type Called<R> = (R, Option<TxnMarkers>);

impl TxnService {
    pub fn new(cfg: TxnConfig) -> Self {
        Self {
            cfg,
            shards: Shards::new(),
        }
    }

    /// The `__transaction_state` partition of `transactional_id` (Kafka's rule, the same as
    /// for groups), if the topic exists.
    pub fn partition_of(&self, transactional_id: &str) -> Option<i32> {
        self.shards.partition_of(transactional_id)
    }

    fn shard_for(&self, transactional_id: &str) -> Result<Arc<Shard>, i16> {
        let index = self
            .partition_of(transactional_id)
            .ok_or(codes::COORDINATOR_NOT_AVAILABLE)?;
        self.shards.get(index).ok_or(codes::NOT_COORDINATOR)
    }

    /// Brings the shards in line with the `__transaction_state` partitions led here; returns
    /// the markers that newly loaded shards still owe (their predecessors' Prepare records
    /// without a Complete), for the caller to write.
    pub fn sync_shards(&self, partitions: i32, hosted: &[Arc<Partition>]) -> Vec<TxnMarkers> {
        let mut owed = Vec::new();
        self.shards.sync(
            partitions,
            hosted,
            |_| {},
            |index, partition| match load(partition, self.cfg.clone()) {
                Ok(coordinator) => {
                    tracing::debug!("coordinating the transactions of {TXN_TOPIC}-{index}");
                    owed.extend(coordinator.pending_markers());
                    Some(Shard {
                        partition: Arc::clone(partition),
                        leader_epoch: partition.leader_epoch(),
                        coordinator: Mutex::new(coordinator),
                    })
                }
                Err(e) => {
                    tracing::error!("cannot load the transactions of {TXN_TOPIC}-{index}: {e}");
                    None
                }
            },
        );
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
        for shard in self.shards.all() {
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
        let mut markers = Vec::new();
        for shard in self.shards.all() {
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
