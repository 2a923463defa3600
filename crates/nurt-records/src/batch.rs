//! The fixed 61-byte header of a record batch v2, and iteration over concatenated batches.
//!
//! Layout (big endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
//! magic i8 @16, crc u32 @17, attributes i16 @21, lastOffsetDelta i32 @23, baseTimestamp i64 @27,
//! maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51, baseSequence i32 @53,
//! recordCount i32 @57. The CRC-32C covers everything from `attributes` to the end, so the base
//! offset and the leader epoch can be rewritten without recomputing it.

use crate::RecordsError;

/// Bytes in a v2 batch header.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before `batchLength` counts: baseOffset + batchLength.
pub const LOG_OVERHEAD_BYTES: usize = 12;
const CRC_START: usize = 21;

const OFF_BASE_OFFSET: usize = 0;
const OFF_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORD_COUNT: usize = 57;

/// Compression codec of a batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec for attribute bits 0-2.
    pub fn from_id(id: u8) -> Result<Self, RecordsError> {
        Ok(match id {
            0 => Self::None,
            1 => Self::Gzip,
            2 => Self::Snappy,
            3 => Self::Lz4,
            4 => Self::Zstd,
            other => return Err(RecordsError::UnknownCodec(other)),
        })
    }

    /// The attribute bits for this codec.
    pub fn id(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// Kafka's name for the codec (`compression.type` values).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

/// Whether timestamps were set by the producer or by the broker (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// A parsed view of the 61-byte header. Parsing checks only that the bytes are there;
/// [`BatchHeader::validate`] checks the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the `batchLength` field (total batch size is this + 12).
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordsError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(RecordsError::Truncated("batch header"));
        }
        Ok(Self {
            base_offset: be_i64(bytes, OFF_BASE_OFFSET),
            batch_length: be_i32(bytes, OFF_LENGTH),
            partition_leader_epoch: be_i32(bytes, OFF_LEADER_EPOCH),
            magic: bytes[OFF_MAGIC] as i8,
            crc: be_i32(bytes, OFF_CRC) as u32,
            attributes: be_i16(bytes, OFF_ATTRIBUTES),
            last_offset_delta: be_i32(bytes, OFF_LAST_OFFSET_DELTA),
            base_timestamp: be_i64(bytes, OFF_BASE_TIMESTAMP),
            max_timestamp: be_i64(bytes, OFF_MAX_TIMESTAMP),
            producer_id: be_i64(bytes, OFF_PRODUCER_ID),
            producer_epoch: be_i16(bytes, OFF_PRODUCER_EPOCH),
            base_sequence: be_i32(bytes, OFF_BASE_SEQUENCE),
            record_count: be_i32(bytes, OFF_RECORD_COUNT),
        })
    }

    /// Total bytes of the batch, header included. Only meaningful after a length check.
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD_BYTES + self.batch_length.max(0) as usize
    }

    /// Offset of the last record in the batch. Saturates: a header read off the wire or a
    /// damaged file may carry any base offset, and the answer must not depend on the build.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }

    /// The codec in attributes bits 0-2.
    pub fn compression(&self) -> Result<Compression, RecordsError> {
        Compression::from_id((self.attributes & 0x07) as u8)
    }

    /// Attribute bit 3.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & 0x08 != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Attribute bit 4.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// Attribute bit 5.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Checks everything but the CRC: magic, lengths, counts, codec. `available_bytes` is how many
    /// bytes the buffer holds from the start of this batch.
    pub fn validate_shape(&self, available_bytes: usize) -> Result<(), RecordsError> {
        if self.magic != 2 {
            return Err(RecordsError::UnsupportedMagic(self.magic));
        }
        if (self.batch_length as i64) < (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i64 {
            return Err(RecordsError::Invalid("batch length shorter than its header"));
        }
        if self.total_bytes() > available_bytes {
            return Err(RecordsError::Truncated("batch length runs past the data"));
        }
        if self.record_count < 0 || self.last_offset_delta < 0 {
            return Err(RecordsError::Invalid("negative record count or offset delta"));
        }
        // Compaction may remove records but keeps the last offset delta, so a stored batch
        // can cover more offsets than it has records, never fewer. (Produced batches are held
        // to equality by the broker.)
        if self.record_count > 0 && self.last_offset_delta < self.record_count - 1 {
            return Err(RecordsError::Invalid("last offset delta smaller than the record count"));
        }
        self.compression()?;
        Ok(())
    }
}

/// CRC-32C of a whole batch's checked region.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Validates shape and CRC of the batch at the start of `bytes`; returns its header.
pub fn validate(bytes: &[u8]) -> Result<BatchHeader, RecordsError> {
    let header = BatchHeader::parse(bytes)?;
    header.validate_shape(bytes.len())?;
    let computed = compute_crc(&bytes[..header.total_bytes()]);
    if computed != header.crc {
        return Err(RecordsError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Rewrites the base offset in place (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch in place (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Switches the batch to LogAppendTime with `max_timestamp_ms`, recomputing the CRC.
pub fn set_log_append_time(batch: &mut [u8], max_timestamp_ms: i64) {
    let attributes = be_i16(batch, OFF_ATTRIBUTES) | 0x08;
    batch[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Iterates over complete batches in a buffer of concatenated batches, yielding each batch's
/// header and bytes. Stops at the first incomplete batch (a fetch response may end with a
/// partial one); shape errors are yielded once, then iteration ends.
#[derive(Debug)]
pub struct Batches<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Batches<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            failed: false,
        }
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.len() < BATCH_HEADER_BYTES {
            return None;
        }
        let header = match BatchHeader::parse(self.rest) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        match header.validate_shape(self.rest.len()) {
            Ok(()) => {}
            Err(RecordsError::Truncated(_)) => return None,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        }
        let (batch, rest) = self.rest.split_at(header.total_bytes());
        self.rest = rest;
        Some(Ok((header, batch)))
    }
}
