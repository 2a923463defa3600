//! The controller's decisions with exact expected records: topic creation and placement,
//! broker registration, fencing by session timeout under a controlled clock, elections from
//! the ISR only, ISR changes, preferred elections and reassignment.

use super::brokers::{self, Heartbeat, RegisterRequest, Sessions};
use super::partitions::{self, AlterIsr, ElectionType, NO_LEADER};
use super::*;
use crate::record::{Endpoint, PartitionRecord};

fn applied(image: &mut MetadataImage, records: Vec<MetadataRecord>) {
    for r in records {
        image.apply(&r).unwrap();
    }
}

fn candidates(ids: &[i32]) -> Vec<Candidate> {
    ids.iter().map(|&id| Candidate { id, rack: None }).collect()
}

fn auto(rf: i32, ids: &[i32]) -> Assignment {
    Assignment::Auto {
        replication_factor: rf,
        brokers: candidates(ids),
        seeds: Seeds::default(),
    }
}

fn topic(name: &str, partitions: i32, assignment: Assignment) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions: partitions,
        assignment,
        configs: vec![],
    }
}

const NO_UNCLEAN: &dyn Fn(&TopicId) -> bool = &|_| false;

fn register(image: &mut MetadataImage, id: i32) -> i64 {
    let req = RegisterRequest {
        broker_id: id,
        incarnation_id: [id as u8; 16],
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9090 + id,
        }],
        rack: None,
        cluster_id: "c".into(),
        adopt_cluster_id: false,
    };
    let (records, registered) = brokers::register(image, &req, NO_UNCLEAN).unwrap();
    applied(image, records);
    registered.broker_epoch
}

/// Three registered, unfenced brokers.
fn three_brokers() -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=3 {
        register(&mut image, id);
        let records = brokers::unfence(&image, id);
        applied(&mut image, records);
    }
    image
}

fn partition(image: &MetadataImage, name: &str, index: i32) -> PartitionRecord {
    let t = image.topic(name).unwrap();
    t.partitions[&index].clone()
}

#[test]
fn partitions_per_broker_are_bounded_before_anything_is_written() {
    let mut image = MetadataImage::default();
    let recs = create_topic(&image, &topic("first", 3, auto(1, &[1])), [7; 16]).unwrap();
    check_partitions_per_broker(&image, &recs, 4).unwrap();
    applied(&mut image, recs);
    let more = create_topic(&image, &topic("second", 2, auto(1, &[1])), [8; 16]).unwrap();
    assert_eq!(
        check_partitions_per_broker(&image, &more, 4),
        Err(MetadataError::TooManyPartitionsOnBroker {
            broker: 1,
            would_host: 5,
            max: 4
        })
    );
    let grow = create_partitions(&image, "first", 4, auto(1, &[1])).unwrap();
    assert!(
        check_partitions_per_broker(&image, &grow, 4).is_ok(),
        "exactly at the bound"
    );
    let grow = create_partitions(&image, "first", 5, auto(1, &[1])).unwrap();
    assert!(check_partitions_per_broker(&image, &grow, 4).is_err());
}

#[test]
fn create_then_grow_then_delete() {
    let mut image = MetadataImage::default();
    let mut t = topic("orders", 3, auto(1, &[1]));
    t.configs = vec![("retention.ms".into(), "1000".into())];
    let recs = create_topic(&image, &t, [7; 16]).unwrap();
    applied(&mut image, recs);
    let info = image.topic("orders").unwrap();
    assert_eq!(info.partitions.len(), 3);
    assert_eq!(info.configs.get("retention.ms").map(String::as_str), Some("1000"));
    assert_eq!(
        create_topic(&image, &t, [8; 16]),
        Err(MetadataError::TopicExists("orders".into()))
    );
    assert!(matches!(
        create_partitions(&image, "orders", 2, auto(1, &[1])),
        Err(MetadataError::InvalidPartitions(2))
    ));
    let recs = create_partitions(&image, "orders", 5, auto(1, &[1])).unwrap();
    applied(&mut image, recs);
    assert_eq!(image.topic("orders").unwrap().partitions.len(), 5);
    let recs = delete_topic(&image, "orders").unwrap();
    applied(&mut image, recs);
    assert!(image.topic("orders").is_none());
    assert!(image.topic_by_id(&[7; 16]).is_none());
}

