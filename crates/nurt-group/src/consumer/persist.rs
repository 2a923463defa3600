//! A KIP-848 group's state as records, the way Kafka's coordinator keeps it: after each call
//! the group writes what changed since its last records (member metadata, group epoch,
//! target assignment, current assignments; tombstones for members that left), and a
//! coordinator that loads the records — after a restart or a move of the group's
//! `__consumer_offsets` partition — carries on with the same members, epochs and
//! assignments, so members continue without rejoining.

use std::collections::{BTreeMap, BTreeSet};

use super::{compile_subscription, group_by_topic, ConsumerGroup, ConsumerMember};
use crate::assignor::TopicPartition;
use crate::record::consumer::{member_state, ConsumerRecord, CurrentAssignment, GroupEpoch, MemberMetadata};
use crate::TopicId;

/// A member's current assignment as last written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Current {
    epoch: i32,
    previous_epoch: i32,
    state: i8,
    assigned: BTreeSet<TopicPartition>,
    pending_revocation: BTreeSet<TopicPartition>,
}

/// What the group's records say, to diff the live state against.
#[derive(Debug, Clone, Default)]
pub(super) struct Persisted {
    group: Option<GroupEpoch>,
    target_epoch: Option<i32>,
    members: BTreeMap<String, MemberMetadata>,
    targets: BTreeMap<String, BTreeSet<TopicPartition>>,
    current: BTreeMap<String, Current>,
}

/// A stable 64-bit hash (FNV-1a) of the subscribed topics' names, ids and partition counts;
/// 0 for none. Only this broker reads it back, so it need not be Kafka's KIP-1101 hash.
pub(super) fn topics_hash(topics: &BTreeMap<String, (TopicId, i32)>) -> u64 {
    if topics.is_empty() {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, (id, partitions)) in topics {
        eat(name.as_bytes());
        eat(&[0]);
        eat(id);
        eat(&partitions.to_be_bytes());
    }
    h
}

fn metadata_of(m: &ConsumerMember) -> MemberMetadata {
    MemberMetadata {
        instance_id: m.instance_id.clone(),
        rack_id: m.rack_id.clone(),
        client_id: m.client_id.clone(),
        client_host: m.client_host.clone(),
        subscribed_topic_names: m.subscribed.clone(),
        subscribed_topic_regex: m.regex.as_ref().map(|r| regex_source(r).to_string()),
        rebalance_timeout_ms: m.rebalance_timeout_ms,
        server_assignor: m.assignor.clone(),
    }
}

/// The pattern a member sent, without the anchoring `compile_subscription` added.
fn regex_source(re: &regex::Regex) -> &str {
    let s = re.as_str();
    s.strip_prefix("^(?:").and_then(|s| s.strip_suffix(")$")).unwrap_or(s)
}

/// Whether `p` still describes `m`, compared field by field so a heartbeat that changed
/// nothing allocates nothing.
fn describes(p: &MemberMetadata, m: &ConsumerMember) -> bool {
    p.instance_id == m.instance_id
        && p.rack_id == m.rack_id
        && p.client_id == m.client_id
        && p.client_host == m.client_host
        && p.subscribed_topic_names == m.subscribed
        && p.subscribed_topic_regex.as_deref() == m.regex.as_ref().map(regex_source)
        && p.rebalance_timeout_ms == m.rebalance_timeout_ms
        && p.server_assignor == m.assignor
}

fn flatten(parts: &[(TopicId, Vec<i32>)]) -> BTreeSet<TopicPartition> {
    parts
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        .collect()
}

/// A member's state as Kafka's `MemberState` names it.
fn member_state(targets: &BTreeMap<String, BTreeSet<TopicPartition>>, m: &ConsumerMember) -> i8 {
    if !m.pending_revocation.is_empty() {
        member_state::UNREVOKED_PARTITIONS
    } else if targets.get(&m.member_id).is_some_and(|t| *t != m.assigned) {
        member_state::UNRELEASED_PARTITIONS
    } else {
        member_state::STABLE
    }
}

impl Current {
    fn describes(&self, m: &ConsumerMember, state: i8) -> bool {
        self.epoch == m.epoch
            && self.previous_epoch == m.previous_epoch
            && self.state == state
            && self.assigned == m.assigned
            && self.pending_revocation == m.pending_revocation
    }
}

