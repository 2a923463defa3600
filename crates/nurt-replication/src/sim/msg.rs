//! What travels between the simulated processes, and what a process hands back to the world
//! after handling an input (sans-IO: handlers never schedule or send anything themselves).
//!
//! The messages carry what the real RPCs carry for this partition: Fetch v16 with
//! `ReplicaState`, `current_leader_epoch`, `fetch_offset` and `last_fetched_epoch`; the
//! answer's records, high watermark and `DivergingEpoch`; the controller ops `Register`,
//! `BrokerHeartbeat` and `AlterPartition`; metadata batches as the quorum replicates them.

use nurt_metadata::MetadataRecord;

use super::model_log::Entry;
use crate::IsrProposal;

/// Who sends or receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Addr {
    Node(i32),
    Controller,
    Client,
}

/// A message on the wire. `to_incarnation` is the process its connection was opened to: a
/// restarted process never reads what was sent to its predecessor.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub from: Addr,
    pub from_incarnation: u64,
    pub to: Addr,
    pub to_incarnation: u64,
    pub msg: Msg,
}

/// A follower's fetch for the simulated partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Unique per sending node (the correlation id of its connection).
    pub fetch_id: u64,
    pub replica: i32,
    /// The follower's broker epoch (`ReplicaState.replica_epoch`).
    pub replica_epoch: i64,
    pub current_leader_epoch: i32,
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
}

/// Partition-level errors of a Fetch answer (Kafka codes by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchError {
    NotLeaderOrFollower,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    /// Top-level: the fetcher is not a registered broker in this epoch (the connection is
    /// dropped and retried after the backoff).
    ClusterAuthorizationFailed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAnswer {
    Records {
        entries: Vec<Entry>,
        /// Offset of the first entry (the request's fetch offset).
        base_offset: i64,
        high_watermark: i64,
    },
    Diverging {
        epoch: i32,
        end_offset: i64,
        high_watermark: i64,
    },
    /// OFFSET_OUT_OF_RANGE: the fetch offset is past the leader's log end (given as the
    /// high watermark, as `handlers/fetch.rs` does).
    OutOfRange {
        log_end_offset: i64,
    },
    Error(FetchError),
}

/// How the controller refused an AlterPartition (`OpError` kinds, as Kafka groups them in
/// `Partition.handleAlterPartitionError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterRefusal {
    /// Checked against the partition's current epochs and refused: certainly not applied.
    NotApplied,
    /// FENCED_LEADER_EPOCH or INVALID_UPDATE_VERSION: the partition moved on — possibly by
    /// this very change, applied by an earlier attempt whose answer was lost.
    StaleEpoch,
}

/// Why a produce failed (Kafka codes by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProduceError {
    NotLeaderOrFollower,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    RequestTimedOut,
}

#[derive(Debug, Clone)]
pub enum Msg {
    // Broker → controller.
    Register,
    Heartbeat {
        broker_epoch: i64,
        metadata_offset: i64,
    },
    AlterPartition {
        rpc: u64,
        proposal: IsrProposal,
    },
    MetadataFetch {
        from: usize,
    },
    // Controller → broker.
    Registered {
        broker_epoch: i64,
    },
    HeartbeatAnswer {
        stale: bool,
        fenced: bool,
    },
    AlterAnswer {
        rpc: u64,
        result: Result<(), AlterRefusal>,
    },
    MetadataBatches {
        from: usize,
        batches: Vec<Vec<MetadataRecord>>,
    },
    // Follower ↔ leader.
    Fetch(FetchRequest),
    FetchAnswer {
        fetch_id: u64,
        answer: FetchAnswer,
    },
    // Client ↔ broker.
    Produce {
        request: u64,
        value: u64,
    },
    ProduceAnswer {
        request: u64,
        result: Result<i64, ProduceError>,
    },
    WhoLeads {
        request: u64,
    },
    Leads {
        request: u64,
        leader: i32,
    },
    /// The connection for this client request was refused (the broker is down or has not
    /// opened its client listener yet).
    Refused {
        request: u64,
    },
}

/// A broker's timers (each tied to the incarnation that set it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    RegisterRetry,
    Heartbeat,
    MetadataFetch,
    ShrinkIsr,
    CheckpointHighWatermark,
    /// The fetch loop for this leader runs its next iteration.
    FetchLoop {
        leader: i32,
    },
    FetchTimeout {
        leader: i32,
        fetch_id: u64,
    },
    /// A long-polling fetch must be answered now.
    ParkedDeadline {
        fetch_id: u64,
        replica: i32,
    },
    ProduceDeadline {
        request: u64,
    },
    /// This AlterPartition attempt got no answer within `FORWARD_TIMEOUT`: send the op
    /// again, or fail it once `OP_TIMEOUT` has passed (`Controller::submit`).
    AlterRetry {
        rpc: u64,
    },
}

/// What a handler asks the world to do.
#[derive(Debug, Clone)]
pub enum Out {
    /// Send `msg`; `to_incarnation` None means "the process running there now".
    Send {
        to: Addr,
        to_incarnation: Option<u64>,
        msg: Msg,
    },
    Timer {
        after_ms: i64,
        timer: Timer,
    },
    /// An acks=all produce was answered with success: `value` is at `offset`.
    Acknowledged {
        value: u64,
        offset: i64,
        leader_epoch: i32,
    },
    /// The controller committed an ISR expansion `leader` asked for (a hook for scripted
    /// faults).
    IsrGrew {
        leader: i32,
        before: Vec<i32>,
        after: Vec<i32>,
    },
    /// Something a correct broker can never do (a corrupt metadata record, a gap in a
    /// follower's log): the run fails with this.
    Impossible(String),
    Trace(String),
}

/// Collects a handler's outputs.
#[derive(Debug, Default)]
pub struct Outbox {
    pub items: Vec<Out>,
    /// Whether trace lines are wanted (formatting them costs more than the step itself).
    pub tracing: bool,
}

impl Outbox {
    pub fn new(tracing: bool) -> Self {
        Self {
            items: Vec::new(),
            tracing,
        }
    }

    pub fn send(&mut self, to: Addr, msg: Msg) {
        self.items.push(Out::Send {
            to,
            to_incarnation: None,
            msg,
        });
    }

    /// Answers over the connection a request came in on.
    pub fn reply(&mut self, to: Addr, to_incarnation: u64, msg: Msg) {
        self.items.push(Out::Send {
            to,
            to_incarnation: Some(to_incarnation),
            msg,
        });
    }

    pub fn timer(&mut self, after_ms: i64, timer: Timer) {
        self.items.push(Out::Timer { after_ms, timer });
    }

    pub fn impossible(&mut self, what: String) {
        self.items.push(Out::Impossible(what));
    }

    pub fn trace(&mut self, what: impl FnOnce() -> String) {
        if self.tracing {
            self.items.push(Out::Trace(what()));
        }
    }
}
