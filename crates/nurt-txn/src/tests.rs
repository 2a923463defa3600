//! The coordinator driven with a controlled clock and a scripted producer id source,
//! asserting exact records, responses and markers. Fencing, timeouts, expiration and epoch
//! exhaustion are in [`fencing`]; crash/reload at every step in [`reload`].

/// A refusal that persists nothing (typed where it is compared).
macro_rules! refused {
    ($e:ident) => {
        $crate::Output::answer(Err($crate::TxnError::$e))
    };
}

mod fencing;
mod reload;

use std::ops::RangeFrom;

use crate::txn_version::{TV_0, TV_2};
use crate::*;

/// A coordinator, everything it asked to persist, and the producer ids it may allocate.
pub(crate) struct H {
    pub(crate) c: TxnCoordinator,
    pub(crate) log: Vec<TxnRecord>,
    pub(crate) pids: RangeFrom<i64>,
}

pub(crate) const ID: &str = "txn";
pub(crate) const TIMEOUT: i32 = 60_000;

pub(crate) fn parts(list: &[(&str, i32)]) -> Partitions {
    let mut out = Partitions::new();
    for (t, p) in list {
        out.entry(t.to_string()).or_default().insert(*p);
    }
    out
}

/// A value with the fields tests vary; the rest as a fresh id has them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn val(
    pid: i64,
    prev: i64,
    epoch: i16,
    state: TxnState,
    partitions: &[(&str, i32)],
    last_update_ms: i64,
    start_ms: i64,
    client_version: i16,
) -> TxnLogValue {
    TxnLogValue {
        producer_id: pid,
        previous_producer_id: prev,
        next_producer_id: NO_PRODUCER_ID,
        producer_epoch: epoch,
        timeout_ms: TIMEOUT,
        state,
        partitions: parts(partitions),
        last_update_ms,
        start_ms,
        client_version,
    }
}

pub(crate) fn rec(v: TxnLogValue) -> TxnRecord {
    TxnRecord {
        transactional_id: ID.into(),
        value: Some(v),
    }
}

pub(crate) fn pe(producer_id: i64, epoch: i16) -> ProducerIdAndEpoch {
    ProducerIdAndEpoch { producer_id, epoch }
}

pub(crate) fn markers(pid: i64, epoch: i16, result: TxnResult, list: &[(&str, i32)]) -> TxnMarkers {
    TxnMarkers {
        transactional_id: ID.into(),
        producer_id: pid,
        producer_epoch: epoch,
        result,
        coordinator_epoch: 7,
        partitions: parts(list),
    }
}

impl H {
    pub(crate) fn new() -> Self {
        Self {
            c: TxnCoordinator::new(TxnConfig::default(), 7),
            log: Vec::new(),
            pids: 1000..,
        }
    }

    /// A coordinator that loaded `values` of [`ID`], allocating producer ids from 2000.
    pub(crate) fn loaded(values: &[TxnLogValue]) -> Self {
        let mut h = Self::new();
        h.pids = 2000..;
        for v in values {
            h.c.replay(&rec(v.clone()));
            h.log.push(rec(v.clone()));
        }
        h
    }

    fn keep<R>(&mut self, out: Output<R>) -> Output<R> {
        self.log.extend(out.records.iter().cloned());
        out
    }

    pub(crate) fn init(
        &mut self,
        expected: Option<ProducerIdAndEpoch>,
        now: i64,
    ) -> Output<Result<ProducerIdAndEpoch, TxnError>> {
        let pids = &mut self.pids;
        let out = self.c.init_producer_id(ID, TIMEOUT, expected, &mut || pids.next(), now);
        self.keep(out)
    }

    pub(crate) fn add(
        &mut self,
        pid: i64,
        epoch: i16,
        list: &[(&str, i32)],
        tv: i16,
        now: i64,
    ) -> Output<Result<(), TxnError>> {
        let out = self.c.add_partitions(ID, pid, epoch, &parts(list), tv, now);
        self.keep(out)
    }

    pub(crate) fn end(
        &mut self,
        pid: i64,
        epoch: i16,
        result: TxnResult,
        tv: i16,
        now: i64,
    ) -> Output<Result<Option<ProducerIdAndEpoch>, TxnError>> {
        let pids = &mut self.pids;
        let out = self.c.end_txn(ID, pid, epoch, result, tv, &mut || pids.next(), now);
        self.keep(out)
    }