#[test]
fn refuses_bad_requests() {
    let image = MetadataImage::default();
    let mut t = topic("bad name!", 1, auto(1, &[1]));
    assert!(matches!(
        create_topic(&image, &t, [0; 16]),
        Err(MetadataError::InvalidTopicName { .. })
    ));
    t.name = "ok".into();
    t.assignment = auto(3, &[1]);
    assert!(matches!(
        create_topic(&image, &t, [0; 16]),
        Err(MetadataError::InvalidReplicationFactor { .. })
    ));
    t.assignment = auto(1, &[1]);
    t.num_partitions = 0;
    assert!(matches!(
        create_topic(&image, &t, [0; 16]),
        Err(MetadataError::InvalidPartitions(0))
    ));
    t.num_partitions = 10_001;
    assert!(matches!(
        create_topic(&image, &t, [0; 16]),
        Err(MetadataError::TooManyPartitions {
            requested: 10_001,
            max: 10_000
        })
    ));
    t.num_partitions = 1;
    t.configs = vec![("segment.bytes".into(), "x".into())];
    assert!(matches!(
        create_topic(&image, &t, [0; 16]),
        Err(MetadataError::InvalidConfig { .. })
    ));
    // Manual assignments name registered brokers, distinct, one replication factor.
    let image = three_brokers();
    for bad in [vec![vec![1, 9]], vec![vec![1, 1]], vec![vec![1, 2], vec![3]]] {
        let t = topic("manual", bad.len() as i32, Assignment::Manual(bad));
        assert_eq!(
            create_topic(&image, &t, [0; 16]),
            Err(MetadataError::InvalidReplicaAssignment)
        );
    }
}

#[test]
fn names_differing_only_by_dot_and_underscore_collide() {
    let mut image = MetadataImage::default();
    let records = create_topic(&image, &topic("orders_eu", 1, auto(1, &[1])), [1; 16]).unwrap();
    applied(&mut image, records);
    let refused = create_topic(&image, &topic("orders.eu", 1, auto(1, &[1])), [2; 16]);
    assert!(
        matches!(&refused, Err(MetadataError::InvalidTopicName { reason, .. }) if reason == "collides with existing topic: orders_eu"),
        "{refused:?}"
    );
    // Once the first is gone, the name is free.
    let records = delete_topic(&image, "orders_eu").unwrap();
    applied(&mut image, records);
    assert!(create_topic(&image, &topic("orders.eu", 1, auto(1, &[1])), [2; 16]).is_ok());
}

#[test]
fn producer_ids_never_repeat_across_replay() {
    let mut image = MetadataImage::default();
    let (first, rec) = allocate_producer_ids(&image, 10);
    image.apply(&rec).unwrap();
    let (second, _) = allocate_producer_ids(&image, 10);
    assert_eq!((first, second), (0, 10));
}

#[test]
fn a_new_topic_spreads_leaders_and_has_every_replica_in_sync() {
    let image = three_brokers();
    let records = create_topic(&image, &topic("spread", 3, auto(3, &[1, 2, 3])), [5; 16]).unwrap();
    let expected = |p: i32, replicas: Vec<i32>| {
        MetadataRecord::Partition(PartitionRecord {
            topic_id: [5; 16],
            partition: p,
            isr: replicas.clone(),
            leader: replicas[0],
            replicas,
            elr: vec![],
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: vec![],
            removing_replicas: vec![],
        })
    };
    assert_eq!(
        records,
        vec![
            MetadataRecord::Topic {
                name: "spread".into(),
                topic_id: [5; 16]
            },
            expected(0, vec![1, 2, 3]),
            expected(1, vec![2, 3, 1]),
            expected(2, vec![3, 1, 2]),
        ]
    );
}

