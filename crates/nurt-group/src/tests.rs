//! The group state machines driven with a controlled clock, asserting exact outputs.

use std::collections::BTreeMap;

use crate::classic::{ClassicState, JoinMember, JoinRequest, JoinResponse, SyncRequest, SyncResponse};
use crate::consumer::HeartbeatRequest;
use crate::consumer::HeartbeatResponse;
use crate::coordinator::{Committer, OffsetCommit};
use crate::{Completion, Group, GroupConfig, GroupCoordinator, GroupError, GroupRecord, TopicId};

/// Every group's tick output, merged (these tests persist nothing).
fn ticked(c: &mut GroupCoordinator, now_ms: i64) -> crate::Output {
    let mut merged = crate::Output::default();
    for (_, out) in c.tick(now_ms) {
        merged.completions.extend(out.completions);
        merged.records.extend(out.records);
    }
    merged
}

pub(crate) fn cfg() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

fn join_req(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), vec![1]), ("roundrobin".into(), vec![2])],
        require_known_member_id: true,
    }
}

fn join_answer(c: &Completion) -> &JoinResponse {
    match c {
        Completion::Join(j) => j,
        other => panic!("expected a join answer, got {other:?}"),
    }
}

fn sync_answer(c: &Completion) -> &SyncResponse {
    match c {
        Completion::Sync(s) => s,
        other => panic!("expected a sync answer, got {other:?}"),
    }
}

