//! `nurt consume TOPIC --group G`: a KIP-848 group member. The broker assigns partitions
//! (server-side assignor); this loop heartbeats, fetches what it owns, prints, and commits
//! after printing each fetch. It leaves the group when done.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use nurt_protocol::kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use nurt_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use nurt_protocol::kafka_protocol::messages::*;
use nurt_protocol::kafka_protocol::protocol::StrBytes;

use crate::client::{error_name, topic_name, Client, Router};
use crate::consume::Printer;
use crate::group::{committed, list_offsets};

/// The member's state.
struct Member {
    group: String,
    topic: String,
    topic_id: uuid::Uuid,
    member_id: String,
    epoch: i32,
    heartbeat_every: Duration,
    /// Owned partition → next offset to read.
    positions: BTreeMap<i32, i64>,
}

impl Member {
    fn heartbeat(&mut self, client: &mut Client, leaving: bool) -> anyhow::Result<Option<Vec<i32>>> {
        let joining = self.epoch == 0;
        let owned = vec![TopicPartitions::default()
            .with_topic_id(self.topic_id)
            .with_partitions(self.positions.keys().copied().collect())];
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(if leaving { -1 } else { self.epoch })
            .with_rebalance_timeout_ms(60_000)
            .with_subscribed_topic_names(joining.then(|| vec![topic_name(&self.topic)]))
            .with_topic_partitions((!leaving).then_some(owned));
        let response = client.send(&request, 1)?;
        if response.error_code != 0 {
            bail!(
                "group {}: {}{}",
                self.group,
                error_name(response.error_code),
                response.error_message.map(|m| format!(": {m}")).unwrap_or_default()
            );
        }
        self.epoch = response.member_epoch;
        self.heartbeat_every = Duration::from_millis(response.heartbeat_interval_ms.clamp(100, 30_000) as u64);
        Ok(response.assignment.map(|a| {
            a.topic_partitions
                .into_iter()
                .filter(|tp| tp.topic_id == self.topic_id)
                .flat_map(|tp| tp.partitions)
                .collect()
        }))
    }

    fn commit(&self, client: &mut Client) -> anyhow::Result<()> {
        if self.positions.is_empty() {
            return Ok(());
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_generation_id_or_member_epoch(self.epoch)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(&self.topic))
                .with_partitions(
                    self.positions
                        .iter()
                        .map(|(&p, &o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                        })
                        .collect(),
                )]);
        for t in client.send(&request, 9)?.topics {
            for p in t.partitions.iter().filter(|p| p.error_code != 0) {
                eprintln!(
                    "warning: commit of partition {} failed: {}",
                    p.partition_index,
                    error_name(p.error_code)
                );
            }
        }
        Ok(())
    }

    /// Applies a new assignment: commits and drops revoked partitions, positions new ones at
    /// their committed offset (or the start/end when none).
    fn reassign(&mut self, router: &mut Router, assigned: Vec<i32>, from_beginning: bool) -> anyhow::Result<()> {
        self.commit(router.coordinator(&self.group)?)?;
        self.positions.retain(|p, _| assigned.contains(p));
        let new: Vec<i32> = assigned
            .into_iter()
            .filter(|p| !self.positions.contains_key(p))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let committed = committed(router.coordinator(&self.group)?, &self.group)?;
        let fallback = list_offsets(router, &self.topic, &new, if from_beginning { -2 } else { -1 })?;
        for p in new {
            let start = committed.get(&(self.topic.clone(), p)).copied().unwrap_or(fallback[&p]);
            self.positions.insert(p, start);
        }
        Ok(())
    }
}

/// Set once SIGTERM or Ctrl-C arrived: the member commits, leaves the group and exits.
static STOP: AtomicBool = AtomicBool::new(false);

/// Watches for SIGTERM and SIGINT on a thread of its own (the CLI is otherwise blocking), so
/// a stopped member leaves its group at once instead of lingering until its session times out.
fn watch_signals() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            STOP.store(true, Ordering::SeqCst);
        });
    });
}

/// Runs the member until `max_messages`, `timeout` (no records for that long), or a signal.
/// Group requests go to the group's coordinator, fetches to each partition's leader.
pub fn run(
    router: &mut Router,
    group: &str,
    topic: &str,
    topic_id: uuid::Uuid,
    from_beginning: bool,
    printer: &mut Printer,
    timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let mut m = Member {
        group: group.to_string(),
        topic: topic.to_string(),
        topic_id,
        member_id: uuid::Uuid::new_v4().to_string(),
        epoch: 0,
        heartbeat_every: Duration::from_secs(1),
        positions: BTreeMap::new(),
    };
    watch_signals();
    let leave = |m: &mut Member, router: &mut Router| -> anyhow::Result<()> {
        let coordinator = router.coordinator(group)?;
        m.commit(coordinator)?;
        m.heartbeat(coordinator, true)?;
        Ok(())
    };
    // None: heartbeat at once (an Instant cannot be put before the machine's boot).
    let mut last_heartbeat: Option<Instant> = None;
    let mut last_data = Instant::now();
    loop {
        if STOP.load(Ordering::SeqCst) {
            return leave(&mut m, router);
        }
        if last_heartbeat.is_none_or(|at| at.elapsed() >= m.heartbeat_every) {
            if let Some(assigned) = m.heartbeat(router.coordinator(group)?, false)? {
                m.reassign(router, assigned, from_beginning)?;
            }
            last_heartbeat = Some(Instant::now());
        }
        if m.positions.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        } else {
            let leaders: BTreeMap<i32, i32> = router
                .metadata(Some(&[topic]))?
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)))
                .collect();
            let before = m.positions.clone();
            let done = crate::consume::fetch_round(router, topic, &leaders, &mut m.positions, printer, &mut last_data)?;
            if done {
                return leave(&mut m, router);
            }
            if m.positions != before {
                m.commit(router.coordinator(group)?)?;
            }
        }
        if timeout.is_some_and(|t| last_data.elapsed() >= t) {
            return leave(&mut m, router);
        }
    }
}