#[test]
fn registration_starts_fenced_and_a_new_incarnation_replaces_the_old() {
    let mut image = MetadataImage::default();
    let epoch = register(&mut image, 1);
    assert_eq!(epoch, 1);
    assert!(image.broker(1).unwrap().fenced());
    // A retry with the same incarnation changes nothing and keeps the epoch.
    let req = RegisterRequest {
        broker_id: 1,
        incarnation_id: [1; 16],
        endpoints: vec![],
        rack: None,
        cluster_id: "c".into(),
        adopt_cluster_id: false,
    };
    let (records, again) = brokers::register(&image, &req, NO_UNCLEAN).unwrap();
    assert_eq!((records, again.broker_epoch), (vec![], 1));
    // Unfenced, it leads a topic; then it restarts (new incarnation): its leadership moves
    // away before the new registration, fenced, with a new epoch.
    let records = brokers::unfence(&image, 1);
    applied(&mut image, records);
    register(&mut image, 2);
    let records = brokers::unfence(&image, 2);
    applied(&mut image, records);
    let recs = create_topic(&image, &topic("t", 1, Assignment::Manual(vec![vec![1, 2]])), [3; 16]).unwrap();
    applied(&mut image, recs);
    let restarted = RegisterRequest {
        incarnation_id: [9; 16],
        ..req
    };
    let (records, registered) = brokers::register(&image, &restarted, NO_UNCLEAN).unwrap();
    assert_eq!(registered.broker_epoch, 3);
    let MetadataRecord::Partition(moved) = &records[0] else {
        panic!("{records:?}")
    };
    assert_eq!(
        (
            moved.leader,
            moved.isr.clone(),
            moved.leader_epoch,
            moved.partition_epoch
        ),
        (2, vec![2], 1, 1)
    );
    assert!(matches!(&records[1], MetadataRecord::RegisterBroker(r) if r.fenced && r.broker_epoch == 3));
}

#[test]
fn sessions_fence_silent_brokers_and_elect_only_from_the_isr() {
    let mut image = three_brokers();
    let recs = create_topic(&image, &topic("t", 3, auto(3, &[1, 2, 3])), [4; 16]).unwrap();
    applied(&mut image, recs);
    // A single-replica topic led by broker 2.
    let recs = create_topic(&image, &topic("solo", 1, Assignment::Manual(vec![vec![2]])), [6; 16]).unwrap();
    applied(&mut image, recs);
    let mut sessions = Sessions::new(9_000, 0);
    let hb = |id: i32, epoch: i64| Heartbeat {
        broker_id: id,
        broker_epoch: epoch,
        metadata_offset: 100,
        want_shutdown: false,
    };
    let epochs: Vec<i64> = (1..=3)
        .map(|id| image.broker(id).unwrap().registration.broker_epoch)
        .collect();
    for t in [3_000, 6_000] {
        for id in [1, 3] {
            sessions.heartbeat(&image, hb(id, epochs[id as usize - 1]), 0, t, NO_UNCLEAN);
        }
        sessions.heartbeat(&image, hb(2, epochs[1]), 0, 2_000, NO_UNCLEAN);
    }
    // Broker 2 last heartbeated at 2,000: its session (9 s) ends after 11,000.
    assert!(sessions.expired(&image, 11_000).is_empty());
    assert_eq!(sessions.expired(&image, 11_001), vec![2]);
    let records = brokers::fence(&image, 2, NO_UNCLEAN);
    let p = |topic_id: [u8; 16], partition, replicas: &[i32], isr: &[i32], leader, le, pe| {
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            elr: vec![],
            leader,
            leader_epoch: le,
            partition_epoch: pe,
            adding_replicas: vec![],
            removing_replicas: vec![],
        })
    };
    assert_eq!(
        records,
        vec![
            MetadataRecord::BrokerFencing {
                broker_id: 2,
                broker_epoch: epochs[1],
                fenced: true
            },
            // Broker 2 leaves every ISR; where it led, the next in-sync replica leads.
            p([6; 16], 0, &[2], &[2], NO_LEADER, 1, 1),
            p([4; 16], 0, &[1, 2, 3], &[1, 3], 1, 0, 1),
            p([4; 16], 1, &[2, 3, 1], &[3, 1], 3, 1, 1),
            p([4; 16], 2, &[3, 1, 2], &[3, 1], 3, 0, 1),
        ]
    );
    applied(&mut image, records);
    // Back, caught up: unfenced, and it leads again the partition only it had in sync.
    let (answer, changes) = sessions.heartbeat(&image, hb(2, epochs[1]), 100, 12_000, NO_UNCLEAN);
    assert!(!answer.fenced && !answer.stale_epoch);
    assert_eq!(
        changes.records,
        vec![
            MetadataRecord::BrokerFencing {
                broker_id: 2,
                broker_epoch: epochs[1],
                fenced: false
            },
            p([6; 16], 0, &[2], &[2], 2, 2, 2),
        ]
    );
    // Not caught up yet: stays fenced.
    let records = brokers::fence(&image, 2, NO_UNCLEAN);
    applied(&mut image, records);
    let (answer, changes) = sessions.heartbeat(&image, hb(2, epochs[1]), 101, 13_000, NO_UNCLEAN);
    assert!(answer.fenced && changes.records.is_empty());
    // A stale epoch must register again.
    let (answer, _) = sessions.heartbeat(&image, hb(2, epochs[1] - 1), 0, 13_000, NO_UNCLEAN);
    assert!(answer.stale_epoch);
}