/// Joins `ids` (each through MEMBER_ID_REQUIRED) and syncs; returns the coordinator at t=0.
pub(crate) fn stable_group(ids: &[&str]) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(cfg());
    for (i, id) in ids.iter().enumerate() {
        let out = c.join("g", 100 + i as u64, join_req(""), id.to_string(), 0);
        assert_eq!(
            join_answer(&out.completions[0].1).error,
            Some(GroupError::MemberIdRequired)
        );
        assert_eq!(join_answer(&out.completions[0].1).member_id, *id);
    }
    let mut answers = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        answers.extend(c.join("g", i as u64, join_req(id), String::new(), 0).completions);
    }
    assert_eq!(answers.len(), ids.len(), "everyone is answered once all have joined");
    let leader = ids.iter().min().unwrap().to_string();
    for (_, a) in &answers {
        let j = join_answer(a);
        assert_eq!(
            (j.error, j.generation_id, j.protocol_name.as_deref(), j.leader.as_str()),
            (None, 1, Some("range"), leader.as_str())
        );
        assert_eq!(j.members.len(), if j.member_id == leader { ids.len() } else { 0 });
    }
    let mut synced = Vec::new();
    for (i, id) in ids.iter().enumerate().filter(|(_, id)| **id != leader) {
        let sync = SyncRequest {
            generation_id: 1,
            member_id: id.to_string(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![],
        };
        let out = c.sync("g", 200 + i as u64, sync, 0);
        assert!(out.completions.is_empty(), "followers wait for the leader");
        synced.push(id);
    }
    let assignments = ids
        .iter()
        .map(|id| (id.to_string(), format!("assignment-of-{id}").into_bytes()))
        .collect();
    let sync = SyncRequest {
        generation_id: 1,
        member_id: leader.clone(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    };
    let out = c.sync("g", 300, sync, 0);
    assert_eq!(out.completions.len(), ids.len());
    for (_, a) in &out.completions {
        assert_eq!(sync_answer(a).error, None);
    }
    assert!(
        matches!(&out.records[..], [GroupRecord::Group { value: Some(v), .. }] if v.generation == 1 && v.members.len() == ids.len())
    );
    c
}

fn state(c: &GroupCoordinator) -> ClassicState {
    match c.group("g").unwrap() {
        crate::Group::Classic(g) => g.state(),
        _ => panic!("classic group expected"),
    }
}

#[test]
fn join_sync_assigns_and_stabilizes() {
    let c = stable_group(&["m1", "m2", "m3"]);
    assert_eq!(state(&c), ClassicState::Stable);
}

#[test]
fn expired_member_triggers_rebalance_and_survivor_rejoins() {
    let mut c = stable_group(&["m1", "m2"]);
    assert_eq!(c.heartbeat("g", "m1", None, 1, 9_000), Ok(()));
    // m2 never heartbeats: after its 10 s session it is removed.
    let out = ticked(&mut c, 10_001);
    assert!(out.completions.is_empty());
    assert_eq!(state(&c), ClassicState::PreparingRebalance);
    assert_eq!(
        c.heartbeat("g", "m1", None, 1, 10_002),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        c.heartbeat("g", "m2", None, 1, 10_002),
        Err(GroupError::UnknownMemberId)
    );
    let out = c.join("g", 7, join_req("m1"), String::new(), 10_003);
    let j = join_answer(&out.completions[0].1);
    assert_eq!((j.generation_id, j.leader.as_str(), j.members.len()), (2, "m1", 1));
    assert_eq!(
        j.members[0],
        JoinMember {
            member_id: "m1".into(),
            group_instance_id: None,
            metadata: vec![1]
        }
    );
    assert_eq!(state(&c), ClassicState::CompletingRebalance);
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_deadline() {
    let mut c = stable_group(&["m1", "m2"]);
    // m1 changes its protocols: rebalance; m2 keeps heartbeating but never rejoins.
    let mut req = join_req("m1");
    req.protocols.reverse();
    assert!(c.join("g", 1, req, String::new(), 1_000).completions.is_empty());
    for t in [5_000, 14_000, 23_000, 30_000] {
        assert_eq!(c.heartbeat("g", "m2", None, 1, t), Err(GroupError::RebalanceInProgress));
        assert!(ticked(&mut c, t + 1).completions.is_empty());
    }
    assert!(ticked(&mut c, 30_999).completions.is_empty());
    let out = ticked(&mut c, 31_000);
    let j = join_answer(&out.completions[0].1);
    assert_eq!(
        (j.member_id.as_str(), j.generation_id, j.protocol_name.as_deref()),
        ("m1", 2, Some("roundrobin"))
    );
    assert_eq!(
        c.heartbeat("g", "m2", None, 1, 31_001),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn leave_rebalances_and_last_leave_empties() {
    let mut c = stable_group(&["m1", "m2"]);
    let (results, _) = c.leave("g", &[("m2".into(), None), ("nobody".into(), None)], 100);
    assert_eq!(results, vec![Ok(()), Err(GroupError::UnknownMemberId)]);
    assert_eq!(state(&c), ClassicState::PreparingRebalance);
    let (results, out) = c.leave("g", &[("m1".into(), None)], 200);
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(state(&c), ClassicState::Empty);
    assert!(matches!(&out.records[..], [GroupRecord::Group { value: Some(v), .. }] if v.members.is_empty()));
}

#[test]
fn sync_with_wrong_generation_or_member_is_refused() {
    let mut c = stable_group(&["m1"]);
    let sync = |gen, id: &str| SyncRequest {
        generation_id: gen,
        member_id: id.into(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: vec![],
    };
    assert_eq!(
        sync_answer(&c.sync("g", 1, sync(0, "m1"), 0).completions[0].1).error,
        Some(GroupError::IllegalGeneration)
    );
    assert_eq!(
        sync_answer(&c.sync("g", 2, sync(1, "zz"), 0).completions[0].1).error,
        Some(GroupError::UnknownMemberId)
    );
    let ok = c.sync("g", 3, sync(1, "m1"), 0);
    assert_eq!(
        sync_answer(&ok.completions[0].1).assignment,
        b"assignment-of-m1".to_vec()
    );
}

#[test]
fn static_member_returns_without_rebalance() {
    let mut c = GroupCoordinator::new(cfg());
    let mut req = join_req("");
    req.group_instance_id = Some("instance-1".into());
    let out = c.join("g", 1, req.clone(), "first-id".into(), 0);
    let j = join_answer(&out.completions[0].1);
    assert_eq!((j.member_id.as_str(), j.generation_id), ("first-id", 1));
    let sync = SyncRequest {
        generation_id: 1,
        member_id: "first-id".into(),
        group_instance_id: Some("instance-1".into()),
        protocol_type: None,
        protocol_name: None,
        assignments: vec![("first-id".into(), vec![9])],
    };
    c.sync("g", 2, sync, 0);
    // The same instance restarts: a new member id, same generation, no rebalance.
    let out = c.join("g", 3, req, "second-id".into(), 1_000);
    let j = join_answer(&out.completions[0].1);
    assert_eq!((j.member_id.as_str(), j.generation_id), ("second-id", 1));
    assert_eq!(state(&c), ClassicState::Stable);
    assert_eq!(
        c.heartbeat("g", "first-id", Some("instance-1"), 1, 1_001),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(c.heartbeat("g", "second-id", Some("instance-1"), 1, 1_001), Ok(()));
}

#[test]
fn offsets_commit_only_for_members_and_delete_only_empty_groups() {
    let mut c = stable_group(&["m1"]);
    let commit = |p| OffsetCommit {
        topic: "t".into(),
        partition: p,
        offset: 42,
        leader_epoch: 0,
        metadata: None,
    };
    assert_eq!(
        c.commit_offsets("g", Committer::new("zz", None, 1), vec![commit(0)], 5)
            .unwrap_err(),
        GroupError::UnknownMemberId
    );
    assert_eq!(
        c.commit_offsets("g", Committer::new("m1", None, 7), vec![commit(0)], 5)
            .unwrap_err(),
        GroupError::IllegalGeneration
    );
    let (records, errors) = c
        .commit_offsets("g", Committer::new("m1", None, 1), vec![commit(0), commit(1)], 5)
        .unwrap();
    assert_eq!(errors, vec![None, None]);
    c.apply(&records);
    assert_eq!(c.committed("g", "t", 1).map(|v| v.offset), Some(42));
    assert_eq!(c.delete_group("g").unwrap_err(), GroupError::NonEmptyGroup);
    c.leave("g", &[("m1".into(), None)], 10);
    let tombstones = c.delete_group("g").unwrap();
    assert_eq!(tombstones.len(), 3);
    c.apply(&tombstones);
    assert!(c.committed("g", "t", 0).is_none());
    assert_eq!(c.delete_group("g").unwrap_err(), GroupError::GroupIdNotFound);
}

/// A KIP-848 heartbeat of member `id` subscribing to "orders" when it joins (epoch 0),
/// owning `owned` partitions of `topic`.
fn orders_heartbeat(topic: TopicId, id: &str, epoch: i32, owned: Option<Vec<i32>>) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: id.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: (epoch == 0).then(|| vec!["orders".to_string()]),
        owned: owned.map(|ps| vec![(topic, ps)]),
        client_id: format!("client-{id}"),
        ..Default::default()
    }
}

/// A KIP-848 heartbeat to group "g", answer only.
fn beat(
    c: &mut GroupCoordinator,
    req: HeartbeatRequest,
    topics: &BTreeMap<String, (TopicId, i32)>,
    fresh: String,
    now_ms: i64,
) -> HeartbeatResponse {
    c.consumer_heartbeat("g", req, topics, fresh, now_ms).0
}

#[test]
fn kip848_revokes_before_reassigning() {
    let mut c = GroupCoordinator::new(cfg());
    let topic = [7u8; 16];
    let topics: BTreeMap<String, ([u8; 16], i32)> = [("orders".to_string(), (topic, 4))].into();
    let hb = |id: &str, epoch, owned| orders_heartbeat(topic, id, epoch, owned);
    let a = beat(&mut c, hb("a", 0, None), &topics, String::new(), 0);
    assert_eq!((a.error, a.member_epoch), (None, 1));
    assert_eq!(a.assignment, Some(vec![(topic, vec![0, 1, 2, 3])]));
    // b joins: it gets nothing yet, a still owns everything.
    let b = beat(&mut c, hb("b", 0, None), &topics, String::new(), 10);
    assert_eq!(b.error, None);
    assert_eq!(b.assignment, Some(vec![]));
    // a is told to give up two partitions, keeping its epoch until it has.
    let a = beat(&mut c, hb("a", 1, Some(vec![0, 1, 2, 3])), &topics, String::new(), 20);
    let kept = a.assignment.clone().unwrap()[0].1.clone();
    assert_eq!((a.member_epoch, kept.len()), (1, 2));
    // b asks again: the revoked partitions are not free until a confirms.
    let b2 = beat(
        &mut c,
        hb("b", b.member_epoch, Some(vec![])),
        &topics,
        String::new(),
        30,
    );
    assert_eq!(b2.assignment, None);
    let a = beat(&mut c, hb("a", 1, Some(kept.clone())), &topics, String::new(), 40);
    assert_eq!((a.error, a.member_epoch), (None, 2));
    let b3 = beat(
        &mut c,
        hb("b", b2.member_epoch, Some(vec![])),
        &topics,
        String::new(),
        50,
    );
    let got = b3.assignment.unwrap()[0].1.clone();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|p| !kept.contains(p)));
    // A stale epoch is fenced; a member that stops heartbeating is expired.
    assert_eq!(b3.member_epoch, 2);
    assert_eq!(
        beat(&mut c, hb("a", 5, None), &topics, String::new(), 60).error,
        Some(GroupError::FencedMemberEpoch)
    );
    // a last heartbeat at 40, b at 50: only a has timed out one ms past its session.
    let t = 40 + c.cfg.consumer_session_timeout_ms + 1;
    ticked(&mut c, t);
    let b4 = beat(&mut c, hb("b", 2, Some(got)), &topics, String::new(), t);
    assert_eq!(b4.error, None);
    assert_eq!(b4.assignment.map(|a| a[0].1.len()), Some(4));
}

#[test]
fn offsets_of_groups_without_members_expire_after_retention() {
    let mut c = GroupCoordinator::new(GroupConfig {
        offsets_retention_ms: 1_000,
        ..cfg()
    });
    let commit = OffsetCommit {
        topic: "t".into(),
        partition: 0,
        offset: 5,
        leader_epoch: 0,
        metadata: None,
    };
    let (records, _) = c
        .commit_offsets("standalone", Committer::new("", None, -1), vec![commit], 100)
        .unwrap();
    c.apply(&records);
    assert!(c.expire_offsets(1_100).is_empty(), "not yet past retention");
    let tombstones = c.expire_offsets(1_101);
    assert_eq!(
        tombstones,
        vec![GroupRecord::Offset {
            group: "standalone".into(),
            topic: "t".into(),
            partition: 0,
            value: None
        }]
    );
    c.apply(&tombstones);
    assert!(c.committed("standalone", "t", 0).is_none());
    // A group with members keeps its offsets however old they are.
    let mut c = stable_group(&["m1"]);
    let commit = OffsetCommit {
        topic: "t".into(),
        partition: 0,
        offset: 5,
        leader_epoch: 0,
        metadata: None,
    };
    let (records, _) = c
        .commit_offsets("g", Committer::new("m1", None, 1), vec![commit], 0)
        .unwrap();
    c.apply(&records);
    assert!(c.expire_offsets(i64::MAX / 2).is_empty());
}

/// KIP-848 regex subscriptions: the regex matches whole topic names (not internal ones), the
/// assignment follows topics created later, and an invalid regex is refused.
#[test]
fn kip848_regex_subscriptions_follow_the_topics() {
    let mut c = GroupCoordinator::new(cfg());
    let (orders_eu, orders_us, other) = ([1u8; 16], [2u8; 16], [3u8; 16]);
    let mut topics: BTreeMap<String, ([u8; 16], i32)> = [
        ("orders-eu".to_string(), (orders_eu, 2)),
        ("other".to_string(), (other, 1)),
        ("__consumer_offsets".to_string(), ([9u8; 16], 50)),
        ("xorders-eu".to_string(), ([4u8; 16], 1)),
    ]
    .into();
    let join = HeartbeatRequest {
        member_id: "a".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_regex: Some("orders-.*".into()),
        ..Default::default()
    };
    let a = beat(&mut c, join, &topics, String::new(), 0);
    assert_eq!(a.error, None);
    assert_eq!(
        a.assignment,
        Some(vec![(orders_eu, vec![0, 1])]),
        "a whole-name match, nothing else"
    );
    // A matching topic appears: the next heartbeat brings its partitions.
    topics.insert("orders-us".to_string(), (orders_us, 1));
    let again = HeartbeatRequest {
        member_id: "a".into(),
        member_epoch: a.member_epoch,
        owned: Some(vec![(orders_eu, vec![0, 1])]),
        ..Default::default()
    };
    let a2 = beat(&mut c, again, &topics, String::new(), 10);
    let mut got = a2.assignment.expect("the assignment changed");
    got.sort();
    assert_eq!(got, vec![(orders_eu, vec![0, 1]), (orders_us, vec![0])]);
    let bad = HeartbeatRequest {
        member_id: "b".into(),
        member_epoch: 0,
        subscribed_topic_regex: Some("orders-(".into()),
        ..Default::default()
    };
    let b = beat(&mut c, bad, &topics, String::new(), 20);
    assert_eq!(b.error, Some(GroupError::InvalidRegularExpression));
}

/// KIP-848 group state is records: a coordinator that replays what another wrote (through
/// the byte encoding) has the same members, epochs, target and current assignments, gives
/// every member a fresh session, and answers the next heartbeats without fencing anyone or
/// bumping the group epoch.
#[test]
fn kip848_group_state_survives_a_reload() {
    let mut c = GroupCoordinator::new(cfg());
    let topic = [7u8; 16];
    let topics: BTreeMap<String, ([u8; 16], i32)> = [("orders".to_string(), (topic, 4))].into();
    let hb = |id: &str, epoch, owned| orders_heartbeat(topic, id, epoch, owned);
    let mut log: Vec<GroupRecord> = Vec::new();
    // A heartbeat whose records go through their bytes into `log`.
    let call = |c: &mut GroupCoordinator, log: &mut Vec<GroupRecord>, req, now| {
        let (answer, records) = c.consumer_heartbeat("g", req, &topics, String::new(), now);
        for r in records {
            let (k, v) = r.encode();
            log.push(GroupRecord::decode(&k, v.as_deref()).unwrap());
        }
        answer
    };
    call(&mut c, &mut log, hb("a", 0, None), 0);
    let b = call(&mut c, &mut log, hb("b", 0, None), 10);
    // a is mid-revocation when the coordinator goes away.
    let a = call(&mut c, &mut log, hb("a", 1, Some(vec![0, 1, 2, 3])), 20);
    let kept = a.assignment.unwrap()[0].1.clone();
    let writes = log.len();
    assert!(call(&mut c, &mut log, hb("a", 1, Some(vec![0, 1, 2, 3])), 25)
        .error
        .is_none());
    assert_eq!(log.len(), writes, "a heartbeat that changes nothing writes nothing");

    let mut loaded = GroupCoordinator::new(cfg());
    let load_ms = 1_000_000;
    for r in &log {
        loaded.replay(r, load_ms);
    }
    let (Some(Group::Consumer(before)), Some(Group::Consumer(after))) = (c.group("g"), loaded.group("g")) else {
        panic!("a consumer group on both sides");
    };
    assert_eq!(
        (before.epoch, before.assignment_epoch),
        (after.epoch, after.assignment_epoch)
    );
    let view = |g: &crate::consumer::ConsumerGroup| {
        g.members()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.client_id.clone(),
                    m.subscribed.clone(),
                    m.epoch,
                    m.assigned.clone(),
                    m.pending_revocation.clone(),
                    g.target_of(&m.member_id),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(view(before), view(after));
    let group_epoch = after.epoch;

    // Sessions start at the load: nobody expires a moment before a full session.
    let session_ms = loaded.cfg.consumer_session_timeout_ms;
    assert!(ticked(&mut loaded, load_ms + session_ms - 1).records.is_empty());
    let mut c = loaded;
    // a finishes revoking with the epoch it had; b then gets the freed partitions.
    let a = call(&mut c, &mut log, hb("a", 1, Some(kept.clone())), load_ms + 10);
    assert_eq!((a.error, a.member_epoch), (None, 2));
    let b = call(&mut c, &mut log, hb("b", b.member_epoch, Some(vec![])), load_ms + 20);
    assert_eq!(b.error, None);
    let got = b.assignment.expect("the freed partitions")[0].1.clone();
    assert!(
        got.len() == 2 && got.iter().all(|p| !kept.contains(p)),
        "{got:?} vs {kept:?}"
    );
    let Some(Group::Consumer(g)) = c.group("g") else {
        panic!()
    };
    assert_eq!(g.epoch, group_epoch, "no rebalance because of the reload");

    // Members leave; the group is deleted; replaying everything leaves no group behind.
    call(&mut c, &mut log, hb("a", -1, None), load_ms + 30);
    call(&mut c, &mut log, hb("b", -1, None), load_ms + 40);
    log.extend(c.delete_group("g").unwrap());
    let mut replayed = GroupCoordinator::new(cfg());
    for r in &log {
        replayed.replay(r, load_ms);
    }
    assert!(replayed.group("g").is_none());
}
