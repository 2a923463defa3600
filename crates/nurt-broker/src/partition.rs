//! A partition replica on this broker: its log, idempotent producer state and topic settings,
//! behind one mutex that is held only for the in-memory bookkeeping and the page-cache write.
//! Its replication state (leader bookkeeping, `replica.rs`) sits behind a second mutex, so
//! followers' fetches do not contend with appends; lock order: replication, then the log.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use nurt_log::{IsolationLevel, Log, LogError, ReadSlice, SequenceCheck, Storage, VerificationGuard};

/// A `read_committed` read: the bytes, the partition's offsets, and the aborted transactions
/// as (producer id, first offset).
pub type CommittedRead = (Option<ReadSlice>, Offsets, Vec<(i64, i64)>);
use nurt_metadata::TopicId;
use nurt_records::batch::{self, BatchHeader};
use nurt_records::record::decode_batch;
use nurt_records::rewrite::rewrite_batch;
use nurt_records::RecordsError;

pub use crate::settings::TopicSettings;

/// How an append's transactional batches are checked against their coordinator (KIP-890
/// part 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Written by this node's own coordinators (offsets of a transaction), which know it.
    Trusted,
    /// From a client: a batch that would open a transaction is appended only with the guard
    /// of a verification still held (see [`Partition::start_verification`]).
    Guarded(Option<VerificationGuard>),
}

/// Why a produced batch was refused; the produce handler maps each to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("corrupt batch: {0}")]
    Corrupt(RecordsError),
    #[error("invalid record batch: {0}")]
    InvalidRecord(&'static str),
    /// Some records of the batch are invalid (KIP-467): their indexes in the batch and why.
    #[error("{}", records_message(.0))]
    InvalidRecords(Vec<(i32, String)>),
    #[error("timestamp {0} is out of the allowed range")]
    InvalidTimestamp(i64),
    #[error("out of order sequence number")]
    OutOfOrderSequence,
    #[error("producer epoch is fenced by a newer one")]
    ProducerFenced,
    /// A non-transactional batch from a producer with a transaction open here (Kafka's
    /// INVALID_TXN_STATE).
    #[error("the producer has a transaction open on this partition")]
    InvalidTxnState,
    /// A transactional batch that would open a transaction its coordinator does not know of
    /// on this partition (KIP-890 part 1; INVALID_TXN_STATE, or TRANSACTION_ABORTABLE for
    /// clients that know it).
    #[error("the partition is not in the producer's ongoing transaction")]
    NotInTransaction,
    /// A transaction marker from a deposed transaction coordinator (TRANSACTION_COORDINATOR_FENCED).
    #[error("the marker's coordinator epoch is older than the last one seen")]
    CoordinatorFenced,
    #[error("storage error: {0}")]
    Storage(#[from] LogError),
    /// This replica stopped leading (its role changed while the request was on its way).
    #[error("this replica is not the partition's leader")]
    NotLeader,
}

/// Kafka's summary of per-record errors: how many, and the first three.
fn records_message(errors: &[(i32, String)]) -> String {
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|(i, m)| format!("ApiRecordError(batchIndex={i}, message={m})"))
        .collect();
    format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    )
}

/// A successful append.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    /// The batch's last offset: acks=all waits for the high watermark to pass it.
    pub last_offset: i64,
    /// The leader epoch it was appended in (acks=all fails if leadership changed since).
    pub leader_epoch: i32,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// Offsets of a partition at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Offsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// min(high watermark, first offset of the oldest open transaction): where
    /// `read_committed` readers stop.
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
}

