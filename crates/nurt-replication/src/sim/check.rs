//! The safety invariants, checked after every step of a run (the end-of-run convergence
//! check is in `convergence.rs`). "Leader" below means a broker holding a `Leader` state machine,
//! i.e. one that believes it leads, in that `Leader`'s epoch — stale leaders included.
//!
//! 1. One leader per epoch: no two brokers ever lead the same leader epoch, and a broker
//!    leads epoch E only if the controller handed E to it.
//! 2. High watermarks: a leader's `Leader::high_watermark` never moves back within its
//!    epoch, and its log's high watermark is never below it. The committed prefix — the log
//!    below any leader's high watermark, accumulated over the run — never changes and never
//!    shrinks: every running broker's log below its own high watermark is exactly that
//!    prefix, and every leader of epoch E has all of it that was committed in epochs ≤ E.
//!    (Logs also stay epoch-ordered: no broker appends a record of an older epoch than its
//!    last, or its epoch history would stop describing its log.)
//! 3. In-sync replicas: for a leader and each member of the ISR it knows, their logs agree
//!    on every offset below the leader's high watermark that both have; and every member of
//!    the controller's current ISR has every record below the high watermark of the current
//!    leader (the one the controller names, once it leads that epoch) — Kafka's reason to
//!    elect only from the ISR — and is in that leader's "maximal ISR" (the ISR it knows plus
//!    the change it has in flight), which its high watermark waits for.
//! 4. Acknowledged writes: when a produce is acknowledged, its value is in the acking
//!    leader's log at its offset, and already in the committed prefix; later leaders keep it
//!    (by 2); the final leader must hold every acknowledged value at its offset
//!    (`convergence.rs`).
//!
//! Agreement with the committed prefix is tracked per broker incrementally (`agree`: how
//! long a prefix of its log is known to equal it), re-verified from wherever a log was cut.

use std::collections::BTreeMap;

use super::controller::Controller;
use super::model_log::{Entry, ModelLog};
use super::node::Node;
use super::TOPIC;

/// An acknowledged produce.
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub node: i32,
    pub value: u64,
    pub offset: i64,
    pub leader_epoch: i32,
}

#[derive(Debug, Default)]
pub struct Checker {
    committed: Vec<Entry>,
    /// For each epoch in which records were committed, the committed end it reached.
    committed_end_by_epoch: BTreeMap<i32, i64>,
    /// Per broker: its log's prefix of this length is known to equal `committed`.
    agree: BTreeMap<i32, i64>,
    leader_of_epoch: BTreeMap<i32, i32>,
    high_watermark_while_leading: BTreeMap<(i32, i32), i64>,
    pub acked: Vec<Acked>,
    /// Acknowledgements of the current step, verified once the committed prefix is updated.
    pub new_acks: Vec<Acked>,
}

/// Extends `agree` over `log` as far as it matches `committed`.
fn extend(agree: &mut i64, log: &ModelLog, committed: &[Entry]) {
    let end = log.log_end_offset().min(committed.len() as i64);
    while *agree < end && log.entry(*agree) == committed.get(*agree as usize).copied() {
        *agree += 1;
    }
}

fn describe(log: &ModelLog, committed: &[Entry], offset: i64) -> String {
    format!(
        "at offset {offset} it has {:?}, the committed prefix has {:?}",
        log.entry(offset),
        committed.get(offset as usize)
    )
}

impl Checker {
    pub fn committed_len(&self) -> i64 {
        self.committed.len() as i64
    }

    pub fn after_step(&mut self, nodes: &mut [Node], controller: &Controller) -> Result<(), String> {
        for n in nodes.iter_mut() {
            let agree = self.agree.entry(n.id).or_insert(0);
            if let Some(low) = n.log.take_low_water() {
                *agree = (*agree).min(low);
            }
            if let Some(offset) = n.log.epoch_regression {
                return Err(format!(
                    "broker {} appended at offset {offset} a record of an older epoch than its last",
                    n.id
                ));
            }
        }
        self.check_leaders(nodes, controller)?;
        self.extend_committed(nodes)?;
        for n in nodes.iter() {
            let agree = self.agree.entry(n.id).or_insert(0);
            extend(agree, &n.log, &self.committed);
        }
        self.check_acks(nodes)?;
        self.check_committed(nodes)?;
        self.check_isr(nodes, controller)
    }

    fn agree_of(&self, node: i32) -> i64 {
        self.agree.get(&node).copied().unwrap_or(0)
    }

    /// Invariants 1 and 2 (the high watermark of each leader).
    fn check_leaders(&mut self, nodes: &[Node], controller: &Controller) -> Result<(), String> {
        for n in nodes {
            let Some(leader) = n.leader() else { continue };
            let epoch = leader.state().leader_epoch;
            let first = *self.leader_of_epoch.entry(epoch).or_insert(n.id);
            if first != n.id {
                return Err(format!("brokers {first} and {} both led leader epoch {epoch}", n.id));
            }
            let chosen = controller.leaders_by_epoch.get(&epoch).copied();
            if chosen != Some(n.id) {
                return Err(format!(
                    "broker {} leads epoch {epoch}, which the controller gave to {chosen:?}",
                    n.id
                ));
            }
            let hw = leader.high_watermark();
            let seen = self.high_watermark_while_leading.entry((n.id, epoch)).or_insert(hw);
            if hw < *seen {
                return Err(format!(
                    "leader {} moved its high watermark back from {seen} to {hw} in epoch {epoch}",
                    n.id
                ));
            }
            *seen = hw;
            if n.log.high_watermark() < hw {
                return Err(format!(
                    "leader {}'s log has high watermark {} (log end {}) below its leader state's {hw} in epoch {epoch}",
                    n.id,
                    n.log.high_watermark(),
                    n.log.log_end_offset()
                ));
            }
        }
        Ok(())
    }

