//! Fencing, KIP-360 recovery, timeouts, expiration and epoch exhaustion, with exact outputs.

use super::*;
use crate::txn_version::{TV_0, TV_2};

const MAX: i16 = i16::MAX;

#[test]
fn unknown_or_mismatched_producers_are_refused() {
    let mut h = H::new();
    assert_eq!(h.add(1000, 0, &[("t", 0)], TV_0, 0), refused!(InvalidProducerIdMapping));
    assert_eq!(
        h.end(1000, 0, TxnResult::Commit, TV_0, 0),
        refused!(InvalidProducerIdMapping)
    );
    h.init(None, 0);
    assert_eq!(h.add(999, 0, &[("t", 0)], TV_0, 1), refused!(InvalidProducerIdMapping));
    assert_eq!(h.add(1000, 1, &[("t", 0)], TV_0, 1), refused!(ProducerFenced));
    assert_eq!(
        h.end(999, 0, TxnResult::Commit, TV_0, 1),
        refused!(InvalidProducerIdMapping)
    );
    assert_eq!(h.end(1000, 1, TxnResult::Commit, TV_0, 1), refused!(ProducerFenced));
    assert_eq!(
        h.end(999, 0, TxnResult::Abort, TV_2, 1),
        refused!(InvalidProducerIdMapping)
    );
    assert_eq!(
        h.end(1000, 0, TxnResult::Commit, TV_0, 1),
        refused!(InvalidTxnState),
        "nothing to commit"
    );
    assert_eq!(h.end(1000, 0, TxnResult::Abort, TV_0, 1), refused!(InvalidTxnState));
    assert_eq!(h.end(1000, 0, TxnResult::Commit, TV_2, 1), refused!(InvalidTxnState));
    h.add(1000, 0, &[("t", 0)], TV_2, 2);
    assert_eq!(h.end(1000, 1, TxnResult::Commit, TV_2, 3), refused!(ProducerFenced));
    assert_eq!(h.end(1000, -1, TxnResult::Commit, TV_2, 3), refused!(ProducerFenced));
    assert_eq!(h.log.len(), 2, "nothing refused was written");
}

#[test]
fn init_aborts_the_previous_incarnations_transaction_first() {
    let mut h = H::new();
    h.init(None, 0);
    h.add(1000, 0, &[("t", 0)], TV_0, 10);
    let fence = val(1000, 1000, 1, TxnState::PrepareAbort, &[("t", 0)], 20, 10, TV_2);
    let m = markers(1000, 1, TxnResult::Abort, &[("t", 0)]);
    let out = h.init(None, 20);
    assert_eq!(
        out,
        ok(Err(TxnError::ConcurrentTransactions), vec![rec(fence)], Some(m.clone()))
    );
    // The previous incarnation is fenced; the new one waits for the abort.
    assert_eq!(h.end(1000, 0, TxnResult::Commit, TV_0, 21), refused!(ProducerFenced));
    assert_eq!(h.add(1000, 0, &[("t", 1)], TV_0, 21), refused!(ProducerFenced));
    assert_eq!(h.init(None, 21), Output::answer(Err(TxnError::ConcurrentTransactions)));
    let complete = val(1000, 1000, 1, TxnState::CompleteAbort, &[], 30, 10, TV_2);
    assert_eq!(h.written(&m, 30), vec![rec(complete)]);
    let empty = val(1000, 1000, 2, TxnState::Empty, &[], 31, -1, TV_2);
    assert_eq!(h.init(None, 31), ok(Ok(pe(1000, 2)), vec![rec(empty)], None));
}

#[test]
fn a_fence_at_server_version_0_records_version_0() {
    let mut h = H::new();
    h.c.cfg.transaction_version = TV_0;
    h.init(None, 0);
    h.add(1000, 0, &[("t", 0)], TV_0, 10);
    let fence = val(1000, 1000, 1, TxnState::PrepareAbort, &[("t", 0)], 20, 10, TV_0);
    assert_eq!(h.init(None, 20).records, vec![rec(fence)]);
}

