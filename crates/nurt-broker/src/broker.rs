//! The node: identity, the metadata quorum and controller, group coordination, and the
//! partition replicas this node hosts, kept in line with the metadata image.
//!
//! Every node hosts exactly the partitions the image places on it (`reconcile`), in the role
//! the image gives it (leader or follower, with its epochs). A change reaches every node the
//! same way, through the image, whether this node made it, received it, or replays it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nurt_log::data_dir::PARTITION_METADATA;
use nurt_log::storage::fd_cache::CachedStorage;
use nurt_log::{DataDir, Storage};
use nurt_metadata::{MetadataImage, TopicId, TopicInfo};

use crate::budget::RequestBudget;
use crate::config::{CLIENT_LISTENER, INTERNAL_LISTENER};
use crate::controller::{Controller, ControllerOp, ControllerSettings, OpAnswer, OpFailure};
use crate::group_service::{group_config, GroupService, OFFSETS_TOPIC};
use crate::partition::{Partition, PartitionId, ReplicaRole, TopicSettings};
use crate::quorum::{Quorum, QuorumTiming};
use crate::{codes, migrate, now_ms, BrokerConfig, BrokerError};

const METADATA_DIR: &str = "__cluster_metadata-0";
/// Producer ids reserved per metadata write.
const PRODUCER_ID_BLOCK: i64 = 1000;
/// The embedded single node's quorum: itself, never reached over a network.
const EMBEDDED_ADDR: &str = "embedded";

/// A topic as hosted here: its id and the partitions this node is a replica of.
#[derive(Debug)]
pub struct HostedTopic {
    pub topic_id: TopicId,
    pub partitions: BTreeMap<i32, Arc<Partition>>,
}

/// Why a request for a partition cannot be served here (the Kafka code, and the leader to
/// name in KIP-951's hints when there is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotServed {
    pub code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
}

/// The node.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub node_id: i32,
    /// The memory requests in flight may take (`queued.max.request.bytes`).
    pub request_budget: RequestBudget,
    storage: Arc<dyn Storage>,
    data_dir: DataDir,
    pub quorum: Quorum,
    pub controller: Controller,
    pub groups: GroupService,
    pub txns: crate::txn_service::TxnService,
    /// Transaction markers newly loaded coordinators still owe (written by the txn clock).
    pub owed_markers: std::sync::Mutex<Vec<nurt_txn::TxnMarkers>>,
    /// A creation of `__transaction_state` is on its way.
    creating_txn_topic: AtomicBool,
    topics: RwLock<HashMap<Arc<str>, Arc<HostedTopic>>>,
    /// Group records of the single-node format still to be written into `__consumer_offsets`.
    legacy_offsets: std::sync::Mutex<Option<Vec<nurt_group::GroupRecord>>>,
    /// A creation of `__consumer_offsets` is on its way.
    creating_offsets_topic: AtomicBool,
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// This process's registration: a restart registers anew.
    incarnation_id: [u8; 16],
    broker_epoch: AtomicI64,
    fenced: AtomicBool,
    /// Metadata records of the single-node format still to be written into the quorum.
    legacy_metadata: std::sync::Mutex<Option<Vec<nurt_metadata::MetadataRecord>>>,
    /// The checkpointed high watermarks, for partitions not opened yet.
    checkpointed_high_watermarks: std::sync::Mutex<crate::hw_checkpoint::HighWatermarks>,
    /// The follower fetch loops, one per leader this node follows.
    pub(crate) fetchers: crate::replica_fetcher::Fetchers,
    /// Counters for `/metrics` and tests.
    pub metrics: crate::metrics::Metrics,
    /// The log files' descriptor cache (the same storage as `storage`), for its gauges.
    pub log_files: CachedStorage,
    /// What the periodic work must look at (set by the partitions).
    pub(crate) activity: Arc<crate::partition::Activity>,
    /// Hosted partitions with a finite `flush.ms` (the flush tick skips all when none).
    pub(crate) time_flushed: AtomicUsize,
    /// Held by `reconcile` throughout.
    reconciling: std::sync::Mutex<()>,
    /// Replicas of this node that could not be opened, with the reason (served as
    /// KAFKA_STORAGE_ERROR, retried at every metadata change).
    offline: std::sync::Mutex<BTreeMap<(String, i32), String>>,
    /// Connections for asking other nodes' transaction coordinators (KIP-890 part 1).
    pub(crate) txn_verifier: crate::txn_verify::Verifier,
}

