//! Any bytes as a produced record set: validation and record decoding (every codec) return
//! errors, never panic, and never expand beyond their bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nurt_records::batch::{self, Batches};
use nurt_records::record::decode_batch;

const DECOMPRESSED_BYTES_MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = batch::validate(data) {
        assert!(header.total_bytes() <= data.len());
        if let Ok((_, records)) = decode_batch(data, DECOMPRESSED_BYTES_MAX) {
            assert_eq!(records.len(), header.record_count as usize);
        }
    }
    for b in Batches::new(data) {
        if let Ok((h, raw)) = b {
            assert_eq!(raw.len(), h.total_bytes());
        }
    }
    // The codecs straight on the input, as if it were a compressed records section.
    for id in 1..=4u8 {
        let codec = nurt_records::Compression::from_id(id).expect("known codec ids");
        if let Ok(out) = nurt_records::codec::decompress(codec, data, DECOMPRESSED_BYTES_MAX) {
            assert!(out.len() <= DECOMPRESSED_BYTES_MAX);
        }
    }
});
