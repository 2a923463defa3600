//! DescribeTransactions and ListTransactions: read-only views of the coordinator's state.

use crate::record::{Partitions, TxnState};
use crate::{TxnCoordinator, TxnError};

/// DescribeTransactions' view of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: TxnState,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: Partitions,
}

/// ListTransactions' filters; empty lists (and a negative duration) filter nothing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// State names as Kafka spells them ("Ongoing", ...).
    pub states: Vec<String>,
    pub producer_ids: Vec<i64>,
    /// KIP-994: only transactions running for longer than this; negative for all.
    pub min_duration_ms: i64,
}

/// ListTransactions' view of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

impl TxnCoordinator {
    /// DescribeTransactions of one id.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnDescription, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest("empty transactional id"));
        }
        let v = self.get(transactional_id).ok_or(TxnError::TransactionalIdNotFound)?;
        Ok(TxnDescription {
            transactional_id: transactional_id.to_string(),
            producer_id: v.producer_id,
            producer_epoch: v.producer_epoch,
            state: v.state,
            timeout_ms: v.timeout_ms,
            start_ms: v.start_ms,
            partitions: v.partitions.clone(),
        })
    }

    /// ListTransactions: the matching ids in id order, and the state filters that name no
    /// state (Kafka returns them as `UnknownStateFilters`).
    pub fn list(&self, filter: &ListFilter, now_ms: i64) -> (Vec<TxnListing>, Vec<String>) {
        let (states, unknown): (Vec<_>, Vec<_>) = filter
            .states
            .iter()
            .map(|name| TxnState::from_name(name).ok_or_else(|| name.clone()))
            .partition(Result::is_ok);
        let states: Vec<TxnState> = states.into_iter().flatten().collect();
        let unknown = unknown.into_iter().filter_map(Result::err).collect();
        let listed = self
            .transactions()
            .filter(|(_, v)| filter.producer_ids.is_empty() || filter.producer_ids.contains(&v.producer_id))
            .filter(|(_, v)| filter.states.is_empty() || states.contains(&v.state))
            .filter(|(_, v)| filter.min_duration_ms < 0 || now_ms - v.start_ms > filter.min_duration_ms)
            .map(|(id, v)| TxnListing {
                transactional_id: id.clone(),
                producer_id: v.producer_id,
                state: v.state,
            })
            .collect();
        (listed, unknown)
    }
}
