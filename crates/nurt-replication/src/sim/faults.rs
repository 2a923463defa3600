//! Faults: the random fault scheduler of the chaos phase (each run draws its rates, see
//! `network::Chaos`), and scripted scenarios that steer a calm run into one precise
//! interleaving — each a reproduction of a race the random runs found or an analysis
//! predicted, kept as a test.

use super::msg::{Addr, FetchAnswer, Msg};
use super::world::{Event, World, CHAOS_TICK_MS};
use super::TOPIC;

/// A scenario played on a calm network (no random faults) instead of the chaos phase.
#[derive(Debug, Clone)]
pub enum Script {
    /// A follower crashes at `crash_follower_at_ms` and comes back `down_ms` later; the
    /// moment the controller commits its return to the ISR, the cluster splits for
    /// `split_ms`: the leader, the other followers and the client on one side, the
    /// controller and the returning follower on the other. The leader's AlterPartition
    /// answer is lost with the split.
    SplitAsTheIsrGrows {
        crash_follower_at_ms: i64,
        down_ms: i64,
        split_ms: i64,
    },
    /// At `cut_at_ms` the leader loses its link to its first follower, which falls behind
    /// while the other keeps up; at `crash_leader_at_ms` the leader crashes, so the first
    /// follower is elected with fewer records than the other has. The first `DivergingEpoch`
    /// answer the new leader sends takes `answer_delay_ms` to arrive, and it pauses for
    /// `pause_ms` right after sending it: its session expires and the other follower is
    /// elected before the answer arrives.
    StaleDivergence {
        cut_at_ms: i64,
        crash_leader_at_ms: i64,
        answer_delay_ms: i64,
        pause_ms: i64,
    },
}

/// One timed step of a script.
#[derive(Debug, Clone, Copy)]
pub enum ScriptStep {
    CrashFollower { down_ms: i64 },
    CutLeaderFromFirstFollower,
    CrashLeader,
}