#[test]
fn a_new_controller_gives_every_broker_a_full_session() {
    let image = three_brokers();
    let sessions = Sessions::new(9_000, 50_000);
    assert!(sessions.expired(&image, 59_000).is_empty());
    assert_eq!(sessions.expired(&image, 59_001), vec![1, 2, 3]);
}

#[test]
fn controlled_shutdown_moves_leadership_then_lets_go() {
    let mut image = three_brokers();
    let recs = create_topic(&image, &topic("t", 1, Assignment::Manual(vec![vec![1, 2]])), [4; 16]).unwrap();
    applied(&mut image, recs);
    let epoch = image.broker(1).unwrap().registration.broker_epoch;
    let mut sessions = Sessions::new(9_000, 0);
    let bye = Heartbeat {
        broker_id: 1,
        broker_epoch: epoch,
        metadata_offset: 10,
        want_shutdown: true,
    };
    let (answer, changes) = sessions.heartbeat(&image, bye, 0, 1_000, NO_UNCLEAN);
    assert!(!answer.should_shut_down);
    applied(&mut image, changes.records);
    assert_eq!(partition(&image, "t", 0).leader, 2);
    assert!(image.broker(1).unwrap().fenced());
    let (answer, changes) = sessions.heartbeat(&image, bye, 0, 1_500, NO_UNCLEAN);
    assert!(answer.should_shut_down && changes.records.is_empty());
}

#[test]
fn isr_changes_are_fenced_by_epochs_and_checked() {
    let mut image = three_brokers();
    let recs = create_topic(&image, &topic("t", 1, Assignment::Manual(vec![vec![1, 2, 3]])), [4; 16]).unwrap();
    applied(&mut image, recs);
    let live = |b: i32| b != 3; // broker 3 is fenced for this test
    let shrink = AlterIsr {
        topic_id: [4; 16],
        partition: 0,
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        new_isr: vec![1, 2],
    };
    let records = partitions::alter_isr(&image, &shrink, &live).unwrap();
    let MetadataRecord::Partition(p) = &records[0] else {
        panic!()
    };
    assert_eq!((p.isr.clone(), p.leader_epoch, p.partition_epoch), (vec![1, 2], 0, 1));
    applied(&mut image, records);
    // The same request again: its partition epoch is stale now.
    assert_eq!(
        partitions::alter_isr(&image, &shrink, &live),
        Err(MetadataError::InvalidUpdateVersion)
    );
    let not_leader = AlterIsr {
        leader: 2,
        partition_epoch: 1,
        ..shrink.clone()
    };
    assert_eq!(
        partitions::alter_isr(&image, &not_leader, &live),
        Err(MetadataError::FencedLeaderEpoch)
    );
    let expand_fenced = AlterIsr {
        partition_epoch: 1,
        new_isr: vec![1, 2, 3],
        ..shrink.clone()
    };
    assert_eq!(
        partitions::alter_isr(&image, &expand_fenced, &live),
        Err(MetadataError::IneligibleReplica)
    );
    let without_leader = AlterIsr {
        partition_epoch: 1,
        new_isr: vec![2],
        ..shrink
    };
    assert_eq!(
        partitions::alter_isr(&image, &without_leader, &live),
        Err(MetadataError::InvalidRequest(
            "the proposed ISR must contain the leader".into()
        ))
    );
}

