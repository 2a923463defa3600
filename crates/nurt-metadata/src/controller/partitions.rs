//! Partition leadership and in-sync replicas: elections, ISR changes asked by leaders
//! (Kafka's AlterPartition), preferred and unclean elections (ElectLeaders), and replica
//! reassignment (AlterPartitionReassignments). Every function reads the image and returns the
//! records that make the change; nothing is applied here.
//!
//! Rules (Kafka's `PartitionChangeBuilder`): a leader comes only from the ISR, in replica
//! order, among brokers that may lead (registered, unfenced, not shutting down); when none
//! may, the partition has no leader (-1) unless unclean election is allowed, in which case any
//! live replica may lead (and records since the last committed one may be lost). The ISR never
//! becomes empty: its last member stays even when fenced, so it can lead again when it
//! returns. The leader epoch rises with every leader change; the partition epoch with every
//! change.

use crate::image::{MetadataImage, PartitionInfo};
use crate::record::{MetadataRecord, PartitionRecord};
use crate::{MetadataError, TopicId};

/// No leader.
pub const NO_LEADER: i32 = -1;

/// Chooses a leader: the first replica (in preference order) that is in the ISR and may lead;
/// failing that, with `unclean`, the first replica that may lead.
pub fn choose_leader(replicas: &[i32], isr: &[i32], may_lead: impl Fn(i32) -> bool, unclean: bool) -> i32 {
    replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && may_lead(*r))
        .or_else(|| {
            unclean
                .then(|| replicas.iter().copied().find(|r| may_lead(*r)))
                .flatten()
        })
        .unwrap_or(NO_LEADER)
}

/// `current` changed to `isr` and `leader`: the record, with the epochs bumped as needed, or
/// None when nothing changes.
pub fn change(current: &PartitionInfo, isr: Vec<i32>, leader: i32) -> Option<PartitionRecord> {
    if isr == current.isr && leader == current.leader {
        return None;
    }
    let mut next = current.clone();
    next.isr = isr;
    if leader != current.leader {
        next.leader = leader;
        next.leader_epoch += 1;
    }
    next.partition_epoch += 1;
    Some(next)
}

/// Every partition that has `broker` as a replica.
pub fn partitions_with(image: &MetadataImage, broker: i32) -> Vec<&PartitionInfo> {
    image
        .topics()
        .flat_map(|t| t.partitions.values().filter(move |p| p.replicas.contains(&broker)))
        .collect()
}

/// Moves leadership and ISR membership away from `broker`, which may no longer lead (it was
/// fenced, or is shutting down): it leaves every ISR it is in unless it is the last member,
/// and partitions it led elect another in-sync leader, or none. `may_lead` must already say
/// no for `broker`; `unclean` says, per topic, whether unclean election is allowed.
pub fn move_away_from(
    image: &MetadataImage,
    broker: i32,
    may_lead: &dyn Fn(i32) -> bool,
    unclean: &dyn Fn(&TopicId) -> bool,
) -> Vec<MetadataRecord> {
    partitions_with(image, broker)
        .into_iter()
        .filter_map(|p| {
            let isr: Vec<i32> = if p.isr.len() > 1 {
                p.isr.iter().copied().filter(|&r| r != broker).collect()
            } else {
                p.isr.clone()
            };
            let leader = if p.leader == broker || p.leader == NO_LEADER || !isr.contains(&p.leader) {
                choose_leader(&p.replicas, &isr, may_lead, unclean(&p.topic_id))
            } else {
                p.leader
            };
            change(p, isr, leader).map(MetadataRecord::Partition)
        })
        .collect()
}

/// Elects a leader for partitions without one that `broker` (now able to lead again) can
/// lead: its return brings back partitions whose only in-sync replica it was.
pub fn lead_again(image: &MetadataImage, broker: i32, may_lead: &dyn Fn(i32) -> bool) -> Vec<MetadataRecord> {
    partitions_with(image, broker)
        .into_iter()
        .filter(|p| p.leader == NO_LEADER)
        .filter_map(|p| {
            let leader = choose_leader(&p.replicas, &p.isr, may_lead, false);
            change(p, p.isr.clone(), leader).map(MetadataRecord::Partition)
        })
        .collect()
}

