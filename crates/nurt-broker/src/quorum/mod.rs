//! The metadata quorum: a Raft group (openraft, behind this module) whose log is the metadata
//! log and whose state machine is the metadata image. The voters are the nodes named in
//! `controller.quorum.voters`; every other node follows as a learner (Kafka's observers), so
//! every node holds the same image. The active controller is the Raft leader: it alone
//! validates changes and appends them (`controller.rs`); every node applies them through the
//! same path, whether it wrote them, received them, or replays them at start.
//!
//! The embedded single node is a quorum of one voter that elects itself at once.

pub mod log_store;
pub mod network;
pub mod snapshot;
pub mod state_machine;
pub mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nurt_log::Storage;
use nurt_metadata::MetadataRecord;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};

use self::log_store::LogStore;
use self::network::Network;
use self::state_machine::{SharedImage, StateMachine};
use self::types::{Applied, MetadataBatch, NodeId, C};
use crate::BrokerError;

/// Timing of the quorum (Kafka: `controller.quorum.election.timeout.ms` 1000 ms).
#[derive(Debug, Clone, Copy)]
pub struct QuorumTiming {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

impl Default for QuorumTiming {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 1_000,
            election_timeout_max_ms: 2_000,
        }
    }
}

/// Entries kept after a snapshot, and how many since the last one make a new one.
const SNAPSHOT_EVERY_ENTRIES: u64 = 2_000;
const LOG_KEPT_AFTER_SNAPSHOT: u64 = 1_000;

/// Why a metadata write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// This node is not the active controller; the leader, if known.
    #[error("not the active controller (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// Leadership changed while the write was in flight: it may or may not be committed.
    #[error("leadership changed while the write was in flight")]
    Discarded,
    /// The quorum stopped (shutdown, or a storage failure).
    #[error("the metadata quorum stopped: {0}")]
    Stopped(String),
}

/// What a (re)started Raft is built from.
struct Parts {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    config: Arc<Config>,
    state_machine: StateMachine,
    single_voter: bool,
}

/// The running Raft and its log; replaced together when Raft restarts.
struct Running {
    raft: Raft<C, StateMachine>,
    log_store: LogStore,
}