#[test]
fn preferred_and_unclean_elections() {
    let mut image = three_brokers();
    let recs = create_topic(&image, &topic("t", 1, Assignment::Manual(vec![vec![1, 2]])), [4; 16]).unwrap();
    applied(&mut image, recs);
    let all = |_: i32| true;
    assert_eq!(
        partitions::elect(&image, "t", 0, ElectionType::Preferred, &all),
        Err(MetadataError::ElectionNotNeeded)
    );
    // Broker 1 fenced: 2 leads. Back: the preferred election returns leadership to 1.
    let records = brokers::fence(&image, 1, NO_UNCLEAN);
    applied(&mut image, records);
    assert_eq!(partition(&image, "t", 0).leader, 2);
    assert_eq!(
        partitions::elect(&image, "t", 0, ElectionType::Preferred, &|b| image.is_live(b)),
        Err(MetadataError::PreferredLeaderNotAvailable),
        "1 is fenced and out of the ISR"
    );
    let records = brokers::unfence(&image, 1);
    applied(&mut image, records);
    let mut p = partition(&image, "t", 0);
    p.isr = vec![1, 2];
    p.partition_epoch += 1;
    image.apply(&MetadataRecord::Partition(p)).unwrap();
    let records = partitions::elect(&image, "t", 0, ElectionType::Preferred, &|b| image.is_live(b)).unwrap();
    let MetadataRecord::Partition(p) = &records[0] else {
        panic!()
    };
    assert_eq!((p.leader, p.leader_epoch), (1, 2));
    // Unclean: both replicas fenced, the ISR is [2] alone; 1 returns and may lead only if
    // unclean election is asked for.
    applied(&mut image, records);
    let records = brokers::fence(&image, 1, NO_UNCLEAN);
    applied(&mut image, records);
    let records = brokers::fence(&image, 2, NO_UNCLEAN);
    applied(&mut image, records);
    assert_eq!(partition(&image, "t", 0).leader, NO_LEADER);
    let records = brokers::unfence(&image, 1);
    applied(&mut image, records);
    assert_eq!(
        partition(&image, "t", 0).leader,
        NO_LEADER,
        "never leads from outside the ISR on its own"
    );
    let records = partitions::elect(&image, "t", 0, ElectionType::Unclean, &|b| image.is_live(b)).unwrap();
    let MetadataRecord::Partition(p) = &records[0] else {
        panic!()
    };
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
}

