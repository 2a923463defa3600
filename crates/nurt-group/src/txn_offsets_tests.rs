//! Transactional offset commits (KIP-98 TxnOffsetCommit, KIP-447 require_stable): pending
//! until the producer's marker, committed or dropped by it, in live order and in replay.

use std::collections::BTreeMap;

use crate::consumer::HeartbeatRequest;
use crate::coordinator::{Committer, OffsetCommit};
use crate::record::OffsetValue;
use crate::tests::{cfg, stable_group};
use crate::{GroupConfig, GroupCoordinator, GroupError, GroupRecord};

const P1: i64 = 1000;
const P2: i64 = 2000;

fn commit(partition: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        topic: "t".into(),
        partition,
        offset,
        leader_epoch: 3,
        metadata: Some(format!("m{offset}")),
    }
}

/// The records of a TxnOffsetCommit of a group without group management (generation -1).
fn txn_records(c: &mut GroupCoordinator, group: &str, commits: Vec<OffsetCommit>, now_ms: i64) -> Vec<GroupRecord> {
    let (records, errors) = c
        .txn_commit_offsets(group, Committer::new("", None, -1), commits, now_ms)
        .unwrap();
    assert!(errors.iter().all(Option::is_none));
    records
}

fn plain_records(c: &mut GroupCoordinator, group: &str, commits: Vec<OffsetCommit>, now_ms: i64) -> Vec<GroupRecord> {
    let (records, errors) = c
        .commit_offsets(group, Committer::new("", None, -1), commits, now_ms)
        .unwrap();
    assert!(errors.iter().all(Option::is_none));
    records
}

fn offset_of(c: &GroupCoordinator, group: &str, partition: i32) -> Option<i64> {
    c.committed(group, "t", partition).map(|v| v.offset)
}

#[test]
fn txn_offsets_are_pending_until_a_commit_marker() {
    let mut c = GroupCoordinator::new(cfg());
    let records = txn_records(&mut c, "g", vec![commit(0, 10), commit(1, 11)], 7);
    assert_eq!(
        records[0],
        GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: Some(OffsetValue {
                offset: 10,
                leader_epoch: 3,
                metadata: "m10".into(),
                commit_timestamp_ms: 7,
            }),
        },
        "ordinary offset commit records: only the batch is transactional"
    );
    c.apply_from(&records, Some(P1));
    assert_eq!(offset_of(&c, "g", 0), None, "pending offsets are not visible");
    assert!(c.committed_all("g").is_empty());
    assert!(c.has_pending_offset("g", "t", 0) && c.has_pending_offset("g", "t", 1));
    assert!(
        !c.has_pending_offset("g", "t", 2),
        "only the partitions of the transaction"
    );
    assert!(!c.has_pending_offset("other", "t", 0));
    assert_eq!(c.pending_offset(P1, "g", "t", 1).map(|v| v.offset), Some(11));
    // A marker of another producer changes nothing.
    c.complete_transaction(P2, true);
    assert_eq!(offset_of(&c, "g", 0), None);
    assert!(c.has_pending_offset("g", "t", 0));
    c.complete_transaction(P1, true);
    assert_eq!((offset_of(&c, "g", 0), offset_of(&c, "g", 1)), (Some(10), Some(11)));
    assert_eq!(c.committed("g", "t", 1).unwrap().metadata, "m11");
    assert!(!c.has_pending_offset("g", "t", 0) && !c.has_pending_offset("g", "t", 1));
    assert_eq!(c.pending_offset(P1, "g", "t", 1), None);
    // A second marker for the same producer is a no-op.
    c.complete_transaction(P1, false);
    assert_eq!(offset_of(&c, "g", 0), Some(10));
}

#[test]
fn an_abort_marker_drops_pending_offsets_and_keeps_the_committed_ones() {
    let mut c = GroupCoordinator::new(cfg());
    let plain = plain_records(&mut c, "g", vec![commit(0, 5)], 1);
    c.apply(&plain);
    let txn = txn_records(&mut c, "g", vec![commit(0, 10), commit(1, 11)], 2);
    c.apply_from(&txn, Some(P1));
    assert_eq!(
        offset_of(&c, "g", 0),
        Some(5),
        "the last committed offset, not the pending one"
    );
    assert!(c.has_pending_offset("g", "t", 0));
    c.complete_transaction(P1, false);
    assert_eq!((offset_of(&c, "g", 0), offset_of(&c, "g", 1)), (Some(5), None));
    assert!(!c.has_pending_offset("g", "t", 0) && !c.has_pending_offset("g", "t", 1));
    // The producer's next transaction starts from nothing pending.
    let txn = txn_records(&mut c, "g", vec![commit(1, 12)], 3);
    c.apply_from(&txn, Some(P1));
    c.complete_transaction(P1, true);
    assert_eq!((offset_of(&c, "g", 0), offset_of(&c, "g", 1)), (Some(5), Some(12)));
}

