//! The async side of group coordination, sharded as in Kafka: a group belongs to partition
//! `abs(hash(group id)) % offsets.topic.num.partitions` of the `__consumer_offsets` topic, and
//! the node leading that partition coordinates it. Each led partition has a shard: a
//! `nurt-group` coordinator rebuilt from the partition's log when this node becomes its
//! leader, and dropped (answering NOT_COORDINATOR to whoever waits) when it stops.
//!
//! A change is appended to the partition (Kafka's record format) before anything is
//! answered, and the answers wait until the partition's high watermark passes the records —
//! every in-sync replica has them — so a new coordinator loads every acknowledged commit.
//! An append that fails (full disk) undoes the change; the members get
//! COORDINATOR_NOT_AVAILABLE and retry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nurt_group::{Completion, GroupConfig, GroupCoordinator, GroupError, GroupRecord, Output, Token, Undo};
use nurt_records::control::parse_marker_batch;
use nurt_records::ControlType;
use tokio::sync::oneshot;

use crate::coordinator_log::{self, lock, CoordinatorLog, NotAppended, NotReplicated, Shards};
use crate::partition::Partition;
use crate::{now_ms, BrokerConfig, BrokerError};

/// Kafka's internal topic of group records.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The partition of `__consumer_offsets` that coordinates `group_id` (Kafka's
/// `Utils.abs(groupId.hashCode) % partitions`, Java's `String.hashCode` over UTF-16 units).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id
        .encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)));
    (hash & 0x7fff_ffff) % partitions.max(1)
}

/// The coordinator of the groups of one led `__consumer_offsets` partition.
#[derive(Debug)]
struct Shard {
    partition: Arc<Partition>,
    leader_epoch: i32,
    coordinator: Mutex<GroupCoordinator>,
    /// Delayed answers (JoinGroup, SyncGroup) waiting for an output of this shard.
    waiting: Mutex<HashMap<Token, oneshot::Sender<Completion>>>,
}

impl coordinator_log::Shard for Shard {
    fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
}

/// Why a transactional write (TxnOffsetCommit) was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnWriteError {
    /// The shard's refusal (not here, not written, not replicated).
    Group(GroupError),
    /// The producer's epoch is older than the one this partition has seen from it
    /// (Kafka's log answers INVALID_PRODUCER_EPOCH to a coordinator's append).
    InvalidProducerEpoch,
}

impl From<GroupError> for TxnWriteError {
    fn from(e: GroupError) -> Self {
        Self::Group(e)
    }
}

/// Records appended but not yet replicated, and the answers to release once they are.
struct Staged {
    appended: Result<Option<(i64, i32)>, GroupError>,
    completions: Vec<(oneshot::Sender<Completion>, Completion)>,
}

/// Group coordination for this node.
#[derive(Debug)]
pub struct GroupService {
    cfg: GroupConfig,
    /// The shards of the `__consumer_offsets` partitions led here.
    shards: Shards<Shard>,
    next_token: AtomicU64,
}

/// Group settings from the broker config (Kafka names, Kafka defaults).
pub fn group_config(config: &BrokerConfig) -> GroupConfig {
    let d = GroupConfig::default();
    let get = |k: &str, default: i64| {
        config
            .values
            .get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(default)
    };
    GroupConfig {
        min_session_timeout_ms: get("group.min.session.timeout.ms", i64::from(d.min_session_timeout_ms)) as i32,
        max_session_timeout_ms: get("group.max.session.timeout.ms", i64::from(d.max_session_timeout_ms)) as i32,
        initial_rebalance_delay_ms: get("group.initial.rebalance.delay.ms", d.initial_rebalance_delay_ms),
        consumer_heartbeat_interval_ms: get(
            "group.consumer.heartbeat.interval.ms",
            i64::from(d.consumer_heartbeat_interval_ms),
        ) as i32,
        consumer_session_timeout_ms: get("group.consumer.session.timeout.ms", d.consumer_session_timeout_ms),
        offsets_retention_ms: get("offsets.retention.minutes", d.offsets_retention_ms / 60_000) * 60_000,
        offset_metadata_max_bytes: get("offset.metadata.max.bytes", d.offset_metadata_max_bytes as i64) as usize,
    }
}

