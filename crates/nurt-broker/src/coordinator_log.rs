//! Records of an internal coordinator topic (`__consumer_offsets`, `__transaction_state`):
//! read every batch of a partition, append records as one batch, wait for the ISR, and the
//! shards of the partitions led here. Each service keeps its own records and semantics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use nurt_records::batch::{BatchHeader, Batches};
use nurt_records::record::{decode_batch, Record};
use nurt_records::{BatchBuilder, Compression};

use crate::group_service::partition_for;
use crate::partition::{AppendError, Partition, Verification};
use crate::{codes, now_ms, BrokerError};

const BATCH_BYTES_MAX: usize = 64 << 20;
/// How long an answer waits for its records to be replicated (Kafka's
/// `offsets.commit.timeout.ms`, 5 s).
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A coordinator's record: a key and an optional value (none for a tombstone).
pub(crate) trait CoordinatorRecord: Sized {
    fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>);
    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, String>;
}

impl CoordinatorRecord for nurt_group::GroupRecord {
    fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        nurt_group::GroupRecord::encode(self)
    }

    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, String> {
        nurt_group::GroupRecord::decode(key, value).map_err(|e| e.to_string())
    }
}

impl CoordinatorRecord for nurt_txn::TxnRecord {
    fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        nurt_txn::TxnRecord::encode(self)
    }

    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, String> {
        nurt_txn::TxnRecord::decode(key, value).map_err(|e| e.to_string())
    }
}

/// The log of a coordinator partition: `topic`'s partition `partition`.
#[derive(Clone, Copy)]
pub(crate) struct CoordinatorLog<'a> {
    pub topic: &'static str,
    pub partition: &'a Partition,
}

impl CoordinatorLog<'_> {
    /// The error for a log that is not what a coordinator wrote.
    pub fn corrupt(&self, e: &dyn std::fmt::Display) -> BrokerError {
        BrokerError::CorruptMetadata(format!("{}-{}: {e}", self.topic, self.partition.index))
    }

    /// Decodes one record of the log.
    pub fn decode<R: CoordinatorRecord>(&self, r: &Record) -> Result<R, BrokerError> {
        R::decode(r.key.as_deref().unwrap_or_default(), r.value.as_deref())
            .map_err(|e| self.corrupt(&format!("record at offset {} cannot be read: {e}", r.offset)))
    }

    /// Reads every batch of the partition from its log start, in log order: `f` gets each
    /// batch's header, its bytes and its records (undecoded).
    pub fn read_batches(
        &self,
        mut f: impl FnMut(&BatchHeader, &[u8], Vec<Record>) -> Result<(), BrokerError>,
    ) -> Result<(), BrokerError> {
        let partition = self.partition;
        let mut offset = partition.offsets().log_start_offset;
        while let (Some(slice), _) = partition.read_for_follower(offset, 1 << 20)? {
            let bytes = slice.read_to_vec().map_err(|e| self.corrupt(&e))?;
            for b in Batches::new(&bytes) {
                let (_, raw) = b.map_err(|e| self.corrupt(&e))?;
                let (header, records) = decode_batch(raw, BATCH_BYTES_MAX).map_err(|e| self.corrupt(&e))?;
                f(&header, raw, records)?;
                offset = header.last_offset() + 1;
            }
        }
        Ok(())
    }

    /// Appends `records` as one batch (transactional of `(producer id, epoch, base
    /// sequence)` if given): where it ends and its leader epoch, if anything was written.
    /// A refusal other than NotLeader and ProducerFenced is logged as writing `what` records.
    pub fn append<R: CoordinatorRecord>(
        &self,
        what: &str,
        records: &[R],
        producer: Option<(i64, i16, i32)>,
    ) -> Result<Option<(i64, i32)>, NotAppended> {
        if records.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let mut builder = BatchBuilder::new(Compression::None, now);
        if let Some((producer_id, producer_epoch, base_sequence)) = producer {
            builder = builder.transactional(producer_id, producer_epoch, base_sequence);
        }
        for r in records {
            let (key, value) = r.encode();
            builder.push(now, Some(&key), value.as_deref(), &[]);
        }
        let batch = builder.build().map_err(|_| NotAppended::Unavailable)?;
        match self.partition.append(&batch, now, Verification::Trusted) {
            Ok(appended) => Ok(Some((appended.last_offset, appended.leader_epoch))),
            Err(AppendError::NotLeader) => Err(NotAppended::NotLeader),
            Err(AppendError::ProducerFenced) => Err(NotAppended::ProducerFenced),
            Err(e) => {
                tracing::error!("writing {what} records to {}-{}: {e}", self.topic, self.partition.index);
                Err(NotAppended::Unavailable)
            }
        }
    }
}