#[test]
fn the_most_recent_record_wins_between_transactional_and_plain_commits() {
    let mut c = GroupCoordinator::new(cfg());
    // Partition 0: transactional 10, then a plain commit 20 before the marker: 20 stays.
    // Partition 1: plain 30, then transactional 40: the marker makes it 40.
    let plain = plain_records(&mut c, "g", vec![commit(1, 30)], 1);
    c.apply(&plain);
    let txn = txn_records(&mut c, "g", vec![commit(0, 10), commit(1, 40)], 2);
    c.apply_from(&txn, Some(P1));
    let plain = plain_records(&mut c, "g", vec![commit(0, 20)], 3);
    c.apply(&plain);
    assert_eq!((offset_of(&c, "g", 0), offset_of(&c, "g", 1)), (Some(20), Some(30)));
    assert!(c.has_pending_offset("g", "t", 0), "still pending until the marker");
    c.complete_transaction(P1, true);
    assert_eq!((offset_of(&c, "g", 0), offset_of(&c, "g", 1)), (Some(20), Some(40)));
    // Two producers' transactions on one partition: each marker applies its own.
    let a = txn_records(&mut c, "g", vec![commit(2, 100)], 4);
    c.apply_from(&a, Some(P1));
    let b = txn_records(&mut c, "g", vec![commit(2, 200)], 5);
    c.apply_from(&b, Some(P2));
    c.complete_transaction(P2, true);
    assert_eq!(offset_of(&c, "g", 2), Some(200));
    assert!(c.has_pending_offset("g", "t", 2), "P1 still has one pending");
    c.complete_transaction(P1, true);
    assert_eq!(offset_of(&c, "g", 2), Some(200), "P1's record is older than P2's");
    assert!(!c.has_pending_offset("g", "t", 2));
}

/// What a log holds, in order: batches of records (with their producer when transactional)
/// and markers.
enum Logged {
    Batch(Vec<GroupRecord>, Option<i64>),
    Marker(i64, bool),
}

fn replay(log: &[Logged]) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(cfg());
    for entry in log {
        match entry {
            Logged::Batch(records, producer) => {
                for r in records {
                    c.replay_from(r, *producer, 0);
                }
            }
            Logged::Marker(pid, commit) => c.complete_transaction(*pid, *commit),
        }
    }
    c
}

/// Applies `entry` live (as the broker does after appending it) and logs it.
fn step(c: &mut GroupCoordinator, log: &mut Vec<Logged>, entry: Logged) {
    match &entry {
        Logged::Batch(records, producer) => c.apply_from(records, *producer),
        Logged::Marker(pid, commit) => c.complete_transaction(*pid, *commit),
    }
    log.push(entry);
}

#[test]
fn replaying_the_log_rebuilds_committed_and_pending_offsets_in_order() {
    let mut live = GroupCoordinator::new(cfg());
    let mut log = Vec::new();
    let r = txn_records(&mut live, "g", vec![commit(0, 10)], 1);
    step(&mut live, &mut log, Logged::Batch(r, Some(P1)));
    let r = plain_records(&mut live, "g", vec![commit(1, 5)], 2);
    step(&mut live, &mut log, Logged::Batch(r, None));
    let r = txn_records(&mut live, "g", vec![commit(1, 3)], 3);
    step(&mut live, &mut log, Logged::Batch(r, Some(P2)));
    let r = plain_records(&mut live, "g", vec![commit(0, 20)], 4);
    step(&mut live, &mut log, Logged::Batch(r, None));
    // P1 commits (its 10 is older than the plain 20), P2 aborts, P1 starts again.
    step(&mut live, &mut log, Logged::Marker(P1, true));
    step(&mut live, &mut log, Logged::Marker(P2, false));
    let r = txn_records(&mut live, "g", vec![commit(2, 70)], 5);
    step(&mut live, &mut log, Logged::Batch(r, Some(P1)));
    let r = txn_records(&mut live, "h", vec![commit(0, 1)], 6);
    step(&mut live, &mut log, Logged::Batch(r, Some(P2)));
    step(&mut live, &mut log, Logged::Marker(P2, true));

    let replayed = replay(&log);
    for c in [&live, &replayed] {
        assert_eq!(
            (offset_of(c, "g", 0), offset_of(c, "g", 1), offset_of(c, "g", 2)),
            (Some(20), Some(5), None)
        );
        assert_eq!(offset_of(c, "h", 0), Some(1));
        assert_eq!(
            (0..3).map(|p| c.has_pending_offset("g", "t", p)).collect::<Vec<_>>(),
            vec![false, false, true],
            "P1's second transaction is still open"
        );
        assert_eq!(c.pending_offset(P1, "g", "t", 2).map(|v| v.offset), Some(70));
        assert_eq!(c.committed_all("g").len(), 2);
    }
    // The group with only pending offsets is listed (as Kafka's simple group would be).
    let listed: Vec<String> = replayed.list().into_iter().map(|(id, ..)| id).collect();
    assert_eq!(listed, vec!["g".to_string(), "h".to_string()]);

    // A marker replayed before any data of its producer is a no-op; the data stays pending.
    let log = vec![
        Logged::Marker(P1, true),
        Logged::Batch(vec![txn_record("g", 0, 9)], Some(P1)),
    ];
    let c = replay(&log);
    assert_eq!(offset_of(&c, "g", 0), None);
    assert!(c.has_pending_offset("g", "t", 0));
}

