//! A deterministic simulation of one partition replicated on a few brokers plus the active
//! controller, driven by a seeded scheduler. It runs the production decision code — this
//! crate's [`Leader`](crate::Leader) and [`truncation_offset`](crate::truncation_offset), and
//! `nurt-metadata`'s controller (`register`, `Sessions`, `alter_isr`, `fence`, `unfence`,
//! `create_topic`) over a real `MetadataImage` — wired the way `nurt-broker` wires them
//! (`replica.rs`, `replica_fetcher.rs`, `isr.rs`, `handlers/{fetch,produce}.rs`), and checks
//! safety invariants after every step (`check.rs`) and convergence at the end
//! (`convergence.rs`). `world.rs` is the scheduler, `faults.rs` the faults (random and
//! scripted), `node.rs` / `leader_side.rs` / `follower_side.rs` a broker, `controller.rs` the
//! active controller, `client.rs` the producer, `network.rs` the links.
//!
//! Modelled: brokers that register, heartbeat, are fenced and unfenced, host the partition
//! once unfenced, lead or follow it as their (delayed) metadata image says; followers'
//! fetch loops (one request at a time, long polls, timeouts, backoff), `DivergingEpoch`
//! truncation, high watermarks propagated with fetch answers and checkpointed; AlterPartition
//! with retries; acks=all produces with `min.insync.replicas`; SIGKILL (the log and its epoch
//! history survive, memory does not; restart from the checkpointed high watermark), pauses,
//! message loss, delay, reordering and duplication, cut links, partitions, controller
//! failover (sessions restart).
//!
//! Not modelled: the bytes (a record is an (epoch, value) pair, one per batch), power loss
//! (unsynced data lost: `nurt-log`'s own power-loss tests cover it), the metadata quorum
//! itself (one always-available log; a failover keeps it), log start offsets, retention and
//! compaction, reassignment and preferred or unclean elections on request, idempotent
//! producers, consumers, several partitions sharing a fetch, clock skew between brokers,
//! and how tokio schedules tasks (a woken produce waiter checks at once).
//!
//! Test code only (`lib.rs` compiles it under `cfg(test)`). Replay a failing seed with
//! `NURT_SIM_SEED=<seed> cargo test -p nurt-replication sim`.

mod check;
mod client;
mod controller;
mod convergence;
mod faults;
mod follower_side;
mod leader_side;
mod model_log;
mod msg;
mod network;
mod node;
mod report;
use crate::rng;
mod world;

#[cfg(test)]
mod tests;

pub use faults::Script;
pub use report::{Counts, Summary};
pub use world::run;

