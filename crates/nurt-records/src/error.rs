//! The one error type of this crate.

/// What can be wrong with a record batch or its records.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordsError {
    /// Fewer bytes than a batch header, or a length that runs past the buffer.
    #[error("record batch truncated: {0}")]
    Truncated(&'static str),
    /// Magic byte other than 2: only record batch v2 is stored.
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    UnsupportedMagic(i8),
    /// The stored CRC-32C does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// A field that is structurally impossible (negative count, bad length, bad delta...).
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
    /// The compression codec id is not one of Kafka's.
    #[error("unknown compression codec id {0}")]
    UnknownCodec(u8),
    /// Decompressed data would exceed the allowed bound (zip bomb or oversized batch).
    #[error("decompressed size exceeds the limit of {limit_bytes} bytes")]
    DecompressedTooLarge { limit_bytes: usize },
    /// The codec itself rejected the data.
    #[error("{codec} decompression failed: {reason}")]
    Codec { codec: &'static str, reason: String },
}
