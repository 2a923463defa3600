//! What a run hands back: a summary of what it exercised, or the invariant it broke, with
//! the seed to replay it.

use std::fmt;

/// Trace lines kept in a violation report.
const TRACE_TAIL: usize = 120;

/// What a run did (for the tests' summaries and the determinism check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub seed: u64,
    pub steps: u64,
    pub counts: Counts,
    /// One line per step, when `SimConfig::record_trace`.
    pub trace: Vec<String>,
}

/// What happened in a run (or, added up, in many), to show what the runs exercise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub produced: u64,
    /// Produces the brokers acknowledged (the client may have missed some answers).
    pub acknowledged: u64,
    /// Leader epochs handed out (elections).
    pub leader_epochs: u64,
    pub partition_changes: u64,
    pub fencings: u64,
    pub crashes: u64,
    pub divergence_truncations: u64,
    pub stale_fetch_answers: u64,
    pub isr_proposals: u64,
    pub isr_proposals_forgotten: u64,
    pub final_log_end_offset: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.produced += o.produced;
        self.acknowledged += o.acknowledged;
        self.leader_epochs += o.leader_epochs;
        self.partition_changes += o.partition_changes;
        self.fencings += o.fencings;
        self.crashes += o.crashes;
        self.divergence_truncations += o.divergence_truncations;
        self.stale_fetch_answers += o.stale_fetch_answers;
        self.isr_proposals += o.isr_proposals;
        self.isr_proposals_forgotten += o.isr_proposals_forgotten;
        self.final_log_end_offset += o.final_log_end_offset;
    }
}

/// A broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    pub seed: u64,
    pub step: u64,
    pub time_ms: i64,
    pub message: String,
    /// The run's trace up to it, when the run was traced (`Display` shows its tail).
    pub trace: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} violated an invariant at step {} (t = {} ms): {}",
            self.seed, self.step, self.time_ms, self.message
        )?;
        for line in self.trace.iter().skip(self.trace.len().saturating_sub(TRACE_TAIL)) {
            writeln!(f, "  {line}")?;
        }
        write!(f, "replay with NURT_SIM_SEED={}", self.seed)
    }
}
