//! Re-encoding a batch: dropping records (compaction) or changing its codec (a topic's
//! `compression.type`). Offsets, timestamps, producer fields and the last offset delta are
//! kept, so readers and idempotent producers see the same offsets as before.

use crate::batch::{compute_crc, BATCH_HEADER_BYTES};
use crate::builder::put_nullable;
use crate::record::{decode_batch, Record};
use crate::varint::{write_varint, write_varlong};
use crate::{codec, Compression, RecordsError, TimestampType};

/// Rewrites `batch` keeping the records `keep` accepts, compressed with `codec`. `None` when
/// no record is kept. Control batches are returned unchanged.
pub fn rewrite_batch(
    batch: &[u8],
    codec: Compression,
    decompressed_bytes_max: usize,
    mut keep: impl FnMut(&Record) -> bool,
) -> Result<Option<Vec<u8>>, RecordsError> {
    let (header, records) = decode_batch(batch, decompressed_bytes_max)?;
    if header.is_control() {
        return Ok(Some(batch[..header.total_bytes()].to_vec()));
    }
    let kept: Vec<&Record> = records.iter().filter(|r| keep(r)).collect();
    if kept.is_empty() {
        return Ok(None);
    }
    let mut body = Vec::with_capacity(batch.len());
    for r in &kept {
        let mut rec =
            Vec::with_capacity(16 + r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len));
        rec.push(0);
        let ts_delta = match header.timestamp_type() {
            TimestampType::CreateTime => r.timestamp_delta,
            TimestampType::LogAppendTime => 0,
        };
        write_varlong(&mut rec, ts_delta);
        write_varint(&mut rec, r.offset_delta);
        put_nullable(&mut rec, r.key.as_deref());
        put_nullable(&mut rec, r.value.as_deref());
        write_varint(&mut rec, r.headers.len() as i32);
        for h in &r.headers {
            put_nullable(&mut rec, Some(&h.key));
            put_nullable(&mut rec, h.value.as_deref());
        }
        write_varint(&mut body, rec.len() as i32);
        body.extend_from_slice(&rec);
    }
    let payload = codec::compress(codec, &body)?;
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + payload.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_BYTES]);
    let total = BATCH_HEADER_BYTES + payload.len();
    out[8..12].copy_from_slice(&((total - 12) as i32).to_be_bytes());
    let attributes = (header.attributes & !0x07) | i16::from(codec.id());
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    out.extend_from_slice(&payload);
    let crc = compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Some(out))
}

/// A batch with the same header fields (offsets, timestamps, producer) but no records: the
/// cleaner keeps one as the last batch of a segment so readers can move past the offsets
/// whose records were all removed.
pub fn empty_batch_like(batch: &[u8]) -> Result<Vec<u8>, RecordsError> {
    crate::BatchHeader::parse(batch)?;
    let mut out = batch[..BATCH_HEADER_BYTES].to_vec();
    out[8..12].copy_from_slice(&((BATCH_HEADER_BYTES - 12) as i32).to_be_bytes());
    let attributes = i16::from_be_bytes([out[21], out[22]]) & !0x07;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&0i32.to_be_bytes());
    let crc = compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{set_base_offset, validate};
    use crate::BatchBuilder;

    #[test]
    fn compaction_keeps_offsets_and_last_delta() {
        let mut b = BatchBuilder::new(Compression::Lz4, 1000).idempotent(7, 1, 10);
        for i in 0..10u8 {
            b.push(1000 + i64::from(i), Some(&[i % 3]), Some(&[i]), &[]);
        }
        let mut bytes = b.build().unwrap();
        set_base_offset(&mut bytes, 500);
        let out = rewrite_batch(&bytes, Compression::Zstd, 1 << 20, |r| r.offset % 2 == 0)
            .unwrap()
            .unwrap();
        let h = validate(&out).unwrap();
        assert_eq!(
            (
                h.base_offset,
                h.last_offset(),
                h.record_count,
                h.producer_id,
                h.base_sequence
            ),
            (500, 509, 5, 7, 10)
        );
        assert_eq!(h.compression().unwrap(), Compression::Zstd);
        let (_, records) = decode_batch(&out, 1 << 20).unwrap();
        assert_eq!(
            records.iter().map(|r| (r.offset, r.timestamp_ms)).collect::<Vec<_>>(),
            vec![(500, 1000), (502, 1002), (504, 1004), (506, 1006), (508, 1008)]
        );
        assert!(rewrite_batch(&bytes, Compression::None, 1 << 20, |_| false)
            .unwrap()
            .is_none());
    }
}