impl Offsets {
    fn of(log: &Log) -> Self {
        Self {
            log_start_offset: log.log_start_offset(),
            high_watermark: log.high_watermark(),
            last_stable_offset: log.last_stable_offset(),
            log_end_offset: log.log_end_offset(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) log: Log,
    pub(crate) settings: TopicSettings,
}

/// What the metadata image says of a partition, as this replica last applied it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicaRole {
    /// The leader's node id (-1: none).
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas that may not join the ISR now (fenced or unregistered brokers).
    pub ineligible: std::collections::BTreeSet<i32>,
}

/// One partition replica on this node: its log, and its role from the metadata image.
#[derive(Debug)]
pub struct Partition {
    pub topic: Arc<str>,
    pub topic_id: TopicId,
    pub index: i32,
    /// This node's id.
    pub(crate) node_id: i32,
    pub(crate) activity: Arc<Activity>,
    pub(crate) role: std::sync::RwLock<ReplicaRole>,
    pub(crate) inner: Mutex<Inner>,
    /// Leader bookkeeping while this replica leads (see `replica.rs`).
    pub(crate) replication: Mutex<Option<nurt_replication::Leader>>,
    /// The high watermark, watched by acks=all produces waiting for it (the purgatory).
    pub(crate) high_watermark: tokio::sync::watch::Sender<i64>,
    /// Bumped whenever a fetch of this partition may find something new (an append, a higher
    /// high watermark, a truncation, a role change): long-polling fetches wait on the
    /// partitions they read, so a produce wakes only those (issue 13).
    pub(crate) data_changes: tokio::sync::watch::Sender<u64>,
}

/// Locks, ignoring poisoning: a panic in one request must not take the partition down for
/// everyone (the log's own state is only updated after each write succeeds).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which partition, on which node.
#[derive(Debug, Clone)]
pub struct PartitionId {
    pub topic: Arc<str>,
    pub topic_id: TopicId,
    pub index: i32,
    pub node_id: i32,
    /// Shared by the node's partitions: what its periodic work needs to look at.
    pub activity: Arc<Activity>,
}

/// Set by any partition when the node's periodic work has something to do, so that work
/// costs nothing while 100,000 partitions sit idle (issue 13).
#[derive(Debug, Default)]
pub struct Activity {
    /// A high watermark moved since the last checkpoint.
    pub high_watermark_moved: std::sync::atomic::AtomicBool,
}

/// Bound on a produced batch's decompressed size when the broker must decode it.
const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

impl Partition {
    /// Opens (or creates) the log of partition `id` in `dir`.
    /// `high_watermark` is the last checkpointed one (clamped to the log).
    pub fn open(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        id: PartitionId,
        settings: TopicSettings,
        clean: bool,
        high_watermark: i64,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        let PartitionId {
            topic,
            topic_id,
            index,
            node_id,
            activity,
        } = id;
        let mut log = Log::open(storage, dir, settings.log.clone(), clean, now_ms)?;
        log.set_high_watermark(high_watermark);
        Ok(Self {
            topic,
            topic_id,
            index,
            node_id,
            activity,
            role: std::sync::RwLock::new(ReplicaRole::default()),
            high_watermark: tokio::sync::watch::channel(log.high_watermark()).0,
            data_changes: tokio::sync::watch::channel(0).0,
            inner: Mutex::new(Inner { log, settings }),
            replication: Mutex::new(None),
        })
    }

    /// The role the image gives this replica now.
    pub fn role(&self) -> ReplicaRole {
        self.role.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        self.role.read().unwrap_or_else(|p| p.into_inner()).leader_epoch
    }

    /// Whether this replica leads the partition now.
    pub fn is_leader(&self) -> bool {
        self.role.read().unwrap_or_else(|p| p.into_inner()).leader == self.node_id
    }

    /// Replaces the topic settings after a config change.
    pub fn update_settings(&self, settings: TopicSettings) {
        let mut inner = lock(&self.inner);
        if inner.settings != settings {
            inner.log.set_config(settings.log.clone());
            inner.settings = settings;
        }
    }

