//! Kafka record batches (magic v2, KIP-98) as they travel on the wire and sit on disk.
//!
//! The broker's hot path never decodes individual records: it reads the fixed 61-byte batch
//! header ([`BatchHeader`]), checks the CRC-32C, and rewrites the base offset and leader epoch in
//! place. Per-record decoding ([`record`]) and codecs ([`codec`]) exist for the CLI, compaction and
//! validation paths that need them.

pub mod batch;
pub mod builder;
pub mod codec;
pub mod control;
pub mod error;
pub mod record;
pub mod rewrite;
pub mod varint;
pub mod wire;

pub use batch::{BatchHeader, Batches, Compression, TimestampType, BATCH_HEADER_BYTES};
pub use builder::BatchBuilder;
pub use control::{ControlType, EndTxnMarker};
pub use error::RecordsError;
pub use record::{Record, RecordHeader};
