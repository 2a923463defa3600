//! Fetch: serve stored batches from each partition's log, long-polling until `min_bytes`
//! are available or `max_wait_ms` passes. Fetch sessions (KIP-227) are not kept: every
//! response says session 0, so clients send full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use nurt_log::{LogError, ReadSlice};
use nurt_protocol::fetch::{FetchPartition, FetchResponseParts, FetchTopic as TopicOut};
use nurt_protocol::kafka_protocol::messages::fetch_request::{FetchPartition as RequestPartition, FetchTopic};
use nurt_protocol::kafka_protocol::messages::FetchRequest;

use crate::partition::{Offsets, Partition};
use crate::{codes, Broker};

/// The response: record sets stay file ranges until the connection writes them.
pub type FetchReply = FetchResponseParts<ReadSlice>;

/// Longest a fetch may wait, whatever the client asks.
const MAX_WAIT_CAP_MS: u64 = 30_000;

fn partition_error(index: i32, code: i16) -> FetchPartition<ReadSlice> {
    FetchPartition {
        partition_index: index,
        error_code: code,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        aborted_transactions: None,
        preferred_read_replica: -1,
        records: None,
        diverging_epoch: None,
        current_leader: None,
    }
}

/// Who is fetching: a consumer, or a follower replica (and whether this read is the first of
/// its request, which records the follower's progress).
#[derive(Debug, Clone, Copy)]
enum Fetcher<'a> {
    /// A consumer; from v11 on it may read from followers (KIP-392) and names its rack;
    /// `read_committed` readers (isolation level 1) stop at the last stable offset.
    Consumer {
        follower_reads: bool,
        rack: &'a str,
        read_committed: bool,
    },
    Follower {
        replica: i32,
        first_read: bool,
    },
}

/// Locates one partition's records (a file range, not yet read) within `budget` bytes.
fn read_partition(
    broker: &Arc<Broker>,
    partition: &Arc<Partition>,
    request: &RequestPartition,
    version: i16,
    fetcher: Fetcher<'_>,
    budget: usize,
    first: bool,
) -> FetchPartition<ReadSlice> {
    let role = partition.role();
    let epoch_code = codes::leader_epoch_check(request.current_leader_epoch, role.leader_epoch);
    if epoch_code != codes::NONE {
        return FetchPartition {
            current_leader: (version >= 12).then_some((role.leader, role.leader_epoch)),
            ..partition_error(request.partition, epoch_code)
        };
    }
    let read = match fetcher {
        Fetcher::Consumer {
            rack, read_committed, ..
        } => {
            if let Some(replica) = preferred_read_replica(broker, partition, request.fetch_offset, rack) {
                // KIP-392: no records, only where to read them.
                let offsets = partition.offsets();
                return FetchPartition {
                    high_watermark: offsets.high_watermark,
                    last_stable_offset: offsets.last_stable_offset,
                    log_start_offset: offsets.log_start_offset,
                    preferred_read_replica: replica,
                    ..partition_error(request.partition, codes::NONE)
                };
            }
            if read_committed {
                return match partition.read_committed(request.fetch_offset, budget) {
                    Ok((slice, offsets, aborted)) => FetchPartition {
                        aborted_transactions: Some(aborted),
                        ..read_answer(request.partition, slice, offsets, budget > 0 || first)
                    },
                    Err(e) => read_error(partition, request.partition, e),
                };
            }
            partition.read(request.fetch_offset, budget)
        }
        Fetcher::Follower { replica, first_read } => {
            if !role.replicas.contains(&replica) {
                return partition_error(request.partition, codes::NOT_LEADER_OR_FOLLOWER);
            }
            if version >= 12 && request.last_fetched_epoch >= 0 {
                if let Some(diverging) = partition.diverging_epoch(request.last_fetched_epoch, request.fetch_offset) {
                    let offsets = partition.offsets();
                    return FetchPartition {
                        error_code: codes::NONE,
                        high_watermark: offsets.high_watermark,
                        last_stable_offset: offsets.last_stable_offset,
                        log_start_offset: offsets.log_start_offset,
                        diverging_epoch: Some(diverging),
                        ..partition_error(request.partition, codes::NONE)
                    };
                }
            }
            if first_read {
                // A higher high watermark wakes the consumers waiting here (Partition::data_changed).
                let (_, expand) = partition.on_follower_fetch(replica, request.fetch_offset, crate::now_ms());
                if let Some(proposal) = expand {
                    broker.submit_isr_change(Arc::clone(partition), proposal);
                }
            }
            partition.read_for_follower(request.fetch_offset, budget)
        }
    };
    // KIP-74: the first partition with data may exceed the budget by one batch.
    match read {
        Ok((slice, offsets)) => read_answer(request.partition, slice, offsets, budget > 0 || first),
        Err(e) => read_error(partition, request.partition, e),
    }
}