    /// Leaders whose high watermark passed the committed prefix extend it with their log.
    fn extend_committed(&mut self, nodes: &[Node]) -> Result<(), String> {
        for n in nodes {
            let Some(leader) = n.leader() else { continue };
            let hw = leader.high_watermark();
            let len = self.committed.len() as i64;
            if hw <= len {
                continue;
            }
            let agree = self.agree.entry(n.id).or_insert(0);
            extend(agree, &n.log, &self.committed);
            if *agree < len {
                return Err(format!(
                    "leader {} (epoch {}) commits to {hw} but its log differs from the committed prefix: {}",
                    n.id,
                    leader.state().leader_epoch,
                    describe(&n.log, &self.committed, *agree)
                ));
            }
            let fresh = n.log.entries().get(len as usize..hw as usize).unwrap_or_default();
            self.committed.extend_from_slice(fresh);
            *agree = hw;
            let end = self
                .committed_end_by_epoch
                .entry(leader.state().leader_epoch)
                .or_insert(hw);
            *end = (*end).max(hw);
        }
        Ok(())
    }

    /// Invariant 2 (the committed prefix): every running broker's log below its high
    /// watermark is the committed prefix; every leader has what earlier epochs committed.
    fn check_committed(&self, nodes: &[Node]) -> Result<(), String> {
        for n in nodes {
            if n.running.is_none() {
                continue;
            }
            let hw = n.log.high_watermark();
            let agree = self.agree_of(n.id);
            if hw > agree {
                return Err(format!(
                    "broker {}'s log below its high watermark {hw} is not the committed prefix (length {}): {}",
                    n.id,
                    self.committed.len(),
                    describe(&n.log, &self.committed, agree)
                ));
            }
            let Some(leader) = n.leader() else { continue };
            let epoch = leader.state().leader_epoch;
            let required = self
                .committed_end_by_epoch
                .range(..=epoch)
                .map(|(_, &end)| end)
                .max()
                .unwrap_or(0);
            if agree < required {
                let lost: Vec<String> = self
                    .acked
                    .iter()
                    .filter(|a| (agree..required).contains(&a.offset))
                    .map(|a| format!("{} at {}", a.value, a.offset))
                    .collect();
                return Err(format!(
                    "leader {} of epoch {epoch} lacks committed records (committed up to {required} in epochs ≤ {epoch}), {} of them acknowledged [{}]: {}",
                    n.id,
                    lost.len(),
                    lost.join(", "),
                    describe(&n.log, &self.committed, agree)
                ));
            }
        }
        Ok(())
    }

    /// Invariant 3.
    fn check_isr(&self, nodes: &[Node], controller: &Controller) -> Result<(), String> {
        let by_id = |id: i32| nodes.iter().find(|n| n.id == id);
        for n in nodes {
            let Some(leader) = n.leader() else { continue };
            let hw = leader.high_watermark();
            for &m in &leader.state().isr {
                let Some(member) = by_id(m).filter(|_| m != n.id) else {
                    continue;
                };
                let both = hw.min(member.log.log_end_offset());
                // Below `hw` the leader's log is the committed prefix (checked above), so the
                // member agrees with the leader exactly where it agrees with that prefix.
                if self.agree_of(m) < both {
                    return Err(format!(
                        "ISR member {m} disagrees with leader {} (epoch {}) below its high watermark {hw}: {}",
                        n.id,
                        leader.state().leader_epoch,
                        describe(&member.log, &self.committed, self.agree_of(m))
                    ));
                }
            }
        }
        let Some(p) = controller.image.partition(TOPIC, 0) else {
            return Ok(());
        };
        let current = by_id(p.leader).and_then(|n| n.leader().map(|l| (n, l)));
        let Some((n, leader)) = current.filter(|(_, l)| l.state().leader_epoch == p.leader_epoch) else {
            return Ok(());
        };
        let hw = leader.high_watermark();
        for &m in &p.isr {
            let Some(member) = by_id(m).filter(|_| m != n.id) else {
                continue;
            };
            if member.log.log_end_offset() < hw || self.agree_of(m) < hw {
                return Err(format!(
                    "broker {m} is in the controller's ISR {:?} (partition epoch {}) but lacks records below leader {}'s high watermark {hw} (epoch {}): its log ends at {}; {}",
                    p.isr,
                    p.partition_epoch,
                    n.id,
                    p.leader_epoch,
                    member.log.log_end_offset(),
                    describe(&member.log, &self.committed, self.agree_of(m))
                ));
            }
        }
        Ok(())
    }

    /// Invariant 4, at the moment of each acknowledgement.
    fn check_acks(&mut self, nodes: &[Node]) -> Result<(), String> {
        for ack in std::mem::take(&mut self.new_acks) {
            let at_leader = nodes
                .iter()
                .find(|n| n.id == ack.node)
                .and_then(|n| n.log.entry(ack.offset));
            if at_leader.map(|e| e.value) != Some(ack.value) {
                return Err(format!(
                    "broker {} acknowledged value {} at offset {} but its log has {at_leader:?} there",
                    ack.node, ack.value, ack.offset
                ));
            }
            let committed = self.committed.get(ack.offset as usize).map(|e| e.value);
            if committed != Some(ack.value) {
                return Err(format!(
                    "broker {} acknowledged value {} at offset {} which is not committed ({committed:?})",
                    ack.node, ack.value, ack.offset
                ));
            }
            self.acked.push(ack);
        }
        Ok(())
    }
}