/// Kafka-style cluster id: a random UUID in unpadded URL-safe base64 (22 chars).
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

/// `offsets.topic.segment.bytes` (Kafka's default: 100 MiB).
const OFFSETS_SEGMENT_BYTES: &str = "104857600";

/// `HOST:PORT` split for an endpoint record.
fn endpoint(name: &str, addr: &str) -> (String, String, i32) {
    let (host, port) = crate::config::split_host_port(addr).unwrap_or_else(|| ("localhost".into(), 9092));
    (name.to_string(), host, port)
}

impl Broker {
    /// Opens the data dir and starts this node's member of the metadata quorum. Partitions
    /// are opened once the node has registered ([`Broker::join`]).
    pub async fn open(config: BrokerConfig) -> Result<Arc<Self>, BrokerError> {
        config.check_cluster()?;
        let limit = crate::fd_limit::raise_open_file_limit();
        let log_files_max = crate::fd_limit::log_files_max(limit);
        tracing::info!("open-file limit {limit}: at most {log_files_max} log files open at once");
        let log_files = CachedStorage::new(log_files_max);
        let storage: Arc<dyn Storage> = Arc::new(log_files.clone());
        let node_id = config.node_id();
        // A cluster node learns its cluster id when it joins; the embedded node names its own.
        let named_here = (!config.is_cluster()).then(new_cluster_id);
        let data_dir = DataDir::open(Arc::clone(&storage), &config.data_dir, node_id, || named_here)?;
        let clean = data_dir.was_clean();
        let path = data_dir.path().to_path_buf();
        let metadata_dir = path.join(METADATA_DIR);
        let legacy_metadata = migrate::take_legacy(&storage, &metadata_dir)?;
        let voters: BTreeMap<u64, String> = if config.is_cluster() {
            config.voters.clone()
        } else {
            BTreeMap::from([(node_id as u64, EMBEDDED_ADDR.to_string())])
        };
        let election = config.election_timeout_ms().max(50);
        let timing = QuorumTiming {
            heartbeat_interval_ms: (election / 10).max(10),
            election_timeout_min_ms: election,
            election_timeout_max_ms: election * 2,
        };
        let quorum = Quorum::start(&storage, &metadata_dir, node_id as u64, &voters, clean, timing).await?;
        let controller = Controller::new(
            quorum.clone(),
            ControllerSettings {
                session_timeout_ms: config.broker_session_timeout_ms(),
                unclean_leader_election: config.unclean_leader_election(),
                auto_leader_rebalance: config.auto_leader_rebalance(),
                leader_imbalance_check_interval_ms: config.leader_imbalance_check_interval_ms(),
                leader_imbalance_percent: config.leader_imbalance_percent(),
                partitions_per_broker_max: config.partitions_per_broker_max(),
            },
            if config.is_cluster() { voters } else { BTreeMap::new() },
        );
        let legacy_offsets = migrate::take_legacy_offsets(&storage, &path)?;
        let groups = GroupService::new(group_config(&config));
        let high_watermarks = crate::hw_checkpoint::read(&*storage, &path);
        let txns = crate::txn_service::TxnService::new(crate::txn_service::txn_config(&config));
        Ok(Arc::new(Self {
            request_budget: RequestBudget::new(config.queued_max_request_bytes()),
            config,
            node_id,
            storage,
            data_dir,
            quorum,
            controller,
            groups,
            txns,
            owed_markers: std::sync::Mutex::new(Vec::new()),
            creating_txn_topic: AtomicBool::new(false),
            topics: RwLock::new(HashMap::new()),
            metrics: crate::metrics::Metrics::default(),
            log_files,
            legacy_offsets: std::sync::Mutex::new(legacy_offsets),
            creating_offsets_topic: AtomicBool::new(false),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            incarnation_id: *uuid::Uuid::new_v4().as_bytes(),
            broker_epoch: AtomicI64::new(-1),
            fenced: AtomicBool::new(true),
            legacy_metadata: std::sync::Mutex::new(legacy_metadata),
            checkpointed_high_watermarks: std::sync::Mutex::new(high_watermarks),
            fetchers: crate::replica_fetcher::Fetchers::default(),
            txn_verifier: crate::txn_verify::Verifier::default(),
            offline: std::sync::Mutex::new(BTreeMap::new()),
            reconciling: std::sync::Mutex::new(()),
            activity: Arc::default(),
            time_flushed: AtomicUsize::new(0),
        }))
    }

