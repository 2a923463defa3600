//! Followers fetch from leaders (Kafka's `ReplicaFetcherThread`): one loop per leader node
//! this node follows partitions of, sending Kafka's own Fetch (v16, with `ReplicaState`) to
//! the leader's internal listener. Each answer is applied per partition: records appended
//! with the leader's offsets and epochs, the leader's high watermark and log start taken, a
//! diverging log truncated (`DivergingEpoch`), a log that fell behind the leader's start
//! restarted there. A loop ends when no partition follows its leader any more.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use nurt_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use nurt_protocol::kafka_protocol::messages::fetch_response::PartitionData;
use nurt_protocol::kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader, ResponseHeader,
};
use nurt_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::INTERNAL_LISTENER;
use crate::partition::Partition;
use crate::{codes, now_ms, Broker};

/// The Fetch version followers send (15+: `ReplicaState`; 12+: `DivergingEpoch`).
const FETCH_VERSION: i16 = 16;
/// A leader's answer larger than this is refused (the request asks for at most
/// `replica.fetch.response.max.bytes`, plus one batch per partition).
const RESPONSE_BYTES_MAX: usize = 256 << 20;

/// A followed partition and the leader epoch it follows in.
type Followed = (Arc<Partition>, i32);

/// What a loop fetches: (topic id, partition, leader epoch), sorted.
type FollowedSet = Vec<([u8; 16], i32, i32)>;

/// One leader's fetch loop.
#[derive(Debug)]
struct Loop {
    handle: tokio::task::JoinHandle<()>,
    /// Told when `followed` changes, so a fetch in flight without a newly followed partition
    /// is dropped and sent again with it (instead of the partition waiting out the leader's
    /// `replica.fetch.wait.max.ms`, and an acks=all produce to it with it).
    changed: Arc<tokio::sync::Notify>,
    followed: FollowedSet,
}

/// The running fetch loops, by leader.
#[derive(Debug, Default)]
pub struct Fetchers {
    loops: Mutex<HashMap<i32, Loop>>,
    stopped: std::sync::atomic::AtomicBool,
}

impl Fetchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Loop>> {
        self.loops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a loop for every leader a hosted partition follows and that has none, and
    /// tells running loops whose partitions changed.
    pub fn ensure(broker: &Arc<Broker>) {
        let mut by_leader: BTreeMap<i32, FollowedSet> = BTreeMap::new();
        for p in broker.all_partitions() {
            if let Some(leader) = followed_leader(broker, &p) {
                by_leader
                    .entry(leader)
                    .or_default()
                    .push((p.topic_id, p.index, p.leader_epoch()));
            }
        }
        let fetchers = &broker.fetchers;
        let mut loops = fetchers.lock();
        if fetchers.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        loops.retain(|_, l| !l.handle.is_finished());
        for (leader, mut followed) in by_leader {
            followed.sort_unstable();
            match loops.get_mut(&leader) {
                Some(l) if l.followed != followed => {
                    l.followed = followed;
                    l.changed.notify_one();
                }
                Some(_) => {}
                None => {
                    let changed = Arc::new(tokio::sync::Notify::new());
                    let handle = tokio::spawn(run(Arc::clone(broker), leader, Arc::clone(&changed)));
                    loops.insert(
                        leader,
                        Loop {
                            handle,
                            changed,
                            followed,
                        },
                    );
                }
            }
        }
    }

    /// Stops every loop (shutdown).
    pub fn stop_all(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        for (_, l) in self.lock().drain() {
            l.handle.abort();
        }
    }
}

/// The leader `p` follows, if this node is one of its followers.
fn followed_leader(broker: &Broker, p: &Partition) -> Option<i32> {
    let role = p.role();
    (role.leader >= 0 && role.leader != broker.node_id && role.replicas.contains(&broker.node_id))
        .then_some(role.leader)
}

/// The partitions following `leader`, with the leader epoch each follows it in.
fn followed_from(broker: &Broker, leader: i32) -> Vec<Followed> {
    broker
        .all_partitions()
        .into_iter()
        .filter(|p| followed_leader(broker, p) == Some(leader))
        .map(|p| {
            let epoch = p.leader_epoch();
            (p, epoch)
        })
        .collect()
}

/// A partition that cannot apply what it fetched (a full disk fails every fetch) is logged at
/// ERROR at most this often; the repeats go to debug.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Partitions whose replication is failing, and when that was last logged at ERROR.
type Failing = HashMap<([u8; 16], i32), std::time::Instant>;