/// Why records were not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotAppended {
    /// This node no longer leads the partition.
    NotLeader,
    /// The batch's producer epoch is older than the partition's.
    ProducerFenced,
    /// The batch could not be built or written.
    Unavailable,
}

/// Waits until every in-sync replica has what an append wrote (nothing to wait for if it
/// wrote nothing); the error is whether the partition is no longer led here.
pub(crate) async fn replicated(partition: &Partition, appended: Option<(i64, i32)>) -> Result<(), NotReplicated> {
    let Some((last_offset, leader_epoch)) = appended else {
        return Ok(());
    };
    partition
        .wait_replicated(last_offset, leader_epoch, REPLICATION_TIMEOUT)
        .await
        .map_err(|code| match code {
            codes::NOT_LEADER_OR_FOLLOWER => NotReplicated::NotLeader,
            _ => NotReplicated::Unavailable,
        })
}

/// Why records were not replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotReplicated {
    /// This node no longer leads the partition.
    NotLeader,
    /// Not in time, or the log failed.
    Unavailable,
}

/// A coordinator shard of a led partition, loaded in some leader epoch.
pub(crate) trait Shard {
    fn leader_epoch(&self) -> i32;
}

/// The shards of the partitions of a coordinator topic led here, keyed by partition.
#[derive(Debug)]
pub(crate) struct Shards<S> {
    map: RwLock<HashMap<i32, Arc<S>>>,
    /// Partitions of the topic (0 until it exists).
    partitions: AtomicI32,
}

impl<S: Shard> Shards<S> {
    pub fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            partitions: AtomicI32::new(0),
        }
    }

    /// The partition of `key` (Kafka's rule, the same for groups and transactional ids), if
    /// the topic exists.
    pub fn partition_of(&self, key: &str) -> Option<i32> {
        let partitions = self.partitions.load(Ordering::SeqCst);
        (partitions > 0).then(|| partition_for(key, partitions))
    }

    /// The shard of partition `index`, if led here.
    pub fn get(&self, index: i32) -> Option<Arc<S>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).get(&index).cloned()
    }

    /// Every shard.
    pub fn all(&self) -> Vec<Arc<S>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Brings the shards in line with the partitions hosted here (`partitions` in all):
    /// drops the shards of partitions not led here in their epoch (`dropped` told), and
    /// `load`s one for every led partition without (none if it cannot be loaded).
    pub fn sync(
        &self,
        partitions: i32,
        hosted: &[Arc<Partition>],
        mut dropped: impl FnMut(i32),
        mut load: impl FnMut(i32, &Arc<Partition>) -> Option<S>,
    ) {
        self.partitions.store(partitions, Ordering::SeqCst);
        let mut shards = self.map.write().unwrap_or_else(|p| p.into_inner());
        let led: HashMap<i32, &Arc<Partition>> =
            hosted.iter().filter(|p| p.is_leader()).map(|p| (p.index, p)).collect();
        shards.retain(|index, shard| {
            let keep = led.get(index).is_some_and(|p| p.leader_epoch() == shard.leader_epoch());
            if !keep {
                dropped(*index);
            }
            keep
        });
        for (index, partition) in led {
            if shards.contains_key(&index) {
                continue;
            }
            if let Some(shard) = load(index, partition) {
                shards.insert(index, Arc::new(shard));
            }
        }
    }
}