    /// Registers this node as a broker and waits until the controller unfences it (it has
    /// caught up with the metadata log), then opens the partitions the image gives it.
    pub async fn join(self: &Arc<Self>) -> Result<(), BrokerError> {
        self.register().await?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.fenced.load(Ordering::SeqCst) {
            self.heartbeat(false).await?;
            if !self.fenced.load(Ordering::SeqCst) {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(BrokerError::Quorum(
                    "not unfenced by the controller within 60 s (is the metadata quorum reachable?)".into(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        self.migrate_legacy_metadata().await?;
        let clean = self.data_dir.was_clean();
        self.reconcile(clean)?;
        self.ensure_offsets_topic().await;
        self.reconcile(clean)?;
        self.remove_orphan_dirs();
        self.migrate_legacy_offsets()?;
        let forgotten = {
            let image = self.image();
            self.groups.forget_deleted_topics(|t| image.topic(t).is_none())
        };
        if forgotten > 0 {
            tracing::info!("deleted {forgotten} committed offset(s) of topics deleted before the last stop");
        }
        Ok(())
    }

    /// Creates `__consumer_offsets` (`offsets.topic.num.partitions`,
    /// `offsets.topic.replication.factor`, compacted) if it does not exist yet. Best effort: a
    /// cluster with fewer live brokers than the replication factor is retried on the next
    /// FindCoordinator, as in Kafka.
    pub async fn ensure_offsets_topic(&self) {
        let topic = crate::controller::CreateTopic {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: self.config.offsets_topic_partitions(),
            replication_factor: self.config.offsets_topic_replication_factor(),
            assignments: None,
            configs: vec![
                ("cleanup.policy".into(), "compact".into()),
                ("compression.type".into(), "producer".into()),
                ("segment.bytes".into(), OFFSETS_SEGMENT_BYTES.into()),
            ],
        };
        self.ensure_internal_topic(topic, &self.creating_offsets_topic).await;
    }

    /// Creates `__transaction_state` (`transaction.state.log.num.partitions`,
    /// `transaction.state.log.replication.factor`, `transaction.state.log.min.isr`,
    /// compacted) if it does not exist yet, on the first FindCoordinator for a transaction.
    pub async fn ensure_txn_topic(&self) {
        let topic = crate::controller::CreateTopic {
            name: crate::txn_service::TXN_TOPIC.to_string(),
            num_partitions: self.config.txn_topic_partitions(),
            replication_factor: self.config.txn_topic_replication_factor(),
            assignments: None,
            configs: vec![
                ("cleanup.policy".into(), "compact".into()),
                ("compression.type".into(), "uncompressed".into()),
                (
                    "min.insync.replicas".into(),
                    self.config.txn_topic_min_isr().to_string(),
                ),
                ("segment.bytes".into(), OFFSETS_SEGMENT_BYTES.into()),
            ],
        };
        self.ensure_internal_topic(topic, &self.creating_txn_topic).await;
    }

    async fn ensure_internal_topic(&self, topic: crate::controller::CreateTopic, creating: &AtomicBool) {
        let name = topic.name.clone();
        if self.image().topic(&name).is_some() || creating.swap(true, Ordering::SeqCst) {
            return;
        }
        let op = ControllerOp::CreateTopics {
            topics: vec![topic],
            validate_only: false,
        };
        match self.controller.submit(op).await {
            Ok(OpAnswer::Topics(results)) => match results.first() {
                Some(Ok(_)) => tracing::info!("created {name}"),
                Some(Err(e)) if e.code == codes::TOPIC_ALREADY_EXISTS => {}
                Some(Err(e)) => tracing::warn!("cannot create {name} yet: {}", e.message),
                None => {}
            },
            other => tracing::warn!("cannot create {name} yet: {other:?}"),
        }
        creating.store(false, Ordering::SeqCst);
    }

    /// Writes the single-node offsets log into the groups' partitions, once this node leads
    /// them; the old log goes when every group found its place.
    fn migrate_legacy_offsets(&self) -> Result<(), BrokerError> {
        let mut legacy = self.legacy_offsets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(records) = legacy.as_ref() else { return Ok(()) };
        let waiting = self.groups.migrate(records);
        if waiting > 0 {
            tracing::warn!("{waiting} group(s) of the single-node offsets log wait for their coordinator");
            return Ok(());
        }
        migrate::finish_offsets(&self.storage, self.data_dir())?;
        *legacy = None;
        Ok(())
    }

    async fn register(&self) -> Result<(), BrokerError> {
        let mut endpoints = vec![endpoint(CLIENT_LISTENER, &self.config.advertise)];
        if let Some(internal) = &self.config.controller_listen {
            endpoints.push(endpoint(INTERNAL_LISTENER, internal));
        }
        let op = ControllerOp::RegisterBroker {
            broker_id: self.node_id,
            incarnation_id: self.incarnation_id,
            endpoints,
            rack: self.config.rack(),
            cluster_id: self.data_dir.cluster_id().unwrap_or_else(new_cluster_id),
            adopt_cluster_id: self.data_dir.cluster_id().is_none(),
        };
        match self.controller.submit(op).await {
            Ok(OpAnswer::Registered(epoch, cluster_id)) => {
                if self.data_dir.cluster_id().is_none() {
                    tracing::info!("joined cluster {cluster_id}");
                }
                self.data_dir.adopt_cluster_id(&cluster_id)?;
                self.broker_epoch.store(epoch, Ordering::SeqCst);
                tracing::info!("registered as broker {} (broker epoch {epoch})", self.node_id);
                Ok(())
            }
            Ok(OpAnswer::Items(refused)) if refused.iter().any(Result::is_err) => {
                let why: Vec<String> = refused.into_iter().filter_map(Result::err).map(|e| e.message).collect();
                Err(BrokerError::Config(format!(
                    "the controller refused this broker's registration: {}",
                    why.join("; ")
                )))
            }
            Ok(other) => Err(BrokerError::Quorum(format!("unexpected registration answer {other:?}"))),
            Err(e) => Err(BrokerError::Quorum(format!("registering with the controller: {e}"))),
        }
    }

    /// Sends one heartbeat (`want_shutdown`: controlled shutdown). Returns whether the
    /// controller lets this node shut down. A stale epoch registers again.
    pub async fn heartbeat(&self, want_shutdown: bool) -> Result<bool, BrokerError> {
        let op = ControllerOp::BrokerHeartbeat {
            broker_id: self.node_id,
            broker_epoch: self.broker_epoch.load(Ordering::SeqCst),
            metadata_offset: self.quorum.shared().applied_offset() as i64,
            want_shutdown,
        };
        // A heartbeat is worth sending only while the session lasts.
        let timeout = Duration::from_millis((self.config.broker_session_timeout_ms() / 2).clamp(500, 10_000) as u64);
        match self.controller.submit_within(op, timeout).await {
            Ok(OpAnswer::Heartbeat(stale, fenced, shut_down)) => {
                if stale && !want_shutdown {
                    tracing::warn!("the controller does not know this broker's registration: registering again");
                    self.register().await?;
                    return Ok(false);
                }
                let was = self.fenced.swap(fenced, Ordering::SeqCst);
                if was != fenced {
                    tracing::info!(
                        "broker {} is {}",
                        self.node_id,
                        if fenced { "fenced" } else { "unfenced" }
                    );
                }
                Ok(shut_down)
            }
            Ok(other) => Err(BrokerError::Quorum(format!("unexpected heartbeat answer {other:?}"))),
            Err(OpFailure::NoController | OpFailure::TimedOut) => Ok(false),
            Err(e) => Err(BrokerError::Quorum(e.to_string())),
        }
    }

    /// Writes the metadata of the single-node format into the quorum, once.
    async fn migrate_legacy_metadata(&self) -> Result<(), BrokerError> {
        let records = self.legacy_metadata.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(records) = records else { return Ok(()) };
        // Already written before a crash: the topics are there.
        let already = self.image().topics().next().is_some();
        if !already && !records.is_empty() {
            self.quorum
                .write(&records)
                .await
                .map_err(|e| BrokerError::Quorum(format!("migrating the old metadata log: {e}")))?;
        }
        migrate::finish(&self.storage, &self.data_dir.path().join(METADATA_DIR), records.len())
    }

    /// The metadata image as this node has applied it.
    pub fn image(&self) -> std::sync::RwLockReadGuard<'_, MetadataImage> {
        self.quorum.image()
    }

    /// This node's broker epoch (-1 before it registers).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::SeqCst)
    }

    /// The cluster's id (empty until this node has joined its cluster).
    pub fn cluster_id(&self) -> String {
        self.data_dir.cluster_id().unwrap_or_default()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{index}"))
    }

    /// The active controller's node id (-1 while there is none).
    pub fn controller_id(&self) -> i32 {
        self.quorum.leader().map_or(-1, |l| l as i32)
    }

    /// Settings of `topic` resolved against the broker's static configs.
    pub fn settings_for(&self, image: &MetadataImage, topic: &TopicInfo) -> TopicSettings {
        TopicSettings::from_configs(&crate::handlers::topic_configs(self, image, &topic.configs))
    }

    /// Brings hosted partitions in line with the metadata image: opens the partitions placed
    /// on this node, gives each its role, applies config changes, and removes partitions that
    /// are gone (renaming their dirs, deleting in the background).
    pub fn reconcile(&self, clean: bool) -> Result<(), BrokerError> {
        off_the_runtime(|| self.reconcile_blocking(clean))
    }

    fn reconcile_blocking(&self, clean: bool) -> Result<(), BrokerError> {
        // One at a time: two could otherwise open the same partition twice.
        let _serial = self.reconciling.lock().unwrap_or_else(|p| p.into_inner());
        let image = self.image();
        // New replicas are opened first, in parallel and without the topics lock, so creating
        // thousands of partitions neither takes one fsync after another nor stalls requests.
        let mut opened = self.open_new_replicas(&image, clean);
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        let me = self.node_id;
        let removed: Vec<Arc<str>> = topics
            .iter()
            .filter(|(name, hosted)| image.topic(name).is_none_or(|t| t.topic_id != hosted.topic_id))
            .map(|(name, _)| Arc::clone(name))
            .collect();
        let topics_went = !removed.is_empty();
        for name in removed {
            if let Some(hosted) = topics.remove(&name) {
                self.retire(&name, &hosted.topic_id, hosted.partitions.values());
            }
        }
        let mut time_flushed = 0;
        for info in image.topics() {
            let mine: Vec<(i32, &nurt_metadata::PartitionInfo)> = info
                .partitions
                .iter()
                .filter(|(_, p)| p.replicas.contains(&me))
                .map(|(&i, p)| (i, p))
                .collect();
            let existing = topics.get(info.name.as_str()).cloned();
            if mine.is_empty() && existing.is_none() {
                continue;
            }
            let settings = self.settings_for(&image, info);
            let name: Arc<str> = Arc::from(info.name.as_str());
            let mut partitions = existing.as_ref().map(|h| h.partitions.clone()).unwrap_or_default();
            // Replicas moved away by a reassignment.
            let gone: Vec<i32> = partitions
                .keys()
                .copied()
                .filter(|i| !mine.iter().any(|(m, _)| m == i))
                .collect();
            for i in gone {
                if let Some(p) = partitions.remove(&i) {
                    self.retire(&info.name, &info.topic_id, std::iter::once(&p));
                }
            }
            for (index, placement) in mine {
                let partition = match partitions.get(&index) {
                    Some(p) => {
                        p.update_settings(settings.clone());
                        Arc::clone(p)
                    }
                    None => {
                        let key = (info.name.clone(), index);
                        let opened = match opened.remove(&key) {
                            Some(result) => result,
                            None => self.open_partition(&name, info.topic_id, index, settings.clone(), clean),
                        };
                        let mut offline = self.offline.lock().unwrap_or_else(|p| p.into_inner());
                        match opened {
                            Ok(p) => {
                                if offline.remove(&key).is_some() {
                                    tracing::info!("{}-{index} is back online", info.name);
                                }
                                partitions.insert(index, Arc::clone(&p));
                                p
                            }
                            Err(e) => {
                                // One partition that cannot be opened must not keep the node
                                // from serving the others: it is offline here (KAFKA_STORAGE_ERROR)
                                // and tried again at the next metadata change.
                                let reason = e.to_string();
                                if offline.get(&key) != Some(&reason) {
                                    tracing::error!("{}-{index} is offline: {reason}", info.name);
                                }
                                offline.insert(key, reason);
                                continue;
                            }
                        }
                    }
                };
                let role = ReplicaRole {
                    ineligible: placement
                        .replicas
                        .iter()
                        .copied()
                        .filter(|&r| !image.is_live(r))
                        .collect(),
                    leader: placement.leader,
                    leader_epoch: placement.leader_epoch,
                    partition_epoch: placement.partition_epoch,
                    replicas: placement.replicas.clone(),
                    isr: placement.isr.clone(),
                };
                if partition.role() != role {
                    partition.set_role(role, self.config.replica_lag_time_max_ms(), now_ms());
                }
            }
            if settings.log.flush_ms < i64::MAX {
                time_flushed += partitions.len();
            }
            if partitions.is_empty() {
                topics.remove(&name);
            } else {
                topics.insert(
                    name,
                    Arc::new(HostedTopic {
                        topic_id: info.topic_id,
                        partitions,
                    }),
                );
            }
        }
        drop(topics);
        self.time_flushed.store(time_flushed, Ordering::Relaxed);
        let live: HashSet<String> = image.topics().map(|t| t.name.clone()).collect();
        // The image's lock is not taken twice: a waiting writer would deadlock it.
        drop(image);
        self.sync_group_shards();
        self.sync_txn_shards();
        if topics_went {
            self.groups.forget_deleted_topics(|t| !live.contains(t));
        }
        Ok(())
    }

    /// Opens, in parallel, this node's replicas the image places here that are not hosted yet
    /// (of topics hosted under the same id or not at all: a topic re-created under its old
    /// name is opened after the old one is retired, in `reconcile`).
    fn open_new_replicas(
        &self,
        image: &MetadataImage,
        clean: bool,
    ) -> BTreeMap<(String, i32), Result<Arc<Partition>, BrokerError>> {
        let todo: Vec<(Arc<str>, TopicId, i32, TopicSettings)> = {
            let hosted = self.topics.read().unwrap_or_else(|p| p.into_inner());
            let mut todo = Vec::new();
            for info in image.topics() {
                let existing = hosted.get(info.name.as_str());
                if existing.is_some_and(|h| h.topic_id != info.topic_id) {
                    continue;
                }
                let name: Arc<str> = Arc::from(info.name.as_str());
                for (&index, p) in &info.partitions {
                    let new = p.replicas.contains(&self.node_id)
                        && existing.is_none_or(|h| !h.partitions.contains_key(&index));
                    if new {
                        todo.push((Arc::clone(&name), info.topic_id, index, self.settings_for(image, info)));
                    }
                }
            }
            todo
        };
        let results = crate::parallel::map(
            &todo,
            crate::parallel::DISK_THREADS_MAX,
            |(name, id, index, settings)| self.open_partition(name, *id, *index, settings.clone(), clean),
        );
        todo.into_iter()
            .zip(results)
            .map(|((name, _, index, _), r)| ((name.to_string(), index), r))
            .collect()
    }

    /// Opens (creating if need be) this node's replica of `name`-`index`.
    fn open_partition(
        &self,
        name: &Arc<str>,
        topic_id: TopicId,
        index: i32,
        settings: TopicSettings,
        clean: bool,
    ) -> Result<Arc<Partition>, BrokerError> {
        let dir = self.partition_dir(name, index);
        self.data_dir.claim_partition_dir(&dir, &hex(&topic_id))?;
        let id = PartitionId {
            topic: Arc::clone(name),
            topic_id,
            index,
            node_id: self.node_id,
            activity: Arc::clone(&self.activity),
        };
        let hw = self
            .checkpointed_high_watermarks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(name.to_string(), index))
            .unwrap_or(0);
        Ok(Arc::new(Partition::open(
            &self.storage,
            &dir,
            id,
            settings,
            clean,
            hw,
            now_ms(),
        )?))
    }

    /// Partitions of this node that could not be opened, with why.
    pub fn offline_partitions(&self) -> BTreeMap<(String, i32), String> {
        self.offline.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Loads or drops transaction coordinator shards after the `__transaction_state`
    /// partitions changed roles; markers a new shard still owes are queued for the txn clock.
    fn sync_txn_shards(&self) {
        use crate::txn_service::TXN_TOPIC;
        let partitions = self.image().topic(TXN_TOPIC).map_or(0, |t| t.partitions.len() as i32);
        let hosted: Vec<Arc<Partition>> = self
            .topic(TXN_TOPIC)
            .map(|t| t.partitions.values().cloned().collect())
            .unwrap_or_default();
        let owed = self.txns.sync_shards(partitions, &hosted);
        if !owed.is_empty() {
            self.owed_markers.lock().unwrap_or_else(|p| p.into_inner()).extend(owed);
        }
    }

    /// Loads or drops group shards after the `__consumer_offsets` partitions changed roles.
    fn sync_group_shards(&self) {
        let partitions = self
            .image()
            .topic(OFFSETS_TOPIC)
            .map_or(0, |t| t.partitions.len() as i32);
        let hosted: Vec<Arc<Partition>> = self
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.values().cloned().collect())
            .unwrap_or_default();
        self.groups.sync_shards(partitions, &hosted);
    }

    /// Closes partitions that left this node and deletes their directories off the request path.
    fn retire<'a>(&self, name: &str, topic_id: &TopicId, partitions: impl Iterator<Item = &'a Arc<Partition>>) {
        for p in partitions {
            if let Err(e) = p.close() {
                tracing::warn!("closing {name}-{}: {e}", p.index);
            }
            let dir = self.partition_dir(name, p.index);
            let doomed = dir.with_file_name(format!("{name}-{}.{}-delete", p.index, hex(topic_id)));
            if let Err(e) = std::fs::rename(&dir, &doomed) {
                tracing::warn!("could not rename {} for deletion: {e}", dir.display());
                continue;
            }
            std::thread::spawn(move || {
                if let Err(e) = std::fs::remove_dir_all(&doomed) {
                    tracing::warn!("could not delete {}: {e}", doomed.display());
                }
            });
        }
    }

    /// Deletes partition dirs no hosted partition owns (left by a crash during deletion).
    /// Only dirs that carry Nurt's `partition.metadata` or a `-delete` suffix are touched.
    fn remove_orphan_dirs(&self) {
        let Ok(entries) = std::fs::read_dir(self.data_dir()) else {
            return;
        };
        let hosted: HashSet<PathBuf> = self
            .all_partitions()
            .iter()
            .map(|p| self.partition_dir(&p.topic, p.index))
            .collect();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = path.join(PARTITION_METADATA).exists();
            if path.is_dir() && (name.ends_with("-delete") || (ours && !hosted.contains(&path))) {
                tracing::info!("removing orphaned partition directory {name}");
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }

    /// The hosted topic `name`.
    pub fn topic(&self, name: &str) -> Option<Arc<HostedTopic>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// The hosted partition `index` of `name`, whatever its role.
    pub fn partition(&self, name: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(name)?.partitions.get(&index).cloned()
    }

    /// Why `name`-`index` is not led here: KAFKA_STORAGE_ERROR when this node's replica is
    /// offline, NOT_LEADER_OR_FOLLOWER naming the leader when the partition exists,
    /// UNKNOWN_TOPIC_OR_PARTITION when it does not.
    pub fn not_led_here(&self, name: &str, index: i32) -> NotServed {
        let offline = self
            .offline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&(name.to_string(), index));
        match self.image().partition(name, index) {
            Some(p) if offline => NotServed {
                code: codes::KAFKA_STORAGE_ERROR,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
            },
            Some(p) => NotServed {
                code: codes::NOT_LEADER_OR_FOLLOWER,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
            },
            None => NotServed {
                code: codes::UNKNOWN_TOPIC_OR_PARTITION,
                leader: -1,
                leader_epoch: -1,
            },
        }
    }

    /// The partition, if this node leads it and the client's `current_leader_epoch` (-1: any)
    /// is the current one; otherwise why not.
    pub fn led_partition(
        &self,
        name: &str,
        index: i32,
        current_leader_epoch: i32,
    ) -> Result<Arc<Partition>, NotServed> {
        let Some(partition) = self.partition(name, index).filter(|p| p.is_leader()) else {
            return Err(self.not_led_here(name, index));
        };
        let role = partition.role();
        match codes::leader_epoch_check(current_leader_epoch, role.leader_epoch) {
            codes::NONE => Ok(partition),
            code => Err(NotServed {
                code,
                leader: role.leader,
                leader_epoch: role.leader_epoch,
            }),
        }
    }

    /// The name of the topic with id `id`.
    pub fn topic_name_by_id(&self, id: &TopicId) -> Option<String> {
        self.image().topic_by_id(id).map(|t| t.name.clone())
    }

    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flat_map(|t| t.partitions.values().cloned())
            .collect()
    }