    pub(crate) fn written(&mut self, m: &TxnMarkers, now: i64) -> Vec<TxnRecord> {
        let records = self
            .c
            .markers_written(&m.transactional_id, m.producer_id, m.producer_epoch, now);
        self.log.extend(records.iter().cloned());
        records
    }

    pub(crate) fn tick(&mut self, now: i64) -> Vec<Output<()>> {
        let pids = &mut self.pids;
        let outs: Vec<Output<()>> = self
            .c
            .tick(now, &mut || pids.next())
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        for o in &outs {
            self.log.extend(o.records.iter().cloned());
        }
        outs
    }
}

fn ok<R>(response: R, records: Vec<TxnRecord>, markers: Option<TxnMarkers>) -> Output<R> {
    Output {
        response,
        records,
        markers,
    }
}

#[test]
fn a_new_id_gets_a_fresh_producer_id_and_then_epoch_bumps() {
    let mut h = H::new();
    let first = val(1000, 1000, 0, TxnState::Empty, &[], 5, -1, TV_0);
    assert_eq!(h.init(None, 5), ok(Ok(pe(1000, 0)), vec![rec(first)], None));
    let second = val(1000, 1000, 1, TxnState::Empty, &[], 9, -1, TV_0);
    assert_eq!(h.init(None, 9), ok(Ok(pe(1000, 1)), vec![rec(second)], None));
}

#[test]
fn init_refuses_bad_ids_and_timeouts() {
    let mut c = TxnCoordinator::new(TxnConfig::default(), 0);
    let mut pids = 1..;
    let mut fresh = || pids.next();
    let bad = c.init_producer_id("", 1, None, &mut fresh, 0);
    assert_eq!(bad.response, Err(TxnError::InvalidRequest("empty transactional id")));
    for timeout in [0, -1, 900_001] {
        let out = c.init_producer_id("t", timeout, None, &mut fresh, 0);
        assert_eq!(out, Output::answer(Err(TxnError::InvalidTransactionTimeout)));
    }
    assert_eq!(
        c.init_producer_id("t", 900_000, None, &mut fresh, 0).response,
        Ok(pe(1, 0))
    );
    let mut none = || None;
    let out = c.init_producer_id("u", 1, None, &mut none, 0);
    assert_eq!(out, Output::answer(Err(TxnError::ProducerIdUnavailable)));
}

#[test]
fn a_commit_at_transaction_version_0() {
    let mut h = H::new();
    h.init(None, 0);
    let ongoing = val(1000, 1000, 0, TxnState::Ongoing, &[("t", 0), ("t", 1)], 10, 10, TV_0);
    let out = h.add(1000, 0, &[("t", 0), ("t", 1)], TV_0, 10);
    assert_eq!(out, ok(Ok(()), vec![rec(ongoing.clone())], None));
    // Partitions already in the transaction: answered at once, nothing written.
    assert_eq!(h.add(1000, 0, &[("t", 1)], TV_0, 11), Output::answer(Ok(())));
    let offsets = h.c.add_offsets(ID, 1000, 0, "group", |g| g.len() as i32, TV_0, 12);
    let with_offsets = val(
        1000,
        1000,
        0,
        TxnState::Ongoing,
        &[("t", 0), ("t", 1), (OFFSETS_TOPIC, 5)],
        12,
        10,
        TV_0,
    );
    assert_eq!(offsets, ok(Ok(()), vec![rec(with_offsets)], None));

    let all = [("t", 0), ("t", 1), (OFFSETS_TOPIC, 5)];
    let prepare = val(1000, 1000, 0, TxnState::PrepareCommit, &all, 20, 10, TV_0);
    let m = markers(1000, 0, TxnResult::Commit, &all);
    let out = h.end(1000, 0, TxnResult::Commit, TV_0, 20);
    assert_eq!(out, ok(Ok(None), vec![rec(prepare)], Some(m.clone())));
    assert_eq!(h.c.pending_markers(), vec![m.clone()]);
    // While the markers are written, the same end is a retry and anything else waits.
    assert_eq!(
        h.end(1000, 0, TxnResult::Commit, TV_0, 21),
        refused!(ConcurrentTransactions)
    );
    assert_eq!(h.add(1000, 0, &[("u", 0)], TV_0, 21), refused!(ConcurrentTransactions));
    assert_eq!(h.init(None, 21), refused!(ConcurrentTransactions));
    assert_eq!(
        h.end(1000, 0, TxnResult::Abort, TV_0, 21),
        Output::answer(Err(TxnError::InvalidTxnState))
    );

    let complete = val(1000, 1000, 0, TxnState::CompleteCommit, &[], 30, 10, TV_0);
    assert_eq!(h.written(&m, 30), vec![rec(complete)]);
    assert_eq!(h.written(&m, 31), vec![], "a second callback changes nothing");
    assert!(h.c.pending_markers().is_empty());
    assert_eq!(h.end(1000, 0, TxnResult::Commit, TV_0, 32), Output::answer(Ok(None)));
    assert_eq!(
        h.end(1000, 0, TxnResult::Abort, TV_0, 32),
        Output::answer(Err(TxnError::InvalidTxnState))
    );
    // The next transaction starts from the completed one.
    let next = val(1000, 1000, 0, TxnState::Ongoing, &[("t", 2)], 40, 40, TV_0);
    assert_eq!(h.add(1000, 0, &[("t", 2)], TV_0, 40), ok(Ok(()), vec![rec(next)], None));
}

