//! Builds record batches v2: for the CLI producer, the metadata log and tests.

use crate::batch::{compute_crc, BATCH_HEADER_BYTES};
use crate::varint::{varint_len, write_varint, write_varlong};
use crate::{codec, Compression, RecordHeader, RecordsError};

/// Attribute bit 4: the batch belongs to a transaction.
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
/// Attribute bit 5: the batch holds control records (transaction markers).
pub const CONTROL_FLAG: i16 = 0x20;

/// Accumulates records, then encodes one batch with base offset 0.
#[derive(Debug)]
pub struct BatchBuilder {
    compression: Compression,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    records: Vec<u8>,
    count: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// Attribute bits beyond the codec: transactional (0x10), control (0x20).
    flags: i16,
}

impl BatchBuilder {
    /// A builder whose timestamps are deltas from `base_timestamp_ms`.
    pub fn new(compression: Compression, base_timestamp_ms: i64) -> Self {
        Self {
            compression,
            base_timestamp_ms,
            max_timestamp_ms: base_timestamp_ms,
            records: Vec::new(),
            count: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            flags: 0,
        }
    }

    /// Marks the batch as idempotent (KIP-98) with this producer id, epoch and first sequence.
    pub fn idempotent(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of a transaction (KIP-98, attribute bit 4) of this producer.
    pub fn transactional(self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        let mut b = self.idempotent(producer_id, producer_epoch, base_sequence);
        b.flags |= TRANSACTIONAL_FLAG;
        b
    }

    /// Marks the batch as a control batch (attribute bit 5): its records are markers, not data.
    pub(crate) fn control(mut self) -> Self {
        self.flags |= CONTROL_FLAG;
        self
    }

    /// Records added so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed bytes of the records added so far.
    pub fn records_bytes(&self) -> usize {
        self.records.len()
    }

    /// Appends one record.
    pub fn push(&mut self, timestamp_ms: i64, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[RecordHeader]) {
        let mut body = Vec::with_capacity(16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        body.push(0); // record attributes: unused
        write_varlong(&mut body, timestamp_ms.saturating_sub(self.base_timestamp_ms));
        write_varint(&mut body, self.count);
        put_nullable(&mut body, key);
        put_nullable(&mut body, value);
        write_varint(&mut body, headers.len() as i32);
        for h in headers {
            put_nullable(&mut body, Some(&h.key));
            put_nullable(&mut body, h.value.as_deref());
        }
        self.records.reserve(body.len() + varint_len(body.len() as i64));
        write_varint(&mut self.records, body.len() as i32);
        self.records.extend_from_slice(&body);
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        self.count += 1;
    }

    /// Encodes the batch (base offset 0, leader epoch -1 until the broker stamps it).
    pub fn build(&self) -> Result<Vec<u8>, RecordsError> {
        let payload = codec::compress(self.compression, &self.records)?;
        let total = BATCH_HEADER_BYTES + payload.len();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((total - 12) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(2);
        out.extend_from_slice(&0u32.to_be_bytes()); // CRC, filled below
        out.extend_from_slice(&(i16::from(self.compression.id()) | self.flags).to_be_bytes());
        out.extend_from_slice(&(self.count - 1).max(0).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&payload);
        let crc = compute_crc(&out);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

/// Appends a varint length (-1 for null) and the bytes.
pub(crate) fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{self, set_base_offset, set_log_append_time, Batches};
    use crate::record::decode_batch;
    use proptest::prelude::*;

    fn codec_strategy() -> impl Strategy<Value = Compression> {
        prop_oneof![
            Just(Compression::None),
            Just(Compression::Gzip),
            Just(Compression::Snappy),
            Just(Compression::Lz4),
            Just(Compression::Zstd),
        ]
    }

    proptest! {
        #[test]
        fn built_batches_validate_and_decode(
            codec in codec_strategy(),
            recs in proptest::collection::vec(
                (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))), 1..50),
            base_offset in 0i64..1_000_000,
        ) {
            let mut b = BatchBuilder::new(codec, 1_700_000_000_000);
            for (i, (k, v)) in recs.iter().enumerate() {
                b.push(1_700_000_000_000 + i as i64, k.as_deref(), v.as_deref(), &[]);
            }
            let mut bytes = b.build().unwrap();
            set_base_offset(&mut bytes, base_offset);
            let header = batch::validate(&bytes).unwrap();
            prop_assert_eq!(header.record_count as usize, recs.len());
            prop_assert_eq!(header.last_offset(), base_offset + recs.len() as i64 - 1);
            let (_, decoded) = decode_batch(&bytes, 1 << 24).unwrap();
            for (i, (r, (k, v))) in decoded.iter().zip(recs.iter()).enumerate() {
                prop_assert_eq!(r.offset, base_offset + i as i64);
                prop_assert_eq!(&r.key, k);
                prop_assert_eq!(&r.value, v);
            }
        }

        #[test]
        fn any_flipped_byte_after_the_epoch_is_caught(pos in 16usize..200, flip in 1u8..=255) {
            let mut b = BatchBuilder::new(Compression::None, 0);
            for i in 0..10u8 {
                b.push(0, Some(&[i]), Some(&[i; 15]), &[]);
            }
            let mut bytes = b.build().unwrap();
            let pos = pos % bytes.len();
            prop_assume!(pos >= 16);
            bytes[pos] ^= flip;
            prop_assert!(batch::validate(&bytes).is_err());
        }
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let mut b = BatchBuilder::new(Compression::None, 5);
        b.push(5, None, Some(b"v"), &[]);
        let mut bytes = b.build().unwrap();
        set_log_append_time(&mut bytes, 99);
        let h = batch::validate(&bytes).unwrap();
        assert_eq!(h.max_timestamp, 99);
        assert_eq!(h.timestamp_type(), crate::TimestampType::LogAppendTime);
    }

    #[test]
    fn batches_iterator_stops_at_partial_tail() {
        let mut b = BatchBuilder::new(Compression::None, 0);
        b.push(0, None, Some(b"abc"), &[]);
        let one = b.build().unwrap();
        let mut buf = one.clone();
        buf.extend_from_slice(&one);
        buf.extend_from_slice(&one[..30]);
        assert_eq!(Batches::new(&buf).count(), 2);
    }
}
