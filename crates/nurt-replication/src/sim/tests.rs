//! The simulation's tests: many seeds hold every invariant, a seed replays exactly, a
//! deliberately broken leader is caught, and two races of `nurt-broker` as written are
//! reproduced (each passing once the broker does what `BrokerModel::default` describes).
//!
//! `NURT_SIM_SEEDS=<n>` runs seeds 0..n instead of the default; `NURT_SIM_SEED=<s>` runs
//! only seed `s`. A failing seed is run again with its trace, whose tail is printed (the
//! whole trace goes to the file `NURT_SIM_TRACE_FILE` names, if set).

use std::time::Instant;

use super::{run, BrokerModel, Counts, Script, SimConfig, Summary, Timings};
use crate::leader::InjectedFault;

/// Seeds per `cargo test` run: about five seconds in a debug build.
const DEFAULT_SEEDS: u64 = 200;

fn seeds() -> Vec<u64> {
    crate::rng::seeds_from_env(DEFAULT_SEEDS)
}

/// Runs `seed`; on a violation, runs it again with the trace on and panics with both.
fn run_or_explain(seed: u64, cfg: &SimConfig) -> Summary {
    let violation = match run(seed, cfg) {
        Ok(summary) => return summary,
        Err(violation) => violation,
    };
    let traced = SimConfig {
        record_trace: true,
        ..cfg.clone()
    };
    match run(seed, &traced) {
        Err(explained) => {
            if let Ok(path) = std::env::var("NURT_SIM_TRACE_FILE") {
                let _ = std::fs::write(&path, explained.trace.join("\n"));
            }
            panic!("{explained}")
        }
        Ok(_) => panic!("{violation}\n(the traced replay passed: the simulation is not deterministic)"),
    }
}

#[test]
fn many_seeds_hold_every_invariant() {
    let cfg = SimConfig::default();
    let seeds = seeds();
    let started = Instant::now();
    let mut totals = Counts::default();
    let mut steps = 0;
    for &seed in &seeds {
        let summary = run_or_explain(seed, &cfg);
        steps += summary.steps;
        totals.add(&summary.counts);
    }
    eprintln!(
        "{} seeds, {steps} steps in {:.1?}: {totals:?}",
        seeds.len(),
        started.elapsed()
    );
    if seeds.len() >= 50 {
        // The runs must exercise what the invariants are about, or passing means little.
        let per_seed = |n: u64| n / seeds.len() as u64;
        assert!(
            per_seed(totals.acknowledged) >= 20,
            "too few acknowledged writes: {totals:?}"
        );
        assert!(per_seed(totals.leader_epochs) >= 2, "too few elections: {totals:?}");
        assert!(
            totals.crashes > 0 && totals.fencings > 0,
            "no crashes or fencings: {totals:?}"
        );
        assert!(totals.divergence_truncations > 0, "no log ever diverged: {totals:?}");
        assert!(
            totals.stale_fetch_answers > 0,
            "no answer ever outlived its epoch: {totals:?}"
        );
    }
}

#[test]
fn other_cluster_shapes_hold_every_invariant() {
    let shapes = [(5, 3, 2), (5, 5, 3), (2, 2, 1)];
    for (brokers, replication_factor, min_insync_replicas) in shapes {
        let cfg = SimConfig {
            brokers,
            replication_factor,
            min_insync_replicas,
            ..SimConfig::default()
        };
        let mut acknowledged = 0;
        for seed in 0..15 {
            acknowledged += run_or_explain(seed, &cfg).counts.acknowledged;
        }
        assert!(
            acknowledged > 100,
            "{brokers} brokers, RF {replication_factor}: {acknowledged} acknowledged"
        );
    }
}

#[test]
fn the_same_seed_replays_exactly() {
    let traced = SimConfig {
        record_trace: true,
        ..SimConfig::default()
    };
    for seed in [3, 11] {
        let first = run_or_explain(seed, &traced);
        let second = run_or_explain(seed, &traced);
        assert!(first.trace.len() > 1_000, "seed {seed} traced too little");
        assert!(first == second, "seed {seed} ran differently the second time");
        // Tracing only watches: the untraced run takes the same steps.
        let untraced = run_or_explain(seed, &SimConfig::default());
        assert_eq!((untraced.steps, untraced.counts), (first.steps, first.counts));
    }
    let other = run_or_explain(4, &traced);
    assert_ne!(
        run_or_explain(3, &traced).trace,
        other.trace,
        "different seeds, same run"
    );
}