#[test]
fn an_abort_at_transaction_version_2_bumps_the_epoch() {
    let mut h = H::new();
    h.init(None, 0);
    h.add(1000, 0, &[("t", 0)], TV_2, 10);
    let prepare = val(1000, 1000, 1, TxnState::PrepareAbort, &[("t", 0)], 20, 10, TV_2);
    let m = markers(1000, 1, TxnResult::Abort, &[("t", 0)]);
    let out = h.end(1000, 0, TxnResult::Abort, TV_2, 20);
    assert_eq!(out, ok(Ok(Some(pe(1000, 1))), vec![rec(prepare)], Some(m.clone())));
    // The retry (old epoch) waits for the markers; the new epoch may not start yet.
    assert_eq!(
        h.end(1000, 0, TxnResult::Abort, TV_2, 21),
        refused!(ConcurrentTransactions)
    );
    assert_eq!(h.add(1000, 1, &[("t", 0)], TV_2, 21), refused!(ConcurrentTransactions));
    assert_eq!(
        h.end(1000, 1, TxnResult::Abort, TV_2, 21),
        Output::answer(Err(TxnError::ProducerFenced))
    );

    let complete = val(1000, 1000, 1, TxnState::CompleteAbort, &[], 30, 10, TV_2);
    assert_eq!(h.written(&m, 30), vec![rec(complete)]);
    // A retry of the end is answered with what the producer continues with.
    assert_eq!(
        h.end(1000, 0, TxnResult::Abort, TV_2, 31),
        Output::answer(Ok(Some(pe(1000, 1))))
    );
    assert_eq!(
        h.end(1000, 0, TxnResult::Commit, TV_2, 31),
        Output::answer(Err(TxnError::InvalidTxnState))
    );
    assert_eq!(
        h.end(1000, 1, TxnResult::Commit, TV_2, 31),
        Output::answer(Err(TxnError::InvalidTxnState))
    );
    // An abort at the current epoch with no open transaction: bump, and complete at once.
    let out = h.end(1000, 1, TxnResult::Abort, TV_2, 40);
    let records = vec![
        rec(val(1000, 1000, 2, TxnState::PrepareAbort, &[], 40, 40, TV_2)),
        rec(val(1000, 1000, 2, TxnState::CompleteAbort, &[], 40, 40, TV_2)),
    ];
    assert_eq!(out, ok(Ok(Some(pe(1000, 2))), records, None));
}

#[test]
fn a_commit_at_transaction_version_2_and_the_next_transaction() {
    let mut h = H::new();
    h.init(None, 0);
    h.add(1000, 0, &[("t", 0)], TV_2, 10);
    let out = h.end(1000, 0, TxnResult::Commit, TV_2, 20);
    assert_eq!(out.response, Ok(Some(pe(1000, 1))));
    let m = out.markers.clone().unwrap();
    assert_eq!(m, markers(1000, 1, TxnResult::Commit, &[("t", 0)]));
    h.written(&m, 30);
    let next = val(1000, 1000, 1, TxnState::Ongoing, &[("u", 3)], 40, 40, TV_2);
    assert_eq!(h.add(1000, 1, &[("u", 3)], TV_2, 40), ok(Ok(()), vec![rec(next)], None));
    assert_eq!(
        h.add(1000, 0, &[("u", 4)], TV_2, 41),
        Output::answer(Err(TxnError::ProducerFenced))
    );
    assert_eq!(
        h.end(1000, 0, TxnResult::Commit, TV_2, 41),
        Output::answer(Err(TxnError::ProducerFenced))
    );
    assert_eq!(
        h.end(1000, 1, TxnResult::Commit, TV_2, 42).response,
        Ok(Some(pe(1000, 2)))
    );
}

