//! Crash and reload at every step: the records written so far are replayed into a fresh
//! coordinator, which must hold the same state, owe the same markers, and answer the rest of
//! the script exactly as the coordinator that never stopped.

use super::*;
use crate::txn_version::{TV_0, TV_2};

impl H {
    /// A coordinator rebuilt from this one's log (producer ids continue where they were).
    pub(crate) fn reload(&self) -> H {
        let mut c = TxnCoordinator::new(self.c.cfg.clone(), self.c.coordinator_epoch());
        for r in &self.log {
            let (k, v) = r.encode();
            let decoded = TxnRecord::decode(&k, v.as_deref());
            assert_eq!(decoded.as_ref(), Ok(r), "records survive their encoding");
            if let Ok(r) = decoded {
                c.replay(&r);
            }
        }
        let before: Vec<_> = self.c.transactions().collect();
        assert_eq!(
            c.transactions().collect::<Vec<_>>(),
            before,
            "replay rebuilds the state"
        );
        H {
            c,
            log: self.log.clone(),
            pids: self.pids.clone(),
        }
    }
}

/// The script's memory: the markers last asked for.
struct Run {
    h: H,
    markers: Option<TxnMarkers>,
}

type Step = fn(&mut Run) -> String;

fn keep_markers<R: std::fmt::Debug>(run: &mut Run, out: Output<R>) -> String {
    if let Some(m) = &out.markers {
        run.markers = Some(m.clone());
    }
    format!("{out:?}")
}

fn written(run: &mut Run, now: i64) -> String {
    let m = run.markers.take().expect("the script writes markers it was given");
    format!("{:?}", run.h.written(&m, now))
}

const STEPS: &[Step] = &[
    |r| format!("{:?}", r.h.init(None, 0)),
    |r| format!("{:?}", r.h.add(1000, 0, &[("t", 0), ("u", 1)], TV_0, 1)),
    |r| {
        let out = r.h.end(1000, 0, TxnResult::Commit, TV_0, 2);
        keep_markers(r, out)
    },
    |r| written(r, 3),
    |r| format!("{:?}", r.h.add(1000, 0, &[("t", 1)], TV_0, 4)),
    // A new incarnation: the open transaction is fenced and aborted first.
    |r| {
        let out = r.h.init(None, 5);
        keep_markers(r, out)
    },
    |r| written(r, 6),
    |r| format!("{:?}", r.h.init(None, 7)),
    |r| format!("{:?}", r.h.add(1000, 2, &[("t", 0)], TV_2, 8)),
    |r| {
        let out = r.h.end(1000, 2, TxnResult::Abort, TV_2, 9);
        keep_markers(r, out)
    },
    |r| written(r, 10),
    |r| format!("{:?}", r.h.end(1000, 2, TxnResult::Abort, TV_2, 11)),
    |r| format!("{:?}", r.h.add(1000, 3, &[("v", 0)], TV_2, 12)),
    |r| {
        let outs = r.h.tick(60_013);
        let mut text = String::new();
        for out in outs {
            text += &keep_markers(r, out);
        }
        text
    },
    |r| written(r, 60_014),
    |r| {
        let (_, records) = r.h.c.expire_transactional_ids(60_014 + 7 * 24 * 3_600_000);
        r.h.log.extend(records.iter().cloned());
        format!("{records:?}")
    },
    |r| format!("{:?}", r.h.init(None, 700_000_000)),
];

fn run_script(reload_at: Option<usize>) -> Vec<String> {
    let mut run = Run {
        h: H::new(),
        markers: None,
    };
    let mut outputs = Vec::new();
    for (i, step) in STEPS.iter().enumerate() {
        if reload_at == Some(i) {
            let h = run.h.reload();
            // The new coordinator owes exactly the markers the old one had not finished.
            assert_eq!(
                h.c.pending_markers(),
                run.markers.clone().into_iter().collect::<Vec<_>>()
            );
            run.h = h;
        }
        outputs.push(step(&mut run));
    }
    outputs
}

#[test]
fn a_reload_at_any_step_changes_no_answer_and_no_record() {
    let straight = run_script(None);
    // The script succeeds but for the new incarnation that must wait for the abort.
    let refusals: Vec<_> = straight.iter().filter(|o| o.contains("Err(")).collect();
    assert_eq!(refusals.len(), 1, "{straight:#?}");
    assert!(refusals[0].contains("Err(ConcurrentTransactions)"));
    for k in 0..=STEPS.len() {
        assert_eq!(run_script(Some(k)), straight, "reloaded before step {k}");
    }
}

#[test]
fn the_script_writes_what_kafka_would() {
    let mut run = Run {
        h: H::new(),
        markers: None,
    };
    for step in STEPS {
        step(&mut run);
    }
    let states: Vec<_> = run
        .h
        .log
        .iter()
        .map(|r| r.value.as_ref().map(|v| (v.producer_id, v.producer_epoch, v.state)))
        .collect();
    use TxnState::*;
    assert_eq!(
        states,
        vec![
            Some((1000, 0, Empty)),
            Some((1000, 0, Ongoing)),
            Some((1000, 0, PrepareCommit)),
            Some((1000, 0, CompleteCommit)),
            Some((1000, 0, Ongoing)),
            Some((1000, 1, PrepareAbort)),
            Some((1000, 1, CompleteAbort)),
            Some((1000, 2, Empty)),
            Some((1000, 2, Ongoing)),
            Some((1000, 3, PrepareAbort)),
            Some((1000, 3, CompleteAbort)),
            Some((1000, 3, Ongoing)),
            Some((1000, 4, PrepareAbort)),
            Some((1000, 4, CompleteAbort)),
            None,
            Some((1001, 0, Empty)),
        ]
    );
}