#[test]
fn a_transaction_past_its_timeout_is_fenced_and_aborted() {
    let mut h = H::new();
    h.init(None, 0);
    h.add(1000, 0, &[("t", 0)], TV_0, 10);
    assert!(h.tick(60_010).is_empty(), "exactly at the timeout is not past it");
    let fence = val(1000, 1000, 1, TxnState::PrepareAbort, &[("t", 0)], 60_011, 10, TV_2);
    let m = markers(1000, 1, TxnResult::Abort, &[("t", 0)]);
    assert_eq!(h.tick(60_011), vec![ok((), vec![rec(fence)], Some(m.clone()))]);
    assert!(h.tick(60_012).is_empty(), "already aborting");
    // A version 0 producer is fenced.
    assert_eq!(
        h.end(1000, 0, TxnResult::Commit, TV_0, 60_013),
        refused!(ProducerFenced)
    );
    assert_eq!(
        h.c.verify_partitions(ID, 1000, 0, &parts(&[("t", 0)])),
        Err(TxnError::ProducerFenced)
    );
    h.written(&m, 60_020);
    assert_eq!(h.end(1000, 0, TxnResult::Abort, TV_0, 60_021), refused!(ProducerFenced));
}

#[test]
fn a_version_2_producer_aborts_its_timed_out_transaction_and_carries_on() {
    let mut h = H::new();
    h.init(None, 0);
    h.add(1000, 0, &[("t", 0)], TV_2, 10);
    let m = h.tick(70_000)[0].markers.clone().unwrap();
    // Its commit is refused, its abort waits for the markers and then looks like its own.
    assert_eq!(
        h.end(1000, 0, TxnResult::Commit, TV_2, 70_001),
        Output::answer(Err(TxnError::InvalidTxnState))
    );
    assert_eq!(
        h.end(1000, 0, TxnResult::Abort, TV_2, 70_001),
        Output::answer(Err(TxnError::ConcurrentTransactions))
    );
    h.written(&m, 70_002);
    assert_eq!(
        h.end(1000, 0, TxnResult::Abort, TV_2, 70_003),
        Output::answer(Ok(Some(pe(1000, 1))))
    );
    assert_eq!(h.add(1000, 1, &[("t", 0)], TV_2, 70_004).response, Ok(()));
}

#[test]
fn kip_360_clients_recover_with_the_epoch_they_hold() {
    let mut h = H::new();
    h.init(None, 0);
    let bumped = val(1000, 1000, 1, TxnState::Empty, &[], 10, -1, TV_0);
    assert_eq!(
        h.init(Some(pe(1000, 0)), 10),
        ok(Ok(pe(1000, 1)), vec![rec(bumped)], None)
    );
    // The response was lost: the retry gets the same epoch, not a second bump.
    let again = val(1000, 1000, 1, TxnState::Empty, &[], 11, -1, TV_0);
    assert_eq!(
        h.init(Some(pe(1000, 0)), 11),
        ok(Ok(pe(1000, 1)), vec![rec(again)], None)
    );
    assert_eq!(h.init(Some(pe(1000, 5)), 12), refused!(ProducerFenced));
    assert_eq!(h.init(Some(pe(999, 1)), 12), refused!(ProducerFenced));
    // A new instance (no epoch named) fences everyone before it, retries included.
    assert_eq!(h.init(None, 13).response, Ok(pe(1000, 2)));
    assert_eq!(h.init(Some(pe(1000, 1)), 14), refused!(ProducerFenced));
    assert_eq!(h.init(Some(pe(1000, 2)), 15).response, Ok(pe(1000, 3)));
    // Kafka does not persist the retry epoch: across a reload the retry is fenced.
    let mut reloaded = h.reload();
    assert_eq!(reloaded.init(Some(pe(1000, 2)), 16), refused!(ProducerFenced));
}

#[test]
fn init_moves_to_a_fresh_producer_id_when_the_epochs_run_out() {
    let exhausted = val(1000, 1000, MAX - 1, TxnState::CompleteCommit, &[], 5, 1, TV_0);
    let mut h = H::loaded(std::slice::from_ref(&exhausted));
    let rotated = val(2000, 1000, 0, TxnState::Empty, &[], 10, -1, TV_0);
    assert_eq!(h.init(None, 10), ok(Ok(pe(2000, 0)), vec![rec(rotated)], None));

    // Named by a KIP-360 client, which may retry with the old producer id.
    let mut h = H::loaded(&[exhausted]);
    assert_eq!(h.init(Some(pe(1000, MAX - 1)), 10).response, Ok(pe(2000, 0)));
    let again = val(2000, 2000, 0, TxnState::Empty, &[], 11, -1, TV_0);
    assert_eq!(
        h.init(Some(pe(1000, MAX - 1)), 11),
        ok(Ok(pe(2000, 0)), vec![rec(again)], None)
    );
    assert_eq!(
        h.init(Some(pe(1000, 3)), 12),
        Output::answer(Err(TxnError::ProducerFenced))
    );
}

