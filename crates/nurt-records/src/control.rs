//! Control records: the transaction markers (KIP-98) a transaction coordinator has written to
//! every partition of a transaction to end it.
//!
//! A marker is the only record of a control batch (attributes: transactional and control set,
//! uncompressed, base sequence -1, the producer's id and epoch). Its key is `version i16 = 0,
//! type i16` (0 abort, 1 commit; Kafka's `ControlRecordType`), its value `version i16 = 0,
//! coordinator epoch i32` (Kafka's `EndTransactionMarker`). Readers accept newer value versions
//! by reading the fields they know, as Kafka does.

use crate::batch::BatchHeader;
use crate::builder::BatchBuilder;
use crate::record::decode_batch;
use crate::{Compression, RecordsError};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;
const ABORT: i16 = 0;
const COMMIT: i16 = 1;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    Abort,
    Commit,
}

/// An end-of-transaction marker: its outcome and the coordinator epoch that wrote it (used to
/// fence markers from a coordinator that lost its role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub control_type: ControlType,
    pub coordinator_epoch: i32,
}

impl EndTxnMarker {
    /// The control record's key.
    pub fn key(&self) -> [u8; 4] {
        let kind = match self.control_type {
            ControlType::Abort => ABORT,
            ControlType::Commit => COMMIT,
        };
        let mut key = [0u8; 4];
        key[..2].copy_from_slice(&KEY_VERSION.to_be_bytes());
        key[2..].copy_from_slice(&kind.to_be_bytes());
        key
    }

    /// The control record's value.
    pub fn value(&self) -> [u8; 6] {
        let mut value = [0u8; 6];
        value[..2].copy_from_slice(&VALUE_VERSION.to_be_bytes());
        value[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        value
    }

    /// Parses a control record. `Ok(None)` for a control record that is not a transaction
    /// marker (Kafka has others, e.g. the KRaft leader-change record, type 2).
    pub fn parse(key: &[u8], value: &[u8]) -> Result<Option<Self>, RecordsError> {
        if key.len() < 4 {
            return Err(RecordsError::Invalid("control record key shorter than 4 bytes"));
        }
        let control_type = match i16::from_be_bytes([key[2], key[3]]) {
            ABORT => ControlType::Abort,
            COMMIT => ControlType::Commit,
            _ => return Ok(None),
        };
        if value.len() < 6 {
            return Err(RecordsError::Invalid("transaction marker value shorter than 6 bytes"));
        }
        let version = i16::from_be_bytes([value[0], value[1]]);
        if version < 0 {
            return Err(RecordsError::Invalid("negative transaction marker version"));
        }
        let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
        Ok(Some(Self {
            control_type,
            coordinator_epoch,
        }))
    }
}

/// Builds the control batch holding `marker` for a producer (base offset 0, leader epoch -1
/// until the log stamps them).
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTxnMarker,
    timestamp_ms: i64,
) -> Result<Vec<u8>, RecordsError> {
    // Markers carry no sequence (-1): they are not part of the producer's idempotent stream.
    let mut b = BatchBuilder::new(Compression::None, timestamp_ms)
        .transactional(producer_id, producer_epoch, -1)
        .control();
    b.push(timestamp_ms, Some(&marker.key()), Some(&marker.value()), &[]);
    b.build()
}

/// The marker of a control batch (whole batch bytes, CRC checked). `Ok(None)` when the batch
/// is not a control batch, is empty (compaction removed its record) or holds another kind of
/// control record.
pub fn parse_marker_batch(batch: &[u8]) -> Result<Option<EndTxnMarker>, RecordsError> {
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() || header.record_count == 0 {
        return Ok(None);
    }
    // A marker batch is a few dozen bytes; the bound only guards against a damaged one.
    let (_, records) = decode_batch(batch, 1 << 16)?;
    let Some(record) = records.first() else {
        return Ok(None);
    };
    match (&record.key, &record.value) {
        (Some(key), Some(value)) => EndTxnMarker::parse(key, value),
        _ => Err(RecordsError::Invalid("control record without key or value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate;

    #[test]
    fn marker_batches_round_trip_with_kafkas_layout() {
        for control_type in [ControlType::Abort, ControlType::Commit] {
            let marker = EndTxnMarker {
                control_type,
                coordinator_epoch: 7,
            };
            let bytes = marker_batch(42, 3, marker, 1_000).unwrap();
            let header = validate(&bytes).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
            assert_eq!((header.base_sequence, header.record_count), (-1, 1));
            assert_eq!(header.compression().unwrap(), Compression::None);
            assert_eq!(parse_marker_batch(&bytes).unwrap(), Some(marker));
        }
        let commit = EndTxnMarker {
            control_type: ControlType::Commit,
            coordinator_epoch: 0x0102_0304,
        };
        assert_eq!(commit.key(), [0, 0, 0, 1]);
        assert_eq!(commit.value(), [0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn other_control_records_and_data_batches_are_not_markers() {
        assert_eq!(EndTxnMarker::parse(&[0, 0, 0, 2], &[0, 0]).unwrap(), None);
        assert!(EndTxnMarker::parse(&[0, 0], &[]).is_err());
        assert!(EndTxnMarker::parse(&[0, 0, 0, 0], &[0, 0, 1]).is_err());
        // A newer value version with extra (tagged) bytes still reads.
        let marker = EndTxnMarker::parse(&[0, 0, 0, 0], &[0, 1, 0, 0, 0, 9, 0])
            .unwrap()
            .unwrap();
        assert_eq!(marker.coordinator_epoch, 9);
        let mut data = BatchBuilder::new(Compression::None, 0).transactional(1, 0, 0);
        data.push(0, None, Some(b"v"), &[]);
        let data = data.build().unwrap();
        assert!(BatchHeader::parse(&data).unwrap().is_transactional());
        assert_eq!(parse_marker_batch(&data).unwrap(), None);
    }
}