/// A partition's answer with what was read (`may_read`: within the budget, KIP-74).
fn read_answer(index: i32, slice: Option<ReadSlice>, offsets: Offsets, may_read: bool) -> FetchPartition<ReadSlice> {
    FetchPartition {
        high_watermark: offsets.high_watermark,
        last_stable_offset: offsets.last_stable_offset,
        log_start_offset: offsets.log_start_offset,
        records: slice.filter(|_| may_read).map(|s| {
            let len = s.len;
            (s, len)
        }),
        ..partition_error(index, codes::NONE)
    }
}

/// A partition's answer when its read failed.
fn read_error(partition: &Partition, index: i32, e: LogError) -> FetchPartition<ReadSlice> {
    match e {
        LogError::OffsetOutOfRange {
            log_start_offset,
            log_end_offset,
            ..
        } => FetchPartition {
            high_watermark: log_end_offset,
            last_stable_offset: log_end_offset,
            log_start_offset,
            ..partition_error(index, codes::OFFSET_OUT_OF_RANGE)
        },
        e => {
            tracing::error!("fetch from {}-{}: {e}", partition.topic, partition.index);
            partition_error(index, codes::KAFKA_STORAGE_ERROR)
        }
    }
}

/// KIP-392: with `replica.selector.class` set to the rack-aware selector, the follower a
/// consumer in `rack` should fetch `partition` from instead of this leader.
fn preferred_read_replica(broker: &Broker, partition: &Partition, fetch_offset: i64, rack: &str) -> Option<i32> {
    if rack.is_empty() || !broker.config.rack_aware_replica_selector() || !partition.is_leader() {
        return None;
    }
    let image = broker.image();
    partition.preferred_read_replica(fetch_offset, rack, |id| {
        image.broker(id).and_then(|b| b.registration.rack.as_deref())
    })
}

/// Whether this node may serve `fetcher` from `partition`: its leader always; a follower
/// replica to a consumer that may read from followers (KIP-392; up to this replica's high
/// watermark, as Kafka does).
fn may_serve(broker: &Broker, partition: &Partition, fetcher: Fetcher<'_>) -> bool {
    if partition.is_leader() {
        return true;
    }
    let role = partition.role();
    matches!(
        fetcher,
        Fetcher::Consumer {
            follower_reads: true,
            ..
        }
    ) && role.leader >= 0
        && role.replicas.contains(&broker.node_id)
}

/// Reads every requested partition once; returns the topics, the record bytes found, and
/// whether any partition answered with an error (which ends a long poll).
/// One read of every partition of the request. `watch`, when given, gets a receiver of each
/// partition read, taken before its read so no change after it goes unseen.
fn read_once(
    broker: &Arc<Broker>,
    topics: &[FetchTopic],
    version: i16,
    max_bytes: usize,
    fetcher: Fetcher<'_>,
    refuse_code: i16,
    mut watch: Option<&mut Vec<watch::Receiver<u64>>>,
) -> (Vec<TopicOut<ReadSlice>>, usize, bool) {
    let mut total = 0usize;
    let mut had_error = false;
    let mut out = Vec::with_capacity(topics.len());
    for topic in topics {
        let name = if version >= 13 {
            broker.topic_name_by_id(topic.topic_id.as_bytes())
        } else {
            Some(topic.topic.0.to_string())
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let led = name.as_deref().map(|n| match broker.partition(n, p.partition) {
                Some(partition) if may_serve(broker, &partition, fetcher) => Ok(partition),
                _ => Err(broker.not_led_here(n, p.partition)),
            });
            let data = match led {
                _ if refuse_code != codes::NONE => partition_error(p.partition, refuse_code),
                None => partition_error(p.partition, codes::UNKNOWN_TOPIC_ID),
                Some(Err(not)) => FetchPartition {
                    current_leader: (version >= 12 && not.leader >= 0).then_some((not.leader, not.leader_epoch)),
                    ..partition_error(p.partition, not.code)
                },
                Some(Ok(partition)) => {
                    if let Some(w) = watch.as_deref_mut() {
                        w.push(partition.subscribe_data());
                    }
                    let budget = max_bytes
                        .saturating_sub(total)
                        .min(p.partition_max_bytes.max(0) as usize);
                    read_partition(broker, &partition, p, version, fetcher, budget, total == 0)
                }
            };
            total += data.records.as_ref().map_or(0, |r| r.1);
            had_error |= data.error_code != codes::NONE || data.diverging_epoch.is_some();
            partitions.push(data);
        }
        out.push(TopicOut {
            name: topic.topic.0.to_string(),
            topic_id: *topic.topic_id.as_bytes(),
            partitions,
        });
    }
    (out, total, had_error)
}

