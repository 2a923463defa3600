//! Transaction tests on a whole log: open, commit and abort; the last stable offset; the
//! aborted-transaction index across rolls, truncation and reopen; read_committed bounds;
//! marker epoch rules; followers; compaction of transactional data.

use std::path::Path;
use std::sync::Arc;

use nurt_records::batch::{BatchHeader, Batches};
use nurt_records::record::decode_batch;
use nurt_records::{BatchBuilder, Compression, ControlType};

use crate::cleaner::{clean_segments, CleanOptions};
use crate::txn_index::ENTRY_BYTES;
use crate::{IsolationLevel, Log, LogConfig, LogError, OsStorage, Storage};

fn os() -> Arc<dyn Storage> {
    OsStorage::shared()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

/// A transactional batch of one record `key=value`.
fn txn(pid: i64, epoch: i16, seq: i32, key: &str, value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None, 1_000).transactional(pid, epoch, seq);
    b.push(1_000, Some(key.as_bytes()), Some(value.as_bytes()), &[]);
    b.build().unwrap()
}

fn plain(key: &str, value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None, 1_000);
    b.push(1_000, Some(key.as_bytes()), Some(value.as_bytes()), &[]);
    b.build().unwrap()
}

fn open(dir: &Path, clean: bool) -> Log {
    Log::open(&os(), dir, config(), clean, 0).unwrap()
}

fn txn_index_sizes(dir: &Path) -> Vec<u64> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txnindex"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::metadata(p).unwrap().len()).collect()
}

/// Offsets of the batches a read returns.
fn batch_bases(log: &Log, offset: i64, isolation: IsolationLevel) -> Vec<i64> {
    let mut out = Vec::new();
    let mut at = offset;
    while let Some(slice) = log.read_isolated(at, 1 << 20, isolation).unwrap() {
        let bytes = slice.read_to_vec().unwrap();
        for b in Batches::new(&bytes) {
            let (h, _) = b.unwrap();
            out.push(h.base_offset);
            at = h.last_offset() + 1;
        }
    }
    out
}

#[test]
fn commit_and_abort_move_the_last_stable_offset_and_index_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    log.append(&plain("a", "1"), 0, None, 0).unwrap(); // 0
    log.append(&txn(1, 0, 0, "t1", "x"), 0, None, 0).unwrap(); // 1
    log.append(&txn(2, 0, 0, "t2", "y"), 0, None, 0).unwrap(); // 2
    log.append(&txn(1, 0, 1, "t1", "z"), 0, None, 0).unwrap(); // 3
    assert_eq!(log.producer_state().open_transactions(), vec![(1, 1), (2, 2)]);
    log.set_high_watermark(4);
    assert_eq!(log.first_unstable_offset(), Some(1));
    assert_eq!(log.last_stable_offset(), 1);

    let commit = log.append_marker(1, 0, ControlType::Commit, 0, 0, 0).unwrap(); // 4
    assert_eq!(commit.base_offset, 4);
    let marker = log.read_for_follower(4, 1).unwrap().unwrap().read_to_vec().unwrap();
    let header = BatchHeader::parse(&marker).unwrap();
    assert!(header.is_control() && header.is_transactional());
    // Committed, but its marker is not below the high watermark yet.
    log.set_high_watermark(5);
    assert_eq!(log.last_stable_offset(), 2);
    log.append_marker(2, 0, ControlType::Abort, 0, 0, 0).unwrap(); // 5
    assert_eq!(log.last_stable_offset(), 2);
    log.set_high_watermark(6);
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.last_stable_offset(), 6);
    assert_eq!(log.aborted_transactions(0, 6), vec![(2, 2)]);
    assert_eq!(log.aborted_txns(0, 6)[0].last_offset, 5);
    assert_eq!(log.aborted_txns(0, 6)[0].last_stable_offset, 6);
    // A fetch starting after the marker needs no abort; one ending before the first offset
    // neither.
    assert!(log.aborted_transactions(6, 7).is_empty());
    assert!(log.aborted_transactions(0, 2).is_empty());
    assert_eq!(txn_index_sizes(dir.path()).iter().sum::<u64>(), ENTRY_BYTES as u64);
}

