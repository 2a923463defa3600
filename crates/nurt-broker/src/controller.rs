//! The controller: every change to cluster metadata is a [`ControllerOp`] executed by the
//! active controller (the quorum's leader), which validates it against its image (the
//! `nurt-metadata` controller logic) and appends the resulting records as one Raft entry. A
//! node that is not the active controller forwards the op over the internal listener and
//! waits until its own image has applied the result, so a client's next request to this node
//! sees the change.
//!
//! The active controller also keeps the brokers' sessions (heartbeats, fencing after
//! `broker.session.timeout.ms`), afresh every time it becomes leader.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nurt_metadata::controller::brokers::{self, Heartbeat, RegisterRequest, Sessions};
use nurt_metadata::controller::partitions::{self, AlterIsr, ElectionType};
use nurt_metadata::controller::{self as ops, Assignment, Candidate, NewTopic, Seeds};
use nurt_metadata::{ConfigResourceType, Endpoint, MetadataError, MetadataImage, MetadataRecord, TopicId};
use openraft::async_runtime::watch::WatchReceiver;
use serde::{Deserialize, Serialize};

use crate::codes;
use crate::quorum::log_store::{decode, encode};
use crate::quorum::{Quorum, WriteError};
use crate::rpc::{RpcClient, CONTROLLER_OP};

/// How long an op may take, forwarding and leader elections included.
const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one forwarded call may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A Kafka error code and message for one item of an op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpError {
    pub code: i16,
    pub message: String,
}

impl OpError {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<&MetadataError> for OpError {
    fn from(e: &MetadataError) -> Self {
        let (code, message) = codes::for_metadata(e);
        Self { code, message }
    }
}

/// One topic of a CreateTopics op, defaults already resolved by the receiving broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i32,
    /// Manual assignment: replicas per partition.
    pub assignments: Option<Vec<Vec<i32>>>,
    pub configs: Vec<(String, String)>,
}

/// Partitions to add to a topic (CreatePartitions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewPartitions {
    pub topic: String,
    /// The partition count wanted in all.
    pub total: i32,
    /// Manual assignment: replicas of each new partition.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// A topic the controller created (or would create, when validating only).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CreatedTopic {
    pub topic_id: TopicId,
    pub num_partitions: i32,
    pub replication_factor: i32,
}

/// A change to cluster metadata, executed by the active controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerOp {
    CreateTopics {
        topics: Vec<CreateTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        topics: Vec<NewPartitions>,
        validate_only: bool,
    },
    AlterTopicConfigs {
        topic: String,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    /// Broker (name: id, or "" for the cluster default) or group configs.
    AlterConfigs {
        resource_type: i8,
        resource_name: String,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    AllocateProducerIds {
        count: i64,
    },
    RegisterBroker {
        broker_id: i32,
        incarnation_id: [u8; 16],
        /// (listener name, host, port)
        endpoints: Vec<(String, String, i32)>,
        rack: Option<String>,
        /// The broker's cluster id, or the one it proposes when `adopt_cluster_id`.
        cluster_id: String,
        adopt_cluster_id: bool,
    },
    BrokerHeartbeat {
        broker_id: i32,
        broker_epoch: i64,
        metadata_offset: i64,
        want_shutdown: bool,
    },
    /// ISR changes asked by partition leaders: (topic id, partition, leader, leader epoch,
    /// partition epoch, new ISR).
    AlterPartition {
        items: Vec<(TopicId, i32, i32, i32, i32, Vec<i32>)>,
    },
    /// (topic, partition); election type 0 preferred, 1 unclean.
    ElectLeaders {
        election_type: i8,
        partitions: Vec<(String, i32)>,
    },
    /// (topic, partition, target replicas or None to cancel)
    Reassign {
        items: Vec<(String, i32, Option<Vec<i32>>)>,
    },
    /// The metadata quorum's state, as the active controller knows it (DescribeQuorum).
    DescribeQuorum,
}

/// One member of the metadata quorum as the leader sees it (DescribeQuorum's ReplicaState).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuorumReplica {
    pub replica_id: i32,
    /// The log end the leader knows it has (-1: unknown).
    pub log_end_offset: i64,
    /// When it last answered the leader, in ms since the epoch (-1: never).
    pub last_fetch_timestamp: i64,
    pub last_caught_up_timestamp: i64,
}

/// The metadata quorum (DescribeQuorum).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuorumState {
    pub leader_id: i32,
    /// The Raft term (Kafka's leader epoch of `__cluster_metadata`).
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

