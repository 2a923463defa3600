//! Transaction records as Kafka lays them out in `__transaction_state`: the key is
//! `TransactionLogKey` (an `i16` record type 0, then the transactional id as an `i16`-length
//! string), the value `TransactionLogValue`. Values are written at version 1 (flexible, with
//! the tagged fields PreviousProducerId (0), NextProducerId (1) and ClientTransactionVersion
//! (2) as Kafka 4 writes them) and read at versions 0 and 1. A `None` value is a tombstone: the
//! transactional id expired.
//!
//! Decoding never trusts a length: every count is checked against the bytes left before
//! anything is allocated for it.

use std::collections::{BTreeMap, BTreeSet};

use nurt_records::wire::{put_compact_str, put_str, put_tag, put_uvarint, Reader, WireError};

use crate::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

/// Partitions of a transaction, by topic.
pub type Partitions = BTreeMap<String, BTreeSet<i32>>;

/// Kafka's `TransactionState`, with its byte ids as stored in `TransactionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// Expired; Kafka writes a tombstone instead, so this is only ever read.
    Dead,
    /// A fence in progress; Kafka never persists it, so this is only ever read.
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        Self::Empty,
        Self::Ongoing,
        Self::PrepareCommit,
        Self::PrepareAbort,
        Self::CompleteCommit,
        Self::CompleteAbort,
        Self::Dead,
        Self::PrepareEpochFence,
    ];

    /// The byte Kafka stores.
    pub fn id(self) -> i8 {
        match self {
            Self::Empty => 0,
            Self::Ongoing => 1,
            Self::PrepareCommit => 2,
            Self::PrepareAbort => 3,
            Self::CompleteCommit => 4,
            Self::CompleteAbort => 5,
            Self::Dead => 6,
            Self::PrepareEpochFence => 7,
        }
    }

    /// The state with Kafka's byte id `id`.
    pub fn from_id(id: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The name DescribeTransactions and ListTransactions report (and filter by).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
            Self::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state named `name`, as ListTransactions filters give it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Markers are being written (the outcome is decided but not yet visible).
    pub fn is_prepare(self) -> bool {
        matches!(self, Self::PrepareCommit | Self::PrepareAbort)
    }

    /// No transaction is open: a new one may start and the id may expire.
    pub fn is_idle(self) -> bool {
        matches!(self, Self::Empty | Self::CompleteCommit | Self::CompleteAbort)
    }
}

/// `TransactionLogValue`: everything the coordinator knows about a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    /// The producer id before the transition that wrote this value (tag 0).
    pub previous_producer_id: i64,
    /// The producer id a transaction version 2 producer continues with once this transaction
    /// completes, when its epoch ran out (tag 1).
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: Partitions,
    pub last_update_ms: i64,
    /// When the transaction started; -1 when none is open.
    pub start_ms: i64,
    /// The transaction version (Kafka's `TransactionVersion` level) the client used (tag 2).
    pub client_version: i16,
}

impl Default for TxnLogValue {
    fn default() -> Self {
        Self {
            producer_id: NO_PRODUCER_ID,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: 0,
            state: TxnState::Empty,
            partitions: Partitions::new(),
            last_update_ms: -1,
            start_ms: -1,
            client_version: 0,
        }
    }
}

/// One record of `__transaction_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnLogValue>,
}

/// Why a stored record could not be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt transaction record: {0}")]
pub struct CorruptRecord(pub &'static str);

impl From<WireError> for CorruptRecord {
    fn from(e: WireError) -> Self {
        Self(e.0)
    }
}

/// The record type of `TransactionLogKey`.
const KEY_VERSION: i16 = 0;
/// The value version this crate writes.
pub const VALUE_VERSION: i16 = 1;

const TAG_PREVIOUS_PRODUCER_ID: u64 = 0;
const TAG_NEXT_PRODUCER_ID: u64 = 1;
const TAG_CLIENT_VERSION: u64 = 2;

impl TxnRecord {
    /// Encodes as a (key, value) pair of a log record, the value at [`VALUE_VERSION`].
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut key = KEY_VERSION.to_be_bytes().to_vec();
        put_str(&mut key, &self.transactional_id);
        (key, self.value.as_ref().map(|v| v.encode(VALUE_VERSION)))
    }

    /// Decodes a (key, value) pair written by [`TxnRecord::encode`] or by Kafka.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, CorruptRecord> {
        let mut k = Reader::new(key);
        if k.i16()? != KEY_VERSION {
            return Err(CorruptRecord("unknown key version"));
        }
        let transactional_id = k.str()?;
        let value = value.map(TxnLogValue::decode).transpose()?;
        Ok(Self {
            transactional_id,
            value,
        })
    }
}

