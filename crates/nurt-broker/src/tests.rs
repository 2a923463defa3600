//! Broker-level tests that need hooks a real client cannot reach (an injected panic).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::{server, Broker, BrokerConfig};

/// A request from this client id makes its handler panic (test builds only).
pub const PANIC_CLIENT_ID: &str = "nurt-test-panic";

/// ApiVersions v0 from `client_id`.
fn api_versions(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn answer(addr: std::net::SocketAddr, client_id: &str) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&api_versions(client_id))?;
    let mut out = Vec::new();
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {
            out.resize(i32::from_be_bytes(len) as usize, 0);
            s.read_exact(&mut out)?;
            Ok(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(out),
        Err(e) => Err(e),
    }
}

#[test]
fn a_panicking_handler_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (addr, stop, done) = rt.block_on(async {
        let listeners = server::bind("127.0.0.1:0").await.unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let broker = Broker::open(BrokerConfig::new(dir.path().to_path_buf(), addr.to_string(), None))
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(server::serve(
            broker,
            listeners,
            vec![],
            async move {
                let _ = stopped.await;
            },
            |_| {},
        ));
        (addr, stop, done)
    });
    assert!(!answer(addr, "well-behaved").unwrap().is_empty());
    assert!(
        answer(addr, PANIC_CLIENT_ID).unwrap().is_empty(),
        "the panicking request's connection is closed without an answer"
    );
    // Everyone else is still served, repeatedly.
    for _ in 0..3 {
        assert_eq!(&answer(addr, "after-the-panic").unwrap()[..4], &7i32.to_be_bytes());
    }
    stop.send(()).unwrap();
    rt.block_on(done).unwrap().unwrap();
}

/// A group whose records cannot be written (full disk) does not move on: the members waiting
/// on SyncGroup get COORDINATOR_NOT_AVAILABLE, the group stays where it was, and once the disk
/// has room the same sync succeeds. Offsets that cannot be written are not applied either.
#[test]
fn a_failed_persist_releases_no_answers_and_undoes_the_change() {
    use nurt_group::classic::{ClassicState, JoinRequest, SyncRequest};
    use nurt_group::coordinator::OffsetCommit;
    use nurt_group::{Completion, Group, GroupConfig, GroupError};
    use nurt_log::storage::sim::SimStorage;

    use crate::group_service::GroupService;

    let sim = SimStorage::new();
    let storage: std::sync::Arc<dyn nurt_log::Storage> = std::sync::Arc::new(sim.clone());
    let dir = std::path::Path::new("/data/__consumer_offsets-0");
    nurt_log::DataDir::open(
        std::sync::Arc::clone(&storage),
        std::path::Path::new("/data"),
        1,
        || Some("c".into()),
    )
    .unwrap();
    let cfg = GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    };
    // One offsets partition, led here with no followers.
    let partition = std::sync::Arc::new(
        crate::partition::Partition::open(
            &storage,
            dir,
            crate::partition::PartitionId {
                topic: std::sync::Arc::from("__consumer_offsets"),
                topic_id: [1; 16],
                index: 0,
                node_id: 1,
                activity: Default::default(),
            },
            crate::settings::TopicSettings::from_configs(&nurt_metadata::TopicConfigs::new(
                &Default::default(),
                &Default::default(),
            )),
            false,
            0,
            0,
        )
        .unwrap(),
    );
    let role = crate::partition::ReplicaRole {
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        replicas: vec![1],
        isr: vec![1],
        ineligible: Default::default(),
    };
    partition.set_role(role, 30_000, 0);
    let groups = GroupService::new(cfg);
    groups.sync_shards(1, &[partition]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let join = JoinRequest {
        member_id: String::new(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 30_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), vec![1])],
        require_known_member_id: false,
    };
    let now = crate::now_ms();
    let joined = rt.block_on(groups.delayed("g", |c, t| c.join("g", t, join, "m1".into(), now)));
    let Ok(Completion::Join(j)) = joined else {
        panic!("{joined:?}")
    };
    assert_eq!(j.error, None);
    let sync = SyncRequest {
        generation_id: j.generation_id,
        member_id: j.member_id.clone(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: vec![(j.member_id.clone(), vec![7])],
    };
    let state = |groups: &GroupService| {
        groups
            .with_coordinator("g", |c| match c.group("g") {
                Some(Group::Classic(g)) => (g.state(), g.generation()),
                other => panic!("{other:?}"),
            })
            .unwrap()
    };
    let before = state(&groups);
    assert_eq!(before.0, ClassicState::CompletingRebalance);

    sim.set_full(true);
    let synced = rt.block_on(groups.delayed("g", |c, t| c.sync("g", t, sync.clone(), now)));
    let Ok(Completion::Sync(s)) = synced else {
        panic!("{synced:?}")
    };
    assert_eq!(s.error, Some(GroupError::CoordinatorNotAvailable));
    assert!(s.assignment.is_empty(), "no assignment leaves before it is persisted");
    assert_eq!(state(&groups), before, "the group did not move on");
    let commit = |groups: &GroupService, offset| {
        rt.block_on(groups.write("admin", |c| {
            let commits = vec![OffsetCommit {
                topic: "t".into(),
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: None,
            }];
            c.commit_offsets(
                "admin",
                nurt_group::coordinator::Committer::new("", None, -1),
                commits,
                now,
            )
        }))
    };
    let committed = |groups: &GroupService| {
        groups
            .with_coordinator("admin", |c| c.committed("admin", "t", 0).map(|v| v.offset))
            .unwrap()
    };
    let admin_exists = |groups: &GroupService| {
        groups
            .with_coordinator("admin", |c| c.group("admin").is_some())
            .unwrap()
    };
    assert!(commit(&groups, 5).is_err(), "the commit is refused");
    assert_eq!(committed(&groups), None, "and not applied");
    assert!(!admin_exists(&groups), "not even the empty group stays");

    sim.set_full(false);
    let synced = rt.block_on(groups.delayed("g", |c, t| c.sync("g", t, sync.clone(), now)));
    let Ok(Completion::Sync(s)) = synced else {
        panic!("{synced:?}")
    };
    assert_eq!((s.error, s.assignment), (None, vec![7]));
    assert_eq!(state(&groups).0, ClassicState::Stable);
    assert!(matches!(commit(&groups, 5), Ok(Ok(_))));
    assert_eq!(committed(&groups), Some(5));
}