/// Replays a partition's group records into a fresh coordinator. A record that does not
/// decode means the log is not what a coordinator wrote: the shard is not served. Records of
/// a transactional batch (TxnOffsetCommit) are pending for its producer; a control batch is
/// not group records but a transaction marker, applied in its place in the log.
fn load(partition: &Partition, cfg: GroupConfig) -> Result<GroupCoordinator, BrokerError> {
    let now = now_ms();
    let mut coordinator = GroupCoordinator::new(cfg);
    let log = CoordinatorLog {
        topic: OFFSETS_TOPIC,
        partition,
    };
    log.read_batches(|header, raw, records| {
        if header.is_control() {
            // Compaction may leave a control batch empty; other control records (not
            // markers) mean nothing to groups.
            if let Some(marker) = parse_marker_batch(raw).map_err(|e| log.corrupt(&e))? {
                coordinator.complete_transaction(header.producer_id, marker.control_type == ControlType::Commit);
            }
            return Ok(());
        }
        let producer = header.is_transactional().then_some(header.producer_id);
        for r in records {
            coordinator.replay_from(&log.decode::<GroupRecord>(&r)?, producer, now);
        }
        Ok(())
    })?;
    Ok(coordinator)
}

impl Shard {
    /// Appends `records` to the partition as one batch: the last offset written and the
    /// leader epoch it was written in, if any.
    fn append(&self, records: &[GroupRecord]) -> Result<Option<(i64, i32)>, GroupError> {
        self.append_batch(records, None).map_err(|e| match e {
            TxnWriteError::Group(e) => e,
            TxnWriteError::InvalidProducerEpoch => GroupError::CoordinatorNotAvailable,
        })
    }

    /// Appends `records` as one batch, transactional for `(producer id, epoch)` if given.
    ///
    /// Kafka's coordinator writes transactional offset commits with the producer's id and
    /// epoch and base sequence 0, and its log checks only the epoch of coordinator appends
    /// (`ProducerAppendInfo`: sequences are checked for client appends). Our partition
    /// checks sequences of every batch with a producer id and refuses a negative one, so the
    /// batch continues the producer's sequence in this partition (0 for a producer new here
    /// or with a newer epoch), which also makes the log fence an older epoch. Only
    /// TxnOffsetCommit writes data batches of a producer to `__consumer_offsets`, and it does
    /// so under the shard's coordinator lock, so nothing else moves that sequence between
    /// reading and appending it.
    fn append_batch(
        &self,
        records: &[GroupRecord],
        txn: Option<(i64, i16)>,
    ) -> Result<Option<(i64, i32)>, TxnWriteError> {
        if records.is_empty() {
            return Ok(None);
        }
        let producer = match txn {
            None => None,
            Some((producer_id, producer_epoch)) => {
                let current = self
                    .partition
                    .active_producers()
                    .into_iter()
                    .find(|p| p.producer_id == producer_id);
                let base_sequence = match current {
                    Some(p) if p.producer_epoch > producer_epoch => return Err(TxnWriteError::InvalidProducerEpoch),
                    Some(p) if p.producer_epoch == producer_epoch && p.last_sequence >= 0 => {
                        if p.last_sequence == i32::MAX {
                            0
                        } else {
                            p.last_sequence + 1
                        }
                    }
                    _ => 0,
                };
                Some((producer_id, producer_epoch, base_sequence))
            }
        };
        let log = CoordinatorLog {
            topic: OFFSETS_TOPIC,
            partition: &self.partition,
        };
        log.append("group", records, producer).map_err(|e| match e {
            NotAppended::NotLeader => TxnWriteError::Group(GroupError::NotCoordinator),
            NotAppended::ProducerFenced => TxnWriteError::InvalidProducerEpoch,
            NotAppended::Unavailable => TxnWriteError::Group(GroupError::CoordinatorNotAvailable),
        })
    }

    /// Appends an output's records (undoing the change if that fails) and collects the
    /// answers it completes; the caller holds the coordinator lock.
    fn stage(&self, coordinator: &mut GroupCoordinator, undo: Undo, output: Output) -> Staged {
        let appended = self.append(&output.records);
        if appended.is_err() {
            coordinator.undo(undo);
        }
        let mut waiting = lock(&self.waiting);
        let completions = output
            .completions
            .into_iter()
            .filter_map(|(token, completion)| waiting.remove(&token).map(|tx| (tx, completion)))
            .collect();
        Staged { appended, completions }
    }

    /// Waits until the records are on every in-sync replica.
    async fn replicated(&self, appended: Option<(i64, i32)>) -> Result<(), GroupError> {
        coordinator_log::replicated(&self.partition, appended)
            .await
            .map_err(|e| match e {
                NotReplicated::NotLeader => GroupError::NotCoordinator,
                NotReplicated::Unavailable => GroupError::CoordinatorNotAvailable,
            })
    }

    /// Releases staged answers once their records are replicated (failed ones if not).
    async fn release(&self, staged: Staged) -> Result<(), GroupError> {
        let outcome = match staged.appended {
            Ok(last) => self.replicated(last).await,
            Err(e) => Err(e),
        };
        for (tx, completion) in staged.completions {
            let _ = tx.send(match outcome {
                Ok(()) => completion,
                Err(e) => completion.failed(e),
            });
        }
        outcome
    }
}