#[test]
fn reassignment_adds_first_then_removes_once_in_sync() {
    let mut image = three_brokers();
    register(&mut image, 4);
    let records = brokers::unfence(&image, 4);
    applied(&mut image, records);
    let recs = create_topic(&image, &topic("t", 1, Assignment::Manual(vec![vec![1, 2, 3]])), [4; 16]).unwrap();
    applied(&mut image, recs);
    // Every broker is live throughout this test.
    let live = |b: i32| (1..=4).contains(&b);
    let records = partitions::reassign(&image, "t", 0, Some(&[1, 2, 4]), &live).unwrap();
    let MetadataRecord::Partition(p) = &records[0] else {
        panic!()
    };
    assert_eq!(
        (
            p.replicas.clone(),
            p.adding_replicas.clone(),
            p.removing_replicas.clone(),
            p.isr.clone()
        ),
        (vec![1, 2, 4, 3], vec![4], vec![3], vec![1, 2, 3])
    );
    applied(&mut image, records);
    assert!(image.partition("t", 0).unwrap().is_reassigning());
    // The leader reports 4 in sync: the reassignment completes in the same record.
    let join = AlterIsr {
        topic_id: [4; 16],
        partition: 0,
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 1,
        new_isr: vec![1, 2, 3, 4],
    };
    let records = partitions::alter_isr(&image, &join, &live).unwrap();
    let MetadataRecord::Partition(p) = &records[0] else {
        panic!()
    };
    assert_eq!(
        (
            p.replicas.clone(),
            p.isr.clone(),
            p.adding_replicas.clone(),
            p.removing_replicas.clone()
        ),
        (vec![1, 2, 4], vec![1, 2, 4], vec![], vec![])
    );
    applied(&mut image, records);
    // Moving the leader away: the first in-sync target replica takes over.
    let records = partitions::reassign(&image, "t", 0, Some(&[2, 4]), &live).unwrap();
    let MetadataRecord::Partition(p) = &records[0] else {
        panic!()
    };
    assert_eq!((p.replicas.clone(), p.leader, p.leader_epoch), (vec![2, 4], 2, 1));
    // Cancelling when nothing is in progress is an error.
    applied(&mut image, records);
    assert_eq!(
        partitions::reassign(&image, "t", 0, None, &live),
        Err(MetadataError::NoReassignmentInProgress)
    );
}

#[test]
fn the_first_broker_names_the_cluster_and_others_must_match_or_adopt() {
    let mut image = MetadataImage::default();
    let req = |id: i32, cluster_id: &str, adopt: bool| RegisterRequest {
        broker_id: id,
        incarnation_id: [id as u8; 16],
        endpoints: vec![],
        rack: None,
        cluster_id: cluster_id.into(),
        adopt_cluster_id: adopt,
    };
    let (records, first) = brokers::register(&image, &req(1, "first", false), NO_UNCLEAN).unwrap();
    assert_eq!(
        records[0],
        MetadataRecord::Cluster {
            cluster_id: "first".into()
        }
    );
    assert_eq!(first.cluster_id, "first");
    applied(&mut image, records);
    assert_eq!(image.cluster_id(), Some("first"));
    // A new data dir takes the cluster's id; no second Cluster record is written.
    let (records, second) = brokers::register(&image, &req(2, "proposal", true), NO_UNCLEAN).unwrap();
    assert_eq!(second.cluster_id, "first");
    assert!(!records.iter().any(|r| matches!(r, MetadataRecord::Cluster { .. })));
    // A data dir of another cluster is refused, with nothing written.
    assert_eq!(
        brokers::register(&image, &req(3, "other", false), NO_UNCLEAN),
        Err(MetadataError::InconsistentClusterId {
            broker: "other".into(),
            cluster: "first".into()
        })
    );
}

#[test]
fn leader_rebalance_picks_brokers_over_the_imbalance_threshold() {
    let mut image = three_brokers();
    // 10 partitions preferring broker 1 (replicas [1, 2, 3]).
    let recs = create_topic(
        &image,
        &topic("t", 10, Assignment::Manual(vec![vec![1, 2, 3]; 10])),
        [5; 16],
    )
    .unwrap();
    applied(&mut image, recs);
    let live = |_: i32| true;
    assert!(partitions::imbalanced(&image, 10, &live).is_empty());
    // Broker 1 loses one leadership: 10% is not over 10%.
    let moved = |image: &MetadataImage, i: i32| {
        let mut p = partition(image, "t", i);
        p.leader = 2;
        p.leader_epoch += 1;
        MetadataRecord::Partition(p)
    };
    let rec = moved(&image, 0);
    applied(&mut image, vec![rec]);
    assert!(partitions::imbalanced(&image, 10, &live).is_empty());
    // Two of ten: 20% > 10%, both go back to it; not while it may not lead.
    let rec = moved(&image, 1);
    applied(&mut image, vec![rec]);
    assert_eq!(
        partitions::imbalanced(&image, 10, &live),
        vec![("t".to_string(), 0), ("t".to_string(), 1)]
    );
    assert!(partitions::imbalanced(&image, 10, &|b| b != 1).is_empty());
}
