//! Group coordination: the classic protocol ([`classic`]) and KIP-848's consumer protocol
//! ([`consumer`]) as sans-IO state machines, committed offsets ([`offsets`]) and the records
//! that persist them in Kafka's `__consumer_offsets` format ([`record`]).
//!
//! Nothing here reads a clock, opens a file or awaits: time, fresh member ids and topic
//! metadata come in as arguments; answers and records to persist go out.

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod coordinator;
pub mod error;
pub mod offsets;
pub mod record;
pub mod subscription;

pub use coordinator::{Group, GroupCoordinator, Output, Undo};
pub use error::GroupError;
pub use record::GroupRecord;

/// Identifies a delayed request so its answer can be routed back.
pub type Token = u64;

/// A topic id (Kafka's UUID bytes).
pub type TopicId = [u8; 16];

/// An answer that may have waited for a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Join(classic::JoinResponse),
    Sync(classic::SyncResponse),
}

impl Completion {
    /// The same answer turned into `error` (when the records behind it were not persisted).
    pub fn failed(self, error: GroupError) -> Self {
        match self {
            Completion::Join(j) => Completion::Join(classic::JoinResponse {
                error: Some(error),
                generation_id: -1,
                member_id: j.member_id,
                ..Default::default()
            }),
            Completion::Sync(_) => Completion::Sync(classic::SyncResponse {
                error: Some(error),
                ..Default::default()
            }),
        }
    }
}

/// Group settings, by their Kafka broker config names.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i64,
    /// `group.consumer.heartbeat.interval.ms`
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`
    pub consumer_session_timeout_ms: i64,
    /// `offsets.retention.minutes`, in ms
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_session_timeout_ms: 45_000,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_offsets_tests;