impl GroupService {
    /// A service with no shards yet.
    pub fn new(cfg: GroupConfig) -> Self {
        Self {
            cfg,
            shards: Shards::new(),
            next_token: AtomicU64::new(1),
        }
    }

    fn shard_for(&self, group_id: &str) -> Result<Arc<Shard>, GroupError> {
        let index = self
            .shards
            .partition_of(group_id)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        self.shards.get(index).ok_or(GroupError::NotCoordinator)
    }

    fn all_shards(&self) -> Vec<Arc<Shard>> {
        self.shards.all()
    }

    /// Brings the shards in line with the `__consumer_offsets` partitions hosted here
    /// (`partitions` in all): loads the ones this node now leads, drops the others.
    pub fn sync_shards(&self, partitions: i32, hosted: &[Arc<Partition>]) {
        self.shards.sync(
            partitions,
            hosted,
            |index| tracing::debug!("no longer coordinating the groups of {OFFSETS_TOPIC}-{index}"),
            |index, partition| match load(partition, self.cfg.clone()) {
                Ok(coordinator) => {
                    tracing::debug!("coordinating the groups of {OFFSETS_TOPIC}-{index}");
                    Some(Shard {
                        partition: Arc::clone(partition),
                        leader_epoch: partition.leader_epoch(),
                        coordinator: Mutex::new(coordinator),
                        waiting: Mutex::new(HashMap::new()),
                    })
                }
                Err(e) => {
                    tracing::error!("cannot load the groups of {OFFSETS_TOPIC}-{index}: {e}");
                    None
                }
            },
        );
    }

