//! The broker's shared state: identity, metadata, the partitions it hosts, and the data
//! version that wakes long-polling fetches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use nurt_log::data_dir::PARTITION_METADATA;
use nurt_log::{DataDir, OsStorage, Storage};
use nurt_metadata::{MetadataImage, TopicConfigs, TopicId, TopicInfo};
use tokio::sync::watch;

use crate::budget::RequestBudget;
use crate::group_service::{group_config, GroupService};
use crate::metadata_store::MetadataStore;
use crate::partition::{Partition, PartitionId, TopicSettings};
use crate::{now_ms, BrokerConfig, BrokerError};

const METADATA_DIR: &str = "__cluster_metadata-0";
const OFFSETS_DIR: &str = "__consumer_offsets-0";
/// Producer ids reserved per metadata write.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// A topic as hosted here: its id and its partitions, by index.
#[derive(Debug)]
pub struct HostedTopic {
    pub topic_id: TopicId,
    pub partitions: Vec<Arc<Partition>>,
}

/// The node.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub node_id: i32,
    pub cluster_id: String,
    /// The memory requests in flight may take (`queued.max.request.bytes`).
    pub request_budget: RequestBudget,
    storage: Arc<dyn Storage>,
    data_dir: DataDir,
    pub metadata: MetadataStore,
    pub groups: GroupService,
    topics: RwLock<HashMap<Arc<str>, Arc<HostedTopic>>>,
    data_version: watch::Sender<u64>,
    producer_ids: Mutex<(i64, i64)>,
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
const OFFSETS_SEGMENT_BYTES: u32 = 100 << 20;

/// The offsets log's settings: the broker's defaults for every topic (so the flush policy is
/// `log.flush.interval.messages` / `log.flush.interval.ms`, as for Kafka's internal topics),
/// with `offsets.topic.segment.bytes`.
fn offsets_log_config(config: &BrokerConfig) -> nurt_log::LogConfig {
    let no_overrides = std::collections::BTreeMap::new();
    let settings = TopicSettings::from_configs(&TopicConfigs {
        overrides: &no_overrides,
        broker: &config.values,
    });
    nurt_log::LogConfig {
        segment_bytes: OFFSETS_SEGMENT_BYTES,
        ..settings.log
    }
}

impl Broker {
    /// Opens the data dir: identity, metadata replay, then every hosted partition (recovering
    /// logs when the previous run did not shut down cleanly).
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>, BrokerError> {
        let storage = OsStorage::shared();
        let node_id = config.node_id();
        let data_dir = DataDir::open(Arc::clone(&storage), &config.data_dir, node_id, new_cluster_id)?;
        let clean = data_dir.was_clean();
        let now = now_ms();
        let path = data_dir.path().to_path_buf();
        let metadata = MetadataStore::open(&storage, &path.join(METADATA_DIR), clean, now)?;
        let groups = GroupService::open(
            &storage,
            &path.join(OFFSETS_DIR),
            offsets_log_config(&config),
            group_config(&config),
            clean,
        )?;
        let broker = Arc::new(Self {
            request_budget: RequestBudget::new(config.queued_max_request_bytes()),
            config,
            node_id,
            cluster_id: data_dir.cluster_id().to_string(),
            storage,
            data_dir,
            metadata,
            groups,
            topics: RwLock::new(HashMap::new()),
            data_version: watch::channel(0).0,
            producer_ids: Mutex::new((0, 0)),
        });
        broker.reconcile(clean)?;
        broker.remove_orphan_dirs();
        let forgotten = {
            let image = broker.metadata.image();
            broker.groups.forget_deleted_topics(|t| image.topic(t).is_none())?
        };
        if forgotten > 0 {
            tracing::info!("deleted {forgotten} committed offset(s) of topics deleted before the last stop");
        }
        Ok(broker)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{index}"))
    }

    /// The broker node ids of the cluster (one, for now).
    pub fn broker_ids(&self) -> Vec<i32> {
        vec![self.node_id]
    }

    /// Settings of `topic` resolved against the broker's static configs.
    pub fn settings_for(&self, topic: &TopicInfo) -> TopicSettings {
        TopicSettings::from_configs(&TopicConfigs {
            overrides: &topic.configs,
            broker: &self.config.values,
        })
    }

