//! The leader's half of a simulated broker, as `nurt-broker` wires `Leader`: serving follower
//! fetches (`handlers/fetch.rs`: broker-epoch check, leader-epoch check, `DivergingEpoch`,
//! the follower's progress on the first read, long polls woken by `notify_data`), acks=all
//! produces and their purgatory (`handlers/produce.rs`, `Partition::wait_replicated`), and
//! ISR changes sent to the controller (`isr.rs` over `Controller::submit`'s retries).

use super::model_log::{Entry, ModelLog};
use super::msg::{Addr, AlterRefusal, FetchAnswer, FetchError, FetchRequest, Msg, Out, ProduceError, Timer};
use super::node::{AlterOp, Ctx, Node, Parked, Waiter};
use crate::{AcksOutcome, IsrProposal};

/// `codes::leader_epoch_check`.
fn leader_epoch_check(requested: i32, current: i32) -> Option<FetchError> {
    if requested < 0 || requested == current {
        None
    } else if requested < current {
        Some(FetchError::FencedLeaderEpoch)
    } else {
        Some(FetchError::UnknownLeaderEpoch)
    }
}

/// `Partition::diverging_epoch` over `Partition::end_offset_for_epoch`: where a follower whose
/// last record has `last_fetched_epoch` and whose log ends at `fetch_offset` diverges from
/// `log`, as (epoch, end offset), or None when it does not.
fn diverging_epoch(
    log: &ModelLog,
    leader_epoch: i32,
    last_fetched_epoch: i32,
    fetch_offset: i64,
) -> Option<(i32, i64)> {
    let found = log.end_offset_for(last_fetched_epoch).or_else(|| {
        // An empty log has no epoch history yet; the current epoch ends at the log end.
        (last_fetched_epoch >= leader_epoch && log.latest_epoch().is_none())
            .then(|| (leader_epoch, log.log_end_offset()))
    });
    match found {
        Some((epoch, end)) if epoch == last_fetched_epoch && end >= fetch_offset => None,
        Some(found) => Some(found),
        None => Some((-1, 0)),
    }
}

impl Node {
    /// A Fetch from a follower: answered now, or held until records arrive or the wait ends.
    pub(super) fn serve_fetch(&mut self, from_incarnation: u64, request: FetchRequest, ctx: &mut Ctx) {
        let Some(r) = self.running.as_ref() else { return };
        let to = Addr::Node(request.replica);
        // `fetcher_of`: a follower only in its current registration.
        let registered = r
            .image
            .broker(request.replica)
            .is_some_and(|b| request.replica_epoch < 0 || b.registration.broker_epoch == request.replica_epoch);
        if !registered {
            let answer = FetchAnswer::Error(FetchError::ClusterAuthorizationFailed);
            let fetch_id = request.fetch_id;
            ctx.out
                .reply(to, from_incarnation, Msg::FetchAnswer { fetch_id, answer });
            return;
        }
        let (answer, ready) = self.read_for_follower(&request, true, ctx);
        if ready {
            let fetch_id = request.fetch_id;
            ctx.out
                .reply(to, from_incarnation, Msg::FetchAnswer { fetch_id, answer });
        } else if let Some(hosted) = self.running.as_mut().and_then(|r| r.hosted.as_mut()) {
            let timer = Timer::ParkedDeadline {
                fetch_id: request.fetch_id,
                replica: request.replica,
            };
            hosted.parked.push(Parked {
                from_incarnation,
                request,
            });
            ctx.out.timer(ctx.cfg.timings.fetch_wait_max_ms, timer);
        }
    }

