//! The async side of group coordination: owns the `nurt-group` coordinator, persists its
//! records to the offsets log (`__consumer_offsets-0`, Kafka's record format) before answers
//! go out, routes delayed Join/Sync answers back to the waiting requests, and drives time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nurt_group::{Completion, GroupConfig, GroupCoordinator, GroupError, GroupRecord, Output, Token, Undo};
use nurt_log::cleaner::{clean_segments, CleanOptions};
use nurt_log::{Log, LogConfig, Storage};
use nurt_records::batch::Batches;
use nurt_records::record::decode_batch;
use nurt_records::{BatchBuilder, Compression};
use tokio::sync::oneshot;

use crate::{now_ms, BrokerConfig, BrokerError};

const OFFSETS_BATCH_BYTES_MAX: usize = 64 << 20;

/// Group coordination for this node.
#[derive(Debug)]
pub struct GroupService {
    coordinator: Mutex<GroupCoordinator>,
    log: Mutex<Log>,
    waiting: Mutex<HashMap<Token, oneshot::Sender<Completion>>>,
    next_token: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

impl GroupService {
    /// Opens the offsets log in `dir` and replays it into a fresh coordinator.
    /// Opens the offsets log in `dir` with `log_config` (the broker's flush settings: Kafka's
    /// internal topics follow `log.flush.interval.*` like any other) and replays it.
    pub fn open(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        log_config: LogConfig,
        cfg: GroupConfig,
        clean: bool,
    ) -> Result<Self, BrokerError> {
        let now = now_ms();
        let mut log = Log::open(storage, dir, log_config, clean, now)?;
        log.set_high_watermark(log.log_end_offset());
        let mut coordinator = GroupCoordinator::new(cfg);
        let mut offset = log.log_start_offset();
        while let Some(slice) = log.read_for_follower(offset, 1 << 20)? {
            let bytes = slice.read_to_vec().map_err(|e| BrokerError::Io(dir.to_path_buf(), e))?;
            for b in Batches::new(&bytes) {
                let (_, raw) = b.map_err(|e| BrokerError::CorruptMetadata(format!("offsets log: {e}")))?;
                let (header, records) = decode_batch(raw, OFFSETS_BATCH_BYTES_MAX)
                    .map_err(|e| BrokerError::CorruptMetadata(format!("offsets log: {e}")))?;
                for r in records {
                    // An unreadable record means the log is not what we wrote: refuse to start
                    // rather than silently serve other groups' or stale offsets.
                    let record = GroupRecord::decode(r.key.as_deref().unwrap_or_default(), r.value.as_deref())
                        .map_err(|e| {
                            BrokerError::CorruptMetadata(format!(
                                "offsets log {}: record at offset {} cannot be read: {e}",
                                dir.display(),
                                r.offset
                            ))
                        })?;
                    coordinator.replay(&record, now);
                }
                offset = header.last_offset() + 1;
            }
        }
        Ok(Self {
            coordinator: Mutex::new(coordinator),
            log: Mutex::new(log),
            waiting: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
        })
    }

    /// The coordinator, for calls that answer at once.
    pub fn coordinator(&self) -> MutexGuard<'_, GroupCoordinator> {
        lock(&self.coordinator)
    }

    /// Appends records to the offsets log (one batch). The caller holds the coordinator lock,
    /// so records are written in the order the coordinator produced them.
    pub fn persist(&self, records: &[GroupRecord]) -> Result<(), BrokerError> {
        if records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut builder = BatchBuilder::new(Compression::None, now);
        for r in records {
            let (key, value) = r.encode();
            builder.push(now, Some(&key), value.as_deref(), &[]);
        }
        let batch = builder
            .build()
            .map_err(|e| BrokerError::CorruptMetadata(e.to_string()))?;
        let mut log = lock(&self.log);
        log.append(&batch, 0, None, now)?;
        // A local log with no replicas: everything written counts as committed.
        let end = log.log_end_offset();
        log.set_high_watermark(end);
        drop(log);
        Ok(())
    }

