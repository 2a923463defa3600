//! Individual records inside a batch: decoded only off the hot path (CLI, compaction, checks).

use crate::batch::{validate, BatchHeader, BATCH_HEADER_BYTES};
use crate::codec;
use crate::varint::{read_varint, read_varlong};
use crate::RecordsError;

/// One header of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// One decoded record with its absolute offset and timestamp, and the deltas they come from
/// (kept so a rewrite reproduces them exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp_ms: i64,
    /// Offset delta from the batch's base offset, within `0..=last_offset_delta`.
    pub offset_delta: i32,
    /// Timestamp delta from the batch's base timestamp, as stored.
    pub timestamp_delta: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<RecordHeader>,
}

/// Decodes every record of a validated batch. `decompressed_bytes_max` bounds the memory a
/// compressed batch may expand to.
pub fn decode_batch(batch: &[u8], decompressed_bytes_max: usize) -> Result<(BatchHeader, Vec<Record>), RecordsError> {
    let header = validate(batch)?;
    let body = &batch[BATCH_HEADER_BYTES..header.total_bytes()];
    let plain;
    let mut rest: &[u8] = match header.compression()? {
        crate::Compression::None => body,
        codec_id => {
            plain = codec::decompress(codec_id, body, decompressed_bytes_max)?;
            &plain
        }
    };
    // Every record takes at least 7 bytes, so a count beyond that is a lie: bound the Vec by it.
    let count = (header.record_count as usize).min(rest.len() / 7 + 1);
    let mut records = Vec::with_capacity(count);
    for _ in 0..header.record_count {
        records.push(decode_record(&mut rest, &header)?);
    }
    Ok((header, records))
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], RecordsError> {
    if buf.len() < len {
        return Err(RecordsError::Truncated("record field"));
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}

fn nullable_bytes(buf: &mut &[u8]) -> Result<Option<Vec<u8>>, RecordsError> {
    let len = read_varint(buf)?;
    if len < 0 {
        return Ok(None);
    }
    Ok(Some(take(buf, len as usize)?.to_vec()))
}

fn decode_record(buf: &mut &[u8], header: &BatchHeader) -> Result<Record, RecordsError> {
    let length = read_varint(buf)?;
    if length < 0 {
        return Err(RecordsError::Invalid("negative record length"));
    }
    let mut body = take(buf, length as usize)?;
    let _attributes = take(&mut body, 1)?;
    let timestamp_delta = read_varlong(&mut body)?;
    let offset_delta = read_varint(&mut body)?;
    let key = nullable_bytes(&mut body)?;
    let value = nullable_bytes(&mut body)?;
    let header_count = read_varint(&mut body)?;
    if header_count < 0 {
        return Err(RecordsError::Invalid("negative header count"));
    }
    let mut headers = Vec::with_capacity((header_count as usize).min(body.len() / 2 + 1));
    for _ in 0..header_count {
        let key_len = read_varint(&mut body)?;
        if key_len < 0 {
            return Err(RecordsError::Invalid("null header key"));
        }
        let key = take(&mut body, key_len as usize)?.to_vec();
        let value = nullable_bytes(&mut body)?;
        headers.push(RecordHeader { key, value });
    }
    // Kafka's validator holds every record inside its batch's offset range.
    if !(0..=header.last_offset_delta).contains(&offset_delta) {
        return Err(RecordsError::Invalid("record offset delta outside its batch"));
    }
    // Client-supplied values: saturate, so debug and release builds agree.
    let timestamp_ms = match header.timestamp_type() {
        crate::TimestampType::LogAppendTime => header.max_timestamp,
        crate::TimestampType::CreateTime => header.base_timestamp.saturating_add(timestamp_delta),
    };
    Ok(Record {
        offset: header.base_offset.saturating_add(i64::from(offset_delta)),
        timestamp_ms,
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers,
    })
}
