//! The follower's half of a simulated broker, as `replica_fetcher.rs` runs it: one fetch loop
//! per leader this broker follows (a loop outlives the role change that ends it: its fetch in
//! flight is still answered and applied), one request at a time, a new connection and the
//! backoff after a timeout, and each answer applied by `apply`: records appended only while
//! the partition still follows in the epoch they were fetched in, the leader's high watermark
//! taken as far as the log reaches, a `DivergingEpoch` truncated by `truncation_offset`.

use super::model_log::Entry;
use super::msg::{Addr, FetchAnswer, FetchRequest, Msg, Timer};
use super::node::{Ctx, FetchLoop, Node};
use crate::truncation_offset;

impl Node {
    /// The fetch loop towards `leader` of this running node, if it has one.
    fn fetch_loop_mut(&mut self, leader: i32) -> Option<&mut FetchLoop> {
        self.running
            .as_mut()
            .and_then(|r| r.hosted.as_mut())
            .and_then(|h| h.loops.get_mut(&leader))
    }

    /// The leader this broker follows the partition from, if it is one of its followers.
    fn followed_leader(&self) -> Option<(i32, i32)> {
        let role = self.hosted()?.role.as_ref()?;
        (role.leader >= 0 && role.leader != self.id && role.replicas.contains(&self.id))
            .then_some((role.leader, role.leader_epoch))
    }

    /// `Fetchers::ensure`: a loop for the followed leader if it has none.
    pub(super) fn ensure_fetchers(&mut self, ctx: &mut Ctx) {
        let Some((leader, _)) = self.followed_leader() else {
            return;
        };
        let Some(hosted) = self.running.as_mut().and_then(|r| r.hosted.as_mut()) else {
            return;
        };
        if hosted.loops.contains_key(&leader) {
            return;
        }
        hosted.loops.insert(leader, FetchLoop::default());
        self.fetch_iteration(leader, ctx);
    }

    /// One turn of `replica_fetcher::run`: the loop ends when the partition no longer
    /// follows `leader`; otherwise one fetch goes out.
    fn fetch_iteration(&mut self, leader: i32, ctx: &mut Ctx) {
        let followed = self.followed_leader().filter(|&(l, _)| l == leader);
        let fetch_id = self.next_id();
        let me = self.id;
        let fetch_offset = self.log.log_end_offset();
        let last_fetched_epoch = self.log.latest_epoch().unwrap_or(-1);
        let Some(r) = self.running.as_mut() else { return };
        let replica_epoch = r.broker_epoch;
        let Some(hosted) = r.hosted.as_mut() else { return };
        let Some((_, leader_epoch)) = followed else {
            hosted.loops.remove(&leader);
            return;
        };
        let Some(fetch_loop) = hosted.loops.get_mut(&leader) else {
            return;
        };
        fetch_loop.outstanding = Some((fetch_id, leader_epoch));
        let request = FetchRequest {
            fetch_id,
            replica: me,
            replica_epoch,
            current_leader_epoch: leader_epoch,
            fetch_offset,
            last_fetched_epoch,
        };
        ctx.out.send(Addr::Node(leader), Msg::Fetch(request));
        let t = &ctx.cfg.timings;
        ctx.out.timer(
            t.fetch_wait_max_ms + t.fetch_response_timeout_ms,
            Timer::FetchTimeout { leader, fetch_id },
        );
    }

    /// The backoff after an answer that made no progress, or after an error, is over.
    pub(super) fn fetch_loop_wakes(&mut self, leader: i32, ctx: &mut Ctx) {
        let idle = self
            .hosted()
            .and_then(|h| h.loops.get(&leader))
            .is_some_and(|l| l.outstanding.is_none());
        if idle {
            self.fetch_iteration(leader, ctx);
        }
    }

    /// No answer within the wait plus the response timeout: the connection is dropped (a
    /// late answer is never read) and the loop backs off.
    pub(super) fn fetch_timed_out(&mut self, leader: i32, fetch_id: u64, ctx: &mut Ctx) {
        let Some(fetch_loop) = self.fetch_loop_mut(leader) else {
            return;
        };
        if fetch_loop.outstanding.is_some_and(|(id, _)| id == fetch_id) {
            fetch_loop.outstanding = None;
            ctx.out
                .timer(ctx.cfg.timings.fetch_backoff_ms, Timer::FetchLoop { leader });
        }
    }