    /// Brings hosted partitions in line with the metadata image: opens new partitions, applies
    /// config changes, and removes deleted topics (renaming their dirs, deleting in background).
    pub fn reconcile(&self, clean: bool) -> Result<(), BrokerError> {
        let image = self.metadata.image();
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        let removed: Vec<Arc<str>> = topics
            .iter()
            .filter(|(name, hosted)| image.topic(name).is_none_or(|t| t.topic_id != hosted.topic_id))
            .map(|(name, _)| Arc::clone(name))
            .collect();
        for name in removed {
            if let Some(hosted) = topics.remove(&name) {
                self.retire_topic(&name, &hosted);
            }
        }
        for info in image.topics() {
            let settings = self.settings_for(info);
            let existing = topics.get(info.name.as_str()).cloned();
            let mut partitions = existing.as_ref().map(|h| h.partitions.clone()).unwrap_or_default();
            for p in &partitions {
                p.update_settings(settings.clone());
            }
            if partitions.len() == info.partitions.len() && existing.is_some() {
                continue;
            }
            let name: Arc<str> = Arc::from(info.name.as_str());
            for (&index, placement) in info.partitions.range(partitions.len() as i32..) {
                let dir = self.partition_dir(&info.name, index);
                self.data_dir.claim_partition_dir(&dir, &hex(&info.topic_id))?;
                let id = PartitionId {
                    topic: Arc::clone(&name),
                    topic_id: info.topic_id,
                    index,
                    leader_epoch: placement.leader_epoch,
                };
                let p = Partition::open(&self.storage, &dir, id, settings.clone(), clean, now_ms())?;
                partitions.push(Arc::new(p));
            }
            topics.insert(
                name,
                Arc::new(HostedTopic {
                    topic_id: info.topic_id,
                    partitions,
                }),
            );
        }
        Ok(())
    }

    /// Closes a deleted topic's logs and deletes their directories off the request path.
    fn retire_topic(&self, name: &str, hosted: &HostedTopic) {
        for p in &hosted.partitions {
            let dir = self.partition_dir(name, p.index);
            let doomed = dir.with_file_name(format!("{name}-{}.{}-delete", p.index, hex(&hosted.topic_id)));
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
        let hosted: std::collections::HashSet<PathBuf> = self
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

    /// The hosted partition `index` of `name`.
    pub fn partition(&self, name: &str, index: i32) -> Option<Arc<Partition>> {
        let topic = self.topic(name)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .cloned()
    }

    /// The partition, if hosted here and the client's `current_leader_epoch` (-1: any) is
    /// ours; otherwise the Kafka error code to answer.
    pub fn led_partition(&self, name: &str, index: i32, current_leader_epoch: i32) -> Result<Arc<Partition>, i16> {
        let partition = self
            .partition(name, index)
            .ok_or(crate::codes::UNKNOWN_TOPIC_OR_PARTITION)?;
        match crate::codes::leader_epoch_check(current_leader_epoch, partition.leader_epoch) {
            crate::codes::NONE => Ok(partition),
            code => Err(code),
        }
    }

    /// The name of the topic with id `id`.
    pub fn topic_name_by_id(&self, id: &TopicId) -> Option<String> {
        self.metadata.image().topic_by_id(id).map(|t| t.name.clone())
    }

    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Wakes long-polling fetches after an append.
    pub fn notify_data(&self) {
        self.data_version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that changes whenever data is appended anywhere.
    pub fn subscribe_data(&self) -> watch::Receiver<u64> {
        self.data_version.subscribe()
    }

    /// Hands out a fresh producer id, reserving blocks in the metadata log so ids are never
    /// reused across restarts.
    pub fn next_producer_id(&self) -> Result<i64, crate::metadata_store::CommitError> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.0 >= ids.1 {
            let first = self.metadata.commit(now_ms(), |image: &MetadataImage| {
                let (first, record) = nurt_metadata::controller::allocate_producer_ids(image, PRODUCER_ID_BLOCK);
                Ok((vec![record], first))
            })?;
            *ids = (first, first + PRODUCER_ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Flushes every log and marks the shutdown clean.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        for p in self.all_partitions() {
            p.close()?;
        }
        self.metadata.close()?;
        self.groups.close()?;
        self.data_dir.mark_clean()?;
        Ok(())
    }
}

/// Lowercase hex of a topic id.
pub fn hex(id: &TopicId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
