//! A topic's effective configs as the partition needs them, resolved from overrides, the
//! broker's static values and Kafka's defaults.

use nurt_log::LogConfig;
use nurt_metadata::TopicConfigs;
use nurt_records::Compression;

/// Topic settings of one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` contains `delete`.
    pub delete: bool,
    /// `cleanup.policy` contains `compact`.
    pub compact: bool,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    /// `compression.type`: `None` keeps what producers send.
    pub compression: Option<Compression>,
    /// `min.insync.replicas`: an acks=all produce needs this many in-sync replicas.
    pub min_insync_replicas: usize,
    pub log: LogConfig,
}

fn codec(name: &str) -> Option<Compression> {
    Some(match name {
        "uncompressed" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => return None,
    })
}

impl TopicSettings {
    /// Resolves the effective topic configs.
    pub fn from_configs(c: &TopicConfigs<'_>) -> Self {
        let clamp_u32 = |v: i64| v.clamp(0, i64::from(i32::MAX)) as u32;
        let policy = c.string("cleanup.policy");
        Self {
            max_message_bytes: c.long("max.message.bytes").max(0) as usize,
            log_append_time: c.string("message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms: c.long("message.timestamp.before.max.ms"),
            timestamp_after_max_ms: c.long("message.timestamp.after.max.ms"),
            delete: policy.split(',').any(|p| p.trim() == "delete"),
            compact: policy.split(',').any(|p| p.trim() == "compact"),
            retention_ms: c.long("retention.ms"),
            retention_bytes: c.long("retention.bytes"),
            delete_retention_ms: c.long("delete.retention.ms"),
            min_compaction_lag_ms: c.long("min.compaction.lag.ms"),
            max_compaction_lag_ms: c.long("max.compaction.lag.ms"),
            min_cleanable_dirty_ratio: c.string("min.cleanable.dirty.ratio").trim().parse().unwrap_or(0.5),
            compression: codec(c.string("compression.type").trim()),
            min_insync_replicas: c.long("min.insync.replicas").clamp(1, i64::from(i32::MAX)) as usize,
            log: LogConfig {
                segment_bytes: clamp_u32(c.long("segment.bytes")),
                segment_ms: c.long("segment.ms"),
                index_interval_bytes: clamp_u32(c.long("index.interval.bytes")),
                flush_messages: c.long("flush.messages"),
                flush_ms: c.long("flush.ms"),
            },
        }
    }
}