    /// `read_partition` for a follower: the answer, and whether it ends a long poll (records
    /// found, or an error or divergence to report).
    fn read_for_follower(&mut self, request: &FetchRequest, first_read: bool, ctx: &mut Ctx) -> (FetchAnswer, bool) {
        let me = self.id;
        let not_leader = (FetchAnswer::Error(FetchError::NotLeaderOrFollower), true);
        let Some(hosted) = self.running.as_mut().and_then(|r| r.hosted.as_mut()) else {
            return not_leader;
        };
        let Some(role) = hosted.role.as_ref().filter(|role| role.leader == me) else {
            return not_leader;
        };
        if let Some(e) = leader_epoch_check(request.current_leader_epoch, role.leader_epoch) {
            return (FetchAnswer::Error(e), true);
        }
        if !role.replicas.contains(&request.replica) {
            return not_leader;
        }
        if request.last_fetched_epoch >= 0 {
            let found = diverging_epoch(
                &self.log,
                role.leader_epoch,
                request.last_fetched_epoch,
                request.fetch_offset,
            );
            if let Some((epoch, end_offset)) = found {
                let high_watermark = self.log.high_watermark();
                let answer = FetchAnswer::Diverging {
                    epoch,
                    end_offset,
                    high_watermark,
                };
                return (answer, true);
            }
        }
        let leo = self.log.log_end_offset();
        let mut moved = false;
        let mut expand = None;
        if first_read {
            if let Some(leader) = hosted.leader.as_mut() {
                let outcome = leader.on_follower_fetch(request.replica, request.fetch_offset, leo, ctx.now);
                if let Some(hw) = outcome.high_watermark {
                    if hw > self.log.high_watermark() {
                        self.log.set_high_watermark(hw);
                    }
                    moved = true;
                }
                expand = outcome.expand_isr;
            }
        }
        let answer = if request.fetch_offset < 0 || request.fetch_offset > leo {
            (FetchAnswer::OutOfRange { log_end_offset: leo }, true)
        } else {
            let from = request.fetch_offset as usize;
            let to = (from + ctx.cfg.timings.fetch_max_entries).min(self.log.entries().len());
            let entries = self.log.entries().get(from..to).unwrap_or_default().to_vec();
            let ready = !entries.is_empty();
            let answer = FetchAnswer::Records {
                entries,
                base_offset: request.fetch_offset,
                high_watermark: self.log.high_watermark(),
            };
            (answer, ready)
        };
        if moved {
            self.notify_data(ctx);
        }
        if let Some(proposal) = expand {
            self.submit_isr_change(proposal, ctx);
        }
        answer
    }

    /// `Broker::notify_data`: held fetches read again (without counting as progress).
    fn notify_data(&mut self, ctx: &mut Ctx) {
        let Some(hosted) = self.running.as_mut().and_then(|r| r.hosted.as_mut()) else {
            return;
        };
        let parked = std::mem::take(&mut hosted.parked);
        let mut still = Vec::new();
        for p in parked {
            let (answer, ready) = self.read_for_follower(&p.request, false, ctx);
            if ready {
                let to = Addr::Node(p.request.replica);
                let fetch_id = p.request.fetch_id;
                ctx.out
                    .reply(to, p.from_incarnation, Msg::FetchAnswer { fetch_id, answer });
            } else {
                still.push(p);
            }
        }
        if let Some(hosted) = self.running.as_mut().and_then(|r| r.hosted.as_mut()) {
            still.append(&mut hosted.parked);
            hosted.parked = still;
        }
    }

    /// The wait of a held fetch ended: one last read, answered whatever it finds.
    pub(super) fn parked_deadline(&mut self, fetch_id: u64, replica: i32, ctx: &mut Ctx) {
        let Some(hosted) = self.running.as_mut().and_then(|r| r.hosted.as_mut()) else {
            return;
        };
        let Some(i) = hosted
            .parked
            .iter()
            .position(|p| p.request.fetch_id == fetch_id && p.request.replica == replica)
        else {
            return;
        };
        let p = hosted.parked.remove(i);
        let (answer, _) = self.read_for_follower(&p.request, false, ctx);
        let to = Addr::Node(replica);
        ctx.out
            .reply(to, p.from_incarnation, Msg::FetchAnswer { fetch_id, answer });
    }