#[test]
fn a_leader_that_counts_a_follower_outside_the_isr_is_caught() {
    let cfg = SimConfig {
        leader_fault: Some(InjectedFault::HighWatermarkOverAnyFollower),
        ..SimConfig::default()
    };
    let caught = (0..DEFAULT_SEEDS).find_map(|seed| run(seed, &cfg).err());
    let violation = caught.expect("no seed caught a leader whose high watermark ignores the ISR");
    eprintln!("caught: {violation}");
    assert!(violation.to_string().contains("replay with NURT_SIM_SEED="));
}

/// `SplitAsTheIsrGrows` with a lag time shorter than `OP_TIMEOUT`: once the proposal is
/// forgotten, the returning follower already counts as lagging.
fn split_as_the_isr_grows(broker: BrokerModel) -> SimConfig {
    SimConfig {
        chaos_ms: 40_000,
        vary_timings: false,
        timings: Timings {
            replica_lag_time_max_ms: 3_000,
            ..Timings::default()
        },
        broker,
        script: Some(Script::SplitAsTheIsrGrows {
            crash_follower_at_ms: 2_000,
            down_ms: 2_000,
            split_ms: 25_000,
        }),
        ..SimConfig::default()
    }
}

/// `isr.rs` calls `proposal_failed` when an AlterPartition gets no answer within
/// `OP_TIMEOUT`, although the controller may have applied it: the leader's high watermark
/// stops waiting for a follower the controller has put in the ISR, the leader commits (and
/// acknowledges) with the other follower alone, and the controller elects the returning
/// follower, which never had those records.
#[test]
fn an_isr_change_forgotten_after_a_lost_answer_loses_acknowledged_writes() {
    let as_written = BrokerModel {
        isr_outcomes_like_kafka: false,
        ..BrokerModel::default()
    };
    let violation = run(1, &split_as_the_isr_grows(as_written)).expect_err("the broker as written loses writes");
    assert!(
        violation.message.contains("lacks committed records") && !violation.message.contains(" 0 of them acknowledged"),
        "{violation}"
    );
    // Kafka's handling keeps the change in flight: the high watermark waits, nothing is lost.
    let fixed = run_or_explain(1, &split_as_the_isr_grows(BrokerModel::default()));
    assert!(fixed.counts.acknowledged > 100, "{:?}", fixed.counts);
}

fn stale_divergence(broker: BrokerModel) -> SimConfig {
    SimConfig {
        chaos_ms: 25_000,
        vary_timings: false,
        broker,
        script: Some(Script::StaleDivergence {
            cut_at_ms: 3_000,
            crash_leader_at_ms: 3_500,
            answer_delay_ms: 5_000,
            pause_ms: 10_000,
        }),
        ..SimConfig::default()
    }
}

/// `replica_fetcher::apply` truncates on a `DivergingEpoch` answer without checking that
/// the partition still follows in the epoch the fetch was sent in: an answer that arrives
/// after this replica was elected cuts the new leader's log below its high watermark.
#[test]
fn a_divergence_answer_that_outlives_its_leader_epoch_truncates_the_new_leader() {
    let as_written = BrokerModel {
        truncate_only_in_fetched_epoch: false,
        ..BrokerModel::default()
    };
    let violation = run(1, &stale_divergence(as_written)).expect_err("the broker as written truncates a leader");
    assert!(violation.message.contains("below its leader state's"), "{violation}");
    run_or_explain(1, &stale_divergence(BrokerModel::default()));
}

/// Runs the seeds against `nurt-broker` as written (both races above), printing each
/// violation: `NURT_SIM_SEEDS=20000 cargo test --release -p nurt-replication
/// explore_the_broker_as_written -- --ignored --nocapture`. The random runs find the stale
/// divergence answer about once in 3,000 seeds (seed 3609 among the first); the lost ISR
/// answer needs the scripted split.
#[test]
#[ignore = "exploration: prints the violations of the broker as written"]
fn explore_the_broker_as_written() {
    let cfg = SimConfig {
        broker: BrokerModel::as_written(),
        ..SimConfig::default()
    };
    let found: Vec<String> = seeds()
        .into_iter()
        .filter_map(|seed| run(seed, &cfg).err())
        .map(|v| format!("seed {}: {}", v.seed, v.message))
        .collect();
    eprintln!("{} violations\n{}", found.len(), found.join("\n"));
}
