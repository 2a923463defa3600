//! The leader's bookkeeping of one partition: each follower's progress, the high watermark,
//! and the ISR changes to ask the controller for (Kafka's `Partition` leader side).
//!
//! Invariants kept here: the high watermark never moves back while this replica leads; it
//! never passes the log end of a replica in the ISR (or joining it, while that change is in
//! flight — Kafka's "maximal ISR"); at most one ISR change is in flight, and a shrink never
//! takes effect here before the controller has committed it. The caller keeps an expansion
//! in flight until its fate is known (see `Leader::proposal_failed`).

use std::collections::{BTreeMap, BTreeSet};

/// The partition as the metadata image states it (the fields the leader needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// An ISR change for the controller (Kafka's AlterPartition): it applies only if the
/// partition is still at `leader_epoch` / `partition_epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// What a follower's fetch changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchOutcome {
    /// The high watermark moved (to this).
    pub high_watermark: Option<i64>,
    /// The follower caught up: ask the controller to add it to the ISR.
    pub expand_isr: Option<IsrProposal>,
}

/// How an acks=all produce ends once its records are replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksOutcome {
    /// Every in-sync replica has the records, and there are at least `min.insync.replicas`.
    Done,
    /// Replicated to every in-sync replica, but the ISR shrank below `min.insync.replicas`
    /// meanwhile (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    TooFewInSync,
}

/// A deliberate bug, for showing that the simulation catches one. Only test builds of this
/// crate have it: neither the variant nor the field holding it exists otherwise.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InjectedFault {
    /// The high watermark advances once the leader and any one follower have a record —
    /// counting a follower outside the ISR, and not waiting for every in-sync replica.
    HighWatermarkOverAnyFollower,
}

#[derive(Debug, Clone, Copy)]
struct Follower {
    /// -1 until it fetches under this leader.
    log_end_offset: i64,
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end at that fetch.
    last_fetch_leader_leo: i64,
}

/// This replica leads the partition.
#[derive(Debug, Clone)]
pub struct Leader {
    me: i32,
    state: PartitionState,
    /// An ISR change sent to the controller and not yet in the image.
    pending: Option<IsrProposal>,
    followers: BTreeMap<i32, Follower>,
    /// Brokers that may not join the ISR (fenced, shutting down, unknown).
    ineligible: BTreeSet<i32>,
    /// The log end when this leader epoch began: a follower joins the ISR only past it.
    epoch_start_offset: i64,
    high_watermark: i64,
    replica_lag_time_max_ms: i64,
    #[cfg(test)]
    fault: Option<InjectedFault>,
}

