//! The quorum's network: Raft RPCs to peers over their internal listener (`rpc.rs`), and the
//! server side that hands incoming RPCs to the local Raft.
//!
//! A peer that cannot be reached is `Unreachable` (openraft backs off); an error after the
//! request was sent is a `NetworkError` (retried sooner). A remote node that answers with an
//! error (it is stopping, or its storage failed) is reported as unreachable too: openraft's
//! RPC errors cannot carry a remote fatal error.

use std::future::Future;
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, OptionalSend, Raft};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::log_store::{decode, encode};
use super::state_machine::StateMachine;
use super::types::{NodeId, Snapshot, SnapshotData, SnapshotMeta, Vote, C};
use crate::rpc::{RpcClient, RAFT_APPEND_ENTRIES, RAFT_SNAPSHOT, RAFT_VOTE};

/// Builds a client per peer.
#[derive(Debug, Clone, Default)]
pub struct Network;

impl RaftNetworkFactory<C> for Network {
    type Network = Peer;

    async fn new_client(&mut self, _target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            client: RpcClient::new(node.addr.clone()),
        }
    }
}

/// One peer.
#[derive(Debug)]
pub struct Peer {
    client: RpcClient,
}

/// What a node answers an RPC: the response, or why its Raft could not take it.
type Answer<T> = Result<T, String>;

impl Peer {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        api_key: i16,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<C>> {
        let body = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let bytes = self
            .client
            .call(api_key, &body, timeout)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::NotConnected
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        let answer: Answer<Resp> = decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|remote| {
            RPCError::Unreachable(Unreachable::from_string(format!("{}: {remote}", self.client.addr())))
        })
    }
}

impl RaftNetworkV2<C> for Peer {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        self.call(RAFT_APPEND_ENTRIES, &rpc, option.soft_ttl()).await
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        self.call(RAFT_VOTE, &rpc, option.soft_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let request = (vote, snapshot.meta, snapshot.snapshot);
        // A snapshot may take longer than one RPC's time: allow the hard limit.
        let send = self.call::<_, SnapshotResponse<C>>(RAFT_SNAPSHOT, &request, option.hard_ttl());
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            answer = send => answer.map_err(StreamingError::from),
        }
    }
}

/// Handles an incoming Raft RPC (`api_key` one of the RAFT_* keys): the encoded answer.
pub async fn serve(raft: &Raft<C, StateMachine>, api_key: i16, body: &[u8]) -> std::io::Result<Vec<u8>> {
    fn reply<T: Serialize, E: std::fmt::Display>(r: Result<T, E>) -> std::io::Result<Vec<u8>> {
        encode(&r.map_err(|e| e.to_string()))
    }
    match api_key {
        RAFT_APPEND_ENTRIES => reply(raft.append_entries(decode::<AppendEntriesRequest<C>>(body)?).await),
        RAFT_VOTE => reply(raft.vote(decode::<VoteRequest<C>>(body)?).await),
        RAFT_SNAPSHOT => {
            let (vote, meta, data): (Vote, SnapshotMeta, SnapshotData) = decode(body)?;
            reply(
                raft.install_full_snapshot(vote, Snapshot { meta, snapshot: data })
                    .await,
            )
        }
        other => Err(std::io::Error::other(format!("not a Raft RPC: {other}"))),
    }
}