    /// Starts the verification of a produced batch that would open its producer's
    /// transaction here (KIP-890 part 1): its header and the guard to append it with, once the
    /// coordinator confirms. None when the batch needs no verification (or is unreadable:
    /// the append reports that).
    pub fn start_verification(&self, records: &[u8]) -> Option<(BatchHeader, VerificationGuard)> {
        let header = BatchHeader::parse(records).ok()?;
        if !header.is_transactional() {
            // The common case decided without the partition lock.
            return None;
        }
        let mut inner = lock(&self.inner);
        if !inner.log.needs_verification(&header) {
            return None;
        }
        Some((header, inner.log.start_verification(header.producer_id)))
    }

    /// Validates and appends one produced record set (exactly one batch v2). A batch that
    /// would open a transaction needs the guard of a verification that is still held, unless
    /// `verification` says this node's own coordinator wrote it.
    pub fn append(&self, records: &[u8], now_ms: i64, verification: Verification) -> Result<Appended, AppendError> {
        if !self.is_leader() {
            return Err(AppendError::NotLeader);
        }
        let header = validate_produced(records)?;
        let (compact, target_codec) = {
            let inner = lock(&self.inner);
            (inner.settings.compact, inner.settings.compression)
        };
        if compact {
            // Kafka refuses keyless records on compacted topics: the one produce-path check
            // that needs the records decoded. It names each record so the client can fail
            // exactly those (KIP-467).
            let (_, decoded) = decode_batch(records, DECOMPRESSED_BYTES_MAX).map_err(AppendError::Corrupt)?;
            let keyless: Vec<(i32, String)> = decoded
                .iter()
                .enumerate()
                .filter(|(_, r)| r.key.is_none())
                .map(|(i, _)| {
                    let message = format!(
                        "Compacted topic cannot accept message without key in topic partition {}-{}.",
                        self.topic, self.index
                    );
                    (i as i32, message)
                })
                .collect();
            if !keyless.is_empty() {
                return Err(AppendError::InvalidRecords(keyless));
            }
        }
        let recompressed;
        let records = match target_codec {
            Some(codec) if header.compression().ok() != Some(codec) => {
                recompressed = rewrite_batch(records, codec, DECOMPRESSED_BYTES_MAX, |_| true)
                    .map_err(AppendError::Corrupt)?
                    .ok_or(AppendError::InvalidRecord("empty record batch"))?;
                &recompressed[..]
            }
            _ => records,
        };
        let mut inner = lock(&self.inner);
        let settings = &inner.settings;
        if records.len() > settings.max_message_bytes {
            return Err(AppendError::TooLarge {
                size: records.len(),
                max: settings.max_message_bytes,
            });
        }
        let log_append_time = settings.log_append_time.then_some(now_ms);
        if !settings.log_append_time {
            let too_old = header.base_timestamp < now_ms.saturating_sub(settings.timestamp_before_max_ms);
            let too_new = header.max_timestamp > now_ms.saturating_add(settings.timestamp_after_max_ms);
            if too_old || too_new {
                return Err(AppendError::InvalidTimestamp(if too_new {
                    header.max_timestamp
                } else {
                    header.base_timestamp
                }));
            }
        }
        if inner.log.producer_state().breaks_transaction(&header) {
            return Err(AppendError::InvalidTxnState);
        }
        if let Verification::Guarded(guard) = verification {
            if !inner.log.verified(&header, guard) {
                return Err(AppendError::NotInTransaction);
            }
        }
        match inner.log.producer_state().check(&header) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate { base_offset } => {
                return Ok(Appended {
                    base_offset,
                    // A duplicate counts as written once what it duplicates is: its batch
                    // ends no later than the log end now.
                    last_offset: inner.log.log_end_offset() - 1,
                    leader_epoch: self.leader_epoch(),
                    log_append_time_ms: log_append_time.unwrap_or(-1),
                    log_start_offset: inner.log.log_start_offset(),
                });
            }
            SequenceCheck::OutOfOrder => return Err(AppendError::OutOfOrderSequence),
            SequenceCheck::Fenced => return Err(AppendError::ProducerFenced),
        }
        let leader_epoch = self.leader_epoch();
        let info = inner.log.append(records, leader_epoch, log_append_time, now_ms)?;
        let appended = Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            leader_epoch,
            log_append_time_ms: log_append_time.unwrap_or(-1),
            log_start_offset: inner.log.log_start_offset(),
        };
        drop(inner);
        self.after_leader_append(now_ms);
        Ok(appended)
    }

    /// Writes a transaction marker (a control batch) for `producer_id` at the log end, as the
    /// leader: it ends the producer's transaction here (an abort is recorded in the aborted
    /// transaction index). Refused for an older producer epoch (PRODUCER_FENCED) or an older
    /// coordinator epoch (TRANSACTION_COORDINATOR_FENCED).
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        if !self.is_leader() {
            return Err(AppendError::NotLeader);
        }
        let control_type = if commit {
            nurt_records::control::ControlType::Commit
        } else {
            nurt_records::control::ControlType::Abort
        };
        let mut inner = lock(&self.inner);
        let leader_epoch = self.leader_epoch();
        let info = inner
            .log
            .append_marker(
                producer_id,
                producer_epoch,
                control_type,
                coordinator_epoch,
                leader_epoch,
                now_ms,
            )
            .map_err(|e| match e {
                LogError::ProducerFenced { .. } => AppendError::ProducerFenced,
                LogError::CoordinatorFenced { .. } => AppendError::CoordinatorFenced,
                e => AppendError::Storage(e),
            })?;
        let appended = Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            leader_epoch,
            log_append_time_ms: -1,
            log_start_offset: inner.log.log_start_offset(),
        };
        drop(inner);
        self.after_leader_append(now_ms);
        Ok(appended)
    }

    /// Bytes of all the log's segments.
    pub fn size_bytes(&self) -> u64 {
        lock(&self.inner).log.size_bytes()
    }

    /// Batch headers read to open this replica's log (what its start cost).
    pub fn headers_read_at_open(&self) -> u64 {
        lock(&self.inner).log.headers_read_at_open()
    }

    /// The current offsets.
    pub fn offsets(&self) -> Offsets {
        Offsets::of(&lock(&self.inner).log)
    }

    /// The producers this replica's log tracks (DescribeProducers).
    pub fn active_producers(&self) -> Vec<nurt_log::ActiveProducer> {
        lock(&self.inner).log.producer_state().active_producers()
    }

    /// Locates the bytes for a consumer's fetch at `offset`, below the high watermark (read
    /// them without the lock).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<(Option<ReadSlice>, Offsets), LogError> {
        self.read_with(offset, max_bytes, false)
    }

    /// A `read_committed` consumer's fetch at `offset`: bytes below the last stable offset,
    /// and the aborted transactions (producer id, first offset) the consumer must skip in
    /// them, from the aborted-transaction indexes.
    pub fn read_committed(&self, offset: i64, max_bytes: usize) -> Result<CommittedRead, LogError> {
        let inner = lock(&self.inner);
        let slice = inner
            .log
            .read_isolated(offset, max_bytes, IsolationLevel::ReadCommitted)?;
        let offsets = Offsets::of(&inner.log);
        let aborted = inner.log.aborted_transactions(offset, offsets.last_stable_offset);
        Ok((slice, offsets, aborted))
    }

    /// A read below the high watermark, or up to the log end for a follower.
    pub(crate) fn read_with(
        &self,
        offset: i64,
        max_bytes: usize,
        for_follower: bool,
    ) -> Result<(Option<ReadSlice>, Offsets), LogError> {
        let inner = lock(&self.inner);
        let slice = if for_follower {
            inner.log.read_for_follower(offset, max_bytes)?
        } else {
            inner.log.read(offset, max_bytes)?
        };
        Ok((slice, Offsets::of(&inner.log)))
    }

    /// The batch holding the first timestamp ≥ `timestamp_ms`.
    pub fn find_by_timestamp(&self, timestamp_ms: i64) -> Result<Option<ReadSlice>, LogError> {
        lock(&self.inner).log.find_by_timestamp(timestamp_ms)
    }

    /// The log's largest timestamp and the first batch holding it.
    pub fn max_timestamp_batch(&self) -> Result<Option<(i64, ReadSlice)>, LogError> {
        lock(&self.inner).log.max_timestamp_batch()
    }

    /// OffsetForLeaderEpoch on this replica's epoch history.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let inner = lock(&self.inner);
        let leo = inner.log.log_end_offset();
        match inner.log.epochs().end_offset_for(epoch, leo) {
            Some(found) => Some(found),
            // An empty log has no epoch history yet; the current epoch ends at the log end.
            None if epoch >= self.leader_epoch() && inner.log.epochs().latest_epoch().is_none() => {
                Some((self.leader_epoch(), leo))
            }
            None => None,
        }
    }

    /// Time-based upkeep: flush per `flush.ms`. (Segments roll by `segment.ms` only when an
    /// append arrives, as in Kafka: an idle segment stays active, so the cleaner never touches
    /// the newest records of a quiet compacted topic.)
    pub fn tick(&self, now_ms: i64) -> Result<(), LogError> {
        lock(&self.inner).log.maybe_flush_by_time(now_ms)
    }

    /// Flushes and checkpoints for shutdown.
    pub fn close(&self) -> Result<(), LogError> {
        lock(&self.inner).log.close()
    }
}

