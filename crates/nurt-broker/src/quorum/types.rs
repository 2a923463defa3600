//! The Raft type configuration of the metadata quorum: what an entry carries (a batch of
//! encoded metadata records), node ids (Kafka node ids) and node addresses (the internal
//! listener's `HOST:PORT`).

use std::fmt;

use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf};
use serde::{Deserialize, Serialize};

/// The application data of one Raft entry: metadata records, each encoded by
/// `MetadataRecord::encode` (versioned), committed together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch(pub Vec<Vec<u8>>);

impl fmt::Display for MetadataBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metadata batch of {} record(s)", self.0.len())
    }
}

/// What applying an entry answers: the Raft index it was applied at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Applied {
    pub index: u64,
}

openraft::declare_raft_types!(
    /// The metadata quorum's types: Kafka node ids, nodes addressed by their internal listener.
    pub MetadataRaft:
        D = MetadataBatch,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
);

pub type C = MetadataRaft;
pub type NodeId = u64;
pub type LogId = LogIdOf<C>;
pub type Vote = VoteOf<C>;
pub type Entry = <C as openraft::RaftTypeConfig>::Entry;
pub type Membership = StoredMembershipOf<C>;
pub type SnapshotMeta = SnapshotMetaOf<C>;
/// A snapshot's bytes (see `snapshot.rs` for the format).
pub type SnapshotData = Vec<u8>;
pub type Snapshot = SnapshotOf<C, SnapshotData>;