/// An ISR change a partition leader asks for (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterIsr {
    pub topic_id: TopicId,
    pub partition: i32,
    /// The broker asking: it must be the partition's leader…
    pub leader: i32,
    /// …in this leader epoch…
    pub leader_epoch: i32,
    /// …and have seen this partition epoch.
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// Validates an ISR change and returns the partition record it makes (plus the completion of
/// a reassignment whose new replicas are now all in sync). `may_join` says whether a broker
/// may be in an ISR (registered and unfenced).
pub fn alter_isr(
    image: &MetadataImage,
    req: &AlterIsr,
    may_join: &dyn Fn(i32) -> bool,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let topic = image
        .topic_by_id(&req.topic_id)
        .ok_or(MetadataError::UnknownPartition)?;
    let p = topic
        .partitions
        .get(&req.partition)
        .ok_or(MetadataError::UnknownPartition)?;
    if p.leader != req.leader || p.leader_epoch != req.leader_epoch {
        return Err(MetadataError::FencedLeaderEpoch);
    }
    if p.partition_epoch != req.partition_epoch {
        return Err(MetadataError::InvalidUpdateVersion);
    }
    if !req.new_isr.contains(&req.leader) {
        return Err(MetadataError::InvalidRequest(
            "the proposed ISR must contain the leader".into(),
        ));
    }
    let joining_ok = req
        .new_isr
        .iter()
        .all(|&r| p.replicas.contains(&r) && (p.isr.contains(&r) || may_join(r)));
    if !joining_ok {
        return Err(MetadataError::IneligibleReplica);
    }
    let mut isr = req.new_isr.clone();
    isr.sort_by_key(|r| p.replicas.iter().position(|x| x == r));
    isr.dedup();
    let mut next = match change(p, isr, p.leader) {
        Some(r) => r,
        None => return Ok(vec![]),
    };
    complete_reassignment(&mut next, may_join);
    Ok(vec![MetadataRecord::Partition(next)])
}

/// Finishes a reassignment in `next` once every adding replica is in sync: the replicas
/// become the target, removed replicas leave the ISR, and a removed leader hands over.
fn complete_reassignment(next: &mut PartitionRecord, may_lead: &dyn Fn(i32) -> bool) {
    if next.adding_replicas.is_empty() && next.removing_replicas.is_empty() {
        return;
    }
    if !next.adding_replicas.iter().all(|r| next.isr.contains(r)) {
        return;
    }
    let removing = std::mem::take(&mut next.removing_replicas);
    next.adding_replicas.clear();
    next.replicas.retain(|r| !removing.contains(r));
    next.isr.retain(|r| !removing.contains(r));
    if removing.contains(&next.leader) || !next.isr.contains(&next.leader) {
        let leader = choose_leader(&next.replicas, &next.isr, may_lead, false);
        if leader != next.leader {
            next.leader = leader;
            next.leader_epoch += 1;
        }
    }
}

/// ElectLeaders' kind of election (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the first replica, if it is in sync and may lead.
    Preferred,
    /// Elect any live replica for a partition without a leader (may lose records).
    Unclean,
}

/// ElectLeaders for one partition.
pub fn elect(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    kind: ElectionType,
    may_lead: &dyn Fn(i32) -> bool,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let t = image.topic(topic).ok_or(MetadataError::UnknownPartition)?;
    let p = t.partitions.get(&partition).ok_or(MetadataError::UnknownPartition)?;
    match kind {
        ElectionType::Preferred => {
            let preferred = *p.replicas.first().ok_or(MetadataError::PreferredLeaderNotAvailable)?;
            if p.leader == preferred {
                return Err(MetadataError::ElectionNotNeeded);
            }
            if !p.isr.contains(&preferred) || !may_lead(preferred) {
                return Err(MetadataError::PreferredLeaderNotAvailable);
            }
            Ok(change(p, p.isr.clone(), preferred)
                .map(MetadataRecord::Partition)
                .into_iter()
                .collect())
        }
        ElectionType::Unclean => {
            if p.leader != NO_LEADER && may_lead(p.leader) {
                return Err(MetadataError::ElectionNotNeeded);
            }
            let leader = choose_leader(&p.replicas, &p.isr, may_lead, true);
            if leader == NO_LEADER {
                return Err(MetadataError::EligibleLeadersNotAvailable);
            }
            // An unclean leader's log is the truth from now on: the ISR is the leader alone.
            let isr = if p.isr.contains(&leader) {
                p.isr.clone()
            } else {
                vec![leader]
            };
            Ok(change(p, isr, leader)
                .map(MetadataRecord::Partition)
                .into_iter()
                .collect())
        }
    }
}

