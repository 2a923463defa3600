//! The replication state machines of one partition, sans-IO: inputs (a follower's fetch, a
//! local append, the clock, a new partition state from the metadata image) go in, decisions
//! (a new high watermark, an ISR change to ask the controller for, where a returning follower
//! must truncate) come out. The broker crate wires them to logs, sockets and the controller;
//! the simulation (`sim`) drives the same code under a seeded scheduler.
//!
//! The model is Kafka's (`Partition.scala`, `ReplicaManager`, KIP-101/KIP-279 truncation by
//! leader epoch, KIP-497 AlterPartition): the leader tracks each follower's log end offset
//! from its fetches; the high watermark is the smallest log end over the in-sync replicas;
//! a follower that stops catching up for `replica.lag.time.max.ms` leaves the ISR, and one
//! that reaches the high watermark joins it — each change committed by the controller first.

mod follower;
mod leader;
/// The deterministic PRNG the seeded simulations share (this crate's and `nurt-txn`'s).
pub mod rng;
// The simulation is test code: production builds never compile it.
#[cfg(test)]
mod sim;

pub use follower::truncation_offset;
pub use leader::{AcksOutcome, FetchOutcome, IsrProposal, Leader, PartitionState};
