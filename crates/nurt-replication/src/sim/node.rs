//! One simulated broker: what survives a crash (the log and its epoch history, the
//! high-watermark checkpoint, the metadata it had applied) and what does not (everything
//! else), its lifecycle as `Broker::join` runs it (register, heartbeat until unfenced, then
//! serve), metadata application and `reconcile` / `Partition::set_role`. The leader's and the
//! follower's halves of replication are in `leader_side.rs` and `follower_side.rs`.

use std::collections::{BTreeMap, BTreeSet};

use nurt_metadata::{MetadataImage, MetadataRecord};

use super::model_log::ModelLog;
use super::msg::{Addr, FetchRequest, Msg, Outbox, Timer};
use super::{SimConfig, TOPIC};
use crate::{IsrProposal, Leader, PartitionState};

/// Inputs a handler needs besides the node: the clock, the settings, and where outputs go.
pub struct Ctx<'a> {
    pub now: i64,
    pub cfg: &'a SimConfig,
    pub out: Outbox,
}

/// What the image says of the partition, as this replica last applied it (`ReplicaRole`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub ineligible: BTreeSet<i32>,
}

/// A follower fetch held by the leader until records arrive or the wait ends.
#[derive(Debug, Clone)]
pub struct Parked {
    pub from_incarnation: u64,
    pub request: FetchRequest,
}

/// An acks=all produce waiting for the high watermark (the purgatory).
#[derive(Debug, Clone)]
pub struct Waiter {
    pub client_incarnation: u64,
    pub request: u64,
    pub value: u64,
    pub last_offset: i64,
    pub deadline_ms: i64,
}

/// The fetch loop for one leader (`replica_fetcher::run`): one request at a time.
#[derive(Debug, Clone, Default)]
pub struct FetchLoop {
    /// The fetch awaiting an answer, and the leader epoch it was sent in.
    pub outstanding: Option<(u64, i32)>,
}

/// The partition once this broker hosts it (after joining).
#[derive(Debug, Default)]
pub struct Hosted {
    pub role: Option<Role>,
    pub leader: Option<Leader>,
    pub parked: Vec<Parked>,
    pub waiters: Vec<Waiter>,
    pub loops: BTreeMap<i32, FetchLoop>,
}

/// One `submit_isr_change` task: the proposal and when `Controller::submit` gives up.
#[derive(Debug, Clone)]
pub struct AlterOp {
    pub proposal: IsrProposal,
    pub deadline_ms: i64,
}

/// A broker process between a start and a crash.
#[derive(Debug)]
pub struct Running {
    pub image: MetadataImage,
    pub broker_epoch: i64,
    /// A Register is in flight (at start, or after a stale-epoch heartbeat answer).
    pub registering: bool,
    /// Unfenced once and serving (`Broker::join` returned).
    pub joined: bool,
    pub fenced: bool,
    pub hosted: Option<Hosted>,
    /// AlterPartition ops in flight (`isr.rs` spawns one task per proposal), by the id of
    /// their current attempt.
    pub alters: BTreeMap<u64, AlterOp>,
}

#[derive(Debug)]
pub struct Node {
    pub id: i32,
    /// Survives crashes (SIGKILL keeps the page cache), except its high watermark.
    pub log: ModelLog,
    pub checkpointed_high_watermark: i64,
    /// Metadata batches applied (the node's copy of the metadata log survives too).
    pub metadata_applied: usize,
    pub incarnation: u64,
    /// Correlation ids: unique across incarnations, so nothing is mistaken for an answer.
    next_id: u64,
    pub running: Option<Running>,
    /// Counts for the run's summary (not broker state).
    pub stats: NodeStats,
}

/// What a broker did, for the summaries that show what the runs exercise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Truncations on a `DivergingEpoch` that cut records.
    pub truncations: u64,
    /// Answers fetched in an epoch this replica no longer follows in (appends dropped,
    /// truncations dropped or — broker as written — applied).
    pub stale_answers: u64,
    /// ISR changes proposed, and forgotten as failed or refused.
    pub proposals: u64,
    pub proposals_forgotten: u64,
}