impl ConsumerGroup {
    /// The records that bring the group's records up to its live state: tombstones for
    /// members that left, then member metadata, group epoch, targets, target epoch and
    /// current assignments that changed. Empty when nothing changed.
    pub fn take_records(&mut self) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        let gone: Vec<String> = self
            .persisted
            .members
            .keys()
            .filter(|id| !self.members.contains_key(*id))
            .cloned()
            .collect();
        for member_id in gone {
            if self.persisted.current.remove(&member_id).is_some() {
                out.push(ConsumerRecord::Current {
                    member_id: member_id.clone(),
                    value: None,
                });
            }
            if self.persisted.targets.remove(&member_id).is_some() {
                out.push(ConsumerRecord::Target {
                    member_id: member_id.clone(),
                    value: None,
                });
            }
            self.persisted.members.remove(&member_id);
            out.push(ConsumerRecord::Member { member_id, value: None });
        }
        for m in self.members.values() {
            if self
                .persisted
                .members
                .get(&m.member_id)
                .is_none_or(|p| !describes(p, m))
            {
                let value = metadata_of(m);
                self.persisted.members.insert(m.member_id.clone(), value.clone());
                out.push(ConsumerRecord::Member {
                    member_id: m.member_id.clone(),
                    value: Some(value),
                });
            }
        }
        let group = GroupEpoch {
            epoch: self.epoch,
            metadata_hash: self.topics_hash,
        };
        if self.persisted.group != Some(group) {
            self.persisted.group = Some(group);
            out.push(ConsumerRecord::GroupEpoch(Some(group)));
        }
        self.targets_to_records(&mut out);
        for m in self.members.values() {
            let state = member_state(&self.target, m);
            if self
                .persisted
                .current
                .get(&m.member_id)
                .is_some_and(|c| c.describes(m, state))
            {
                continue;
            }
            out.push(ConsumerRecord::Current {
                member_id: m.member_id.clone(),
                value: Some(CurrentAssignment {
                    member_epoch: m.epoch,
                    previous_member_epoch: m.previous_epoch,
                    state,
                    assigned: group_by_topic(&m.assigned),
                    pending_revocation: group_by_topic(&m.pending_revocation),
                }),
            });
            let current = Current {
                epoch: m.epoch,
                previous_epoch: m.previous_epoch,
                state,
                assigned: m.assigned.clone(),
                pending_revocation: m.pending_revocation.clone(),
            };
            self.persisted.current.insert(m.member_id.clone(), current);
        }
        out
    }

    fn targets_to_records(&mut self, out: &mut Vec<ConsumerRecord>) {
        let stale: Vec<String> = self
            .persisted
            .targets
            .keys()
            .filter(|id| !self.target.contains_key(*id))
            .cloned()
            .collect();
        for member_id in stale {
            self.persisted.targets.remove(&member_id);
            out.push(ConsumerRecord::Target { member_id, value: None });
        }
        for (member_id, target) in &self.target {
            if self.persisted.targets.get(member_id) != Some(target) {
                self.persisted.targets.insert(member_id.clone(), target.clone());
                out.push(ConsumerRecord::Target {
                    member_id: member_id.clone(),
                    value: Some(group_by_topic(target)),
                });
            }
        }
        if self.persisted.target_epoch != Some(self.assignment_epoch) {
            self.persisted.target_epoch = Some(self.assignment_epoch);
            out.push(ConsumerRecord::TargetEpoch(Some(self.assignment_epoch)));
        }
    }

    /// Records that delete the group (it has no members left).
    pub fn tombstones(&self) -> Vec<ConsumerRecord> {
        debug_assert!(self.members.is_empty(), "deleting a group with members");
        vec![ConsumerRecord::TargetEpoch(None), ConsumerRecord::GroupEpoch(None)]
    }

    fn member_or_blank(&mut self, member_id: &str, now_ms: i64) -> &mut ConsumerMember {
        self.members
            .entry(member_id.to_string())
            .or_insert_with(|| ConsumerMember::new(member_id, now_ms))
    }

    /// Applies one of the group's records while loading. Every member gets a full session
    /// from `now_ms`, as Kafka's coordinator gives members when it loads a group. A group
    /// tombstone is the coordinator's to apply (it removes the group).
    pub fn replay(&mut self, record: &ConsumerRecord, now_ms: i64) {
        match record {
            ConsumerRecord::GroupEpoch(g) => {
                let g = g.unwrap_or_default();
                self.epoch = g.epoch;
                self.topics_hash = g.metadata_hash;
                self.persisted.group = Some(g);
            }
            ConsumerRecord::Member { member_id, value: None } => {
                self.members.remove(member_id);
                self.persisted.members.remove(member_id);
            }
            ConsumerRecord::Member {
                member_id,
                value: Some(v),
            } => {
                // Stored patterns compiled when they were accepted; one that no longer
                // compiles subscribes to nothing rather than stopping the load.
                let regex = v
                    .subscribed_topic_regex
                    .as_deref()
                    .and_then(|p| compile_subscription(p).ok().flatten());
                self.regexes_loaded |= regex.is_some();
                self.names_matched.clear();
                let m = self.member_or_blank(member_id, now_ms);
                m.instance_id = v.instance_id.clone();
                m.rack_id = v.rack_id.clone();
                m.client_id = v.client_id.clone();
                m.client_host = v.client_host.clone();
                m.subscribed = v.subscribed_topic_names.clone();
                m.regex = regex;
                m.regex_matched.clear();
                m.rebalance_timeout_ms = v.rebalance_timeout_ms;
                m.assignor = v.server_assignor.clone();
                m.last_heartbeat_ms = now_ms;
                self.persisted.members.insert(member_id.clone(), v.clone());
            }
            ConsumerRecord::TargetEpoch(epoch) => {
                self.assignment_epoch = epoch.unwrap_or(0);
                self.persisted.target_epoch = *epoch;
            }
            ConsumerRecord::Target { member_id, value } => match value {
                Some(parts) => {
                    let target = flatten(parts);
                    self.target.insert(member_id.clone(), target.clone());
                    self.persisted.targets.insert(member_id.clone(), target);
                }
                None => {
                    self.target.remove(member_id);
                    self.persisted.targets.remove(member_id);
                }
            },
            ConsumerRecord::Current { member_id, value: None } => {
                self.persisted.current.remove(member_id);
            }
            ConsumerRecord::Current {
                member_id,
                value: Some(c),
            } => {
                let current = Current {
                    epoch: c.member_epoch,
                    previous_epoch: c.previous_member_epoch,
                    state: c.state,
                    assigned: flatten(&c.assigned),
                    pending_revocation: flatten(&c.pending_revocation),
                };
                let m = self.member_or_blank(member_id, now_ms);
                m.epoch = current.epoch;
                m.previous_epoch = current.previous_epoch;
                m.assigned = current.assigned.clone();
                m.pending_revocation = current.pending_revocation.clone();
                self.persisted.current.insert(member_id.clone(), current);
            }
        }
    }
}