fn txn_record(group: &str, partition: i32, offset: i64) -> GroupRecord {
    GroupRecord::Offset {
        group: group.into(),
        topic: "t".into(),
        partition,
        value: Some(OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        }),
    }
}

#[test]
fn require_stable_sees_only_partitions_with_open_transactions() {
    let mut c = GroupCoordinator::new(cfg());
    let plain = plain_records(&mut c, "g", vec![commit(0, 1), commit(1, 2)], 1);
    c.apply(&plain);
    let txn = txn_records(&mut c, "g", vec![commit(1, 3)], 2);
    c.apply_from(&txn, Some(P1));
    assert_eq!(
        (c.has_pending_offset("g", "t", 0), c.has_pending_offset("g", "t", 1)),
        (false, true)
    );
    assert_eq!(
        offset_of(&c, "g", 1),
        Some(2),
        "without require_stable: the last committed"
    );
    c.complete_transaction(P1, true);
    assert!(!c.has_pending_offset("g", "t", 1));
    assert_eq!(offset_of(&c, "g", 1), Some(3));
}

#[test]
fn txn_offset_commit_validates_like_kafka() {
    let mut c = stable_group(&["m1"]);
    let ok = |r: Result<(Vec<GroupRecord>, Vec<Option<GroupError>>), GroupError>| r.map(|(_, e)| e);
    assert_eq!(
        ok(c.txn_commit_offsets("", Committer::new("", None, -1), vec![commit(0, 1)], 0)),
        Err(GroupError::InvalidGroupId)
    );
    assert_eq!(
        ok(c.txn_commit_offsets("g", Committer::new("zz", None, 1), vec![commit(0, 1)], 0)),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        ok(c.txn_commit_offsets("g", Committer::new("m1", None, 7), vec![commit(0, 1)], 0)),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        ok(c.txn_commit_offsets("g", Committer::new("m1", None, 1), vec![commit(0, 1)], 0)),
        Ok(vec![None])
    );
    // v0-v2 carry neither member nor generation: accepted even though the group has members
    // (OffsetCommit would answer UNKNOWN_MEMBER_ID).
    assert_eq!(
        ok(c.txn_commit_offsets("g", Committer::new("", None, -1), vec![commit(0, 1)], 0)),
        Ok(vec![None])
    );
    assert_eq!(
        c.commit_offsets("g", Committer::new("", None, -1), vec![commit(0, 1)], 0)
            .map(|(_, e)| e),
        Err(GroupError::UnknownMemberId)
    );
    // A generation of -1 with a member id is checked like a generation.
    assert_eq!(
        ok(c.txn_commit_offsets("g", Committer::new("m1", None, -1), vec![commit(0, 1)], 0)),
        Err(GroupError::IllegalGeneration)
    );
    // Unknown group: a generation creates nothing, -1 makes a simple group.
    assert_eq!(
        ok(c.txn_commit_offsets("new", Committer::new("m", None, 2), vec![commit(0, 1)], 0)),
        Err(GroupError::IllegalGeneration)
    );
    assert!(c.group("new").is_none());
    assert_eq!(
        ok(c.txn_commit_offsets("new", Committer::new("", None, -1), vec![commit(0, 1)], 0)),
        Ok(vec![None])
    );
    assert!(c.group("new").is_some());
    // Metadata over offset.metadata.max.bytes is refused per partition.
    let mut c = GroupCoordinator::new(GroupConfig {
        offset_metadata_max_bytes: 3,
        ..cfg()
    });
    let long = OffsetCommit {
        metadata: Some("four".into()),
        ..commit(1, 1)
    };
    let (records, errors) = c
        .txn_commit_offsets("g", Committer::new("", None, -1), vec![commit(0, 1), long], 0)
        .unwrap();
    assert_eq!(errors, vec![None, Some(GroupError::OffsetMetadataTooLarge)]);
    assert_eq!(records.len(), 1);
}