fn replication_failed(failing: &mut Failing, partition: &Partition, e: &nurt_log::LogError) {
    let now = std::time::Instant::now();
    let key = (partition.topic_id, partition.index);
    match failing.get(&key) {
        Some(at) if now.duration_since(*at) < ERROR_LOG_INTERVAL => {
            tracing::debug!("replicating {}-{}: {e}", partition.topic, partition.index);
        }
        _ => {
            tracing::error!(
                "replicating {}-{}: {e} (retrying every replica.fetch.backoff.ms; logged again in {}s if it persists)",
                partition.topic,
                partition.index,
                ERROR_LOG_INTERVAL.as_secs()
            );
            failing.insert(key, now);
        }
    }
}

async fn run(broker: Arc<Broker>, leader: i32, changed: Arc<tokio::sync::Notify>) {
    let mut failing = Failing::new();
    let mut connection: Option<TcpStream> = None;
    let mut correlation_id = 0i32;
    let backoff = Duration::from_millis(broker.config.replica_fetch_backoff_ms().max(10));
    loop {
        let followed = followed_from(&broker, leader);
        if followed.is_empty() {
            // Leave under the loops' lock, re-checking: `ensure` cannot miss a partition
            // that starts following this leader meanwhile.
            let mut loops = broker.fetchers.lock();
            if followed_from(&broker, leader).is_empty() {
                loops.remove(&leader);
                return;
            }
            continue;
        }
        correlation_id = correlation_id.wrapping_add(1);
        let outcome = tokio::select! {
            outcome = fetch_once(&broker, leader, &followed, &mut connection, correlation_id, &mut failing) => outcome,
            () = changed.notified() => {
                // The answer to the fetch in flight would be read by nobody: start afresh.
                connection = None;
                continue;
            }
        };
        match outcome {
            Ok(true) => {}
            // Kafka backs off (`replica.fetch.backoff.ms`) after errors only: an empty answer
            // is a long poll that expired, and the next fetch goes out at once (sleeping
            // there would hold every acks=all produce that arrives meanwhile).
            Ok(false) => tokio::time::sleep(backoff).await,
            Err(e) => {
                tracing::debug!("fetching from leader {leader}: {e}");
                connection = None;
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// One fetch round trip. Ok(false) when the leader answered a partition with an error or a
/// partition could not apply its answer (back off).
async fn fetch_once(
    broker: &Broker,
    leader: i32,
    followed: &[Followed],
    connection: &mut Option<TcpStream>,
    correlation_id: i32,
    failing: &mut Failing,
) -> std::io::Result<bool> {
    if connection.is_none() {
        let addr = internal_address(broker, leader)
            .ok_or_else(|| std::io::Error::other(format!("no internal listener known for broker {leader}")))?;
        let stream = TcpStream::connect(&addr).await?;
        stream.set_nodelay(true)?;
        *connection = Some(stream);
    }
    let stream = connection.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
    let request = fetch_request(broker, followed);
    stream
        .write_all(&request_frame(&request, correlation_id, broker.node_id)?)
        .await?;
    // The leader holds the fetch up to `replica.fetch.wait.max.ms`; allow that and more.
    let wait = Duration::from_millis(broker.config.replica_fetch_wait_max_ms().max(0) as u64);
    let response = tokio::time::timeout(wait + Duration::from_secs(30), read_response(stream, correlation_id))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    if response.error_code != codes::NONE {
        return Err(std::io::Error::other(format!(
            "fetch refused with error {}",
            response.error_code
        )));
    }
    let by_id: BTreeMap<([u8; 16], i32), &Followed> = followed.iter().map(|f| ((f.0.topic_id, f.0.index), f)).collect();
    let mut healthy = true;
    for topic in response.responses {
        for data in topic.partitions {
            let Some((partition, epoch)) = by_id.get(&(*topic.topic_id.as_bytes(), data.partition_index)) else {
                continue;
            };
            let applied = apply(partition, *epoch, &data);
            if applied.is_ok() && failing.remove(&(partition.topic_id, partition.index)).is_some() {
                tracing::info!("replicating {}-{} again", partition.topic, partition.index);
            }
            match applied {
                Ok(Applied::Error) => healthy = false,
                // Consumers long-polling on this follower (KIP-392) are woken by the
                // partition itself when its log or high watermark moved.
                Ok(Applied::Nothing | Applied::Moved) => {}
                Err(e) => {
                    replication_failed(failing, partition, &e);
                    healthy = false;
                }
            }
        }
    }
    Ok(healthy)
}

/// The internal listener of broker `id`, from its registration.
pub(crate) fn internal_address(broker: &Broker, id: i32) -> Option<String> {
    let image = broker.image();
    let registration = &image.broker(id)?.registration;
    let e = registration.endpoints.iter().find(|e| e.name == INTERNAL_LISTENER)?;
    Some(format!("{}:{}", e.host, e.port))
}

fn fetch_request(broker: &Broker, followed: &[Followed]) -> FetchRequest {
    let mut topics: BTreeMap<[u8; 16], Vec<FetchPartition>> = BTreeMap::new();
    for (p, epoch) in followed {
        let position = p.fetch_position();
        topics.entry(p.topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(*epoch)
                .with_fetch_offset(position.fetch_offset)
                .with_last_fetched_epoch(position.last_fetched_epoch)
                .with_log_start_offset(position.log_start_offset)
                .with_partition_max_bytes(broker.config.replica_fetch_max_bytes()),
        );
    }
    FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(broker.node_id))
                .with_replica_epoch(broker.broker_epoch()),
        )
        .with_max_wait_ms(broker.config.replica_fetch_wait_max_ms())
        .with_min_bytes(1)
        .with_max_bytes(broker.config.replica_fetch_response_max_bytes())
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(id, partitions)| {
                    FetchTopic::default()
                        .with_topic_id(uuid::Uuid::from_bytes(id))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

fn request_frame(request: &FetchRequest, correlation_id: i32, node_id: i32) -> std::io::Result<BytesMut> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(FETCH_VERSION)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(format!("nurt-replica-fetcher-{node_id}"))));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, ApiKey::Fetch.request_header_version(FETCH_VERSION))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    request
        .encode(&mut body, FETCH_VERSION)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    Ok(frame)
}