/// AlterPartitionReassignments for one partition: `target` replicas, or `None` to cancel a
/// reassignment in progress.
pub fn reassign(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    may_lead: &dyn Fn(i32) -> bool,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let t = image
        .topic(topic)
        .ok_or_else(|| MetadataError::UnknownTopic(topic.to_string()))?;
    let p = t
        .partitions
        .get(&partition)
        .ok_or_else(|| MetadataError::UnknownTopic(format!("{topic}-{partition}")))?;
    let original: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.adding_replicas.contains(r))
        .collect();
    let mut next = p.clone();
    match target {
        None => {
            if !p.is_reassigning() {
                return Err(MetadataError::NoReassignmentInProgress);
            }
            next.replicas = original;
            next.isr.retain(|r| next.replicas.contains(r));
            next.adding_replicas.clear();
            next.removing_replicas.clear();
        }
        Some(target) => {
            let mut seen = std::collections::BTreeSet::new();
            if target.is_empty() || !target.iter().all(|r| seen.insert(*r)) {
                return Err(MetadataError::InvalidReplicaAssignment);
            }
            if !target.iter().all(|&r| image.broker(r).is_some()) {
                return Err(MetadataError::InvalidReplicaAssignment);
            }
            let adding: Vec<i32> = target.iter().copied().filter(|r| !original.contains(r)).collect();
            let removing: Vec<i32> = original.iter().copied().filter(|r| !target.contains(r)).collect();
            next.replicas = target.to_vec();
            next.replicas.extend(removing.iter().copied());
            next.adding_replicas = adding;
            next.removing_replicas = removing;
            if next.adding_replicas.is_empty() && next.removing_replicas.is_empty() && next.replicas == p.replicas {
                return Ok(vec![]);
            }
        }
    }
    next.partition_epoch += 1;
    complete_reassignment(&mut next, may_lead);
    if next.leader == NO_LEADER || !next.isr.contains(&next.leader) {
        let leader = choose_leader(&next.replicas, &next.isr, may_lead, false);
        if leader != next.leader {
            next.leader = leader;
            next.leader_epoch += 1;
        }
    }
    Ok(vec![MetadataRecord::Partition(next)])
}

/// Kafka's automatic leader rebalance (`auto.leader.rebalance.enable`): for every broker whose
/// share of partitions led by someone else, among those it is the preferred leader of, is
/// above `imbalance_percent` (`leader.imbalance.per.broker.percentage`, 10), the partitions it
/// could lead again now (live, in the ISR), as (topic, partition).
pub fn imbalanced(image: &MetadataImage, imbalance_percent: u32, may_lead: &dyn Fn(i32) -> bool) -> Vec<(String, i32)> {
    let mut per_broker: std::collections::BTreeMap<i32, (usize, Vec<(String, i32)>)> = Default::default();
    for t in image.topics() {
        for (&i, p) in &t.partitions {
            let Some(&preferred) = p.replicas.first() else { continue };
            let entry = per_broker.entry(preferred).or_default();
            entry.0 += 1;
            if p.leader != preferred && p.isr.contains(&preferred) && may_lead(preferred) {
                entry.1.push((t.name.clone(), i));
            }
        }
    }
    per_broker
        .into_values()
        .filter(|(total, off)| off.len() * 100 > *total * imbalance_percent as usize)
        .flat_map(|(_, off)| off)
        .collect()
}