#[test]
fn txn_offset_commit_checks_kip848_member_epochs() {
    let mut c = GroupCoordinator::new(cfg());
    let topics: BTreeMap<String, ([u8; 16], i32)> = [("t".to_string(), ([5u8; 16], 2))].into();
    let req = HeartbeatRequest {
        member_id: "a".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        client_id: "client".into(),
        ..Default::default()
    };
    let (answer, _) = c.consumer_heartbeat("g", req, &topics, String::new(), 0);
    assert_eq!((answer.error, answer.member_epoch), (None, 1));
    let ok = |r: Result<(Vec<GroupRecord>, Vec<Option<GroupError>>), GroupError>| r.map(|(_, e)| e);
    assert_eq!(
        ok(c.txn_commit_offsets("g", Committer::new("a", None, 1), vec![commit(0, 1)], 0)),
        Ok(vec![None])
    );
    assert_eq!(
        ok(c.txn_commit_offsets("g", Committer::new("b", None, 1), vec![commit(0, 1)], 0)),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        ok(c.txn_commit_offsets("g", Committer::new("a", None, 2), vec![commit(0, 1)], 0)),
        Err(GroupError::FencedMemberEpoch)
    );
    assert_eq!(
        ok(c.txn_commit_offsets("g", Committer::new("", None, -1), vec![commit(0, 1)], 0)),
        Err(GroupError::UnknownMemberId),
        "a KIP-848 group with members needs a member"
    );
}

#[test]
fn group_deletion_topic_deletion_and_offset_delete_drop_pending_offsets() {
    let mut c = GroupCoordinator::new(cfg());
    let plain = plain_records(&mut c, "g", vec![commit(0, 1)], 1);
    c.apply(&plain);
    let txn = txn_records(&mut c, "g", vec![commit(0, 2), commit(1, 3)], 2);
    c.apply_from(&txn, Some(P1));
    let tombstone = |p| GroupRecord::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition: p,
        value: None,
    };
    // OffsetDelete covers the partition whose only offset is pending.
    assert_eq!(c.delete_offsets("g", "t", &[1]).unwrap(), vec![tombstone(1)]);
    // Topic deletion: one tombstone per partition, committed or pending.
    assert_eq!(c.forget_topics(|t| t == "t"), vec![tombstone(0), tombstone(1)]);
    let tombstones = c.delete_group("g").unwrap();
    assert_eq!(
        tombstones,
        vec![
            tombstone(0),
            tombstone(1),
            GroupRecord::Group {
                group: "g".into(),
                value: None
            }
        ]
    );
    c.apply(&tombstones);
    assert!(!c.has_pending_offset("g", "t", 0) && !c.has_pending_offset("g", "t", 1));
    // The transaction's marker then materializes nothing.
    c.complete_transaction(P1, true);
    assert_eq!((offset_of(&c, "g", 0), offset_of(&c, "g", 1)), (None, None));
    assert!(c.list().is_empty());

    // A group known only by pending offsets can be deleted.
    let mut c = GroupCoordinator::new(cfg());
    c.replay_from(&txn_record("p", 0, 4), Some(P2), 0);
    let tombstones = c.delete_group("p").unwrap();
    assert_eq!(tombstones.len(), 2);
    c.apply(&tombstones);
    assert!(!c.has_pending_offset("p", "t", 0));
    assert_eq!(c.delete_group("p").unwrap_err(), GroupError::GroupIdNotFound);
}

#[test]
fn expiry_waits_for_a_partitions_open_transaction() {
    let mut c = GroupCoordinator::new(GroupConfig {
        offsets_retention_ms: 1_000,
        ..cfg()
    });
    let plain = plain_records(&mut c, "g", vec![commit(0, 1), commit(1, 1)], 0);
    c.apply(&plain);
    let txn = txn_records(&mut c, "g", vec![commit(1, 2)], 10);
    c.apply_from(&txn, Some(P1));
    let expired = c.expire_offsets(5_000);
    assert_eq!(
        expired,
        vec![GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: None
        }],
        "partition 1 has a pending offset: kept until its transaction ends"
    );
    c.apply(&expired);
    c.complete_transaction(P1, false);
    assert_eq!(c.expire_offsets(5_000).len(), 1, "after the abort, partition 1 expires");
}
