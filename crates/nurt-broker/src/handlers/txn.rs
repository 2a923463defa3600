//! The transaction coordinator's APIs (KIP-98, KIP-890): InitProducerId with a
//! `transactional.id`, AddPartitionsToTxn (clients' v0–3, brokers' batched and verify-only
//! v4+), AddOffsetsToTxn, EndTxn, DescribeTransactions, ListTransactions, and WriteTxnMarkers
//! (refused to clients: markers travel between brokers on the internal listener). Each call
//! goes to the `nurt-txn` coordinator of the transactional id's `__transaction_state`
//! partition; its records are replicated before the answer, and EndTxn's markers are written
//! after it (`txn_markers.rs`).

use std::sync::Arc;

use nurt_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use nurt_protocol::kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use nurt_protocol::kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use nurt_protocol::kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use nurt_protocol::kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use nurt_protocol::kafka_protocol::messages::*;
use nurt_txn::{txn_version, ListFilter, Partitions, ProducerIdAndEpoch, TxnApi, TxnError, TxnResult};

use super::sb;
use crate::group_service::partition_for;
use crate::txn_service::Called;
use crate::{codes, now_ms, Broker};

/// A producer id for a call that may need one (a new transactional id, an exhausted
/// epoch): taken from the controller's block before the coordinator's lock, handed out at
/// most once. An unused one is simply never seen (ids are not reused either way).
async fn spare_producer_id(broker: &Broker) -> Option<i64> {
    broker.next_producer_id().await.ok()
}

fn once(id: Option<i64>) -> impl FnMut() -> Option<i64> {
    let mut id = id;
    move || id.take()
}

fn error_code(e: TxnError, api: TxnApi, version: i16) -> i16 {
    e.code_for(api, version)
}

/// The answer of a coordinator call that may ask for markers: those are written in the
/// background, and a refusal (the shard's or the coordinator's) is the Kafka code for `api`.
fn answered<T>(
    broker: &Arc<Broker>,
    called: Result<Called<Result<T, TxnError>>, i16>,
    api: TxnApi,
    version: i16,
) -> Result<T, i16> {
    let (answer, markers) = called?;
    if let Some(m) = markers {
        crate::txn_markers::spawn(Arc::clone(broker), m);
    }
    answer.map_err(|e| error_code(e, api, version))
}

pub async fn init_producer_id(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
    version: i16,
    transactional_id: &str,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let expected = (version >= 3 && request.producer_id.0 >= 0).then_some(ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
    });
    let mut fresh = once(spare_producer_id(broker).await);
    let timeout_ms = request.transaction_timeout_ms;
    let called = broker
        .txns
        .call(transactional_id, |c| {
            c.init_producer_id(transactional_id, timeout_ms, expected, &mut fresh, now_ms())
        })
        .await;
    match answered(broker, called, TxnApi::InitProducerId, version) {
        Ok(pe) => response
            .with_producer_id(ProducerId(pe.producer_id))
            .with_producer_epoch(pe.epoch),
        Err(code) => response.with_error_code(code),
    }
}

fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Partitions {
    let mut out = Partitions::new();
    for t in topics {
        out.entry(t.name.0.to_string())
            .or_default()
            .extend(t.partitions.iter().copied());
    }
    out
}

fn topic_results(
    topics: &[AddPartitionsToTxnTopic],
    code: impl Fn(&str, i32) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code(&t.name.0, p))
                        })
                        .collect(),
                )
        })
        .collect()
}

/// One transaction's AddPartitionsToTxn: every partition gets the same outcome, except
/// partitions of topics that do not exist (UNKNOWN_TOPIC_OR_PARTITION; the others then get
/// OPERATION_NOT_ATTEMPTED, as Kafka answers).
async fn add_partitions(
    broker: &Broker,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let exists = |t: &str, p: i32| broker.image().topic(t).is_some_and(|t| t.partitions.contains_key(&p));
    if topics
        .iter()
        .any(|t| t.partitions.iter().any(|&p| !exists(&t.name.0, p)))
    {
        return topic_results(topics, |t, p| {
            if exists(t, p) {
                codes::OPERATION_NOT_ATTEMPTED
            } else {
                codes::UNKNOWN_TOPIC_OR_PARTITION
            }
        });
    }
    let partitions = partitions_of(topics);
    let outcome: Result<(), i16> = if verify_only {
        broker
            .txns
            .read(transactional_id, |c| {
                c.verify_partitions(transactional_id, producer_id, producer_epoch, &partitions)
            })
            .and_then(|v| {
                v.map(|_| ())
                    .map_err(|e| error_code(e, TxnApi::AddPartitionsToTxn, version))
            })
    } else {
        let client_version = txn_version::TV_0;
        match broker
            .txns
            .call(transactional_id, |c| {
                c.add_partitions(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    &partitions,
                    client_version,
                    now_ms(),
                )
            })
            .await
        {
            Ok((answer, _)) => answer.map_err(|e| error_code(e, TxnApi::AddPartitionsToTxn, version)),
            Err(code) => Err(code),
        }
    };
    let code = outcome.err().unwrap_or(codes::NONE);
    topic_results(topics, |_, _| code)
}

