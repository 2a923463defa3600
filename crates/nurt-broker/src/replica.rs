//! A partition's replication, wired to its log: taking the role the metadata image gives it,
//! the leader's bookkeeping of its followers (high watermark, ISR changes, acks=all waiting
//! for the high watermark), and the follower's appends and truncation. The decisions are
//! `nurt-replication`'s; this module applies them.
//!
//! Lock order: `replication`, then `inner` (the log); never the other way round.

use std::time::Duration;

use nurt_log::{LogError, ReadSlice};
use nurt_records::batch::Batches;
use nurt_replication::{AcksOutcome, IsrProposal, Leader, PartitionState};

use crate::codes;
use crate::partition::{lock, Offsets, Partition, ReplicaRole};

/// Where a follower fetches from next.
#[derive(Debug, Clone, Copy)]
pub struct FetchPosition {
    pub fetch_offset: i64,
    /// The epoch of the last batch it has (-1: none).
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
}

impl Partition {
    /// Takes the role the image gives this replica: leader (keeping its bookkeeping while the
    /// leader epoch stays), or follower.
    pub fn set_role(&self, role: ReplicaRole, replica_lag_time_max_ms: i64, now_ms: i64) {
        let ineligible = role.ineligible.clone();
        let mut replication = lock(&self.replication);
        let state = PartitionState {
            leader_epoch: role.leader_epoch,
            partition_epoch: role.partition_epoch,
            replicas: role.replicas.clone(),
            isr: role.isr.clone(),
        };
        if role.leader == self.node_id {
            let (leo, hw) = {
                let inner = lock(&self.inner);
                (inner.log.log_end_offset(), inner.log.high_watermark())
            };
            match replication.as_mut() {
                Some(leader) if leader.state().leader_epoch == role.leader_epoch => {
                    leader.update_state(state, ineligible, leo, now_ms);
                }
                _ => {
                    let mut leader = Leader::new(self.node_id, state.clone(), leo, hw, now_ms, replica_lag_time_max_ms);
                    leader.update_state(state, ineligible, leo, now_ms);
                    *replication = Some(leader);
                }
            }
            if let Some(leader) = replication.as_ref() {
                self.publish_high_watermark(leader.high_watermark());
            }
        } else {
            *replication = None;
        }
        tracing::debug!(
            "{}-{}: leader {} in epoch {} (partition epoch {}), ISR {:?}, high watermark {}",
            self.topic,
            self.index,
            role.leader,
            role.leader_epoch,
            role.partition_epoch,
            role.isr,
            self.high_watermark()
        );
        *self.role.write().unwrap_or_else(|p| p.into_inner()) = role;
        // acks=all produces and fetches waiting here re-check: this replica may have stopped
        // leading.
        self.high_watermark.send_modify(|_| {});
        self.data_changed();
    }

