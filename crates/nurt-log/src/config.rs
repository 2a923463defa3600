//! The per-log settings that shape segments and flushing (Kafka topic config names in docs).

/// Settings of one partition log. Defaults are Kafka's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u32,
    /// `segment.ms`: roll when the active segment is older than this.
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes of log between two offset index entries.
    pub index_interval_bytes: u32,
    /// `flush.messages`: fsync after this many messages (i64::MAX: leave it to the OS).
    pub flush_messages: i64,
    /// `flush.ms`: fsync when the oldest unflushed message is older than this.
    pub flush_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
        }
    }
}