pub async fn add_partitions_to_txn(
    broker: &Broker,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let results = add_partitions(
            broker,
            &request.v3_and_below_transactional_id.0,
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            &request.v3_and_below_topics,
            false,
            version,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut by_transaction = Vec::with_capacity(request.transactions.len());
    for t in &request.transactions {
        let results = add_partitions(
            broker,
            &t.transactional_id.0,
            t.producer_id.0,
            t.producer_epoch,
            &t.topics,
            t.verify_only,
            version,
        )
        .await;
        by_transaction.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(by_transaction)
}

pub async fn add_offsets_to_txn(
    broker: &Broker,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let id = request.transactional_id.0.to_string();
    let partitions = broker.config.offsets_topic_partitions();
    let called = broker
        .txns
        .call(&id, |c| {
            c.add_offsets(
                &id,
                request.producer_id.0,
                request.producer_epoch,
                &request.group_id.0,
                |g| partition_for(g, partitions),
                txn_version::TV_0,
                now_ms(),
            )
        })
        .await;
    let code = match called {
        Ok((Ok(()), _)) => codes::NONE,
        Ok((Err(e), _)) => error_code(e, TxnApi::AddOffsetsToTxn, version),
        Err(code) => code,
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

pub async fn end_txn(broker: &Arc<Broker>, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = request.transactional_id.0.to_string();
    let result = if request.committed {
        TxnResult::Commit
    } else {
        TxnResult::Abort
    };
    // KIP-890 part 2: EndTxn v5+ speaks transaction version 2.
    let client_version = if version >= 5 {
        txn_version::TV_2
    } else {
        txn_version::TV_0
    };
    let mut fresh = once(spare_producer_id(broker).await);
    let called = broker
        .txns
        .call(&id, |c| {
            c.end_txn(
                &id,
                request.producer_id.0,
                request.producer_epoch,
                result,
                client_version,
                &mut fresh,
                now_ms(),
            )
        })
        .await;
    let response = EndTxnResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match answered(broker, called, TxnApi::EndTxn, version) {
        Ok(Some(pe)) => response
            .with_producer_id(ProducerId(pe.producer_id))
            .with_producer_epoch(pe.epoch),
        Ok(None) => response,
        Err(code) => response.with_error_code(code),
    }
}

/// Markers come from brokers over the internal listener only: a client asking is refused,
/// as Kafka refuses it without the CLUSTER_ACTION permission.
pub fn write_txn_markers(request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let markers = request
        .markers
        .into_iter()
        .map(|m| {
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(
                    m.topics
                        .into_iter()
                        .map(|t| {
                            WritableTxnMarkerTopicResult::default()
                                .with_name(t.name)
                                .with_partitions(
                                    t.partition_indexes
                                        .into_iter()
                                        .map(|p| {
                                            WritableTxnMarkerPartitionResult::default()
                                                .with_partition_index(p)
                                                .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}

pub fn describe_transactions(broker: &Broker, request: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let base = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            match broker.txns.read(&id.0, |c| c.describe(&id.0)) {
                Err(code) => base.with_error_code(code),
                Ok(Err(e)) => base.with_error_code(e.kafka_code()),
                Ok(Ok(d)) => base
                    .with_transaction_state(sb(d.state.name()))
                    .with_transaction_timeout_ms(d.timeout_ms)
                    .with_transaction_start_time_ms(d.start_ms)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.producer_epoch)
                    .with_topics(
                        d.partitions
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(TopicName(sb(t)))
                                    .with_partitions(ps.into_iter().collect())
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn list_transactions(broker: &Broker, request: ListTransactionsRequest) -> ListTransactionsResponse {
    let filter = ListFilter {
        states: request.state_filters.iter().map(|s| s.to_string()).collect(),
        producer_ids: request.producer_id_filters.iter().map(|p| p.0).collect(),
        min_duration_ms: request.duration_filter,
    };
    let pattern = match request.transactional_id_pattern.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(_) => return ListTransactionsResponse::default().with_error_code(codes::INVALID_REQUEST),
        },
    };
    let now = now_ms();
    let unknown: Vec<String> = filter
        .states
        .iter()
        .filter(|s| nurt_txn::TxnState::from_name(s).is_none())
        .cloned()
        .collect();
    let mut listed = Vec::new();
    broker.txns.for_each(|c| listed.extend(c.list(&filter, now).0));
    let states = listed
        .into_iter()
        .filter(|l| pattern.as_ref().is_none_or(|re| re.is_match(&l.transactional_id)))
        .map(|l| {
            ListedState::default()
                .with_transactional_id(TransactionalId(sb(l.transactional_id)))
                .with_producer_id(ProducerId(l.producer_id))
                .with_transaction_state(sb(l.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown.into_iter().map(sb).collect())
        .with_transaction_states(states)
}