#[test]
fn read_committed_stops_at_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    log.append(&plain("a", "1"), 0, None, 0).unwrap(); // 0
    log.append(&txn(1, 0, 0, "t", "x"), 0, None, 0).unwrap(); // 1
    log.append(&plain("b", "2"), 0, None, 0).unwrap(); // 2
    log.set_high_watermark(3);
    assert_eq!(batch_bases(&log, 0, IsolationLevel::ReadUncommitted), vec![0, 1, 2]);
    assert_eq!(batch_bases(&log, 0, IsolationLevel::ReadCommitted), vec![0]);
    assert!(log
        .read_isolated(1, 100, IsolationLevel::ReadCommitted)
        .unwrap()
        .is_none());
    assert!(matches!(
        log.read_isolated(2, 100, IsolationLevel::ReadCommitted),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    log.append_marker(1, 0, ControlType::Commit, 0, 0, 0).unwrap(); // 3
    log.set_high_watermark(4);
    assert_eq!(batch_bases(&log, 0, IsolationLevel::ReadCommitted), vec![0, 1, 2, 3]);
}

#[test]
fn marker_epochs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    log.append(&txn(7, 3, 0, "k", "v"), 0, None, 0).unwrap();
    assert!(matches!(
        log.append_marker(7, 2, ControlType::Commit, 0, 0, 0),
        Err(LogError::ProducerFenced { current_epoch: 3, .. })
    ));
    // A newer epoch (the coordinator bumped it on abort) is taken.
    log.append_marker(7, 4, ControlType::Abort, 5, 0, 0).unwrap();
    assert_eq!(log.producer_state().producer_epoch(7), Some(4));
    assert!(matches!(
        log.append_marker(7, 4, ControlType::Commit, 4, 0, 0),
        Err(LogError::CoordinatorFenced {
            current_coordinator_epoch: 5,
            ..
        })
    ));
    assert_eq!(log.log_end_offset(), 2, "refused markers write nothing");
}

#[test]
fn a_marker_between_verification_and_append_voids_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    let first = BatchHeader::parse(&txn(7, 0, 0, "k", "v")).unwrap();
    assert!(log.needs_verification(&first));
    assert!(
        !log.verified(&first, None),
        "a batch that would open a transaction needs a guard"
    );
    let guard = log.start_verification(7);
    assert!(log.verified(&first, Some(guard)));
    // The coordinator aborted the transaction before the batch got here: its marker lands.
    log.append_marker(7, 0, ControlType::Abort, 0, 0, 0).unwrap();
    assert!(
        !log.verified(&first, Some(guard)),
        "the marker voids the earlier answer"
    );

    let guard = log.start_verification(7);
    log.append(&txn(7, 0, 0, "k", "v"), 0, None, 0).unwrap();
    let next = BatchHeader::parse(&txn(7, 0, 1, "k", "v")).unwrap();
    assert!(!log.needs_verification(&next), "the transaction is open here now");
    assert!(log.verified(&next, None));
    assert!(
        !log.verifications.holds(7, guard),
        "opening the transaction drops the guard"
    );
    let plain = BatchHeader::parse(&plain("k", "v")).unwrap();
    assert!(!log.needs_verification(&plain));
}

/// Writes transactions across many small segments: producer 1 aborts one that spans several
/// segments, producer 2 commits, producer 3 aborts a short one, producer 4 stays open.
fn spanning_workload(log: &mut Log) {
    log.append(&txn(1, 0, 0, "p1", "a"), 0, None, 0).unwrap(); // 0
    for i in 0..8 {
        log.append(&plain(&format!("k{i}"), "filler-filler-filler"), 0, None, 0)
            .unwrap(); // 1..=8
    }
    log.append(&txn(2, 0, 0, "p2", "b"), 0, None, 0).unwrap(); // 9
    log.append(&txn(1, 0, 1, "p1", "c"), 0, None, 0).unwrap(); // 10
    log.append_marker(1, 0, ControlType::Abort, 0, 0, 0).unwrap(); // 11
    log.append_marker(2, 0, ControlType::Commit, 0, 0, 0).unwrap(); // 12
    for i in 0..4 {
        log.append(&plain(&format!("m{i}"), "filler-filler-filler"), 0, None, 0)
            .unwrap(); // 13..=16
    }
    log.append(&txn(3, 0, 0, "p3", "d"), 0, None, 0).unwrap(); // 17
    log.append_marker(3, 0, ControlType::Abort, 0, 0, 0).unwrap(); // 18
    log.append(&txn(4, 0, 0, "p4", "e"), 0, None, 0).unwrap(); // 19
    log.set_high_watermark(log.log_end_offset());
}