/// Checks a produced record set the way Kafka does, in Kafka's order: a whole batch v2 whose
/// base offset is 0 (the broker assigns offsets), with a valid CRC (CORRUPT_MESSAGE otherwise,
/// which clients retry), then the client-batch rules of Kafka's `LogValidator` (INVALID_RECORD,
/// which they do not): a positive record count matching the offset range, no control batch, no
/// negative sequence with a producer id.
fn validate_produced(records: &[u8]) -> Result<BatchHeader, AppendError> {
    let header = BatchHeader::parse(records).map_err(AppendError::Corrupt)?;
    if header.magic != 2 {
        return Err(AppendError::InvalidRecord("only record batch v2 (magic 2) is accepted"));
    }
    if header.base_offset != 0 {
        return Err(AppendError::InvalidRecord(
            "the base offset of a produced record batch must be 0",
        ));
    }
    if (header.batch_length as i64) < (batch::BATCH_HEADER_BYTES - batch::LOG_OVERHEAD_BYTES) as i64 {
        return Err(AppendError::Corrupt(RecordsError::Invalid(
            "batch length shorter than its header",
        )));
    }
    match header.total_bytes().cmp(&records.len()) {
        std::cmp::Ordering::Greater => {
            return Err(AppendError::Corrupt(RecordsError::Truncated(
                "batch length runs past the data",
            )))
        }
        std::cmp::Ordering::Less => {
            return Err(AppendError::InvalidRecord(
                "produce requests must carry exactly one record batch",
            ))
        }
        std::cmp::Ordering::Equal => {}
    }
    let computed = batch::compute_crc(records);
    if computed != header.crc {
        return Err(AppendError::Corrupt(RecordsError::CrcMismatch {
            stored: header.crc,
            computed,
        }));
    }
    header.compression().map_err(AppendError::Corrupt)?;
    let count_from_offsets = i64::from(header.last_offset_delta) + 1;
    if count_from_offsets <= 0 {
        return Err(AppendError::InvalidRecord("the batch has an invalid offset range"));
    }
    if header.record_count <= 0 {
        return Err(AppendError::InvalidRecord("the batch has no records"));
    }
    if count_from_offsets != i64::from(header.record_count) {
        return Err(AppendError::InvalidRecord(
            "the batch's offset range and record count disagree",
        ));
    }
    if header.is_control() {
        return Err(AppendError::InvalidRecord("clients may not write control batches"));
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(AppendError::InvalidRecord(
            "a batch with a producer id needs a non-negative base sequence",
        ));
    }
    if header.is_transactional() && header.producer_id < 0 {
        return Err(AppendError::InvalidRecord("a transactional batch needs a producer id"));
    }
    Ok(header)
}