async fn read_response(stream: &mut TcpStream, correlation_id: i32) -> std::io::Result<FetchResponse> {
    let len = stream.read_i32().await?;
    let len = usize::try_from(len).map_err(|_| std::io::Error::other("negative response length"))?;
    if !(4..=RESPONSE_BYTES_MAX).contains(&len) {
        return Err(std::io::Error::other(format!("fetch response of {len} bytes")));
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    let mut bytes = Bytes::from(buf);
    let invalid = |e: &dyn std::fmt::Display| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
    let header = ResponseHeader::decode(&mut bytes, ApiKey::Fetch.response_header_version(FETCH_VERSION))
        .map_err(|e| invalid(&e))?;
    if header.correlation_id != correlation_id {
        return Err(std::io::Error::other("fetch response for another request"));
    }
    let response = FetchResponse::decode(&mut bytes, FETCH_VERSION).map_err(|e| invalid(&e))?;
    if bytes.has_remaining() {
        return Err(invalid(&"trailing bytes after the fetch response"));
    }
    Ok(response)
}

/// What one partition of the leader's answer did here.
enum Applied {
    /// The leader answered it with an error.
    Error,
    Nothing,
    /// Records appended, the high watermark moved, or the log was cut.
    Moved,
}

/// Applies one partition of the leader's answer.
fn apply(partition: &Partition, leader_epoch: i32, data: &PartitionData) -> Result<Applied, nurt_log::LogError> {
    match data.error_code {
        codes::NONE => {
            let diverging = &data.diverging_epoch;
            if diverging.epoch >= 0 || diverging.end_offset >= 0 {
                let leo = partition.fetch_position().fetch_offset;
                let to = nurt_replication::truncation_offset(diverging.epoch, diverging.end_offset, leo, |e| {
                    partition.own_end_offset_for(e)
                });
                tracing::info!(
                    "{}-{}: log diverges from the leader's at epoch {}; truncating from {leo} to {to}",
                    partition.topic,
                    partition.index,
                    diverging.epoch
                );
                return partition.truncate_as_follower(to, leader_epoch).map(|_| Applied::Moved);
            }
            let records = data.records.as_deref().unwrap_or_default();
            let high_watermark = partition.offsets().high_watermark;
            partition.append_as_follower(
                records,
                data.high_watermark,
                data.log_start_offset,
                leader_epoch,
                now_ms(),
            )?;
            let moved = !records.is_empty() || partition.offsets().high_watermark != high_watermark;
            Ok(if moved { Applied::Moved } else { Applied::Nothing })
        }
        codes::OFFSET_OUT_OF_RANGE => {
            let position = partition.fetch_position();
            if position.fetch_offset < data.log_start_offset {
                tracing::info!(
                    "{}-{}: the leader's log starts at {}, past this replica's end {}: starting over there",
                    partition.topic,
                    partition.index,
                    data.log_start_offset,
                    position.fetch_offset
                );
                partition
                    .restart_as_follower_at(data.log_start_offset, leader_epoch)
                    .map(|_| Applied::Moved)
            } else {
                // Past the leader's end (it answers with its log end as the high watermark).
                partition
                    .truncate_as_follower(data.high_watermark.max(0), leader_epoch)
                    .map(|_| Applied::Moved)
            }
        }
        code => {
            tracing::debug!("{}-{}: leader answered error {code}", partition.topic, partition.index);
            Ok(Applied::Error)
        }
    }
}