    /// Publishes `hw` to its waiters; whether it moved (then the checkpoint has work).
    fn set_high_watermark_watch(&self, hw: i64) -> bool {
        let moved = self.high_watermark.send_if_modified(|v| std::mem::replace(v, hw) != hw);
        if moved {
            self.activity
                .high_watermark_moved
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        moved
    }

    /// Wakes the fetches waiting on this partition.
    pub(crate) fn data_changed(&self) {
        self.data_changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees every [`Partition::data_changed`] from now on (long polls).
    pub fn subscribe_data(&self) -> tokio::sync::watch::Receiver<u64> {
        self.data_changes.subscribe()
    }

    /// Raises the log's high watermark to `hw` and wakes whoever waits for it. The caller
    /// holds the replication lock, so concurrent updates cannot reorder.
    fn publish_high_watermark(&self, hw: i64) -> bool {
        let mut inner = lock(&self.inner);
        if hw > inner.log.high_watermark() {
            inner.log.set_high_watermark(hw);
        }
        let hw = inner.log.high_watermark();
        drop(inner);
        let moved = self.set_high_watermark_watch(hw);
        if moved {
            self.data_changed();
        }
        moved
    }

    /// After a local append: the high watermark moves at once when this replica is the
    /// whole ISR.
    pub(crate) fn after_leader_append(&self, now_ms: i64) {
        let mut replication = lock(&self.replication);
        let mut signalled = false;
        if let Some(leader) = replication.as_mut() {
            let leo = lock(&self.inner).log.log_end_offset();
            if let Some(hw) = leader.on_append(leo, now_ms) {
                signalled = self.publish_high_watermark(hw);
            }
        }
        if !signalled {
            // Followers fetching here want the new log end even if the high watermark waits.
            self.data_changed();
        }
    }

    /// A follower fetched at `fetch_offset`: whether the high watermark moved, and an ISR
    /// expansion to ask the controller for.
    pub fn on_follower_fetch(&self, replica: i32, fetch_offset: i64, now_ms: i64) -> (bool, Option<IsrProposal>) {
        let mut replication = lock(&self.replication);
        let Some(leader) = replication.as_mut() else {
            return (false, None);
        };
        let leo = lock(&self.inner).log.log_end_offset();
        let outcome = leader.on_follower_fetch(replica, fetch_offset, leo, now_ms);
        if let Some(hw) = outcome.high_watermark {
            self.publish_high_watermark(hw);
        }
        (outcome.high_watermark.is_some(), outcome.expand_isr)
    }

    /// The clock: an ISR shrink to ask the controller for, if a follower lags.
    pub fn maybe_shrink_isr(&self, now_ms: i64) -> Option<IsrProposal> {
        let mut replication = lock(&self.replication);
        let leader = replication.as_mut()?;
        let leo = lock(&self.inner).log.log_end_offset();
        leader.tick(leo, now_ms)
    }

    /// The controller refused `proposal` without applying it: if it is still the change in
    /// flight, another may be proposed.
    pub fn isr_proposal_refused(&self, proposal: &IsrProposal) {
        if let Some(leader) = lock(&self.replication).as_mut() {
            leader.proposal_refused(proposal);
        }
    }

    /// Whether `proposal` is still the ISR change in flight (its outcome not yet known here).
    pub fn isr_proposal_pending(&self, proposal: &IsrProposal) -> bool {
        lock(&self.replication)
            .as_ref()
            .is_some_and(|l| l.pending() == Some(proposal))
    }

    /// KIP-392: the in-sync follower a consumer in `client_rack` fetching at `fetch_offset`
    /// should read from instead of this leader, if any (`Leader::preferred_read_replica`).
    pub fn preferred_read_replica<'a>(
        &self,
        fetch_offset: i64,
        client_rack: &str,
        rack_of: impl Fn(i32) -> Option<&'a str>,
    ) -> Option<i32> {
        lock(&self.replication)
            .as_ref()?
            .preferred_read_replica(fetch_offset, client_rack, rack_of)
    }

    /// Whether an acks=all produce may append: enough in-sync replicas.
    pub fn may_append_acks_all(&self) -> bool {
        let min_insync = lock(&self.inner).settings.min_insync_replicas;
        lock(&self.replication)
            .as_ref()
            .is_some_and(|l| l.may_append_acks_all(min_insync))
    }

    /// acks=all: waits (at most `timeout`) until the high watermark passes `last_offset`,
    /// appended in `leader_epoch`. The Kafka error code when it does not: REQUEST_TIMED_OUT,
    /// NOT_LEADER_OR_FOLLOWER (leadership moved, even if it came back: the offset may hold
    /// another record by then), NOT_ENOUGH_REPLICAS_AFTER_APPEND (the ISR shrank meanwhile).
    pub async fn wait_replicated(&self, last_offset: i64, leader_epoch: i32, timeout: Duration) -> Result<(), i16> {
        let min_insync = lock(&self.inner).settings.min_insync_replicas;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.high_watermark.subscribe();
        loop {
            changes.borrow_and_update();
            {
                let replication = lock(&self.replication);
                let Some(leader) = replication.as_ref().filter(|l| l.state().leader_epoch == leader_epoch) else {
                    return Err(codes::NOT_LEADER_OR_FOLLOWER);
                };
                match leader.acks_all_outcome(last_offset + 1, min_insync) {
                    Some(AcksOutcome::Done) => return Ok(()),
                    Some(AcksOutcome::TooFewInSync) => return Err(codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND),
                    None => {}
                }
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(codes::REQUEST_TIMED_OUT),
            }
        }
    }

    /// For a follower's fetch at `fetch_offset` whose last batch has `last_fetched_epoch`:
    /// where its log diverges from this one, as (epoch, end offset), or None if it does not.
    pub fn diverging_epoch(&self, last_fetched_epoch: i32, fetch_offset: i64) -> Option<(i32, i64)> {
        match self.end_offset_for_epoch(last_fetched_epoch) {
            Some((epoch, end)) if epoch == last_fetched_epoch && end >= fetch_offset => None,
            Some(found) => Some(found),
            // No epoch in common: nothing is known to agree; (-1, log start) says so and,
            // unlike (-1, -1), is not Kafka's "absent" value on the wire.
            None => Some((-1, self.offsets().log_start_offset)),
        }
    }

    /// What a follower replicates: the bytes at `offset` up to the log end.
    pub fn read_for_follower(&self, offset: i64, max_bytes: usize) -> Result<(Option<ReadSlice>, Offsets), LogError> {
        self.read_with(offset, max_bytes, true)
    }

    /// Where this follower fetches from next.
    pub fn fetch_position(&self) -> FetchPosition {
        let inner = lock(&self.inner);
        FetchPosition {
            fetch_offset: inner.log.log_end_offset(),
            last_fetched_epoch: inner.log.epochs().latest_epoch().unwrap_or(-1),
            log_start_offset: inner.log.log_start_offset(),
        }
    }

    /// This replica's own epoch history: the largest epoch ≤ `epoch` it has, and where that
    /// epoch ends in its log.
    pub fn own_end_offset_for(&self, epoch: i32) -> Option<(i32, i64)> {
        let inner = lock(&self.inner);
        inner.log.epochs().end_offset_for(epoch, inner.log.log_end_offset())
    }

    /// Appends what the leader sent (whole batches; a batch this log already has is skipped,
    /// a cut-off last one ignored), rebuilds producer state from them, and takes the leader's
    /// high watermark and log start as far as this log reaches. Returns the new log end.
    /// Nothing is appended unless this replica still follows in `leader_epoch` (the answer of
    /// a leader it no longer follows is dropped).
    pub fn append_as_follower(
        &self,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start_offset: i64,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<i64, LogError> {
        // Held throughout: a role change waits until this append is done.
        let replication = lock(&self.replication);
        let mut inner = lock(&self.inner);
        if replication.is_some() || self.leader_epoch() != leader_epoch {
            return Ok(inner.log.log_end_offset());
        }
        let leo_before = inner.log.log_end_offset();
        for batch in Batches::new(records) {
            let Ok((header, bytes)) = batch else { break };
            if header.last_offset() < inner.log.log_end_offset() {
                continue;
            }
            // The log keeps the producer state (idempotence, transactions) of what it appends.
            inner.log.append_as_follower(bytes, now_ms)?;
        }
        let hw = leader_high_watermark.min(inner.log.log_end_offset());
        inner.log.set_high_watermark(hw);
        if leader_log_start_offset > inner.log.log_start_offset() && leader_log_start_offset <= hw {
            inner.log.delete_records_before(leader_log_start_offset)?;
        }
        let (leo, hw) = (inner.log.log_end_offset(), inner.log.high_watermark());
        drop(inner);
        drop(replication);
        let hw_moved = self.set_high_watermark_watch(hw);
        if hw_moved || leo != leo_before {
            self.data_changed();
        }
        Ok(leo)
    }

    /// Drops this follower's records from `offset` on (they diverge from the leader's), and
    /// the producer state they made — only while it still follows in `leader_epoch`: the
    /// answer of a leader this replica no longer follows is dropped (it might otherwise cut
    /// a new leader's log below its high watermark). Whether it truncated.
    pub fn truncate_as_follower(&self, offset: i64, leader_epoch: i32) -> Result<bool, LogError> {
        let replication = lock(&self.replication);
        let mut inner = lock(&self.inner);
        if replication.is_some() || self.leader_epoch() != leader_epoch {
            return Ok(false);
        }
        inner.log.truncate_to(offset)?;
        let hw = inner.log.high_watermark();
        drop(inner);
        drop(replication);
        self.set_high_watermark_watch(hw);
        self.data_changed();
        Ok(true)
    }

    /// Empties this follower's log and starts it at `offset` (the leader's log starts past
    /// it), under the same condition as [`Partition::truncate_as_follower`].
    pub fn restart_as_follower_at(&self, offset: i64, leader_epoch: i32) -> Result<bool, LogError> {
        let replication = lock(&self.replication);
        let mut inner = lock(&self.inner);
        if replication.is_some() || self.leader_epoch() != leader_epoch {
            return Ok(false);
        }
        inner.log.truncate_fully_and_start_at(offset)?;
        Ok(true)
    }

    /// The high watermark now (for the checkpoint).
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }
}