#[test]
fn verification_asks_whether_a_partition_is_in_the_transaction() {
    let mut h = H::new();
    h.init(None, 0);
    h.add(1000, 0, &[("t", 0)], TV_0, 10);
    let asked = parts(&[("t", 0), ("t", 1)]);
    assert_eq!(
        h.c.verify_partitions(ID, 1000, 0, &asked),
        Ok(vec![
            (("t".to_string(), 0), Ok(())),
            (("t".to_string(), 1), Err(TxnError::PartitionNotInTransaction)),
        ])
    );
    assert_eq!(
        h.c.verify_partitions(ID, 1000, 1, &asked),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        h.c.verify_partitions(ID, 1001, 0, &asked),
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        h.c.verify_partitions("other", 1000, 0, &asked),
        Err(TxnError::InvalidProducerIdMapping)
    );
    h.end(1000, 0, TxnResult::Commit, TV_0, 20);
    assert_eq!(
        h.c.verify_partitions(ID, 1000, 0, &asked),
        Err(TxnError::ConcurrentTransactions)
    );
}

#[test]
fn describe_and_list() {
    let mut h = H::new();
    h.init(None, 0);
    h.add(1000, 0, &[("t", 0)], TV_0, 10);
    assert_eq!(
        h.c.describe(ID),
        Ok(TxnDescription {
            transactional_id: ID.into(),
            producer_id: 1000,
            producer_epoch: 0,
            state: TxnState::Ongoing,
            timeout_ms: TIMEOUT,
            start_ms: 10,
            partitions: parts(&[("t", 0)]),
        })
    );
    assert_eq!(h.c.describe("nope"), Err(TxnError::TransactionalIdNotFound));
    assert_eq!(
        h.c.describe(""),
        Err(TxnError::InvalidRequest("empty transactional id"))
    );
    let listing = TxnListing {
        transactional_id: ID.into(),
        producer_id: 1000,
        state: TxnState::Ongoing,
    };
    let filter = |states: &[&str], producer_ids: Vec<i64>, min_duration_ms| ListFilter {
        states: states.iter().map(|s| s.to_string()).collect(),
        producer_ids,
        min_duration_ms,
    };
    assert_eq!(h.c.list(&filter(&[], vec![], -1), 100), (vec![listing.clone()], vec![]));
    assert_eq!(
        h.c.list(&filter(&["Ongoing", "Bogus"], vec![1000], 89), 100),
        (vec![listing], vec!["Bogus".to_string()])
    );
    assert_eq!(h.c.list(&filter(&["Empty"], vec![], -1), 100).0, vec![]);
    assert_eq!(h.c.list(&filter(&[], vec![7], -1), 100).0, vec![]);
    assert_eq!(
        h.c.list(&filter(&[], vec![], 90), 100).0,
        vec![],
        "running 90 ms, not longer"
    );
}

#[test]
fn records_that_were_not_persisted_are_undone() {
    let mut h = H::new();
    h.init(None, 0);
    let before = h.c.get(ID).cloned();
    let undo = h.c.undo_point(ID);
    assert_eq!(h.add(1000, 0, &[("t", 0)], TV_0, 10).response, Ok(()));
    h.c.undo(undo);
    assert_eq!(h.c.get(ID).cloned(), before);
    let undo = h.c.undo_point("fresh");
    let mut pids = 5..;
    h.c.init_producer_id("fresh", 1, None, &mut || pids.next(), 0);
    h.c.undo(undo);
    assert_eq!(h.c.get("fresh"), None);
}

#[test]
fn kafka_codes_follow_the_request_version() {
    let fenced = TxnError::ProducerFenced;
    assert_eq!(
        fenced.code_for(TxnApi::InitProducerId, 3),
        error::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(fenced.code_for(TxnApi::InitProducerId, 4), 90);
    for api in [
        TxnApi::AddPartitionsToTxn,
        TxnApi::AddOffsetsToTxn,
        TxnApi::EndTxn,
        TxnApi::TxnOffsetCommit,
    ] {
        assert_eq!(fenced.code_for(api, 1), 47);
        assert_eq!(fenced.code_for(api, 2), 90);
    }
    assert_eq!(TxnError::ConcurrentTransactions.code_for(TxnApi::EndTxn, 0), 51);
}