    /// An acks=all produce of one record (`handlers/produce.rs` and `Partition::append`).
    pub(super) fn produce(&mut self, from_incarnation: u64, request: u64, value: u64, ctx: &mut Ctx) {
        let me = self.id;
        let Some(r) = self.running.as_mut().filter(|r| r.joined) else {
            // Client listeners open only once the broker has joined.
            ctx.out.reply(Addr::Client, from_incarnation, Msg::Refused { request });
            return;
        };
        let fail = |ctx: &mut Ctx, e: ProduceError| {
            let msg = Msg::ProduceAnswer {
                request,
                result: Err(e),
            };
            ctx.out.reply(Addr::Client, from_incarnation, msg);
        };
        let Some(hosted) = r.hosted.as_mut() else {
            return fail(ctx, ProduceError::NotLeaderOrFollower);
        };
        let (Some(role), Some(leader)) = (hosted.role.as_ref(), hosted.leader.as_mut()) else {
            return fail(ctx, ProduceError::NotLeaderOrFollower);
        };
        if role.leader != me {
            return fail(ctx, ProduceError::NotLeaderOrFollower);
        }
        if !leader.may_append_acks_all(ctx.cfg.min_insync_replicas) {
            return fail(ctx, ProduceError::NotEnoughReplicas);
        }
        let epoch = role.leader_epoch;
        self.log.append(Entry { epoch, value });
        let leo = self.log.log_end_offset();
        if let Some(hw) = leader.on_append(leo, ctx.now) {
            if hw > self.log.high_watermark() {
                self.log.set_high_watermark(hw);
            }
        }
        let deadline_ms = ctx.now + ctx.cfg.timings.produce_timeout_ms;
        hosted.waiters.push(Waiter {
            client_incarnation: from_incarnation,
            request,
            value,
            last_offset: leo - 1,
            deadline_ms,
        });
        ctx.out
            .timer(ctx.cfg.timings.produce_timeout_ms, Timer::ProduceDeadline { request });
        ctx.out
            .trace(|| format!("node {me} appends value {value} at {} in epoch {epoch}", leo - 1));
        self.notify_data(ctx);
    }

    /// `wait_replicated` for every waiting produce: done, failed, timed out, or still waiting.
    pub(super) fn check_waiters(&mut self, ctx: &mut Ctx) {
        let Some(hosted) = self.running.as_mut().and_then(|r| r.hosted.as_mut()) else {
            return;
        };
        if hosted.waiters.is_empty() {
            return;
        }
        let min_insync = ctx.cfg.min_insync_replicas;
        let waiters = std::mem::take(&mut hosted.waiters);
        for w in waiters {
            let outcome = match hosted.leader.as_ref() {
                None => Some(Err(ProduceError::NotLeaderOrFollower)),
                Some(leader) => match leader.acks_all_outcome(w.last_offset + 1, min_insync) {
                    Some(AcksOutcome::Done) => {
                        ctx.out.items.push(Out::Acknowledged {
                            value: w.value,
                            offset: w.last_offset,
                            leader_epoch: leader.state().leader_epoch,
                        });
                        Some(Ok(w.last_offset))
                    }
                    Some(AcksOutcome::TooFewInSync) => Some(Err(ProduceError::NotEnoughReplicasAfterAppend)),
                    None if ctx.now >= w.deadline_ms => Some(Err(ProduceError::RequestTimedOut)),
                    None => None,
                },
            };
            match outcome {
                Some(result) => {
                    let msg = Msg::ProduceAnswer {
                        request: w.request,
                        result,
                    };
                    ctx.out.reply(Addr::Client, w.client_incarnation, msg);
                }
                None => hosted.waiters.push(w),
            }
        }
    }

    /// `Broker::submit_isr_change`.
    pub(super) fn submit_isr_change(&mut self, proposal: IsrProposal, ctx: &mut Ctx) {
        let rpc = self.next_id();
        self.stats.proposals += 1;
        let Some(r) = self.running.as_mut() else { return };
        let me = self.id;
        ctx.out.trace(|| format!("node {me} proposes ISR {proposal:?}"));
        ctx.out.send(
            super::msg::Addr::Controller,
            Msg::AlterPartition {
                rpc,
                proposal: proposal.clone(),
            },
        );
        ctx.out
            .timer(ctx.cfg.timings.forward_timeout_ms, Timer::AlterRetry { rpc });
        let deadline_ms = ctx.now + ctx.cfg.timings.op_timeout_ms;
        r.alters.insert(rpc, AlterOp { proposal, deadline_ms });
    }