/// This node's member of the metadata quorum.
///
/// openraft stops a node for good on any storage error. A full disk is not for good: a
/// supervisor notices the stop, reopens the log from disk (its recovery drops a torn tail) and
/// starts Raft again with the same state machine, retrying every second until it opens.
#[derive(Clone)]
pub struct Quorum {
    running: Arc<std::sync::RwLock<Running>>,
    parts: Arc<Parts>,
    node_id: NodeId,
    shared: Arc<SharedImage>,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Quorum {
    /// Opens the metadata log in `dir` and starts this node's Raft. A voter of a quorum that
    /// was never initialized initializes it with `voters` (node id → internal listener address;
    /// every voter may do so with the same set); a single voter elects itself at once.
    pub async fn start(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        node_id: NodeId,
        voters: &BTreeMap<NodeId, String>,
        clean: bool,
        timing: QuorumTiming,
    ) -> Result<Self, BrokerError> {
        let quorum_err = |e: &dyn std::fmt::Display| BrokerError::Quorum(e.to_string());
        let state_machine = StateMachine::open(storage, dir).map_err(|e| quorum_err(&e))?;
        let shared = state_machine.shared();
        let config = Config {
            cluster_name: "nurt-metadata".into(),
            heartbeat_interval: timing.heartbeat_interval_ms,
            election_timeout_min: timing.election_timeout_min_ms,
            election_timeout_max: timing.election_timeout_max_ms,
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
            max_in_snapshot_log_to_keep: LOG_KEPT_AFTER_SNAPSHOT,
            purge_batch_size: 256,
            ..Default::default()
        }
        .validate()
        .map_err(|e| quorum_err(&e))?;
        let parts = Arc::new(Parts {
            storage: Arc::clone(storage),
            dir: dir.to_path_buf(),
            config: Arc::new(config),
            state_machine,
            single_voter: voters.len() == 1 && voters.contains_key(&node_id),
        });
        let running = start_raft(&parts, node_id, clean).await?;
        let quorum = Self {
            running: Arc::new(std::sync::RwLock::new(running)),
            parts,
            node_id,
            shared,
        };
        let raft = quorum.raft();
        if voters.contains_key(&node_id) {
            let initialized = raft.is_initialized().await.map_err(|e| quorum_err(&e))?;
            if !initialized {
                let members: BTreeMap<NodeId, BasicNode> = voters
                    .iter()
                    .map(|(&id, addr)| (id, BasicNode::new(addr.clone())))
                    .collect();
                // Another voter may have initialized first: NotAllowed is fine.
                if let Err(e) = raft.initialize(members).await {
                    tracing::debug!("quorum already initialized: {e}");
                }
            }
            if quorum.parts.single_voter {
                raft.trigger().elect(false).await.map_err(|e| quorum_err(&e))?;
            }
        }
        tokio::spawn(quorum.clone().supervise());
        Ok(quorum)
    }

    /// The running Raft (a cheap handle; it changes when Raft restarts).
    pub fn raft(&self) -> Raft<C, StateMachine> {
        self.running.read().unwrap_or_else(|p| p.into_inner()).raft.clone()
    }

    /// Restarts Raft whenever it stops on an error (not on a shutdown, which ends this task).
    async fn supervise(self) {
        loop {
            let raft = self.raft();
            let mut metrics = raft.metrics();
            let fatal = loop {
                let state = metrics.borrow_watched().running_state.clone();
                if let Err(fatal) = state {
                    break fatal;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            };
            if matches!(fatal, openraft::errors::Fatal::Stopped) {
                return;
            }
            tracing::error!("the metadata quorum stopped on an error ({fatal}); restarting it from disk");
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match start_raft(&self.parts, self.node_id, false).await {
                    Ok(running) => {
                        if self.parts.single_voter {
                            let _ = running.raft.trigger().elect(false).await;
                        }
                        *self.running.write().unwrap_or_else(|p| p.into_inner()) = running;
                        tracing::info!("the metadata quorum is running again");
                        break;
                    }
                    Err(e) => tracing::warn!("restarting the metadata quorum: {e}; retrying in 1 s"),
                }
            }
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The image, as far as this node has applied the log.
    pub fn image(&self) -> std::sync::RwLockReadGuard<'_, nurt_metadata::MetadataImage> {
        self.shared.read()
    }

    /// The shared image (for watching it change).
    pub fn shared(&self) -> &Arc<SharedImage> {
        &self.shared
    }

    /// The current Raft leader (the active controller), if known. A leader that has not
    /// heard from a majority for 1.5 election timeouts does not count itself (it is cut off;
    /// Kafka's controller resigns then, KAFKA-15489): it answers as if no controller were
    /// known rather than name itself.
    pub fn leader(&self) -> Option<NodeId> {
        let metrics = self.raft().metrics().borrow_watched().clone();
        let leader = metrics.current_leader?;
        if leader == self.node_id && self.cut_off(&metrics) {
            return None;
        }
        Some(leader)
    }

    /// Whether this node is the active controller (and not cut off from its quorum).
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft().metrics().borrow_watched().clone();
        metrics.state == ServerState::Leader && !self.cut_off(&metrics)
    }

    /// Whether this node leads without a majority's acknowledgement for 1.5 election timeouts
    /// (never for a single voter, which is its own majority).
    fn cut_off(&self, metrics: &openraft::RaftMetrics<C>) -> bool {
        if self.parts.single_voter || metrics.state != ServerState::Leader {
            return false;
        }
        let limit = Duration::from_millis(self.parts.config.election_timeout_max * 3 / 2);
        metrics
            .last_quorum_acked
            .as_ref()
            .is_none_or(|acked| openraft::Instant::elapsed(&**acked) > limit)
    }

    /// The internal listener address of node `id`, from the quorum's membership.
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft().metrics().borrow_watched().clone();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// The current metrics (DescribeQuorum, `nurt cluster status`).
    pub fn metrics(&self) -> openraft::RaftMetrics<C> {
        self.raft().metrics().borrow_watched().clone()
    }

    /// Appends `records` as one entry and returns once this node has applied them. Only the
    /// leader may write.
    pub async fn write(&self, records: &[MetadataRecord]) -> Result<Applied, WriteError> {
        let batch = MetadataBatch(records.iter().map(MetadataRecord::encode).collect());
        match self.raft().client_write(batch).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(WriteError::NotLeader {
                leader: f.leader_id.or_else(|| self.leader()),
            }),
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => Err(WriteError::Discarded),
            Err(e) => Err(WriteError::Stopped(e.to_string())),
        }
    }

    /// Adds broker-only node `id` (reachable at `addr`) as a learner, so it receives the
    /// metadata log. Leader only; a node that is already a member is left as it is.
    pub async fn add_learner(&self, id: NodeId, addr: &str) -> Result<(), WriteError> {
        let metrics = self.metrics();
        if metrics.membership_config.membership().get_node(&id).is_some() {
            return Ok(());
        }
        match self.raft().add_learner(id, BasicNode::new(addr), false).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(WriteError::NotLeader { leader: f.leader_id })
            }
            Err(e) => Err(WriteError::Stopped(e.to_string())),
        }
    }

    /// Waits until this node has applied the log up to `index` (at most `timeout`).
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut rx = self.shared.subscribe();
        tokio::time::timeout(timeout, async {
            while *rx.borrow_and_update() <= index {
                if rx.changed().await.is_err() {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false)
    }

    /// Stops Raft and flushes the metadata log.
    pub async fn shutdown(&self) -> Result<(), BrokerError> {
        let (raft, log_store) = {
            let running = self.running.read().unwrap_or_else(|p| p.into_inner());
            (running.raft.clone(), running.log_store.clone())
        };
        if let Err(e) = raft.shutdown().await {
            tracing::warn!("stopping the metadata quorum: {e}");
        }
        log_store.close().map_err(|e| BrokerError::Quorum(e.to_string()))
    }
}

/// Opens the log in `parts.dir` and starts a Raft on it and the state machine.
async fn start_raft(parts: &Parts, node_id: NodeId, clean: bool) -> Result<Running, BrokerError> {
    let quorum_err = |e: &dyn std::fmt::Display| BrokerError::Quorum(e.to_string());
    let log_store = LogStore::open(&parts.storage, &parts.dir, clean, crate::now_ms()).map_err(|e| quorum_err(&e))?;
    let raft = Raft::new(
        node_id,
        Arc::clone(&parts.config),
        Network,
        log_store.clone(),
        parts.state_machine.clone(),
    )
    .await
    .map_err(|e| quorum_err(&e))?;
    Ok(Running { raft, log_store })
}

#[cfg(test)]
mod tests;