    /// Persists an output's records, then releases its answers. If the records cannot be
    /// written the group goes back to where `undo` found it and the waiting members get
    /// COORDINATOR_NOT_AVAILABLE (they retry); the state never runs ahead of the log.
    /// Returns whether the records were persisted.
    fn finish(&self, coordinator: &mut GroupCoordinator, undo: Undo, output: Output) -> bool {
        let persisted = match self.persist(&output.records) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("writing group records (the group's change is undone): {e}");
                coordinator.undo(undo);
                false
            }
        };
        let mut waiting = lock(&self.waiting);
        for (token, completion) in output.completions {
            if let Some(tx) = waiting.remove(&token) {
                let completion = if persisted {
                    completion
                } else {
                    completion.failed(GroupError::CoordinatorNotAvailable)
                };
                let _ = tx.send(completion);
            }
        }
        persisted
    }

    /// Runs a call on `group_id` whose answer may be delayed (JoinGroup, SyncGroup) and
    /// waits for it.
    pub async fn delayed(
        &self,
        group_id: &str,
        call: impl FnOnce(&mut GroupCoordinator, Token) -> Output,
    ) -> Option<Completion> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(token, tx);
        {
            let mut coordinator = lock(&self.coordinator);
            let undo = coordinator.undo_point(group_id);
            let output = call(&mut coordinator, token);
            self.finish(&mut coordinator, undo, output);
        }
        rx.await.ok()
    }

    /// Runs a call on `group_id` that answers at once but may complete others' delayed
    /// requests; `on_failure` gives the answer when its records could not be persisted.
    pub fn immediate<T>(
        &self,
        group_id: &str,
        call: impl FnOnce(&mut GroupCoordinator) -> (T, Output),
        on_failure: impl FnOnce(GroupError) -> T,
    ) -> T {
        let mut coordinator = lock(&self.coordinator);
        let undo = coordinator.undo_point(group_id);
        let (answer, output) = call(&mut coordinator);
        if self.finish(&mut coordinator, undo, output) {
            answer
        } else {
            on_failure(GroupError::CoordinatorNotAvailable)
        }
    }

    /// Runs a call on `group_id` that produces records, persists them and applies them, all
    /// under the coordinator lock (so commits are applied in the order they are written). The
    /// outer error is storage (the group is then as before the call); the inner one the
    /// coordinator's refusal.
    pub fn write<T, E>(
        &self,
        group_id: &str,
        call: impl FnOnce(&mut GroupCoordinator) -> Result<(Vec<GroupRecord>, T), E>,
    ) -> Result<Result<T, E>, BrokerError> {
        let mut coordinator = lock(&self.coordinator);
        let undo = coordinator.undo_point(group_id);
        match call(&mut coordinator) {
            Err(e) => Ok(Err(e)),
            Ok((records, answer)) => {
                if let Err(e) = self.persist(&records) {
                    coordinator.undo(undo);
                    return Err(e);
                }
                coordinator.apply(&records);
                Ok(Ok(answer))
            }
        }
    }

    /// Advances time: session and rebalance timeouts.
    pub fn tick(&self) {
        let mut coordinator = lock(&self.coordinator);
        for (undo, output) in coordinator.tick(now_ms()) {
            self.finish(&mut coordinator, undo, output);
        }
    }

    /// Deletes every group's committed offsets of topics `gone` says no longer exist (Kafka
    /// deletes them with the topic, so a topic re-created under the same name starts without
    /// any). Called after a topic deletion, and at start in case a crash came in between.
    pub fn forget_deleted_topics(&self, gone: impl Fn(&str) -> bool) -> Result<usize, BrokerError> {
        let mut coordinator = lock(&self.coordinator);
        let records = coordinator.forget_topics(gone);
        if records.is_empty() {
            return Ok(0);
        }
        self.persist(&records)?;
        coordinator.apply(&records);
        Ok(records.len())
    }

    /// Flushes the offsets log when `log.flush.interval.ms` says so.
    pub fn maybe_flush(&self, now_ms: i64) -> Result<(), nurt_log::LogError> {
        lock(&self.log).maybe_flush_by_time(now_ms)
    }

    /// Writes tombstones for offsets past `offsets.retention.minutes`.
    pub fn expire_offsets(&self) {
        let mut coordinator = lock(&self.coordinator);
        let records = coordinator.expire_offsets(now_ms());
        if !records.is_empty() {
            tracing::info!("expiring {} committed offset(s)", records.len());
            if self.persist(&records).is_ok() {
                coordinator.apply(&records);
            }
        }
    }

    /// Compacts the offsets log like Kafka's compacted `__consumer_offsets`: the latest commit
    /// per (group, topic, partition) and the latest metadata per group survive; tombstones go
    /// after a day.
    pub fn compact(&self) -> Result<(), BrokerError> {
        let now = now_ms();
        let Some(segments) = lock(&self.log).plan_compaction(now, 0, 0.5, false) else {
            return Ok(());
        };
        let opts = CleanOptions {
            now_ms: now,
            delete_retention_ms: 86_400_000,
            decompressed_bytes_max: OFFSETS_BATCH_BYTES_MAX,
        };
        let storage = Arc::clone(lock(&self.log).storage());
        let (cleaned, stats) = clean_segments(&*storage, &segments, opts)?;
        lock(&self.log).install_compaction(cleaned)?;
        tracing::info!(
            "compacted the offsets log: {} -> {} records",
            stats.records_before,
            stats.records_after
        );
        Ok(())
    }

    /// Flushes the offsets log for shutdown.
    pub fn close(&self) -> Result<(), nurt_log::LogError> {
        lock(&self.log).close()
    }
}
