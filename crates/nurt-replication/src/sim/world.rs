//! The scheduler: one seeded run of the simulated cluster. Every input — a message arriving,
//! a timer firing, a fault — is an event at a simulated time in one queue (ties broken by
//! insertion order), processed one at a time; the invariants (`check.rs`) are checked after
//! every event. A run has a chaos phase (message drops, duplicates, long delays and hence
//! reordering, cut links, isolated brokers, paused brokers, SIGKILLed brokers that restart
//! later, controller failovers) and a healing phase (every broker up, every link reliable,
//! no new produces), after which the cluster must have converged (`convergence.rs`).

use std::collections::BTreeMap;

use nurt_metadata::controller::Seeds;

use super::check::{Acked, Checker};
use super::client::Client;
use super::controller::Controller;
use super::faults::ScriptStep;
use super::msg::{Addr, Envelope, FetchAnswer, Msg, Out, Outbox, Timer};
use super::network::{Chaos, Network};
use super::node::{Ctx, Node};
use super::report::{Counts, Summary, Violation};
use super::rng::Rng;
use super::{SimConfig, TOPIC};

/// How often the fault scheduler considers injecting a fault.
pub(super) const CHAOS_TICK_MS: i64 = 100;

/// Everything that can happen, each at a simulated time.
#[derive(Debug)]
pub(super) enum Event {
    Deliver(Envelope),
    NodeTimer {
        node: i32,
        incarnation: u64,
        timer: Timer,
    },
    ControllerTick,
    ClientTick,
    Chaos,
    Restart(i32),
    Mend(Addr, Addr),
    Heal,
    /// A step of the scripted scenario.
    Script(ScriptStep),
}

/// One run: the processes, the network between them, the clock, the queue, the checker.
pub(super) struct World<'a> {
    pub(super) cfg: &'a SimConfig,
    pub(super) seed: u64,
    pub(super) rng: Rng,
    pub(super) now: i64,
    pub(super) seq: u64,
    pub(super) queue: BTreeMap<(i64, u64), Event>,
    pub(super) nodes: Vec<Node>,
    pub(super) controller: Controller,
    pub(super) client: Client,
    pub(super) net: Network,
    pub(super) checker: Checker,
    pub(super) step: u64,
    pub(super) trace: Option<Vec<String>>,
    pub(super) crashes: u64,
    /// Paused brokers, until when.
    pub(super) paused_until: BTreeMap<i32, i64>,
    /// The scripted scenario's trigger has yet to fire.
    pub(super) script_armed: bool,
}

/// Runs seed `seed` to the end: the summary, or the first invariant it broke.
pub fn run(seed: u64, cfg: &SimConfig) -> Result<Summary, Violation> {
    let mut rng = Rng::new(seed);
    let mut chaos = Chaos::draw(&mut rng);
    if cfg.script.is_some() {
        chaos = Chaos::calm();
    }
    let varied;
    let cfg = if cfg.vary_timings {
        varied = SimConfig {
            timings: cfg.timings.vary(&mut rng),
            ..cfg.clone()
        };
        &varied
    } else {
        cfg
    };
    let world = World {
        cfg,
        seed,
        rng,
        now: 0,
        seq: 0,
        queue: BTreeMap::new(),
        nodes: (1..=cfg.brokers).map(Node::new).collect(),
        controller: Controller::new(cfg, 0),
        client: Client::default(),
        net: Network::new(chaos),
        checker: Checker::default(),
        step: 0,
        trace: cfg.record_trace.then(Vec::new),
        crashes: 0,
        paused_until: BTreeMap::new(),
        script_armed: cfg.script.is_some(),
    };
    world.run()
}

impl<'a> World<'a> {
    pub(super) fn schedule(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn violation(&self, message: String) -> Violation {
        Violation {
            seed: self.seed,
            step: self.step,
            time_ms: self.now,
            message,
            trace: self.trace.clone().unwrap_or_default(),
        }
    }

    pub(super) fn trace(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            t.push(format!("[{} @{}ms] {}", self.step, self.now, line()));
        }
    }