    /// Hands out a fresh producer id from blocks the controller reserves in the metadata log,
    /// so ids are never reused across restarts or nodes.
    pub async fn next_producer_id(&self) -> Result<i64, OpFailure> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            match self
                .controller
                .submit(ControllerOp::AllocateProducerIds {
                    count: PRODUCER_ID_BLOCK,
                })
                .await?
            {
                OpAnswer::ProducerIds(first) => *ids = (first, first + PRODUCER_ID_BLOCK),
                other => return Err(OpFailure::Storage(format!("unexpected answer {other:?}"))),
            }
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Writes the high-watermark checkpoint if any high watermark moved since the last one:
    /// an idle node writes nothing, whatever its partitions.
    pub fn checkpoint_high_watermarks_if_moved(&self) -> Result<(), BrokerError> {
        if self.activity.high_watermark_moved.swap(false, Ordering::Relaxed) {
            self.checkpoint_high_watermarks()?;
        }
        Ok(())
    }

    /// Writes every hosted partition's high watermark to the checkpoint.
    pub fn checkpoint_high_watermarks(&self) -> Result<(), BrokerError> {
        let entries: Vec<(String, i32, i64)> = self
            .all_partitions()
            .iter()
            .map(|p| (p.topic.to_string(), p.index, p.high_watermark()))
            .collect();
        crate::hw_checkpoint::write(&*self.storage, self.data_dir(), &entries)
            .map_err(|e| BrokerError::Io(self.data_dir().join(crate::hw_checkpoint::FILE), e))
    }