fn reply(topics: Vec<TopicOut<ReadSlice>>) -> FetchReply {
    FetchResponseParts {
        error_code: codes::NONE,
        session_id: 0,
        topics,
    }
}

/// Who a fetch claiming to come from replica `replica_id` is: a follower only on the internal
/// listener (a client cannot prove it is a broker, CVE-2018-1288) and from a registered
/// broker in its current registration.
fn fetcher_of<'a>(
    broker: &Broker,
    request: &'a FetchRequest,
    version: i16,
    internal: bool,
) -> Result<Fetcher<'a>, i16> {
    let (replica, epoch) = if version >= 15 {
        (request.replica_state.replica_id.0, request.replica_state.replica_epoch)
    } else {
        (request.replica_id.0, -1)
    };
    if replica < 0 && request.replica_id.0 < 0 {
        return Ok(consumer(request, version));
    }
    let registered = broker
        .image()
        .broker(replica)
        .is_some_and(|b| epoch < 0 || b.registration.broker_epoch == epoch);
    if internal && registered {
        Ok(Fetcher::Follower {
            replica,
            first_read: true,
        })
    } else {
        Err(codes::CLUSTER_AUTHORIZATION_FAILED)
    }
}

/// A consumer's fetch: from v11 on it names its rack and may read from followers.
fn consumer(request: &FetchRequest, version: i16) -> Fetcher<'_> {
    Fetcher::Consumer {
        follower_reads: version >= 11,
        rack: if version >= 11 { &request.rack_id } else { "" },
        read_committed: request.isolation_level == 1,
    }
}

pub async fn handle(broker: &Arc<Broker>, request: FetchRequest, version: i16, internal: bool) -> FetchReply {
    let (mut fetcher, refuse_code) = match fetcher_of(broker, &request, version, internal) {
        Ok(f) => (f, codes::NONE),
        Err(code) => (consumer(&request, version), code),
    };
    if request.session_id > 0 {
        return FetchResponseParts {
            error_code: codes::FETCH_SESSION_ID_NOT_FOUND,
            session_id: 0,
            topics: vec![],
        };
    }
    let max_bytes = request.max_bytes.max(0) as usize;
    let min_bytes = request.min_bytes.max(0) as usize;
    let wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP_MS));
    let deadline = tokio::time::Instant::now() + wait;
    let mut watched = Vec::new();
    // A fetch that finds data answers without subscribing; one that must wait reads once more,
    // subscribed before each partition's read, so no change between read and wait is missed.
    let mut watching = false;
    loop {
        watched.clear();
        let (topics, bytes, had_error) = read_once(
            broker,
            &request.topics,
            version,
            max_bytes,
            fetcher,
            refuse_code,
            watching.then_some(&mut watched),
        );
        if let Fetcher::Follower { replica, .. } = fetcher {
            fetcher = Fetcher::Follower {
                replica,
                first_read: false,
            };
        }
        let expired = tokio::time::Instant::now() >= deadline;
        if bytes >= min_bytes || had_error || expired {
            return reply(topics);
        }
        if !watching {
            watching = true;
            continue;
        }
        // Parked until one of the partitions read changes (a produce elsewhere wakes nothing
        // here) or the wait ends.
        let parked = crate::metrics::Parked::new(&broker.metrics.fetches_parked);
        let woken = tokio::time::timeout_at(deadline, any_changed(&mut watched)).await;
        drop(parked);
        if woken.is_err() {
            // Timed out: one last read picks up anything that raced the deadline.
            let (topics, _, _) = read_once(broker, &request.topics, version, max_bytes, fetcher, refuse_code, None);
            return reply(topics);
        }
        broker
            .metrics
            .fetch_wakeups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Resolves when any of `watched` sees a change (never, for none).
async fn any_changed(watched: &mut [watch::Receiver<u64>]) {
    if watched.is_empty() {
        return std::future::pending().await;
    }
    let changes = watched.iter_mut().map(|w| Box::pin(w.changed()));
    let _ = futures_util::future::select_all(changes).await;
}
