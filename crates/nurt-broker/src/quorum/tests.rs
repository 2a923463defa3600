//! The single-voter quorum over a simulated disk: a full disk stops Raft, the supervisor
//! brings it back, and a restart (from snapshot plus log) rebuilds the same image.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nurt_log::storage::sim::SimStorage;
use nurt_log::Storage;
use nurt_metadata::MetadataRecord;

use super::{Quorum, QuorumTiming, WriteError};

fn timing() -> QuorumTiming {
    QuorumTiming {
        heartbeat_interval_ms: 20,
        election_timeout_min_ms: 100,
        election_timeout_max_ms: 200,
    }
}

async fn start(storage: &Arc<dyn Storage>, clean: bool) -> Quorum {
    nurt_log::DataDir::open(Arc::clone(storage), Path::new("/data"), 1, || Some("c".into())).unwrap();
    let voters = BTreeMap::from([(1, "embedded".to_string())]);
    let dir = Path::new("/data/__cluster_metadata-0");
    let quorum = Quorum::start(storage, dir, 1, &voters, clean, timing()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !quorum.is_leader() {
        assert!(tokio::time::Instant::now() < deadline, "a single voter elects itself");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    quorum
}

fn ids(n: i64) -> Vec<MetadataRecord> {
    vec![MetadataRecord::ProducerIds { next_producer_id: n }]
}

/// Writes until one succeeds, for at most `secs` (a restarting quorum refuses meanwhile).
async fn write_eventually(quorum: &Quorum, records: &[MetadataRecord], secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match quorum.write(records).await {
            Ok(_) => return,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "no write within {secs} s: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_writes_until_it_has_room_again() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let quorum = start(&storage, true).await;
    quorum.write(&ids(10)).await.unwrap();
    sim.set_full(true);
    let failed = quorum.write(&ids(20)).await;
    assert!(matches!(failed, Err(WriteError::Stopped(_))), "{failed:?}");
    assert_eq!(
        quorum.image().next_producer_id(),
        10,
        "a write that failed is not applied"
    );
    sim.set_full(false);
    write_eventually(&quorum, &ids(30), 20).await;
    assert_eq!(quorum.image().next_producer_id(), 30);
    quorum.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_rebuilds_the_image_from_snapshot_and_log() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let quorum = start(&storage, true).await;
    // Past SNAPSHOT_EVERY_ENTRIES, so the restart starts from a snapshot (and the log
    // below it is purged: only the snapshot knows the first topics).
    let writes = super::SNAPSHOT_EVERY_ENTRIES + 500;
    for n in 1..=writes {
        let mut topic_id = [0u8; 16];
        topic_id[..8].copy_from_slice(&n.to_be_bytes());
        let topic = MetadataRecord::Topic {
            name: format!("t{n}"),
            topic_id,
        };
        quorum.write(&[topic]).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while quorum.metrics().snapshot.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no snapshot was built");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    quorum.shutdown().await.unwrap();
    // The power goes: only what was synced survives.
    sim.power_cut(nurt_log::storage::sim::CutMode::LoseAll);
    let again = start(&storage, false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while again.image().topics().count() as u64 != writes {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} topics",
            again.image().topics().count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.image().topic("t1").is_some() && again.image().topic(&format!("t{writes}")).is_some());
    again.shutdown().await.unwrap();
    // A clean restart keeps the commit point: the image is whole as soon as Raft has started.
    let third = start(&storage, true).await;
    assert_eq!(third.image().topics().count() as u64, writes);
    third.shutdown().await.unwrap();
}

/// openraft's own storage conformance suite (log, vote, purge, truncate, apply, snapshots)
/// over our log store and state machine on a simulated disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() -> Result<(), openraft::StorageError<super::types::C>> {
    use openraft::testing::log::{StoreBuilder, Suite};

    use super::log_store::LogStore;
    use super::state_machine::StateMachine;
    use super::types::C;

    struct Builder;
    impl StoreBuilder<C, LogStore, StateMachine, ()> for Builder {
        async fn build(&self) -> Result<((), LogStore, StateMachine), openraft::StorageError<C>> {
            let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
            nurt_log::DataDir::open(Arc::clone(&storage), Path::new("/data"), 1, || Some("c".into())).unwrap();
            let dir = Path::new("/data/__cluster_metadata-0");
            let log = LogStore::open(&storage, dir, true, 0).unwrap();
            let sm = StateMachine::open(&storage, dir).unwrap();
            Ok(((), log, sm))
        }
    }
    Suite::test_all(Builder).await?;
    Ok(())
}