#[test]
fn aborted_index_spans_rolls_and_answers_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    spanning_workload(&mut log);
    let sizes = txn_index_sizes(dir.path());
    assert!(sizes.len() > 3, "expected several segments: {sizes:?}");
    assert_eq!(sizes.iter().sum::<u64>(), 2 * ENTRY_BYTES as u64);
    assert_eq!(log.aborted_transactions(0, 20), vec![(1, 0), (3, 17)]);
    // From a segment past the first offset of the aborted transaction: still listed, since
    // its marker is after the fetch offset.
    assert_eq!(log.aborted_transactions(5, 10), vec![(1, 0)]);
    assert_eq!(log.aborted_transactions(12, 17), Vec::<(i64, i64)>::new());
    assert_eq!(log.aborted_transactions(12, 18), vec![(3, 17)]);
    assert_eq!(log.first_unstable_offset(), Some(19));
    assert_eq!(log.last_stable_offset(), 19);
}

#[test]
fn truncation_removes_aborts_and_reopens_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    spanning_workload(&mut log);
    log.truncate_to(18).unwrap();
    assert_eq!(log.aborted_transactions(0, 20), vec![(1, 0)]);
    assert_eq!(log.producer_state().open_transactions(), vec![(3, 17)]);
    assert_eq!(log.first_unstable_offset(), Some(17));
    log.truncate_to(11).unwrap();
    assert!(log.aborted_transactions(0, 20).is_empty());
    assert_eq!(log.producer_state().open_transactions(), vec![(1, 0), (2, 9)]);
    assert_eq!(txn_index_sizes(dir.path()).iter().sum::<u64>(), 0);
    assert_eq!(log.last_stable_offset(), 0);
    // The log goes on from there: the abort is written again and indexed once.
    log.append_marker(1, 0, ControlType::Abort, 0, 0, 0).unwrap();
    assert_eq!(log.aborted_transactions(0, 20), vec![(1, 0)]);
    log.truncate_fully_and_start_at(100).unwrap();
    assert!(log.producer_state().is_empty());
    assert!(log.aborted_transactions(0, 200).is_empty());
}

/// What a log says about its transactions.
fn txn_view(log: &Log) -> (Vec<(i64, i64)>, Vec<crate::AbortedTxn>, Option<i64>) {
    (
        log.producer_state().open_transactions(),
        log.aborted_txns(0, i64::MAX),
        log.first_unstable_offset(),
    )
}

#[test]
fn reopen_rebuilds_transactions_with_and_without_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    spanning_workload(&mut log);
    let expected = txn_view(&log);
    let end = log.log_end_offset();
    log.close().unwrap();
    drop(log);
    let snapshots = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "snapshot"))
            .collect::<Vec<_>>()
    };
    assert!(snapshots(dir.path()).len() > 1, "a snapshot per roll and one at close");
    // Clean: from the snapshot at the log end.
    let mut log = open(dir.path(), true);
    log.set_high_watermark(end);
    assert_eq!(txn_view(&log), expected);
    drop(log);
    // Unclean: every segment after the recovery point is rescanned and its index rebuilt.
    std::fs::write(dir.path().join("recovery-point"), "0\n").unwrap();
    let mut log = open(dir.path(), false);
    log.set_high_watermark(end);
    assert_eq!(txn_view(&log), expected);
    drop(log);
    // No snapshot at all (a log from before them): the whole log is replayed.
    for p in snapshots(dir.path()) {
        std::fs::remove_file(p).unwrap();
    }
    let mut log = open(dir.path(), true);
    log.set_high_watermark(end);
    assert_eq!(txn_view(&log), expected);
    // The producer's epoch survived too: an older marker is still refused.
    assert!(log.append_marker(4, -1, ControlType::Abort, 0, 0, 0).is_err());
}

#[test]
fn followers_rebuild_the_same_transaction_state() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), true);
    spanning_workload(&mut leader);
    let mut follower = open(follower_dir.path(), true);
    let mut at = 0;
    while let Some(slice) = leader.read_for_follower(at, 1 << 20).unwrap() {
        let bytes = slice.read_to_vec().unwrap();
        for b in Batches::new(&bytes) {
            let (h, raw) = b.unwrap();
            follower.append_as_follower(raw, 0).unwrap();
            at = h.last_offset() + 1;
        }
    }
    follower.set_high_watermark(leader.high_watermark());
    assert_eq!(txn_view(&follower), txn_view(&leader));
}