    /// Flushes every log, stops the quorum and marks the shutdown clean — unless a log could
    /// not be closed (a failed flush, a torn log): then every other log is still flushed and
    /// the quorum stopped, but the shutdown is not marked clean, so the next start recovers.
    pub async fn shutdown(&self) -> Result<(), BrokerError> {
        self.fetchers.stop_all();
        // Every log flushed and closed, a bounded number at a time (each close fsyncs).
        let partitions = self.all_partitions();
        let closed = off_the_runtime(|| {
            crate::parallel::map(&partitions, crate::parallel::DISK_THREADS_MAX, |p| {
                p.close()
                    .inspect_err(|e| tracing::error!("closing {}-{}: {e}", p.topic, p.index))
            })
        });
        let first_error = closed.into_iter().find_map(Result::err).map(BrokerError::from);
        self.checkpoint_high_watermarks()?;
        self.quorum.shutdown().await?;
        if let Some(e) = first_error {
            return Err(e);
        }
        self.data_dir.mark_clean()?;
        Ok(())
    }
}

/// Runs blocking disk work (opening or closing thousands of partitions) so that the async
/// workers keep serving meanwhile: on a multi-threaded runtime the worker hands its other
/// tasks over first (`block_in_place`), so heartbeats and requests are not starved (a node
/// whose two workers both waited on disk missed its session and was fenced).
fn off_the_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Lowercase hex of a topic id.
pub fn hex(id: &TopicId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