impl Node {
    pub fn new(id: i32) -> Self {
        Self {
            id,
            log: ModelLog::default(),
            checkpointed_high_watermark: 0,
            metadata_applied: 0,
            incarnation: 0,
            next_id: 0,
            running: None,
            stats: NodeStats::default(),
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A process start: replay the local metadata copy, register, start the metadata fetch.
    pub fn start(&mut self, metadata_log: &[Vec<MetadataRecord>], ctx: &mut Ctx) {
        self.incarnation += 1;
        self.log.forget_high_watermark();
        let mut image = MetadataImage::default();
        for record in metadata_log.iter().take(self.metadata_applied).flatten() {
            if let Err(e) = image.apply(record) {
                ctx.out
                    .impossible(format!("node {} cannot replay its metadata: {e}", self.id));
            }
        }
        self.running = Some(Running {
            image,
            broker_epoch: -1,
            registering: true,
            joined: false,
            fenced: true,
            hosted: None,
            alters: BTreeMap::new(),
        });
        ctx.out.send(Addr::Controller, Msg::Register);
        ctx.out.timer(ctx.cfg.timings.forward_timeout_ms, Timer::RegisterRetry);
        ctx.out.timer(0, Timer::MetadataFetch);
    }

    /// SIGKILL: everything in memory goes.
    pub fn crash(&mut self) {
        self.running = None;
    }

    pub fn hosted(&self) -> Option<&Hosted> {
        self.running.as_ref()?.hosted.as_ref()
    }

    pub fn leader(&self) -> Option<&Leader> {
        self.hosted()?.leader.as_ref()
    }

    pub fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx) {
        let Some(r) = self.running.as_mut() else { return };
        let t = &ctx.cfg.timings;
        match timer {
            Timer::RegisterRetry => {
                if r.registering {
                    ctx.out.send(Addr::Controller, Msg::Register);
                    ctx.out.timer(t.forward_timeout_ms, Timer::RegisterRetry);
                }
            }
            Timer::Heartbeat => {
                let msg = Msg::Heartbeat {
                    broker_epoch: r.broker_epoch,
                    metadata_offset: self.metadata_applied as i64,
                };
                ctx.out.send(Addr::Controller, msg);
                let every = if r.joined {
                    t.heartbeat_interval_ms
                } else {
                    t.join_heartbeat_interval_ms
                };
                ctx.out.timer(every, Timer::Heartbeat);
            }
            Timer::MetadataFetch => {
                let from = self.metadata_applied;
                ctx.out.send(Addr::Controller, Msg::MetadataFetch { from });
                ctx.out.timer(t.metadata_fetch_interval_ms, Timer::MetadataFetch);
            }
            Timer::CheckpointHighWatermark => {
                if r.hosted.is_some() {
                    self.checkpointed_high_watermark = self.log.high_watermark();
                }
                ctx.out.timer(t.checkpoint_interval_ms, Timer::CheckpointHighWatermark);
            }
            Timer::ShrinkIsr => {
                self.maybe_shrink_isr(ctx);
                let every = (ctx.cfg.timings.replica_lag_time_max_ms / 2).clamp(50, 60_000);
                ctx.out.timer(every, Timer::ShrinkIsr);
            }
            Timer::FetchLoop { leader } => self.fetch_loop_wakes(leader, ctx),
            Timer::FetchTimeout { leader, fetch_id } => self.fetch_timed_out(leader, fetch_id, ctx),
            Timer::ParkedDeadline { fetch_id, replica } => self.parked_deadline(fetch_id, replica, ctx),
            // `check_waiters` below answers whatever waited past its deadline.
            Timer::ProduceDeadline { .. } => {}
            Timer::AlterRetry { rpc } => self.alter_retry(rpc, ctx),
        }
        self.check_waiters(ctx);
    }

    pub fn on_message(&mut self, from: Addr, from_incarnation: u64, msg: Msg, ctx: &mut Ctx) {
        if self.running.is_none() {
            return;
        }
        match msg {
            Msg::Registered { broker_epoch } => self.registered(broker_epoch, ctx),
            Msg::HeartbeatAnswer { stale, fenced } => self.heartbeat_answered(stale, fenced, ctx),
            Msg::MetadataBatches { from, batches } => self.apply_metadata(from, batches, ctx),
            Msg::AlterAnswer { rpc, result } => self.alter_answered(rpc, result, ctx),
            Msg::Fetch(request) => {
                if let Addr::Node(_) = from {
                    self.serve_fetch(from_incarnation, request, ctx);
                }
            }
            Msg::FetchAnswer { fetch_id, answer } => {
                if let Addr::Node(leader) = from {
                    self.fetch_answered(leader, fetch_id, answer, ctx);
                }
            }
            Msg::Produce { request, value } => self.produce(from_incarnation, request, value, ctx),
            Msg::WhoLeads { request } => {
                // Clients are served only once the broker has joined (its listeners open then).
                let msg = match self.running.as_ref().filter(|r| r.joined) {
                    Some(r) => {
                        let leader = r.image.partition(TOPIC, 0).map_or(-1, |p| p.leader);
                        Msg::Leads { request, leader }
                    }
                    None => Msg::Refused { request },
                };
                ctx.out.reply(from, from_incarnation, msg);
            }
            // Messages only brokers send, or only clients read.
            Msg::Register
            | Msg::Heartbeat { .. }
            | Msg::AlterPartition { .. }
            | Msg::MetadataFetch { .. }
            | Msg::ProduceAnswer { .. }
            | Msg::Leads { .. }
            | Msg::Refused { .. } => {}
        }
        self.check_waiters(ctx);
    }

    fn registered(&mut self, broker_epoch: i64, ctx: &mut Ctx) {
        let Some(r) = self.running.as_mut() else { return };
        if !r.registering {
            return;
        }
        r.registering = false;
        r.broker_epoch = broker_epoch;
        if !r.joined {
            // `Broker::join`: heartbeat until the controller unfences this broker.
            ctx.out.timer(0, Timer::Heartbeat);
        }
    }

    fn heartbeat_answered(&mut self, stale: bool, fenced: bool, ctx: &mut Ctx) {
        let Some(r) = self.running.as_mut() else { return };
        if stale {
            if !r.registering {
                r.registering = true;
                ctx.out.send(Addr::Controller, Msg::Register);
                ctx.out.timer(ctx.cfg.timings.forward_timeout_ms, Timer::RegisterRetry);
            }
            return;
        }
        r.fenced = fenced;
        if !fenced && !r.joined {
            r.joined = true;
            let t = &ctx.cfg.timings;
            ctx.out.timer(t.checkpoint_interval_ms, Timer::CheckpointHighWatermark);
            ctx.out
                .timer((t.replica_lag_time_max_ms / 2).clamp(50, 60_000), Timer::ShrinkIsr);
            ctx.out.trace(|| format!("node {} joined", self.id));
            self.reconcile(ctx);
        }
    }

    /// Applies the batches this node has not applied yet, in order, then reconciles once
    /// (the broker's `reconcile_loop` wakes once for however many were applied).
    fn apply_metadata(&mut self, from: usize, batches: Vec<Vec<MetadataRecord>>, ctx: &mut Ctx) {
        let Some(r) = self.running.as_mut() else { return };
        let applied = self.metadata_applied;
        if from > applied || from + batches.len() <= applied {
            return;
        }
        for batch in batches.iter().skip(applied - from) {
            for record in batch {
                if let Err(e) = r.image.apply(record) {
                    ctx.out
                        .impossible(format!("node {} cannot apply a metadata record: {e}", self.id));
                }
            }
            self.metadata_applied += 1;
        }
        if r.joined {
            self.reconcile(ctx);
        }
    }

    /// `Broker::reconcile` for the simulated partition: open it (with the checkpointed high
    /// watermark) if this broker is a replica, and take the role the image gives it.
    fn reconcile(&mut self, ctx: &mut Ctx) {
        let Some(r) = self.running.as_mut() else { return };
        let Some(p) = r.image.partition(TOPIC, 0) else { return };
        if !p.replicas.contains(&self.id) {
            return;
        }
        let role = Role {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            ineligible: p.replicas.iter().copied().filter(|&b| !r.image.is_live(b)).collect(),
        };
        if r.hosted.is_none() {
            self.log.set_high_watermark(self.checkpointed_high_watermark);
            r.hosted = Some(Hosted::default());
        }
        let changed = r.hosted.as_ref().is_some_and(|h| h.role.as_ref() != Some(&role));
        if changed {
            self.set_role(role, ctx);
        }
        self.ensure_fetchers(ctx);
    }

    /// `Partition::set_role`: lead (keeping the bookkeeping while the leader epoch stays),
    /// or follow.
    fn set_role(&mut self, role: Role, ctx: &mut Ctx) {
        let Some(hosted) = self.running.as_mut().and_then(|r| r.hosted.as_mut()) else {
            return;
        };
        let state = PartitionState {
            leader_epoch: role.leader_epoch,
            partition_epoch: role.partition_epoch,
            replicas: role.replicas.clone(),
            isr: role.isr.clone(),
        };
        ctx.out.trace(|| format!("node {} takes role {role:?}", self.id));
        if role.leader == self.id {
            let (leo, hw) = (self.log.log_end_offset(), self.log.high_watermark());
            let lag = ctx.cfg.timings.replica_lag_time_max_ms;
            match hosted.leader.as_mut() {
                Some(leader) if leader.state().leader_epoch == role.leader_epoch => {
                    leader.update_state(state, role.ineligible.clone(), leo, ctx.now);
                }
                _ => {
                    let mut leader = Leader::new(self.id, state.clone(), leo, hw, ctx.now, lag);
                    if let Some(fault) = ctx.cfg.leader_fault {
                        leader.inject_fault(fault);
                    }
                    leader.update_state(state, role.ineligible.clone(), leo, ctx.now);
                    hosted.leader = Some(leader);
                }
            }
            let hw = hosted.leader.as_ref().map_or(0, Leader::high_watermark);
            if hw > self.log.high_watermark() {
                self.log.set_high_watermark(hw);
            }
        } else {
            hosted.leader = None;
        }
        hosted.role = Some(role);
    }
}