    /// Runs a call on `group_id`'s coordinator that writes nothing.
    pub fn with_coordinator<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut GroupCoordinator) -> T,
    ) -> Result<T, GroupError> {
        let shard = self.shard_for(group_id)?;
        let mut coordinator = lock(&shard.coordinator);
        Ok(f(&mut coordinator))
    }

    /// Runs `f` on the coordinator of every shard here (ListGroups).
    pub fn for_each_coordinator(&self, mut f: impl FnMut(&GroupCoordinator)) {
        for shard in self.all_shards() {
            f(&lock(&shard.coordinator));
        }
    }

    /// Runs a call on `group_id` whose answer may be delayed (JoinGroup, SyncGroup) and
    /// waits for it. NOT_COORDINATOR when the shard goes away meanwhile.
    pub async fn delayed(
        &self,
        group_id: &str,
        call: impl FnOnce(&mut GroupCoordinator, Token) -> Output,
    ) -> Result<Completion, GroupError> {
        let shard = self.shard_for(group_id)?;
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&shard.waiting).insert(token, tx);
        let staged = {
            let mut coordinator = lock(&shard.coordinator);
            let undo = coordinator.undo_point(group_id);
            let output = call(&mut coordinator, token);
            shard.stage(&mut coordinator, undo, output)
        };
        let _ = shard.release(staged).await;
        drop(shard);
        rx.await.map_err(|_| GroupError::NotCoordinator)
    }

    /// Runs a call on `group_id` that answers at once but may complete others' delayed
    /// requests; `on_failure` gives the answer when its records could not be written.
    pub async fn immediate<T>(
        &self,
        group_id: &str,
        call: impl FnOnce(&mut GroupCoordinator) -> (T, Output),
        on_failure: impl FnOnce(GroupError) -> T,
    ) -> T {
        let shard = match self.shard_for(group_id) {
            Ok(s) => s,
            Err(e) => return on_failure(e),
        };
        let (answer, staged) = {
            let mut coordinator = lock(&shard.coordinator);
            let undo = coordinator.undo_point(group_id);
            let (answer, output) = call(&mut coordinator);
            (answer, shard.stage(&mut coordinator, undo, output))
        };
        match shard.release(staged).await {
            Ok(()) => answer,
            Err(e) => on_failure(e),
        }
    }

    /// Runs a call on `group_id` that produces records; they are written and applied under
    /// the coordinator lock (so commits apply in the order they are written), and the answer
    /// waits for their replication. The outer error is the shard's (not here, not written),
    /// the inner one the coordinator's refusal.
    pub async fn write<T, E>(
        &self,
        group_id: &str,
        call: impl FnOnce(&mut GroupCoordinator) -> Result<(Vec<GroupRecord>, T), E>,
    ) -> Result<Result<T, E>, GroupError> {
        self.write_as(group_id, None, call).await.map_err(|e| match e {
            TxnWriteError::Group(e) => e,
            TxnWriteError::InvalidProducerEpoch => GroupError::CoordinatorNotAvailable,
        })
    }

    /// Like [`GroupService::write`], but the records are appended as ONE transactional batch
    /// of `producer_id`/`producer_epoch` (TxnOffsetCommit) and applied as pending for that
    /// producer: invisible to OffsetFetch until [`GroupService::on_txn_marker`] applies the
    /// producer's commit marker. The answer waits for replication like `write`'s.
    pub async fn write_transactional<T, E>(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        call: impl FnOnce(&mut GroupCoordinator) -> Result<(Vec<GroupRecord>, T), E>,
    ) -> Result<Result<T, E>, TxnWriteError> {
        self.write_as(group_id, Some((producer_id, producer_epoch)), call).await
    }

    /// [`GroupService::write`], as one transactional batch of `txn` (producer id, epoch)
    /// if given.
    async fn write_as<T, E>(
        &self,
        group_id: &str,
        txn: Option<(i64, i16)>,
        call: impl FnOnce(&mut GroupCoordinator) -> Result<(Vec<GroupRecord>, T), E>,
    ) -> Result<Result<T, E>, TxnWriteError> {
        let shard = self.shard_for(group_id)?;
        let (answer, last) = {
            let mut coordinator = lock(&shard.coordinator);
            let undo = coordinator.undo_point(group_id);
            let (records, answer) = match call(&mut coordinator) {
                Err(e) => return Ok(Err(e)),
                Ok(done) => done,
            };
            let last = match shard.append_batch(&records, txn) {
                Ok(last) => last,
                Err(e) => {
                    coordinator.undo(undo);
                    return Err(e);
                }
            };
            coordinator.apply_from(&records, txn.map(|(producer_id, _)| producer_id));
            (answer, last)
        };
        shard.replicated(last).await?;
        Ok(Ok(answer))
    }

    /// Applies a transaction marker for `producer_id` to the coordinator of
    /// `__consumer_offsets` partition `partition_index`: on commit the producer's pending
    /// offsets there become committed, on abort they are dropped. To be called by the
    /// transaction code AFTER it appended the marker to that partition (so the coordinator
    /// never runs ahead of its log; a coordinator loaded later replays the marker from the
    /// log). A no-op when this node does not coordinate that partition.
    pub fn on_txn_marker(&self, partition_index: i32, producer_id: i64, commit: bool) {
        if let Some(shard) = self.shards.get(partition_index) {
            lock(&shard.coordinator).complete_transaction(producer_id, commit);
        }
    }

    /// Advances time: session and rebalance timeouts, in every shard.
    pub fn tick(&self) {
        let now = now_ms();
        for shard in self.all_shards() {
            let staged: Vec<Staged> = {
                let mut coordinator = lock(&shard.coordinator);
                coordinator
                    .tick(now)
                    .into_iter()
                    .map(|(undo, output)| shard.stage(&mut coordinator, undo, output))
                    .collect()
            };
            if staged.is_empty() {
                continue;
            }
            tokio::spawn(async move {
                for s in staged {
                    let _ = shard.release(s).await;
                }
            });
        }
    }

    /// Writes records that need no answer (tombstones) in every shard.
    fn write_everywhere(&self, make: impl Fn(&GroupCoordinator) -> Vec<GroupRecord>) -> usize {
        let mut written = 0;
        for shard in self.all_shards() {
            let mut coordinator = lock(&shard.coordinator);
            let records = make(&coordinator);
            if !records.is_empty() && shard.append(&records).is_ok() {
                coordinator.apply(&records);
                written += records.len();
            }
        }
        written
    }

    /// Deletes every group's committed offsets of topics `gone` says no longer exist (Kafka
    /// deletes them with the topic, so a topic re-created under the same name starts without
    /// any). Called after a topic deletion and whenever shards load.
    pub fn forget_deleted_topics(&self, gone: impl Fn(&str) -> bool) -> usize {
        self.write_everywhere(|c| c.forget_topics(&gone))
    }

    /// Writes tombstones for offsets past `offsets.retention.minutes`.
    pub fn expire_offsets(&self) {
        let now = now_ms();
        let n = self.write_everywhere(|c| c.expire_offsets(now));
        if n > 0 {
            tracing::info!("expired {n} committed offset(s)");
        }
    }

    /// Writes records of the single-node format (one offsets log) into the shards of their
    /// groups; returns how many groups have no shard here (the migration must wait).
    pub fn migrate(&self, records: &[GroupRecord]) -> usize {
        let mut by_group: HashMap<&str, Vec<GroupRecord>> = HashMap::new();
        for r in records {
            by_group.entry(r.group()).or_default().push(r.clone());
        }
        let mut missing = 0;
        for (group_id, records) in by_group {
            let Ok(shard) = self.shard_for(group_id) else {
                missing += 1;
                continue;
            };
            let mut coordinator = lock(&shard.coordinator);
            match shard.append(&records) {
                Ok(_) => coordinator.apply(&records),
                Err(_) => missing += 1,
            }
        }
        missing
    }
}
