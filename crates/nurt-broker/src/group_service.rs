//! The async side of group coordination: owns the `nurt-group` coordinator, persists its
//! records to the offsets log (`__consumer_offsets-0`, Kafka's record format) before answers
//! go out, routes delayed Join/Sync answers back to the waiting requests, and drives time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nurt_group::{Completion, GroupConfig, GroupCoordinator, GroupRecord, Output, Token};
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
    pub fn open(storage: &Arc<dyn Storage>, dir: &Path, cfg: GroupConfig, clean: bool) -> Result<Self, BrokerError> {
        let now = now_ms();
        let log = Log::open(
            storage,
            dir,
            LogConfig {
                segment_bytes: 100 << 20,
                ..LogConfig::default()
            },
            clean,
            now,
        )?;
        let mut coordinator = GroupCoordinator::new(cfg);
        let mut offset = log.log_start_offset();
        while let Some(slice) = log.read(offset, 1 << 20)? {
            let bytes = slice.read_to_vec().map_err(|e| BrokerError::Io(dir.to_path_buf(), e))?;
            for b in Batches::new(&bytes) {
                let (_, raw) = b.map_err(|e| BrokerError::CorruptMetadata(format!("offsets log: {e}")))?;
                let (header, records) = decode_batch(raw, OFFSETS_BATCH_BYTES_MAX)
                    .map_err(|e| BrokerError::CorruptMetadata(format!("offsets log: {e}")))?;
                for r in records {
                    match GroupRecord::decode(r.key.as_deref().unwrap_or_default(), r.value.as_deref()) {
                        Ok(record) => coordinator.replay(&record, now),
                        Err(e) => tracing::warn!(
                            "skipping unreadable record at offset {} of the offsets log: {e}",
                            r.offset
                        ),
                    }
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
        lock(&self.log).append(&batch, 0, None, now)?;
        Ok(())
    }

    /// Persists an output's records, then releases its answers.
    fn finish(&self, output: Output) {
        if let Err(e) = self.persist(&output.records) {
            tracing::error!("writing group records: {e}");
        }
        let mut waiting = lock(&self.waiting);
        for (token, completion) in output.completions {
            if let Some(tx) = waiting.remove(&token) {
                let _ = tx.send(completion);
            }
        }
    }

    /// Runs a call whose answer may be delayed (JoinGroup, SyncGroup) and waits for it.
    pub async fn delayed(&self, call: impl FnOnce(&mut GroupCoordinator, Token) -> Output) -> Option<Completion> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(token, tx);
        {
            let mut coordinator = lock(&self.coordinator);
            let output = call(&mut coordinator, token);
            self.finish(output);
        }
        rx.await.ok()
    }

    /// Runs a call that answers at once but may complete others' delayed requests.
    pub fn immediate<T>(&self, call: impl FnOnce(&mut GroupCoordinator) -> (T, Output)) -> T {
        let mut coordinator = lock(&self.coordinator);
        let (answer, output) = call(&mut coordinator);
        self.finish(output);
        answer
    }

    /// Runs a call that produces offset records, persists them and applies them, all under the
    /// coordinator lock (so commits are applied in the order they are written). The outer
    /// error is storage; the inner one the coordinator's refusal.
    pub fn write<T, E>(
        &self,
        call: impl FnOnce(&mut GroupCoordinator) -> Result<(Vec<GroupRecord>, T), E>,
    ) -> Result<Result<T, E>, BrokerError> {
        let mut coordinator = lock(&self.coordinator);
        match call(&mut coordinator) {
            Err(e) => Ok(Err(e)),
            Ok((records, answer)) => {
                self.persist(&records)?;
                coordinator.apply(&records);
                Ok(Ok(answer))
            }
        }
    }

    /// Advances time: session and rebalance timeouts.
    pub fn tick(&self) {
        let mut coordinator = lock(&self.coordinator);
        let output = coordinator.tick(now_ms());
        self.finish(output);
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