impl World<'_> {
    /// The fault scheduler: at most one new fault per tick, during the chaos phase.
    pub(super) fn chaos(&mut self) -> Result<(), String> {
        if self.net.healed {
            return Ok(());
        }
        self.schedule(self.now + CHAOS_TICK_MS, Event::Chaos);
        let c = self.net.chaos.clone();
        let brokers = self.cfg.brokers;
        if self.rng.chance(c.crash) {
            let id = self.rng.between(1, i64::from(brokers)) as i32;
            if self.node(id).is_some_and(|n| n.running.is_some()) {
                self.crash(id);
                let back = self.now + self.rng.between(200, 5_000);
                self.schedule(back, Event::Restart(id));
            }
        } else if self.rng.chance(c.pause) {
            let id = self.rng.between(1, i64::from(brokers)) as i32;
            let until = self.now + self.rng.between(200, 6_000);
            self.trace(|| format!("node {id} paused until {until}"));
            let resume = self.paused_until.entry(id).or_insert(until);
            *resume = (*resume).max(until);
        } else if self.rng.chance(c.cut_link) {
            // Broker `a` and another broker, or the controller (0).
            let a = self.rng.between(1, i64::from(brokers)) as i32;
            let b = (a + self.rng.between(1, i64::from(brokers)) as i32) % (brokers + 1);
            let other = if b == 0 { Addr::Controller } else { Addr::Node(b) };
            let until = self.now + self.rng.between(200, 6_000);
            self.trace(|| format!("link node {a} - {other:?} cut until {until}"));
            self.net.cut(Addr::Node(a), other);
            self.schedule(until, Event::Mend(Addr::Node(a), other));
        } else if self.rng.chance(c.isolate) {
            let a = Addr::Node(self.rng.between(1, i64::from(brokers)) as i32);
            let until = self.now + self.rng.between(200, 6_000);
            self.trace(|| format!("{a:?} isolated until {until}"));
            let others = (1..=brokers)
                .map(Addr::Node)
                .chain([Addr::Controller, Addr::Client])
                .filter(|&o| o != a);
            for other in others.collect::<Vec<_>>() {
                self.net.cut(a, other);
                self.schedule(until, Event::Mend(a, other));
            }
        } else if self.rng.chance(c.split) {
            // Each broker lands on the controller's side or the other; the client too.
            let until = self.now + self.rng.between(200, c.split_max_ms);
            let mut far: Vec<Addr> = (1..=brokers).filter(|_| self.rng.chance(0.5)).map(Addr::Node).collect();
            if self.rng.chance(0.5) {
                far.push(Addr::Client);
            }
            let near: Vec<Addr> = (1..=brokers)
                .map(Addr::Node)
                .chain([Addr::Controller, Addr::Client])
                .filter(|a| !far.contains(a))
                .collect();
            self.trace(|| format!("split until {until}: {far:?} | {near:?}"));
            for &a in &far {
                for &b in &near {
                    self.net.cut(a, b);
                    self.schedule(until, Event::Mend(a, b));
                }
            }
        } else if self.rng.chance(c.failover) {
            self.trace(|| "the controller fails over".to_string());
            self.controller.fail_over(self.cfg, self.now);
        }
        Ok(())
    }

    pub(super) fn schedule_script(&mut self) {
        match self.cfg.script {
            None => {}
            Some(Script::SplitAsTheIsrGrows {
                crash_follower_at_ms,
                down_ms,
                ..
            }) => self.schedule(
                crash_follower_at_ms,
                Event::Script(ScriptStep::CrashFollower { down_ms }),
            ),
            Some(Script::StaleDivergence {
                cut_at_ms,
                crash_leader_at_ms,
                ..
            }) => {
                self.schedule(cut_at_ms, Event::Script(ScriptStep::CutLeaderFromFirstFollower));
                self.schedule(crash_leader_at_ms, Event::Script(ScriptStep::CrashLeader));
            }
        }
    }

    /// The partition's leader and its followers in replica order, as the controller has it.
    fn leader_and_followers(&self) -> Option<(i32, Vec<i32>)> {
        let p = self.controller.image.partition(TOPIC, 0)?;
        let followers = p.replicas.iter().copied().filter(|&r| r != p.leader).collect();
        Some((p.leader, followers))
    }

    fn crash(&mut self, id: i32) {
        if let Some(i) = self.node_index(id).filter(|&i| self.nodes[i].running.is_some()) {
            self.trace(|| format!("node {id} crashes (SIGKILL)"));
            self.nodes[i].crash();
            self.crashes += 1;
        }
    }

    pub(super) fn script_step(&mut self, step: ScriptStep) -> Result<(), String> {
        let Some((leader, followers)) = self.leader_and_followers() else {
            return Ok(());
        };
        self.trace(|| format!("script: {step:?}"));
        match step {
            ScriptStep::CrashFollower { down_ms } => {
                if let Some(&f) = followers.first() {
                    self.crash(f);
                    self.schedule(self.now + down_ms, Event::Restart(f));
                }
            }
            ScriptStep::CutLeaderFromFirstFollower => {
                if let Some(&f) = followers.first() {
                    self.net.cut(Addr::Node(leader), Addr::Node(f));
                }
            }
            // It stays down until the healing restarts it.
            ScriptStep::CrashLeader => self.crash(leader),
        }
        Ok(())
    }

    /// `SplitAsTheIsrGrows`: the controller just committed an ISR expansion.
    pub(super) fn isr_grew(&mut self, leader: i32, before: &[i32], after: &[i32]) {
        let Some(Script::SplitAsTheIsrGrows {
            crash_follower_at_ms,
            split_ms,
            ..
        }) = self.cfg.script
        else {
            return;
        };
        if !self.script_armed || self.now <= crash_follower_at_ms || after.len() < self.cfg.replication_factor as usize
        {
            return;
        }
        self.script_armed = false;
        let until = self.now + split_ms;
        let far: Vec<Addr> = before.iter().map(|&b| Addr::Node(b)).chain([Addr::Client]).collect();
        let near: Vec<Addr> = after
            .iter()
            .filter(|b| !before.contains(b))
            .map(|&b| Addr::Node(b))
            .chain([Addr::Controller])
            .collect();
        self.trace(|| {
            format!("script: leader {leader} grew the ISR to {after:?}; split until {until}: {far:?} | {near:?}")
        });
        for &a in &far {
            for &b in &near {
                self.net.cut(a, b);
                self.schedule(until, Event::Mend(a, b));
            }
        }
    }

    /// `StaleDivergence`: the first `DivergingEpoch` answer is slow, and its sender pauses.
    pub(super) fn scripted_delays(&mut self, from: Addr, msg: &Msg, delays: &mut [i64]) {
        let Some(Script::StaleDivergence {
            answer_delay_ms,
            pause_ms,
            ..
        }) = self.cfg.script
        else {
            return;
        };
        let (Addr::Node(sender), true) = (from, self.script_armed) else {
            return;
        };
        if !matches!(
            msg,
            Msg::FetchAnswer {
                answer: FetchAnswer::Diverging { .. },
                ..
            }
        ) {
            return;
        }
        self.script_armed = false;
        delays.iter_mut().for_each(|d| *d = answer_delay_ms);
        let until = self.now + pause_ms;
        self.trace(|| format!("script: node {sender}'s divergence answer is slow; node {sender} paused until {until}"));
        self.paused_until.insert(sender, until);
    }
}