#[test]
fn a_version_2_end_at_the_last_epoch_continues_with_the_next_producer_id() {
    let ongoing = val(1000, 1000, MAX - 1, TxnState::Ongoing, &[("t", 0)], 10, 10, TV_2);
    let mut h = H::loaded(&[ongoing]);
    let prepare = TxnLogValue {
        next_producer_id: 2000,
        ..val(1000, 1000, MAX, TxnState::PrepareCommit, &[("t", 0)], 20, 10, TV_2)
    };
    let m = markers(1000, MAX, TxnResult::Commit, &[("t", 0)]);
    let out = h.end(1000, MAX - 1, TxnResult::Commit, TV_2, 20);
    assert_eq!(out, ok(Ok(Some(pe(2000, 0))), vec![rec(prepare)], Some(m.clone())));
    // The producer already holds the next producer id; it waits for the markers.
    assert_eq!(h.add(2000, 0, &[("t", 0)], TV_2, 21), refused!(ConcurrentTransactions));
    let complete = val(2000, 1000, 0, TxnState::CompleteCommit, &[], 30, 10, TV_2);
    assert_eq!(h.written(&m, 30), vec![rec(complete)]);
    // A retry of the end under the old producer id is recognised.
    assert_eq!(
        h.end(1000, MAX - 1, TxnResult::Commit, TV_2, 31),
        Output::answer(Ok(Some(pe(2000, 0))))
    );
    assert_eq!(h.add(2000, 0, &[("t", 0)], TV_2, 32).response, Ok(()));
}

#[test]
fn a_timeout_fence_at_the_last_epochs() {
    // Version 2: the fence takes the last client epoch, so the completion rotates.
    let ongoing = val(1000, 1000, MAX - 2, TxnState::Ongoing, &[("t", 0)], 10, 10, TV_2);
    let mut h = H::loaded(&[ongoing]);
    let out = h.tick(100_000);
    let fence = TxnLogValue {
        next_producer_id: 2000,
        ..val(
            1000,
            1000,
            MAX - 1,
            TxnState::PrepareAbort,
            &[("t", 0)],
            100_000,
            10,
            TV_2,
        )
    };
    assert_eq!(out[0].records, vec![rec(fence)]);
    let m = out[0].markers.clone().unwrap();
    let complete = val(2000, 1000, 0, TxnState::CompleteAbort, &[], 100_001, 10, TV_2);
    assert_eq!(h.written(&m, 100_001), vec![rec(complete)]);

    // Version 0: the fence takes i16::MAX, and the next InitProducerId rotates.
    let ongoing = val(1000, 1000, MAX - 1, TxnState::Ongoing, &[("t", 0)], 10, 10, TV_0);
    let mut h = H::loaded(&[ongoing]);
    h.c.cfg.transaction_version = TV_0;
    let m = h.tick(100_000)[0].markers.clone().unwrap();
    assert_eq!((m.producer_id, m.producer_epoch), (1000, MAX));
    let complete = val(1000, 1000, MAX, TxnState::CompleteAbort, &[], 100_001, 10, TV_0);
    assert_eq!(h.written(&m, 100_001), vec![rec(complete)]);
    assert_eq!(h.init(None, 100_002).response, Ok(pe(2000, 0)));
}

#[test]
fn idle_transactional_ids_expire() {
    let mut h = H::new();
    h.init(None, 0);
    let mut pids = 5000..;
    h.c.init_producer_id("busy", TIMEOUT, None, &mut || pids.next(), 0);
    h.c.add_partitions("busy", 5000, 0, &parts(&[("t", 0)]), TV_0, 0);
    let expiry = h.c.cfg.id_expiration_ms;
    assert!(h.c.expire_transactional_ids(expiry - 1).1.is_empty());
    let (undo, records) = h.c.expire_transactional_ids(expiry);
    let tombstone = TxnRecord {
        transactional_id: ID.into(),
        value: None,
    };
    assert_eq!(records, vec![tombstone]);
    assert_eq!(h.c.get(ID), None);
    assert_eq!(h.c.describe(ID), Err(TxnError::TransactionalIdNotFound));
    assert_eq!(
        h.c.get("busy").map(|v| v.state),
        Some(TxnState::Ongoing),
        "open transactions stay"
    );
    h.c.undo(undo);
    assert_eq!(h.c.get(ID).map(|v| v.producer_id), Some(1000));
    h.c.expire_transactional_ids(expiry);
    // The id starts over with a fresh producer id.
    assert_eq!(h.init(None, expiry + 1).response, Ok(pe(1001, 0)));
}