impl TxnLogValue {
    /// Encodes at `version` (0 or 1). Version 0 has no place for the tagged fields.
    pub fn encode(&self, version: i16) -> Vec<u8> {
        let flexible = version >= 1;
        let mut out = version.to_be_bytes().to_vec();
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.timeout_ms.to_be_bytes());
        out.push(self.state.id() as u8);
        // Kafka writes a null partition list for Empty and a (possibly empty) list otherwise.
        let partitions = (self.state != TxnState::Empty).then_some(&self.partitions);
        if flexible {
            put_partitions_compact(&mut out, partitions);
        } else {
            put_partitions_v0(&mut out, partitions);
        }
        out.extend_from_slice(&self.last_update_ms.to_be_bytes());
        out.extend_from_slice(&self.start_ms.to_be_bytes());
        if flexible {
            self.put_tagged_fields(&mut out);
        }
        out
    }

    /// Tagged fields are written only when they differ from their defaults, as Kafka does.
    fn put_tagged_fields(&self, out: &mut Vec<u8>) {
        let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
        if self.previous_producer_id != NO_PRODUCER_ID {
            tags.push((
                TAG_PREVIOUS_PRODUCER_ID,
                self.previous_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if self.next_producer_id != NO_PRODUCER_ID {
            tags.push((TAG_NEXT_PRODUCER_ID, self.next_producer_id.to_be_bytes().to_vec()));
        }
        if self.client_version != 0 {
            tags.push((TAG_CLIENT_VERSION, self.client_version.to_be_bytes().to_vec()));
        }
        put_uvarint(out, tags.len() as u64);
        for (tag, data) in &tags {
            put_tag(out, *tag, data);
        }
    }

    /// Decodes a value of version 0 or 1.
    pub fn decode(bytes: &[u8]) -> Result<Self, CorruptRecord> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        if !(0..=1).contains(&version) {
            return Err(CorruptRecord("unsupported value version"));
        }
        let flexible = version == 1;
        let mut v = TxnLogValue {
            producer_id: r.i64()?,
            producer_epoch: r.i16()?,
            timeout_ms: r.i32()?,
            state: TxnState::from_id(r.i8()?).ok_or(CorruptRecord("unknown transaction state"))?,
            ..TxnLogValue::default()
        };
        let partitions = if flexible {
            read_partitions_compact(&mut r)?
        } else {
            read_partitions_v0(&mut r)?
        };
        // Kafka ignores the partitions of an Empty transaction.
        if v.state != TxnState::Empty {
            v.partitions = partitions;
        }
        v.last_update_ms = r.i64()?;
        v.start_ms = r.i64()?;
        if flexible {
            v.read_tagged_fields(&mut r)?;
        }
        Ok(v)
    }

    fn read_tagged_fields(&mut self, r: &mut Reader<'_>) -> Result<(), CorruptRecord> {
        let n = r.uvarint()?;
        for _ in 0..n {
            let (tag, data) = r.tagged_field()?;
            let mut d = Reader::new(data);
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => self.previous_producer_id = d.i64()?,
                TAG_NEXT_PRODUCER_ID => self.next_producer_id = d.i64()?,
                TAG_CLIENT_VERSION => self.client_version = d.i16()?,
                // Fields of later versions (e.g. NextProducerEpoch) are skipped, as Kafka does.
                _ => continue,
            }
            if d.remaining() != 0 {
                return Err(CorruptRecord("tagged field longer than its type"));
            }
        }
        Ok(())
    }
}

fn put_partitions_compact(out: &mut Vec<u8>, partitions: Option<&Partitions>) {
    let Some(partitions) = partitions else {
        out.push(0); // null
        return;
    };
    put_uvarint(out, partitions.len() as u64 + 1);
    for (topic, ids) in partitions {
        put_compact_str(out, topic);
        put_uvarint(out, ids.len() as u64 + 1);
        for p in ids {
            out.extend_from_slice(&p.to_be_bytes());
        }
        out.push(0); // no tagged fields
    }
}

fn put_partitions_v0(out: &mut Vec<u8>, partitions: Option<&Partitions>) {
    let Some(partitions) = partitions else {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return;
    };
    out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for (topic, ids) in partitions {
        put_str(out, topic);
        out.extend_from_slice(&(ids.len() as i32).to_be_bytes());
        for p in ids {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
}

/// The smallest encoded topic entry: compact string, compact array, tagged fields (1 byte each).
const MIN_COMPACT_TOPIC: usize = 3;
/// The smallest encoded topic entry of version 0: an `i16` length and an `i32` count.
const MIN_V0_TOPIC: usize = 6;

fn read_partitions_compact(r: &mut Reader<'_>) -> Result<Partitions, CorruptRecord> {
    let mut out = Partitions::new();
    let Some(topics) = r.compact_len(MIN_COMPACT_TOPIC)? else {
        return Ok(out);
    };
    for _ in 0..topics {
        let topic = r.compact_str()?;
        let count = r.compact_len(4)?.ok_or(CorruptRecord("null partition array"))?;
        let ids = out.entry(topic).or_default();
        for _ in 0..count {
            ids.insert(r.i32()?);
        }
        r.skip_tagged_fields()?;
    }
    Ok(out)
}

fn read_partitions_v0(r: &mut Reader<'_>) -> Result<Partitions, CorruptRecord> {
    let mut out = Partitions::new();
    let Some(topics) = r.len_i32(MIN_V0_TOPIC)? else {
        return Ok(out);
    };
    for _ in 0..topics {
        let topic = r.str()?;
        let count = r.len_i32(4)?.ok_or(CorruptRecord("null partition array"))?;
        let ids = out.entry(topic).or_default();
        for _ in 0..count {
            ids.insert(r.i32()?);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "record/tests.rs"]
mod tests;