    fn run(mut self) -> Result<Summary, Violation> {
        // Healing starts the clock of every retry loop afresh only once its current attempt
        // times out: a fetch lost just before healing holds its follower for a whole timeout.
        let t = &self.cfg.timings;
        let longest_stall =
            (t.fetch_wait_max_ms + t.fetch_response_timeout_ms + t.fetch_backoff_ms).max(t.op_timeout_ms);
        let end = self.cfg.chaos_ms + longest_stall + self.cfg.heal_ms;
        for id in 1..=self.cfg.brokers {
            self.start_node(id).map_err(|m| self.violation(m))?;
        }
        self.schedule(0, Event::ControllerTick);
        self.schedule(300, Event::ClientTick);
        self.schedule(CHAOS_TICK_MS, Event::Chaos);
        self.schedule(self.cfg.chaos_ms, Event::Heal);
        self.schedule_script();
        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > end {
                break;
            }
            self.now = at;
            if let Some(until) = self.paused(&event) {
                // A paused broker runs nothing: its inputs wait, in order, until it resumes.
                self.schedule(until, event);
                continue;
            }
            self.step += 1;
            self.handle(event).map_err(|m| self.violation(m))?;
            self.checker
                .after_step(&mut self.nodes, &self.controller)
                .map_err(|m| self.violation(m))?;
        }
        super::convergence::converged(&self.nodes, &self.controller, &self.checker)
            .map_err(|m| self.violation(format!("after healing: {m}")))?;
        let final_log_end_offset = self
            .controller
            .image
            .partition(TOPIC, 0)
            .and_then(|p| self.node(p.leader))
            .map_or(0, |n| n.log.log_end_offset());
        let mut counts = Counts {
            produced: self.client.produced,
            acknowledged: self.checker.acked.len() as u64,
            leader_epochs: self.controller.leaders_by_epoch.len() as u64,
            partition_changes: self.controller.partition_changes,
            fencings: self.controller.fencings,
            crashes: self.crashes,
            final_log_end_offset: final_log_end_offset as u64,
            ..Counts::default()
        };
        for n in &self.nodes {
            counts.divergence_truncations += n.stats.truncations;
            counts.stale_fetch_answers += n.stats.stale_answers;
            counts.isr_proposals += n.stats.proposals;
            counts.isr_proposals_forgotten += n.stats.proposals_forgotten;
        }
        Ok(Summary {
            seed: self.seed,
            steps: self.step,
            counts,
            trace: self.trace.unwrap_or_default(),
        })
    }

    /// When the broker this event is for resumes, if it is paused now.
    fn paused(&self, event: &Event) -> Option<i64> {
        let node = match event {
            Event::Deliver(Envelope { to: Addr::Node(id), .. }) => *id,
            Event::NodeTimer { node, .. } => *node,
            _ => return None,
        };
        self.paused_until.get(&node).copied().filter(|&until| until > self.now)
    }

    pub(super) fn node(&self, id: i32) -> Option<&Node> {
        usize::try_from(id - 1).ok().and_then(|i| self.nodes.get(i))
    }

    pub(super) fn node_index(&self, id: i32) -> Option<usize> {
        usize::try_from(id - 1).ok().filter(|&i| i < self.nodes.len())
    }

    fn incarnation_of(&self, addr: Addr) -> Option<u64> {
        match addr {
            Addr::Node(id) => self.node(id).filter(|n| n.running.is_some()).map(|n| n.incarnation),
            Addr::Controller => Some(self.controller.incarnation),
            Addr::Client => Some(0),
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Deliver(env) => self.deliver(env),
            Event::NodeTimer {
                node,
                incarnation,
                timer,
            } => {
                let Some(i) = self.node_index(node) else { return Ok(()) };
                if self.nodes[i].running.is_none() || self.nodes[i].incarnation != incarnation {
                    return Ok(());
                }
                self.trace(|| format!("node {node} timer {timer:?}"));
                let mut ctx = self.ctx();
                self.nodes[i].on_timer(timer, &mut ctx);
                self.dispatch(Addr::Node(node), incarnation, ctx.out)
            }
            Event::ControllerTick => {
                let seeds = Seeds {
                    start_index: self.rng.below(1 << 16) as usize,
                    replica_shift: self.rng.below(1 << 16) as usize,
                };
                let mut out = Outbox::new(self.trace.is_some());
                self.controller.tick(self.cfg, self.now, seeds, &mut out);
                self.schedule(self.now + self.cfg.timings.controller_tick_ms, Event::ControllerTick);
                self.dispatch(Addr::Controller, self.controller.incarnation, out)
            }
            Event::ClientTick => {
                let mut out = Outbox::new(self.trace.is_some());
                self.client.tick(self.now, self.cfg.brokers, &mut self.rng, &mut out);
                let next = self.now + self.rng.between(2, 20);
                self.schedule(next, Event::ClientTick);
                self.dispatch(Addr::Client, 0, out)
            }
            Event::Chaos => self.chaos(),
            Event::Restart(id) => {
                if self.node(id).is_some_and(|n| n.running.is_none()) {
                    self.start_node(id)?;
                }
                Ok(())
            }
            Event::Mend(a, b) => {
                self.trace(|| format!("link {a:?} - {b:?} mended"));
                self.net.mend(a, b);
                Ok(())
            }
            Event::Script(step) => self.script_step(step),
            Event::Heal => {
                self.trace(|| "healing: no more faults or produces".to_string());
                self.net.heal();
                self.paused_until.clear();
                self.client.stopped = true;
                for id in 1..=self.cfg.brokers {
                    if self.node(id).is_some_and(|n| n.running.is_none()) {
                        self.start_node(id)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn ctx(&self) -> Ctx<'a> {
        Ctx {
            now: self.now,
            cfg: self.cfg,
            out: Outbox::new(self.trace.is_some()),
        }
    }

    fn start_node(&mut self, id: i32) -> Result<(), String> {
        let Some(i) = self.node_index(id) else { return Ok(()) };
        self.trace(|| format!("node {id} starts"));
        let mut ctx = self.ctx();
        self.nodes[i].start(&self.controller.log, &mut ctx);
        let incarnation = self.nodes[i].incarnation;
        self.dispatch(Addr::Node(id), incarnation, ctx.out)
    }

    fn send(&mut self, from: Addr, from_incarnation: u64, to: Addr, to_incarnation: Option<u64>, msg: Msg) {
        // A process that is not running refuses the connection; a client learns it at once.
        let Some(to_incarnation) = to_incarnation.or_else(|| self.incarnation_of(to)) else {
            if let (Addr::Client, Msg::Produce { request, .. } | Msg::WhoLeads { request }) = (from, &msg) {
                let env = Envelope {
                    from: to,
                    from_incarnation: 0,
                    to: from,
                    to_incarnation: from_incarnation,
                    msg: Msg::Refused { request: *request },
                };
                self.schedule(self.now + 1, Event::Deliver(env));
            }
            return;
        };
        if !self.net.connected(from, to) {
            return;
        }
        let mut fates = self.net.fates(&mut self.rng);
        self.scripted_delays(from, &msg, &mut fates);
        for delay in fates {
            let env = Envelope {
                from,
                from_incarnation,
                to,
                to_incarnation,
                msg: msg.clone(),
            };
            self.schedule(self.now + delay, Event::Deliver(env));
        }
    }

    fn deliver(&mut self, env: Envelope) -> Result<(), String> {
        if !self.net.connected(env.from, env.to) || self.incarnation_of(env.to) != Some(env.to_incarnation) {
            return Ok(());
        }
        self.trace(|| format!("{:?} -> {:?}: {}", env.from, env.to, describe(&env.msg)));
        match env.to {
            Addr::Node(id) => {
                let Some(i) = self.node_index(id) else { return Ok(()) };
                let mut ctx = self.ctx();
                self.nodes[i].on_message(env.from, env.from_incarnation, env.msg, &mut ctx);
                self.dispatch(Addr::Node(id), env.to_incarnation, ctx.out)
            }
            Addr::Controller => {
                let mut out = Outbox::new(self.trace.is_some());
                self.controller
                    .on_message(env.from, env.from_incarnation, env.msg, self.now, &mut out);
                self.dispatch(Addr::Controller, self.controller.incarnation, out)
            }
            Addr::Client => {
                self.client.on_message(env.msg);
                Ok(())
            }
        }
    }

    /// Carries out what a handler asked for.
    fn dispatch(&mut self, from: Addr, from_incarnation: u64, out: Outbox) -> Result<(), String> {
        for item in out.items {
            match item {
                Out::Send {
                    to,
                    to_incarnation,
                    msg,
                } => self.send(from, from_incarnation, to, to_incarnation, msg),
                Out::Timer { after_ms, timer } => {
                    if let Addr::Node(node) = from {
                        let event = Event::NodeTimer {
                            node,
                            incarnation: from_incarnation,
                            timer,
                        };
                        self.schedule(self.now + after_ms, event);
                    }
                }
                Out::Acknowledged {
                    value,
                    offset,
                    leader_epoch,
                } => {
                    let Addr::Node(node) = from else { continue };
                    self.trace(|| format!("node {node} acknowledges value {value} at {offset} (epoch {leader_epoch})"));
                    self.checker.new_acks.push(Acked {
                        node,
                        value,
                        offset,
                        leader_epoch,
                    });
                }
                Out::IsrGrew { leader, before, after } => self.isr_grew(leader, &before, &after),
                Out::Impossible(message) => return Err(message),
                Out::Trace(line) => self.trace(|| line),
            }
        }
        Ok(())
    }
}

/// One line for a message in the trace (metadata batches by count, not content).
fn describe(msg: &Msg) -> String {
    match msg {
        Msg::MetadataBatches { from, batches } => format!("metadata batches {from}..{}", from + batches.len()),
        Msg::FetchAnswer { fetch_id, answer } => match answer {
            FetchAnswer::Records {
                entries,
                base_offset,
                high_watermark,
            } => format!(
                "fetch answer {fetch_id}: {} records from {base_offset}, hw {high_watermark}",
                entries.len()
            ),
            other => format!("fetch answer {fetch_id}: {other:?}"),
        },
        other => format!("{other:?}"),
    }
}