/// What the active controller answers an op.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OpAnswer {
    /// Per item, in request order: nothing, or why not.
    Items(Vec<Result<(), OpError>>),
    /// Per created topic: (topic id, partitions, replication factor), or why not.
    Topics(Vec<Result<CreatedTopic, OpError>>),
    /// The first producer id of a block.
    ProducerIds(i64),
    /// A registration's broker epoch and the cluster's id.
    Registered(i64, String),
    /// A heartbeat's answer: (stale epoch, fenced, should shut down).
    Heartbeat(bool, bool, bool),
    /// The metadata quorum.
    Quorum(QuorumState),
}

/// An op, with the Raft index the receiving broker must have applied before it answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpResult {
    pub answer: OpAnswer,
    pub applied_index: Option<u64>,
}

/// Why an op did not run at all (items that ran report their own errors).
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum OpFailure {
    #[error("no active controller could be reached")]
    NoController,
    #[error("the active controller could not write the metadata log: {0}")]
    Storage(String),
    /// The op did not finish within its time (it may still take effect).
    #[error("the controller did not answer in time")]
    TimedOut,
}

/// Settings the controller decides with.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// `broker.session.timeout.ms`
    pub session_timeout_ms: i64,
    /// `unclean.leader.election.enable` (broker default; topics may override)
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable` (Kafka: true), checked every
    /// `leader.imbalance.check.interval.seconds` (300) against
    /// `leader.imbalance.per.broker.percentage` (10).
    pub auto_leader_rebalance: bool,
    pub leader_imbalance_check_interval_ms: i64,
    pub leader_imbalance_percent: u32,
    /// `max.partitions.per.broker`: partition replicas one broker may host.
    pub partitions_per_broker_max: usize,
}

#[derive(Debug)]
struct ActiveState {
    /// The Raft term this state belongs to: a new term (a new leadership) starts it afresh.
    term: u64,
    sessions: Sessions,
    /// Per broker: the metadata index it must reach before it is unfenced.
    catch_up: HashMap<i32, i64>,
    /// When this controller last looked for leader imbalance (ms).
    last_rebalance_ms: i64,
}

/// The controller of this node.
#[derive(Debug)]
pub struct Controller {
    quorum: Quorum,
    settings: ControllerSettings,
    /// node id → internal listener address, for reaching a controller when none is known yet.
    voters: BTreeMap<u64, String>,
    state: tokio::sync::Mutex<Option<ActiveState>>,
    peers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<RpcClient>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Controller {
    pub fn new(quorum: Quorum, settings: ControllerSettings, voters: BTreeMap<u64, String>) -> Self {
        Self {
            quorum,
            settings,
            voters,
            state: tokio::sync::Mutex::new(None),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `op` on the active controller and waits until this node's image has applied it,
    /// for at most 15 s.
    pub async fn submit(&self, op: ControllerOp) -> Result<OpAnswer, OpFailure> {
        self.submit_within(op, OP_TIMEOUT).await
    }

    /// [`Controller::submit`] within `timeout` (a request's `timeout_ms`); TimedOut after.
    pub async fn submit_within(&self, op: ControllerOp, timeout: Duration) -> Result<OpAnswer, OpFailure> {
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout(timeout, self.submit_until(op, deadline)).await {
            Ok(answer) => answer,
            Err(_) => Err(OpFailure::TimedOut),
        }
    }

    async fn submit_until(&self, op: ControllerOp, deadline: Instant) -> Result<OpAnswer, OpFailure> {
        let mut tried_voter = 0usize;
        loop {
            let attempt = if self.quorum.is_leader() {
                self.execute(&op).await
            } else if let Some(addr) = self.quorum.leader().and_then(|l| self.quorum.address_of(l)) {
                self.forward(&addr, &op, true).await
            } else if !self.voters.is_empty() {
                // No leader known yet (a new node, or an election): ask the voters in turn;
                // one that is not the leader says so and we try again.
                let addrs: Vec<&String> = self.voters.values().collect();
                let addr = addrs[tried_voter % addrs.len()].clone();
                tried_voter += 1;
                self.forward(&addr, &op, false).await
            } else {
                Err(Retry)
            };
            match attempt {
                Ok(Ok(result)) => {
                    if let Some(index) = result.applied_index {
                        let left = deadline
                            .saturating_duration_since(Instant::now())
                            .max(Duration::from_secs(1));
                        self.quorum.wait_applied(index, left).await;
                    }
                    return Ok(result.answer);
                }
                Ok(Err(failure)) => return Err(failure),
                Err(Retry) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(Retry) => return Err(OpFailure::NoController),
            }
        }
    }

    /// Sends `op` to the controller at `addr`. With `leading` (it is the leader this node
    /// knows), the call is abandoned as soon as this node learns of another leader: a
    /// paused or cut-off controller must not hold ops (heartbeats above all) until they time
    /// out. Heartbeats have their own connection, so no other op queues them.
    async fn forward(
        &self,
        addr: &str,
        op: &ControllerOp,
        leading: bool,
    ) -> Result<Result<OpResult, OpFailure>, Retry> {
        let lane = if matches!(op, ControllerOp::BrokerHeartbeat { .. }) {
            "heartbeat"
        } else {
            "ops"
        };
        let client = Arc::clone(
            lock(&self.peers)
                .entry(format!("{addr}#{lane}"))
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(RpcClient::new(addr)))),
        );
        let body = encode(op).map_err(|_| Retry)?;
        let call = async {
            client
                .lock()
                .await
                .call(CONTROLLER_OP, &body, FORWARD_TIMEOUT)
                .await
                .map_err(|e| {
                    tracing::debug!("forwarding a controller op to {addr}: {e}");
                    Retry
                })
        };
        let answer = tokio::select! {
            answer = call => answer?,
            _ = self.leader_moves_from(addr), if leading => return Err(Retry),
        };
        let answer: Option<Result<OpResult, OpFailure>> = decode(&answer).map_err(|_| Retry)?;
        // None: that node is not the active controller.
        answer.ok_or(Retry)
    }

    /// Completes once the leader this node knows is no longer the one at `addr`.
    async fn leader_moves_from(&self, addr: &str) {
        let mut metrics = self.quorum.raft().metrics();
        loop {
            let leader = self.quorum.leader().and_then(|l| self.quorum.address_of(l));
            if leader.as_deref() != Some(addr) {
                return;
            }
            // Also look again now and then: a cut-off leader stops counting without a change.
            let _ = tokio::time::timeout(Duration::from_millis(500), metrics.changed()).await;
        }
    }

    /// Handles an op forwarded by another node: None when this node is not the active
    /// controller (the sender tries elsewhere).
    pub async fn serve_forwarded(&self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        let op: ControllerOp = decode(body)?;
        let answer: Option<Result<OpResult, OpFailure>> = if self.quorum.is_leader() {
            self.execute(&op).await.ok()
        } else {
            None
        };
        encode(&answer)
    }

    /// The active controller's state, started afresh in each new term (a new controller knows
    /// no sessions: every broker gets a full session timeout to heartbeat to it).
    async fn active_state(&self) -> tokio::sync::MutexGuard<'_, Option<ActiveState>> {
        let mut state = self.state.lock().await;
        let term = self.quorum.metrics().current_term;
        if state.as_ref().is_none_or(|s| s.term != term) {
            *state = Some(ActiveState {
                term,
                sessions: Sessions::new(self.settings.session_timeout_ms, crate::now_ms()),
                catch_up: HashMap::new(),
                last_rebalance_ms: crate::now_ms(),
            });
        }
        state
    }

    /// Executes `op` here, as the active controller. `Retry` when leadership is lost.
    async fn execute(&self, op: &ControllerOp) -> Result<Result<OpResult, OpFailure>, Retry> {
        let mut state = self.active_state().await;
        let state = state.as_mut().ok_or(Retry)?;
        let mut applied_index = None;
        let answer = self.execute_locked(op, state, &mut applied_index).await?;
        Ok(answer.map(|answer| OpResult { answer, applied_index }))
    }

    /// Writes `records` (if any) and remembers the index they were applied at.
    async fn write(
        &self,
        records: &[MetadataRecord],
        applied: &mut Option<u64>,
    ) -> Result<Result<(), OpFailure>, Retry> {
        if records.is_empty() {
            return Ok(Ok(()));
        }
        match self.quorum.write(records).await {
            Ok(a) => {
                *applied = Some(a.index);
                Ok(Ok(()))
            }
            Err(WriteError::NotLeader { .. }) | Err(WriteError::Discarded) => Err(Retry),
            Err(WriteError::Stopped(e)) => Ok(Err(OpFailure::Storage(e))),
        }
    }

    fn unclean_for(&self, image: &MetadataImage) -> impl Fn(&TopicId) -> bool {
        let default = self.settings.unclean_leader_election;
        let overrides: HashMap<TopicId, bool> = image
            .topics()
            .filter_map(|t| {
                t.configs
                    .get("unclean.leader.election.enable")
                    .map(|v| (t.topic_id, v == "true"))
            })
            .collect();
        move |id| overrides.get(id).copied().unwrap_or(default)
    }

    async fn execute_locked(
        &self,
        op: &ControllerOp,
        state: &mut ActiveState,
        applied: &mut Option<u64>,
    ) -> Result<Result<OpAnswer, OpFailure>, Retry> {
        let now = crate::now_ms();
        macro_rules! write {
            ($records:expr) => {
                if let Err(f) = self.write(&$records, applied).await? {
                    return Ok(Err(f));
                }
            };
        }
        match op {
            ControllerOp::CreateTopics { topics, validate_only } => {
                let mut results = Vec::with_capacity(topics.len());
                for t in topics {
                    let topic_id = *uuid::Uuid::new_v4().as_bytes();
                    let records = {
                        let image = self.quorum.image();
                        let assignment = match &t.assignments {
                            Some(a) => Assignment::Manual(a.clone()),
                            None => Assignment::Auto {
                                replication_factor: t.replication_factor,
                                brokers: candidates(&image),
                                seeds: random_seeds(),
                            },
                        };
                        let new = NewTopic {
                            name: t.name.clone(),
                            num_partitions: t.num_partitions,
                            assignment,
                            configs: t.configs.clone(),
                        };
                        ops::create_topic(&image, &new, topic_id).and_then(|records| {
                            let max = self.settings.partitions_per_broker_max;
                            ops::check_partitions_per_broker(&image, &records, max).map(|()| records)
                        })
                    };
                    match records {
                        Err(e) => results.push(Err(OpError::from(&e))),
                        Ok(records) => {
                            let rf = records
                                .iter()
                                .find_map(|r| match r {
                                    MetadataRecord::Partition(p) => Some(p.replicas.len() as i32),
                                    _ => None,
                                })
                                .unwrap_or(0);
                            if !validate_only {
                                write!(records);
                                tracing::info!("created topic {} with {} partition(s)", t.name, t.num_partitions);
                            }
                            results.push(Ok(CreatedTopic {
                                topic_id,
                                num_partitions: t.num_partitions,
                                replication_factor: rf,
                            }));
                        }
                    }
                }
                Ok(Ok(OpAnswer::Topics(results)))
            }
            ControllerOp::DeleteTopics { names } => {
                self.write_each(names, applied, false, |image, name| {
                    let records = ops::delete_topic(image, name).map_err(|e| OpError::from(&e))?;
                    tracing::info!("deleting topic {name}");
                    Ok(records)
                })
                .await
            }
            ControllerOp::CreatePartitions { topics, validate_only } => {
                self.write_each(topics, applied, *validate_only, |image, t| {
                    let assignment = match &t.assignments {
                        Some(a) => Assignment::Manual(a.clone()),
                        None => Assignment::Auto {
                            replication_factor: 0,
                            brokers: candidates(image),
                            seeds: random_seeds(),
                        },
                    };
                    let max = self.settings.partitions_per_broker_max;
                    ops::create_partitions(image, &t.topic, t.total, assignment)
                        .and_then(|records| ops::check_partitions_per_broker(image, &records, max).map(|()| records))
                        .map_err(|e| OpError::from(&e))
                })
                .await
            }
            ControllerOp::AlterTopicConfigs {
                topic,
                changes,
                validate_only,
            } => {
                self.write_each([()], applied, *validate_only, |image, ()| {
                    ops::alter_topic_configs(image, topic, changes).map_err(|e| OpError::from(&e))
                })
                .await
            }
            ControllerOp::AlterConfigs {
                resource_type,
                resource_name,
                changes,
                validate_only,
            } => {
                self.write_each([()], applied, *validate_only, |image, ()| {
                    let resource_type = ConfigResourceType::from_code(*resource_type)
                        .ok_or_else(|| OpError::new(codes::INVALID_REQUEST, "unsupported resource type"))?;
                    ops::alter_resource_configs(image, resource_type, resource_name, changes)
                        .map_err(|e| OpError::from(&e))
                })
                .await
            }
            ControllerOp::AllocateProducerIds { count } => {
                let (first, record) = ops::allocate_producer_ids(&self.quorum.image(), *count);
                write!([record]);
                Ok(Ok(OpAnswer::ProducerIds(first)))
            }
            ControllerOp::RegisterBroker {
                broker_id,
                incarnation_id,
                endpoints,
                rack,
                cluster_id,
                adopt_cluster_id,
            } => {
                let endpoints: Vec<Endpoint> = endpoints
                    .iter()
                    .map(|(name, host, port)| Endpoint {
                        name: name.clone(),
                        host: host.clone(),
                        port: *port,
                    })
                    .collect();
                // A broker-only node follows the metadata log as a learner.
                if let Some(internal) = endpoints.iter().find(|e| e.name == crate::config::INTERNAL_LISTENER) {
                    let addr = format!("{}:{}", internal.host, internal.port);
                    match self.quorum.add_learner(*broker_id as u64, &addr).await {
                        Ok(()) => {}
                        Err(WriteError::Stopped(e)) => return Ok(Err(OpFailure::Storage(e))),
                        Err(_) => return Err(Retry),
                    }
                }
                let req = RegisterRequest {
                    broker_id: *broker_id,
                    incarnation_id: *incarnation_id,
                    endpoints,
                    rack: rack.clone(),
                    cluster_id: cluster_id.clone(),
                    adopt_cluster_id: *adopt_cluster_id,
                };
                let registration = {
                    let image = self.quorum.image();
                    brokers::register(&image, &req, &self.unclean_for(&image))
                };
                let (records, registered) = match registration {
                    Ok(r) => r,
                    Err(e) => return Ok(Ok(OpAnswer::Items(vec![Err(OpError::from(&e))]))),
                };
                write!(records);
                state.sessions.registered(*broker_id, registered.broker_epoch, now);
                let catch_up = self.quorum.shared().applied_offset() as i64;
                state.catch_up.insert(*broker_id, catch_up);
                Ok(Ok(OpAnswer::Registered(registered.broker_epoch, registered.cluster_id)))
            }
            ControllerOp::BrokerHeartbeat {
                broker_id,
                broker_epoch,
                metadata_offset,
                want_shutdown,
            } => {
                let hb = Heartbeat {
                    broker_id: *broker_id,
                    broker_epoch: *broker_epoch,
                    metadata_offset: *metadata_offset,
                    want_shutdown: *want_shutdown,
                };
                // A broker registered under a previous controller: caught up once it has
                // applied what this controller had applied when it became active.
                let catch_up = *state
                    .catch_up
                    .entry(*broker_id)
                    .or_insert_with(|| self.quorum.shared().applied_offset() as i64);
                let (answer, changes) = {
                    let image = self.quorum.image();
                    let unclean = self.unclean_for(&image);
                    state.sessions.heartbeat(&image, hb, catch_up, now, &unclean)
                };
                write!(changes.records);
                Ok(Ok(OpAnswer::Heartbeat(
                    answer.stale_epoch,
                    answer.fenced,
                    answer.should_shut_down,
                )))
            }
            ControllerOp::AlterPartition { items } => {
                let requests: Vec<AlterIsr> = items
                    .iter()
                    .map(
                        |(topic_id, partition, leader, leader_epoch, partition_epoch, new_isr)| AlterIsr {
                            topic_id: *topic_id,
                            partition: *partition,
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                            partition_epoch: *partition_epoch,
                            new_isr: new_isr.clone(),
                        },
                    )
                    .collect();
                self.write_each(requests, applied, false, |image, req| {
                    partitions::alter_isr(image, &req, &|b| image.is_live(b)).map_err(|e| OpError::from(&e))
                })
                .await
            }
            ControllerOp::ElectLeaders {
                election_type,
                partitions: wanted,
            } => {
                let kind = if *election_type == 1 {
                    ElectionType::Unclean
                } else {
                    ElectionType::Preferred
                };
                self.write_each(wanted, applied, false, |image, (topic, partition)| {
                    partitions::elect(image, topic, *partition, kind, &|b| image.is_live(b))
                        .map_err(|e| OpError::from(&e))
                })
                .await
            }
            ControllerOp::DescribeQuorum => Ok(Ok(OpAnswer::Quorum(self.quorum_state()))),
            ControllerOp::Reassign { items } => {
                self.write_each(items, applied, false, |image, (topic, partition, target)| {
                    partitions::reassign(image, topic, *partition, target.as_deref(), &|b| image.is_live(b))
                        .map_err(|e| OpError::from(&e))
                })
                .await
            }
        }
    }

    /// The quorum from this leader's Raft metrics.
    fn quorum_state(&self) -> QuorumState {
        let m = self.quorum.metrics();
        let now = crate::now_ms();
        let end = m.last_log_index.map_or(0, |i| i as i64 + 1);
        let replica = |id: u64| {
            if id == self.quorum.node_id() {
                return QuorumReplica {
                    replica_id: id as i32,
                    log_end_offset: end,
                    last_fetch_timestamp: now,
                    last_caught_up_timestamp: now,
                };
            }
            let matched = m.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten());
            let acked = m.heartbeat.as_ref().and_then(|h| h.get(&id).cloned().flatten());
            let fetched = acked.map_or(-1, |at| now - openraft::Instant::elapsed(&*at).as_millis() as i64);
            let log_end_offset = matched.map_or(-1, |l| l.index as i64 + 1);
            QuorumReplica {
                replica_id: id as i32,
                log_end_offset,
                last_fetch_timestamp: fetched,
                last_caught_up_timestamp: if log_end_offset >= end { fetched } else { -1 },
            }
        };
        let membership = m.membership_config.membership();
        QuorumState {
            leader_id: self.quorum.node_id() as i32,
            leader_epoch: m.current_term as i32,
            high_watermark: m.cluster_committed.map_or(0, |c| c.index as i64 + 1),
            voters: membership.voter_ids().map(replica).collect(),
            observers: membership.learner_ids().map(replica).collect(),
        }
    }

    /// Plans and writes `items` one by one, each planned against the image the ones before
    /// it left (`validate_only`: planned, not written): the per-item answers, or the failure
    /// that stopped the op part way.
    async fn write_each<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        applied: &mut Option<u64>,
        validate_only: bool,
        plan: impl Fn(&MetadataImage, T) -> Result<Vec<MetadataRecord>, OpError>,
    ) -> Result<Result<OpAnswer, OpFailure>, Retry> {
        let mut results = Vec::new();
        for item in items {
            let planned = plan(&self.quorum.image(), item);
            match planned {
                Ok(records) => {
                    if !validate_only {
                        if let Err(f) = self.write(&records, applied).await? {
                            return Ok(Err(f));
                        }
                    }
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        Ok(Ok(OpAnswer::Items(results)))
    }

    /// Fences brokers whose session expired; the active controller calls this periodically.
    pub async fn tick(&self) {
        if !self.quorum.is_leader() {
            return;
        }
        let mut state = self.active_state().await;
        let Some(state) = state.as_mut() else { return };
        let expired = state.sessions.expired(&self.quorum.image(), crate::now_ms());
        for broker_id in expired {
            let records = {
                let image = self.quorum.image();
                brokers::fence(&image, broker_id, &self.unclean_for(&image))
            };
            tracing::warn!("fencing broker {broker_id}: no heartbeat within broker.session.timeout.ms");
            let mut applied = None;
            match self.write(&records, &mut applied).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("fencing broker {broker_id}: {e}"),
                Err(Retry) => return,
            }
        }
        let now = crate::now_ms();
        if self.settings.auto_leader_rebalance
            && now - state.last_rebalance_ms >= self.settings.leader_imbalance_check_interval_ms
        {
            state.last_rebalance_ms = now;
            let wanted = {
                let image = self.quorum.image();
                partitions::imbalanced(&image, self.settings.leader_imbalance_percent, &|b| image.is_live(b))
            };
            if !wanted.is_empty() {
                tracing::info!(
                    "leader imbalance: electing the preferred leaders of {} partition(s)",
                    wanted.len()
                );
                let mut applied = None;
                let _ = self
                    .write_each(wanted, &mut applied, false, |image, (topic, partition)| {
                        partitions::elect(image, &topic, partition, ElectionType::Preferred, &|b| image.is_live(b))
                            .map_err(|e| OpError::from(&e))
                    })
                    .await;
            }
        }
    }
}

/// Leadership moved while an op ran, or no controller answered: try again.
#[derive(Debug)]
struct Retry;

/// Live brokers as placement candidates.
fn candidates(image: &MetadataImage) -> Vec<Candidate> {
    image
        .live_brokers()
        .map(|b| Candidate {
            id: b.registration.broker_id,
            rack: b.registration.rack.clone(),
        })
        .collect()
}

/// The random choices of a placement (Kafka picks them at random too).
fn random_seeds() -> Seeds {
    let r = uuid::Uuid::new_v4().as_u128();
    Seeds {
        start_index: (r & 0xffff) as usize,
        replica_shift: ((r >> 16) & 0xffff) as usize,
    }
}