fn compact(log: &mut Log) {
    let segments = log.plan_compaction(10_000, 0, 0.0, true).unwrap();
    let opts = CleanOptions {
        now_ms: 10_000,
        delete_retention_ms: 1_000_000,
        decompressed_bytes_max: 1 << 20,
    };
    let (cleaned, _) = clean_segments(&**log.storage(), &segments, opts).unwrap();
    log.install_compaction(cleaned).unwrap();
}

/// Every (offset, key, value) of the data records from the log start.
fn records(log: &Log) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while let Some(slice) = log.read_for_follower(at, 1 << 20).unwrap() {
        let bytes = slice.read_to_vec().unwrap();
        let before = at;
        for b in Batches::new(&bytes) {
            let (h, raw) = b.unwrap();
            let (_, recs) = decode_batch(raw, 1 << 20).unwrap();
            if !h.is_control() {
                for r in recs.into_iter().filter(|r| r.offset >= at) {
                    let s = |v: Option<Vec<u8>>| String::from_utf8(v.unwrap_or_default()).unwrap();
                    out.push((r.offset, s(r.key), s(r.value)));
                }
            }
            at = at.max(h.last_offset() + 1);
        }
        assert!(at > before);
    }
    out
}

#[test]
fn compaction_drops_aborted_records_keeps_markers_and_never_touches_open_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    log.append(&plain("k", "committed-1"), 0, None, 0).unwrap(); // 0
    log.append(&txn(1, 0, 0, "k", "aborted"), 0, None, 0).unwrap(); // 1
    log.append_marker(1, 0, ControlType::Abort, 0, 0, 0).unwrap(); // 2
    log.append(&txn(2, 0, 0, "j", "committed-j"), 0, None, 0).unwrap(); // 3
    log.append_marker(2, 0, ControlType::Commit, 0, 0, 0).unwrap(); // 4
    log.append(&txn(3, 0, 0, "open", "first"), 0, None, 0).unwrap(); // 5
    for i in 0..12 {
        log.append(&plain("open", &format!("later-{i}-padding-padding")), 0, None, 0)
            .unwrap();
    }
    log.roll(0).unwrap();
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.last_stable_offset(), 5);
    compact(&mut log);
    let found = records(&log);
    let values: Vec<&str> = found.iter().map(|(_, _, v)| v.as_str()).collect();
    // The aborted write neither survives nor hides the committed value of its key.
    assert!(values.contains(&"committed-1"), "{values:?}");
    assert!(!values.contains(&"aborted"), "{values:?}");
    assert!(values.contains(&"committed-j"));
    // The open transaction's record and everything after it are past the last stable offset.
    assert!(values.contains(&"first"));
    assert_eq!(found.iter().filter(|(_, k, _)| k == "open").count(), 13);
    // Markers stay; the abort is still indexed and the state rebuilds the same.
    for offset in [2, 4] {
        let slice = log.read_for_follower(offset, 1).unwrap().unwrap();
        let h = BatchHeader::parse(&slice.read_to_vec().unwrap()).unwrap();
        assert!(h.is_control() && h.base_offset == offset);
    }
    assert_eq!(log.aborted_transactions(0, 100), vec![(1, 1)]);
    // Producer 1's last batch stays, emptied, so its epoch can be rebuilt from the log.
    let mut kept = None;
    log.scan_headers(usize::MAX, |h| {
        if h.base_offset == 1 {
            kept = Some((h.producer_id, h.record_count));
        }
    })
    .unwrap();
    assert_eq!(kept, Some((1, 0)));
}

#[test]
fn snapshots_past_a_truncation_are_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    spanning_workload(&mut log);
    log.truncate_to(11).unwrap();
    // A new history past the old snapshots' offsets, without transactions (and without a
    // roll, whose snapshot would hide the old ones).
    log.set_config(LogConfig::default());
    for i in 0..15 {
        log.append(&plain(&format!("n{i}"), "new-history-padding"), 0, None, 0)
            .unwrap();
    }
    let expected = log.producer_state().open_transactions();
    assert_eq!(expected, vec![(1, 0), (2, 9)]);
    drop(log);
    let log = Log::open(&os(), dir.path(), LogConfig::default(), true, 0).unwrap();
    assert_eq!(log.producer_state().open_transactions(), expected);
    assert!(log.aborted_transactions(0, 100).is_empty());
}