    /// An attempt got no answer in time: another attempt, or (as written) the op fails
    /// once `OP_TIMEOUT` has passed.
    pub(super) fn alter_retry(&mut self, rpc: u64, ctx: &mut Ctx) {
        let next = self.next_id();
        let kafka_like = ctx.cfg.broker.isr_outcomes_like_kafka;
        let Some(r) = self.running.as_mut() else { return };
        let Some(op) = r.alters.remove(&rpc) else { return };
        if kafka_like {
            // Retried for as long as it is the change in flight of this leadership.
            let in_flight = r
                .hosted
                .as_ref()
                .and_then(|h| h.leader.as_ref())
                .and_then(|l| l.pending())
                .is_some_and(|p| *p == op.proposal);
            if !in_flight {
                return;
            }
        } else if ctx.now >= op.deadline_ms {
            self.isr_proposal_failed(ctx);
            return;
        }
        ctx.out.send(
            Addr::Controller,
            Msg::AlterPartition {
                rpc: next,
                proposal: op.proposal.clone(),
            },
        );
        ctx.out
            .timer(ctx.cfg.timings.forward_timeout_ms, Timer::AlterRetry { rpc: next });
        r.alters.insert(next, op);
    }

    /// The controller answered an attempt.
    pub(super) fn alter_answered(&mut self, rpc: u64, result: Result<(), AlterRefusal>, ctx: &mut Ctx) {
        let Some(r) = self.running.as_mut() else { return };
        let Some(op) = r.alters.remove(&rpc) else { return };
        match result {
            Ok(()) => {}
            Err(refusal) if ctx.cfg.broker.isr_outcomes_like_kafka => {
                if refusal == AlterRefusal::NotApplied {
                    if let Some(leader) = r.hosted.as_mut().and_then(|h| h.leader.as_mut()) {
                        leader.proposal_refused(&op.proposal);
                        self.stats.proposals_forgotten += 1;
                    }
                }
                // A stale epoch: the image will bring the newer partition epoch, and
                // `update_state` settles the change then.
            }
            // As written: `isr.rs` forgets the proposal unless it was applied.
            Err(_) => self.isr_proposal_failed(ctx),
        }
    }

    /// `Partition::isr_proposal_failed`: whatever change is in flight now is forgotten.
    fn isr_proposal_failed(&mut self, ctx: &mut Ctx) {
        let me = self.id;
        if let Some(leader) = self
            .running
            .as_mut()
            .and_then(|r| r.hosted.as_mut())
            .and_then(|h| h.leader.as_mut())
        {
            ctx.out.trace(|| format!("node {me}: ISR change in flight failed"));
            leader.proposal_failed();
            self.stats.proposals_forgotten += 1;
        }
    }

    /// `Partition::maybe_shrink_isr`, every `replica.lag.time.max.ms / 2`.
    pub(super) fn maybe_shrink_isr(&mut self, ctx: &mut Ctx) {
        let leo = self.log.log_end_offset();
        let proposal = self
            .running
            .as_mut()
            .and_then(|r| r.hosted.as_mut())
            .and_then(|h| h.leader.as_mut())
            .and_then(|leader| leader.tick(leo, ctx.now));
        if let Some(proposal) = proposal {
            self.submit_isr_change(proposal, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_follows_the_partitions_rule() {
        let mut log = ModelLog::default();
        for epoch in [1, 1, 3] {
            log.append(Entry { epoch, value: 0 });
        }
        // Same epoch, the follower has no more than the leader: no divergence.
        assert_eq!(diverging_epoch(&log, 5, 3, 3), None);
        assert_eq!(diverging_epoch(&log, 5, 1, 2), None);
        // The follower's epoch 1 runs past where the leader's ends.
        assert_eq!(diverging_epoch(&log, 5, 1, 4), Some((1, 2)));
        // An epoch the leader never had: its largest below, and where that ends.
        assert_eq!(diverging_epoch(&log, 5, 2, 3), Some((1, 2)));
        assert_eq!(diverging_epoch(&log, 5, 0, 1), Some((-1, 0)));
        // An empty leader log answers for its own epoch.
        let empty = ModelLog::default();
        assert_eq!(diverging_epoch(&empty, 5, 5, 0), None);
        assert_eq!(diverging_epoch(&empty, 5, 5, 3), Some((5, 0)));
        assert_eq!(diverging_epoch(&empty, 5, 6, 0), Some((5, 0)));
        assert_eq!(diverging_epoch(&empty, 5, 4, 3), Some((-1, 0)));
    }
}