impl Leader {
    /// Takes over as leader of `state` (this node is its leader) with the local log ending at
    /// `log_end_offset` and its checkpointed high watermark. In-sync followers count as caught
    /// up now and must fetch within `replica_lag_time_max_ms` to stay in the ISR.
    pub fn new(
        me: i32,
        state: PartitionState,
        log_end_offset: i64,
        high_watermark: i64,
        now_ms: i64,
        replica_lag_time_max_ms: i64,
    ) -> Self {
        let followers = state
            .replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| (r, Follower::fresh(now_ms)))
            .collect();
        let mut leader = Self {
            me,
            state,
            pending: None,
            followers,
            ineligible: BTreeSet::new(),
            epoch_start_offset: log_end_offset,
            high_watermark: high_watermark.min(log_end_offset),
            replica_lag_time_max_ms,
            #[cfg(test)]
            fault: None,
        };
        leader.advance_high_watermark(log_end_offset, now_ms);
        leader
    }

    /// Makes this leader misbehave as `fault` says (tests only).
    #[cfg(test)]
    pub(crate) fn inject_fault(&mut self, fault: InjectedFault) {
        self.fault = Some(fault);
    }

    /// The high watermark: every offset below it is on every in-sync replica.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The partition state this leader works from.
    pub fn state(&self) -> &PartitionState {
        &self.state
    }

    /// The ISR change in flight, if any.
    pub fn pending(&self) -> Option<&IsrProposal> {
        self.pending.as_ref()
    }

    /// The replicas the high watermark waits for: the ISR, plus one joining it while that
    /// change is in flight (a shrink waits for the commit).
    fn maximal_isr(&self) -> impl Iterator<Item = i32> + '_ {
        let joining = self.pending.iter().flat_map(|p| p.new_isr.iter().copied());
        self.state.isr.iter().copied().chain(joining)
    }

    fn in_maximal_isr(&self, replica: i32) -> bool {
        self.maximal_isr().any(|r| r == replica)
    }

    /// A new state from the image for this same leadership (ISR, replicas, partition epoch).
    /// A newer partition epoch settles the change in flight, whether it was ours or not.
    pub fn update_state(&mut self, state: PartitionState, ineligible: BTreeSet<i32>, log_end_offset: i64, now_ms: i64) {
        debug_assert_eq!(state.leader_epoch, self.state.leader_epoch);
        if state.partition_epoch > self.state.partition_epoch {
            self.pending = None;
        }
        for &r in &state.replicas {
            if r != self.me {
                self.followers.entry(r).or_insert_with(|| Follower::fresh(now_ms));
            }
        }
        self.followers.retain(|r, _| state.replicas.contains(r));
        self.state = state;
        self.ineligible = ineligible;
        self.advance_high_watermark(log_end_offset, now_ms);
    }

    /// Forgets the change in flight, whatever became of it: another may be proposed.
    ///
    /// Only safe when the controller has certainly not applied it. If it may have been
    /// applied — an answer lost to a timeout or a controller change, or FENCED_LEADER_EPOCH /
    /// INVALID_UPDATE_VERSION, which a retry of an applied change also gets — forgetting it
    /// lets the high watermark pass a replica the controller has put in the ISR until the
    /// image says so, and an election may then pick that replica without the records (the
    /// simulation's `an_isr_change_forgotten_after_a_lost_answer_loses_acknowledged_writes`).
    /// Use [`Leader::proposal_refused`] for a definite refusal; for an unknown outcome send
    /// the same proposal again, and for a stale epoch wait: [`Leader::update_state`] settles
    /// the change once the image brings a newer partition epoch.
    pub fn proposal_failed(&mut self) {
        self.pending = None;
    }

    /// The controller refused `proposal` without applying it (INELIGIBLE_REPLICA,
    /// INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION: the request was checked against the
    /// partition's current epochs): if it is still the change in flight, it is forgotten and
    /// another may be proposed (Kafka's `handleAlterPartitionError`). An answer to an older
    /// proposal changes nothing.
    pub fn proposal_refused(&mut self, proposal: &IsrProposal) {
        if self.pending.as_ref() == Some(proposal) {
            self.pending = None;
        }
    }

    /// A local append (or anything that moved the log end): the new high watermark, if it
    /// moved (it does at once when this replica is the whole ISR).
    pub fn on_append(&mut self, log_end_offset: i64, now_ms: i64) -> Option<i64> {
        self.advance_high_watermark(log_end_offset, now_ms)
    }

    /// A follower fetched at `fetch_offset` (its log end) while the leader's log ended at
    /// `log_end_offset`.
    pub fn on_follower_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        log_end_offset: i64,
        now_ms: i64,
    ) -> FetchOutcome {
        let Some(f) = self.followers.get_mut(&replica) else {
            return FetchOutcome::default();
        };
        // Kafka's `updateFetchStateOrThrow`: caught up now if at the log end; caught up as of
        // its previous fetch if it has everything the leader had then.
        if fetch_offset >= log_end_offset {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_leo && f.last_fetch_leader_leo >= 0 {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset.min(log_end_offset);
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_leo = log_end_offset;
        let high_watermark = self.advance_high_watermark(log_end_offset, now_ms);
        let expand_isr = self.maybe_expand(replica);
        FetchOutcome {
            high_watermark,
            expand_isr,
        }
    }

    fn maybe_expand(&mut self, replica: i32) -> Option<IsrProposal> {
        if self.pending.is_some() || self.in_maximal_isr(replica) || self.ineligible.contains(&replica) {
            return None;
        }
        let f = self.followers.get(&replica)?;
        let caught_up = f.log_end_offset >= self.high_watermark && f.log_end_offset >= self.epoch_start_offset;
        if !caught_up {
            return None;
        }
        let mut new_isr = self.state.isr.clone();
        new_isr.push(replica);
        Some(self.propose(new_isr))
    }

    fn propose(&mut self, new_isr: Vec<i32>) -> IsrProposal {
        let proposal = IsrProposal {
            leader_epoch: self.state.leader_epoch,
            partition_epoch: self.state.partition_epoch,
            new_isr,
        };
        self.pending = Some(proposal.clone());
        proposal
    }

    /// The clock: followers in the ISR that have not caught up within
    /// `replica.lag.time.max.ms` are proposed for removal (Kafka's `maybeShrinkIsr`).
    pub fn tick(&mut self, log_end_offset: i64, now_ms: i64) -> Option<IsrProposal> {
        if self.pending.is_some() {
            return None;
        }
        let lagging: Vec<i32> = self
            .state
            .isr
            .iter()
            .copied()
            .filter(|&r| r != self.me)
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_none_or(|f| !f.caught_up(log_end_offset, now_ms, self.replica_lag_time_max_ms))
            })
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let new_isr = self
            .state
            .isr
            .iter()
            .copied()
            .filter(|r| !lagging.contains(r))
            .collect();
        Some(self.propose(new_isr))
    }

    /// Kafka's `maybeIncrementLeaderHW`: the smallest log end over the maximal ISR and the
    /// caught-up eligible followers. Returns the new value if it moved (it only moves up).
    fn advance_high_watermark(&mut self, log_end_offset: i64, now_ms: i64) -> Option<i64> {
        let mut candidate = log_end_offset;
        for (&r, f) in &self.followers {
            let waits = self.in_maximal_isr(r)
                || (!self.ineligible.contains(&r)
                    && f.log_end_offset >= 0
                    && f.caught_up(log_end_offset, now_ms, self.replica_lag_time_max_ms));
            if waits {
                candidate = candidate.min(f.log_end_offset);
            }
        }
        #[cfg(test)]
        if self.fault == Some(InjectedFault::HighWatermarkOverAnyFollower) {
            let furthest = self.followers.values().map(|f| f.log_end_offset).max();
            candidate = furthest.map_or(log_end_offset, |f| f.min(log_end_offset));
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            Some(candidate)
        } else {
            None
        }
    }

    /// Whether an acks=all produce may be appended: the ISR has at least `min_insync`
    /// replicas (else NOT_ENOUGH_REPLICAS, before anything is written).
    pub fn may_append_acks_all(&self, min_insync: usize) -> bool {
        self.state.isr.len() >= min_insync
    }

    /// How an acks=all produce whose records end before `required_offset` ends: None while
    /// the high watermark has not reached it.
    pub fn acks_all_outcome(&self, required_offset: i64, min_insync: usize) -> Option<AcksOutcome> {
        let outcome = if self.state.isr.len() >= min_insync {
            AcksOutcome::Done
        } else {
            AcksOutcome::TooFewInSync
        };
        (self.high_watermark >= required_offset).then_some(outcome)
    }
}

impl Follower {
    fn fresh(now_ms: i64) -> Self {
        Self {
            log_end_offset: -1,
            last_caught_up_ms: now_ms,
            last_fetch_ms: -1,
            last_fetch_leader_leo: -1,
        }
    }

    fn caught_up(&self, leader_log_end_offset: i64, now_ms: i64, lag_max_ms: i64) -> bool {
        self.log_end_offset == leader_log_end_offset || now_ms - self.last_caught_up_ms <= lag_max_ms
    }
}

mod read_replica;
#[cfg(test)]
mod tests;