/// Timings of the simulated cluster, in simulated milliseconds: the broker's defaults scaled
/// down about three times (a short run then sees many elections), keeping their ratios — in
/// particular a follower waits for a fetch answer (`wait + 30 s` in `replica_fetcher.rs`)
/// and a controller op (`FORWARD_TIMEOUT` 10 s) longer than a broker session lasts (9 s).
#[derive(Debug, Clone)]
pub struct Timings {
    /// `broker.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i64,
    /// How often a registered but fenced broker heartbeats while it joins (`Broker::join`).
    pub join_heartbeat_interval_ms: i64,
    /// `broker.session.timeout.ms`
    pub session_timeout_ms: i64,
    /// `replica.lag.time.max.ms`
    pub replica_lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`: how long a leader holds a fetch that finds no records.
    pub fetch_wait_max_ms: i64,
    /// How long a follower waits for an answer beyond the wait before dropping the connection.
    pub fetch_response_timeout_ms: i64,
    /// `replica.fetch.backoff.ms`
    pub fetch_backoff_ms: i64,
    /// Records per fetch answer (stands for `replica.fetch.max.bytes`).
    pub fetch_max_entries: usize,
    /// `replica.high.watermark.checkpoint.interval.ms`
    pub checkpoint_interval_ms: i64,
    /// How often a broker asks the quorum for metadata it has not applied.
    pub metadata_fetch_interval_ms: i64,
    /// The active controller's clock (session expiry).
    pub controller_tick_ms: i64,
    /// A controller op forwarded without an answer is sent again after this (`FORWARD_TIMEOUT`).
    pub forward_timeout_ms: i64,
    /// A controller op fails after this (`OP_TIMEOUT`).
    pub op_timeout_ms: i64,
    /// The produce request's `timeout_ms`.
    pub produce_timeout_ms: i64,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 500,
            join_heartbeat_interval_ms: 200,
            session_timeout_ms: 3_000,
            replica_lag_time_max_ms: 10_000,
            fetch_wait_max_ms: 500,
            fetch_response_timeout_ms: 10_000,
            fetch_backoff_ms: 100,
            fetch_max_entries: 8,
            checkpoint_interval_ms: 1_000,
            metadata_fetch_interval_ms: 100,
            controller_tick_ms: 250,
            forward_timeout_ms: 3_300,
            op_timeout_ms: 5_000,
            produce_timeout_ms: 10_000,
        }
    }
}

impl Timings {
    /// A seed's own timings: the ones whose ratios decide races drawn from wide ranges
    /// (from a tenth to twice the base value), the rest kept.
    fn vary(&self, rng: &mut rng::Rng) -> Self {
        let mut draw = |base: i64| rng.between((base / 10).max(1), base * 2);
        Self {
            session_timeout_ms: draw(self.session_timeout_ms).max(500),
            replica_lag_time_max_ms: draw(self.replica_lag_time_max_ms),
            fetch_wait_max_ms: draw(self.fetch_wait_max_ms),
            fetch_response_timeout_ms: draw(self.fetch_response_timeout_ms),
            forward_timeout_ms: draw(self.forward_timeout_ms),
            metadata_fetch_interval_ms: draw(self.metadata_fetch_interval_ms),
            checkpoint_interval_ms: draw(self.checkpoint_interval_ms),
            ..self.clone()
        }
        .with_consistent_bounds()
    }

    /// Keeps relations the broker relies on: heartbeats well within the session, the op
    /// timeout beyond one forward attempt.
    fn with_consistent_bounds(mut self) -> Self {
        self.heartbeat_interval_ms = (self.session_timeout_ms / 6).max(10);
        self.op_timeout_ms = self.op_timeout_ms.max(self.forward_timeout_ms + 100);
        self
    }
}

/// How the broker shell around the state machines behaves where `nurt-broker` could do
/// either (each flag names what the broker does today and what the fix would be).
#[derive(Debug, Clone)]
pub struct BrokerModel {
    /// `replica_fetcher::apply` truncates on a `DivergingEpoch` (or OFFSET_OUT_OF_RANGE)
    /// answer only if the partition still follows that leader in the leader epoch the fetch
    /// was sent in, as it already does for appends (Kafka's fetcher drops such answers).
    /// `false` models the broker as written: it truncates whatever the partition's role is
    /// now, even when this replica has become the leader meanwhile.
    pub truncate_only_in_fetched_epoch: bool,
    /// `isr.rs` handles AlterPartition outcomes as Kafka does: a definite refusal forgets the
    /// proposal (`Leader::proposal_refused`, only if it is still the one in flight), a stale
    /// epoch keeps it until the image settles it, and an attempt without an answer is sent
    /// again for as long as the proposal is in flight. `false` models the broker as written:
    /// any answer but "applied", or `OP_TIMEOUT` without one, calls `proposal_failed`.
    pub isr_outcomes_like_kafka: bool,
}

impl Default for BrokerModel {
    fn default() -> Self {
        Self {
            truncate_only_in_fetched_epoch: true,
            isr_outcomes_like_kafka: true,
        }
    }
}

impl BrokerModel {
    /// `nurt-broker` as written today.
    pub fn as_written() -> Self {
        Self {
            truncate_only_in_fetched_epoch: false,
            isr_outcomes_like_kafka: false,
        }
    }
}

/// What one run simulates.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Brokers 1..=brokers; the topic has one partition on `replication_factor` of them.
    pub brokers: i32,
    pub replication_factor: i32,
    /// `min.insync.replicas` for the client's acks=all produces.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`
    pub unclean_leader_election: bool,
    /// Simulated time with faults, then time to heal with none.
    pub chaos_ms: i64,
    pub heal_ms: i64,
    pub timings: Timings,
    /// Each seed also draws its own lag time, session timeout, fetch and controller-op
    /// timeouts and metadata delay around `timings` (see `Timings::vary`).
    pub vary_timings: bool,
    pub broker: BrokerModel,
    /// Keep a line per step (for replays and the determinism test; slower).
    pub record_trace: bool,
    /// A scripted scenario instead of random faults.
    pub script: Option<Script>,
    /// A deliberate bug in the leader, to show the invariants catch it.
    pub(crate) leader_fault: Option<crate::leader::InjectedFault>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            brokers: 3,
            replication_factor: 3,
            min_insync_replicas: 2,
            unclean_leader_election: false,
            chaos_ms: 20_000,
            heal_ms: 20_000,
            timings: Timings::default(),
            vary_timings: true,
            broker: BrokerModel::default(),
            record_trace: false,
            script: None,
            leader_fault: None,
        }
    }
}

/// The simulated topic (one partition, index 0).
const TOPIC: &str = "sim";
const TOPIC_ID: nurt_metadata::TopicId = [7; 16];
