//! The network between the simulated processes: links that can be cut (in both directions),
//! and per-message fates drawn from the seed — delivered after a short or a long delay
//! (hence reordered), dropped, or delivered twice. Each run draws its own fault rates, so
//! some seeds are calm and others hostile. Healing makes every link reliable and prompt.

use std::collections::BTreeSet;

use super::msg::Addr;
use super::rng::Rng;

/// One run's fault rates.
#[derive(Debug, Clone)]
pub struct Chaos {
    pub drop: f64,
    pub duplicate: f64,
    /// Share of messages held back for up to `slow_max_ms` (a congested or retransmitting
    /// link; it reorders them behind later ones).
    pub slow: f64,
    pub slow_max_ms: i64,
    /// Per chaos tick (every `CHAOS_TICK_MS`): a broker crashes; a broker pauses (SIGSTOP, a
    /// long GC or a stuck disk: it runs nothing, and finds everything sent to it meanwhile
    /// when it resumes); a link is cut; a broker is cut off from everyone; the controller
    /// fails over; the cluster splits in two (the controller on one side, and each broker on
    /// either) for up to `split_max_ms`.
    pub crash: f64,
    pub pause: f64,
    pub split: f64,
    pub split_max_ms: i64,
    pub cut_link: f64,
    pub isolate: f64,
    pub failover: f64,
}

impl Chaos {
    pub fn draw(rng: &mut Rng) -> Self {
        Self {
            drop: rng.below(10) as f64 / 1000.0,
            duplicate: rng.below(4) as f64 / 100.0,
            slow: rng.below(10) as f64 / 100.0,
            slow_max_ms: rng.between(100, 4_000),
            crash: rng.below(6) as f64 / 100.0,
            pause: rng.below(4) as f64 / 100.0,
            split: rng.below(3) as f64 / 100.0,
            split_max_ms: rng.between(1_000, 20_000),
            cut_link: rng.below(6) as f64 / 100.0,
            isolate: rng.below(4) as f64 / 100.0,
            failover: rng.below(2) as f64 / 100.0,
        }
    }
}

impl Chaos {
    /// No random faults at all (scripted runs).
    pub fn calm() -> Self {
        Self {
            drop: 0.0,
            duplicate: 0.0,
            slow: 0.0,
            slow_max_ms: 20,
            crash: 0.0,
            pause: 0.0,
            split: 0.0,
            split_max_ms: 0,
            cut_link: 0.0,
            isolate: 0.0,
            failover: 0.0,
        }
    }
}

#[derive(Debug)]
pub struct Network {
    pub chaos: Chaos,
    /// Cut links, each as (smaller, larger) address.
    cuts: BTreeSet<(Addr, Addr)>,
    /// No faults any more: every message arrives, within a few milliseconds.
    pub healed: bool,
}

fn link(a: Addr, b: Addr) -> (Addr, Addr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Network {
    pub fn new(chaos: Chaos) -> Self {
        Self {
            chaos,
            cuts: BTreeSet::new(),
            healed: false,
        }
    }

    pub fn connected(&self, a: Addr, b: Addr) -> bool {
        a == b || !self.cuts.contains(&link(a, b))
    }

    pub fn cut(&mut self, a: Addr, b: Addr) {
        if a != b {
            self.cuts.insert(link(a, b));
        }
    }

    pub fn mend(&mut self, a: Addr, b: Addr) {
        self.cuts.remove(&link(a, b));
    }

    pub fn heal(&mut self) {
        self.cuts.clear();
        self.healed = true;
    }

    /// The delays after which copies of one message arrive: none (dropped), one, or two.
    pub fn fates(&self, rng: &mut Rng) -> Vec<i64> {
        if self.healed {
            return vec![rng.between(1, 5)];
        }
        let c = &self.chaos;
        if rng.chance(c.drop) {
            return vec![];
        }
        let copies = if rng.chance(c.duplicate) { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                if rng.chance(c.slow) {
                    rng.between(20, c.slow_max_ms)
                } else {
                    rng.between(1, 10)
                }
            })
            .collect()
    }
}
