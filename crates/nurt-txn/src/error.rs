//! The one error type of this crate, named by meaning; the broker maps each to a Kafka code
//! (each variant's doc names it).

/// Why a transaction request was refused.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum TxnError {
    /// `INVALID_REQUEST`: e.g. an empty transactional id.
    #[error("the request is invalid: {0}")]
    InvalidRequest(&'static str),
    /// `INVALID_TRANSACTION_TIMEOUT`: not in 1..=`transaction.max.timeout.ms`.
    #[error("the transaction timeout is larger than transaction.max.timeout.ms or not positive")]
    InvalidTransactionTimeout,
    /// `CONCURRENT_TRANSACTIONS`: a previous transaction is still completing; retry.
    #[error("a previous transaction of this transactional id is still completing")]
    ConcurrentTransactions,
    /// `PRODUCER_FENCED` (`INVALID_PRODUCER_EPOCH` for old request versions, see
    /// [`TxnError::code_for`]): a newer producer with the same transactional id exists.
    #[error("the producer was fenced by a newer one with the same transactional id")]
    ProducerFenced,
    /// `INVALID_PRODUCER_ID_MAPPING`: the transactional id is unknown or has another producer id.
    #[error("the producer id is not the transactional id's")]
    InvalidProducerIdMapping,
    /// `INVALID_TXN_STATE`: the request does not fit the transaction's state (e.g. commit
    /// after abort).
    #[error("the request does not fit the transaction's state")]
    InvalidTxnState,
    /// `TRANSACTION_ABORTABLE` (Kafka 4's answer to a verification, KIP-890 part 1): the
    /// partition is not in the ongoing transaction, so the producer must abort.
    #[error("the partition is not part of the ongoing transaction")]
    PartitionNotInTransaction,
    /// `TRANSACTIONAL_ID_NOT_FOUND`: DescribeTransactions of an unknown id.
    #[error("the transactional id is not known")]
    TransactionalIdNotFound,
    /// `COORDINATOR_LOAD_IN_PROGRESS`: no producer id could be allocated yet (Kafka answers
    /// this while its producer id manager fetches a block from the controller); retry.
    #[error("no producer id is available yet; retry")]
    ProducerIdUnavailable,
    /// `COORDINATOR_NOT_AVAILABLE`: the records could not be persisted; retry.
    #[error("the transaction's records could not be persisted; retry")]
    CoordinatorNotAvailable,
}

/// The APIs whose old versions do not know `PRODUCER_FENCED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnApi {
    InitProducerId,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    EndTxn,
    TxnOffsetCommit,
}

impl TxnError {
    /// Kafka's error code for a request of `api` at `version`: clients older than KIP-588
    /// (InitProducerId below v4, the others below v2) do not know `PRODUCER_FENCED` and get
    /// `INVALID_PRODUCER_EPOCH`, as Kafka answers them; otherwise [`TxnError::kafka_code`].
    pub fn code_for(self, api: TxnApi, version: i16) -> i16 {
        let first_knowing_fenced = match api {
            TxnApi::InitProducerId => 4,
            TxnApi::AddPartitionsToTxn | TxnApi::AddOffsetsToTxn | TxnApi::EndTxn | TxnApi::TxnOffsetCommit => 2,
        };
        if self == Self::ProducerFenced && version < first_knowing_fenced {
            return INVALID_PRODUCER_EPOCH;
        }
        self.kafka_code()
    }

    /// Kafka's error code for this error (at current request versions).
    pub fn kafka_code(self) -> i16 {
        match self {
            Self::InvalidRequest(_) => 42,
            Self::InvalidTransactionTimeout => 50,
            Self::ConcurrentTransactions => 51,
            Self::ProducerFenced => 90,
            Self::InvalidProducerIdMapping => 49,
            Self::InvalidTxnState => 48,
            Self::PartitionNotInTransaction => 120,
            Self::TransactionalIdNotFound => 105,
            Self::ProducerIdUnavailable => 14,
            Self::CoordinatorNotAvailable => 15,
        }
    }
}

/// Kafka's `INVALID_PRODUCER_EPOCH`.
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