    /// The answer to the loop's fetch in flight (any other is for a dropped connection).
    pub(super) fn fetch_answered(&mut self, leader: i32, fetch_id: u64, answer: FetchAnswer, ctx: &mut Ctx) {
        let Some(fetch_loop) = self.fetch_loop_mut(leader) else {
            return;
        };
        let Some((_, fetched_epoch)) = fetch_loop.outstanding.filter(|&(id, _)| id == fetch_id) else {
            return;
        };
        fetch_loop.outstanding = None;
        if !self.following_in(fetched_epoch) {
            self.stats.stale_answers += 1;
        }
        let progress = match answer {
            // A refused connection (`ClusterAuthorizationFailed`) and a partition error
            // both end in the backoff.
            FetchAnswer::Error(_) => false,
            FetchAnswer::Diverging { epoch, end_offset, .. } => {
                if self.may_truncate(fetched_epoch, ctx) {
                    let leo = self.log.log_end_offset();
                    let to = truncation_offset(epoch, end_offset, leo, |e| self.log.end_offset_for(e));
                    let me = self.id;
                    ctx.out.trace(|| {
                        format!("node {me}: diverges from {leader} at epoch {epoch}; truncates from {leo} to {to}")
                    });
                    if to < leo {
                        self.stats.truncations += 1;
                    }
                    self.log.truncate_to(to);
                }
                true
            }
            FetchAnswer::OutOfRange { log_end_offset } => {
                if self.may_truncate(fetched_epoch, ctx) {
                    self.log.truncate_to(log_end_offset.max(0));
                }
                true
            }
            FetchAnswer::Records {
                entries,
                base_offset,
                high_watermark,
            } => {
                let before = self.log.log_end_offset();
                self.append_as_follower(&entries, base_offset, high_watermark, fetched_epoch, ctx);
                self.log.log_end_offset() > before || !entries.is_empty()
            }
        };
        if progress {
            self.fetch_iteration(leader, ctx);
        } else {
            ctx.out
                .timer(ctx.cfg.timings.fetch_backoff_ms, Timer::FetchLoop { leader });
        }
    }

    /// Whether an answer fetched in `fetched_epoch` may still cut this log. The broker as
    /// written always truncates (see `BrokerModel::truncate_only_in_fetched_epoch`).
    fn may_truncate(&self, fetched_epoch: i32, ctx: &Ctx) -> bool {
        if !ctx.cfg.broker.truncate_only_in_fetched_epoch {
            return true;
        }
        self.following_in(fetched_epoch)
    }

    fn following_in(&self, epoch: i32) -> bool {
        self.hosted().is_some_and(|h| {
            h.leader.is_none()
                && h.role
                    .as_ref()
                    .is_some_and(|r| r.leader_epoch == epoch && r.leader != self.id)
        })
    }

    /// `Partition::append_as_follower`: nothing unless this replica still follows in the
    /// epoch the records were fetched in; entries it already has are skipped; then the
    /// leader's high watermark, as far as this log reaches.
    fn append_as_follower(
        &mut self,
        entries: &[Entry],
        base_offset: i64,
        leader_high_watermark: i64,
        fetched_epoch: i32,
        ctx: &mut Ctx,
    ) {
        if !self.following_in(fetched_epoch) {
            return;
        }
        for (i, entry) in entries.iter().enumerate() {
            let offset = base_offset + i as i64;
            let leo = self.log.log_end_offset();
            if offset < leo {
                continue;
            }
            if offset > leo {
                ctx.out.impossible(format!(
                    "node {} would append offset {offset} past its log end {leo} (a gap)",
                    self.id
                ));
                return;
            }
            self.log.append(*entry);
        }
        let hw = leader_high_watermark.min(self.log.log_end_offset());
        self.log.set_high_watermark(hw);
    }
}
