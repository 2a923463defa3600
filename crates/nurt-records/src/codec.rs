//! Compression codecs of record batches, each bounded in how far it may expand.
//!
//! Snappy arrives in two shapes: librdkafka sends raw snappy blocks, the Java client the
//! xerial framing (a magic header then length-prefixed blocks); both are decoded. LZ4 is the
//! frame format. Every decoder stops once the output passes `limit_bytes`.

use std::io::{Read, Write};

use crate::{Compression, RecordsError};

const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];

fn codec_err(codec: &'static str, e: impl std::fmt::Display) -> RecordsError {
    RecordsError::Codec {
        codec,
        reason: e.to_string(),
    }
}

/// Reads `reader` to the end, failing if it yields more than `limit_bytes`.
fn read_bounded(reader: impl Read, codec: &'static str, limit_bytes: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    let read = reader
        .take(limit_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| codec_err(codec, e))?;
    if read > limit_bytes {
        return Err(RecordsError::DecompressedTooLarge { limit_bytes });
    }
    Ok(out)
}

/// The magic number each framed codec's data starts with. The decoders treat input that ends
/// where a frame could start as a clean end of stream, so garbage of a few bytes would read as
/// no records; checking the magic first makes it the error it is.
fn magic(codec: Compression) -> &'static [u8] {
    match codec {
        Compression::Gzip => &[0x1f, 0x8b],
        Compression::Lz4 => &[0x04, 0x22, 0x4d, 0x18],
        Compression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
        Compression::None | Compression::Snappy => &[],
    }
}

/// Decompresses the records section of a batch.
pub fn decompress(codec: Compression, data: &[u8], limit_bytes: usize) -> Result<Vec<u8>, RecordsError> {
    if !data.starts_with(magic(codec)) {
        return Err(codec_err(
            codec.name(),
            "data does not start with the codec's magic number",
        ));
    }
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(data), "gzip", limit_bytes),
        Compression::Snappy => snappy_decompress(data, limit_bytes),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), "lz4", limit_bytes),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(data).map_err(|e| codec_err("zstd", e))?;
            read_bounded(decoder, "zstd", limit_bytes)
        }
    }
}

fn snappy_block(data: &[u8], limit_bytes: usize, out: &mut Vec<u8>) -> Result<(), RecordsError> {
    let len = snap::raw::decompress_len(data).map_err(|e| codec_err("snappy", e))?;
    if out.len() + len > limit_bytes {
        return Err(RecordsError::DecompressedTooLarge { limit_bytes });
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(data, &mut out[start..])
        .map_err(|e| codec_err("snappy", e))?;
    Ok(())
}

fn snappy_decompress(data: &[u8], limit_bytes: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        snappy_block(data, limit_bytes, &mut out)?;
        return Ok(out);
    }
    // xerial: magic(8) + version(4) + compatible version(4), then [len i32][block]...
    let mut rest = data.get(16..).ok_or(RecordsError::Truncated("xerial snappy header"))?;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(RecordsError::Truncated("xerial snappy block length"));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let block = rest
            .get(4..4 + len)
            .ok_or(RecordsError::Truncated("xerial snappy block"))?;
        snappy_block(block, limit_bytes, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// Compresses a records section with `codec` (lz4 as frames of 64 KiB blocks, as Kafka does).
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, RecordsError> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(|e| codec_err("gzip", e))?;
            enc.finish().map_err(|e| codec_err("gzip", e))
        }
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            .map_err(|e| codec_err("snappy", e)),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new().block_size(lz4_flex::frame::BlockSize::Max64KB);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            enc.write_all(data).map_err(|e| codec_err("lz4", e))?;
            enc.finish().map_err(|e| codec_err("lz4", e))
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).map_err(|e| codec_err("zstd", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    proptest! {
        #[test]
        fn every_codec_round_trips(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            for codec in ALL {
                let packed = compress(codec, &data).unwrap();
                prop_assert_eq!(decompress(codec, &packed, 1 << 20).unwrap(), data.clone());
            }
        }

        /// Random bytes are refused by every codec whose format starts with a magic number
        /// (gzip, lz4 frames, zstd) unless they happen to start with it; whatever any codec
        /// accepts stays within the bound.
        #[test]
        fn garbage_is_an_error_or_bounded(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            // The magic numbers as the formats' specifications give them.
            let magic: [(Compression, &[u8]); 3] = [
                (Compression::Gzip, &[0x1f, 0x8b]),
                (Compression::Lz4, &[0x04, 0x22, 0x4d, 0x18]),
                (Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
            ];
            for codec in ALL {
                match decompress(codec, &data, 1 << 16) {
                    Ok(out) => {
                        prop_assert!(out.len() <= 1 << 16);
                        let needs = magic.iter().find(|(c, _)| *c == codec).map(|(_, m)| *m);
                        prop_assert!(needs.is_none_or(|m| data.starts_with(m)), "{:?} accepted garbage", codec);
                    }
                    Err(_) => prop_assert!(codec != Compression::None),
                }
            }
        }
    }

    #[test]
    fn expansion_is_bounded() {
        let zeros = vec![0u8; 1 << 20];
        for codec in &ALL[1..] {
            let packed = compress(*codec, &zeros).unwrap();
            assert_eq!(
                decompress(*codec, &packed, 1000),
                Err(RecordsError::DecompressedTooLarge { limit_bytes: 1000 }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn xerial_snappy_is_decoded() {
        let data = b"hello hello hello xerial".repeat(10);
        let block = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
        framed.extend_from_slice(&block);
        assert_eq!(decompress(Compression::Snappy, &framed, 1 << 20).unwrap(), data);
    }
}
