//! The KIP-848 consumer group protocol: members heartbeat with their subscriptions and owned
//! partitions; the coordinator computes a target assignment with a server-side assignor and
//! moves each member towards it, revoking before assigning so no partition ever has two
//! owners. Member epochs fence stale members.

mod persist;

use std::collections::{BTreeMap, BTreeSet};

use crate::assignor::{self, AssignmentSpec, TopicPartition};
use crate::{GroupConfig, GroupError, TopicId};

/// Member epoch sent to leave the group.
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch sent by a static member leaving temporarily.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// ConsumerGroupHeartbeat, as the state machine needs it.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    /// A subscription by regular expression (RE2/J syntax, matching whole topic names); None:
    /// unchanged, empty: none.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Vec<(TopicId, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
}

/// The ConsumerGroupHeartbeat answer; `assignment` only when it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub error: Option<GroupError>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<Vec<(TopicId, Vec<i32>)>>,
}

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Vec<String>,
    /// The subscription's regular expression, anchored (`^(?:re)$`), and the topics it
    /// matched when the topic names were last seen.
    pub regex: Option<regex::Regex>,
    pub regex_matched: Vec<String>,
    pub assignor: Option<String>,
    pub epoch: i32,
    previous_epoch: i32,
    pub assigned: BTreeSet<TopicPartition>,
    pub pending_revocation: BTreeSet<TopicPartition>,
    last_heartbeat_ms: i64,
    last_sent: Option<BTreeSet<TopicPartition>>,
}

impl ConsumerMember {
    /// A member with nothing subscribed or assigned yet, at epoch 0, last heard at `now_ms`.
    fn new(member_id: &str, now_ms: i64) -> Self {
        Self {
            member_id: member_id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: -1,
            subscribed: Vec::new(),
            regex: None,
            regex_matched: Vec::new(),
            assignor: None,
            epoch: 0,
            previous_epoch: 0,
            assigned: BTreeSet::new(),
            pending_revocation: BTreeSet::new(),
            last_heartbeat_ms: now_ms,
            last_sent: None,
        }
    }

    /// Every topic the member subscribes to: by name, and by its regex.
    pub fn subscriptions(&self) -> impl Iterator<Item = &String> {
        self.subscribed.iter().chain(self.regex_matched.iter())
    }
}

/// One KIP-848 consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    members: BTreeMap<String, ConsumerMember>,
    target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// Subscribed topics' ids and partition counts when the target was computed, and their
    /// hash (persisted, so a new coordinator knows whether they changed meanwhile).
    topics_seen: BTreeMap<String, (TopicId, i32)>,
    topics_hash: u64,
    /// The topic names regexes were last matched against.
    names_matched: Vec<String>,
    /// Loaded from records: the first regex match restores what was matched before (a
    /// change of the topics themselves shows in `topics_hash`).
    regexes_loaded: bool,
    /// The state as last written to records ([`ConsumerGroup::take_records`]).
    persisted: persist::Persisted,
}

/// Compiles a subscription regex the way Kafka applies it: to whole topic names.
fn compile_subscription(pattern: &str) -> Result<Option<regex::Regex>, GroupError> {
    if pattern.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map(Some)
        .map_err(|_| GroupError::InvalidRegularExpression)
}

fn group_by_topic(set: &BTreeSet<TopicPartition>) -> Vec<(TopicId, Vec<i32>)> {
    let mut out: BTreeMap<TopicId, Vec<i32>> = BTreeMap::new();
    for (t, p) in set {
        out.entry(*t).or_default().push(*p);
    }
    out.into_iter().collect()
}

impl ConsumerGroup {
    pub fn new(group_id: String) -> Self {
        Self {
            group_id,
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            topics_seen: BTreeMap::new(),
            topics_hash: 0,
            names_matched: Vec::new(),
            regexes_loaded: false,
            persisted: persist::Persisted::default(),
        }
    }

    pub fn members(&self) -> impl Iterator<Item = &ConsumerMember> {
        self.members.values()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The target assignment of `member_id`.
    pub fn target_of(&self, member_id: &str) -> Vec<(TopicId, Vec<i32>)> {
        self.target.get(member_id).map(group_by_topic).unwrap_or_default()
    }

    /// KIP-848's group states: empty, assigning, reconciling, stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "empty"
        } else if self.assignment_epoch < self.epoch {
            "assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || Some(&m.assigned) != self.target.get(&m.member_id))
        {
            "reconciling"
        } else {
            "stable"
        }
    }

    /// Checks an offset commit's member id and epoch.
    pub fn validate_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), GroupError> {
        let m = self.members.get(member_id).ok_or(GroupError::UnknownMemberId)?;
        if member_epoch == m.epoch || member_epoch == m.previous_epoch {
            Ok(())
        } else if member_epoch < m.epoch {
            Err(GroupError::StaleMemberEpoch)
        } else {
            Err(GroupError::FencedMemberEpoch)
        }
    }

    /// One heartbeat. `topics` maps topic names to (id, partition count); `fresh_member_id`
    /// names a v0 member joining without an id.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        topics: &BTreeMap<String, (TopicId, i32)>,
        fresh_member_id: String,
        cfg: &GroupConfig,
        now_ms: i64,
    ) -> HeartbeatResponse {
        let answer = |error: GroupError, member_id: String, epoch: i32| HeartbeatResponse {
            error: Some(error),
            member_id,
            member_epoch: epoch,
            heartbeat_interval_ms: cfg.consumer_heartbeat_interval_ms,
            assignment: None,
        };
        if let Some(a) = &req.server_assignor {
            if !assignor::ASSIGNORS.contains(&a.as_str()) {
                return answer(GroupError::UnsupportedAssignor, req.member_id, req.member_epoch);
            }
        }
        let regex = match req.subscribed_topic_regex.as_deref().map(compile_subscription) {
            None => None,
            Some(Ok(compiled)) => Some(compiled),
            Some(Err(e)) => return answer(e, req.member_id, req.member_epoch),
        };
        let member_id = if req.member_id.is_empty() {
            fresh_member_id
        } else {
            req.member_id.clone()
        };
        // The group epoch moves at most once per heartbeat, whatever changed.
        let mut membership_changed = false;
        match req.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => {
                if self.members.remove(&member_id).is_some() {
                    self.target.remove(&member_id);
                    self.epoch += 1;
                }
                return HeartbeatResponse {
                    error: None,
                    member_id,
                    member_epoch: req.member_epoch,
                    heartbeat_interval_ms: 0,
                    assignment: None,
                };
            }
            0 => {
                if req.subscribed_topic_names.as_ref().is_none_or(Vec::is_empty)
                    && regex.as_ref().is_none_or(Option::is_none)
                    && !self.members.contains_key(&member_id)
                {
                    return answer(
                        GroupError::InvalidRequest("a joining member must subscribe to topics"),
                        member_id,
                        0,
                    );
                }
                if let Some(old) = self.members.remove(&member_id) {
                    // Rejoining with epoch 0 drops what it had.
                    self.target.remove(&old.member_id);
                }
                self.members.insert(
                    member_id.clone(),
                    ConsumerMember {
                        instance_id: req.instance_id.clone(),
                        rack_id: req.rack_id.clone(),
                        client_id: req.client_id.clone(),
                        client_host: req.client_host.clone(),
                        rebalance_timeout_ms: req.rebalance_timeout_ms,
                        ..ConsumerMember::new(&member_id, now_ms)
                    },
                );
                membership_changed = true;
            }
            epoch => {
                let Some(m) = self.members.get(&member_id) else {
                    return answer(GroupError::UnknownMemberId, member_id, epoch);
                };
                if epoch != m.epoch && epoch != m.previous_epoch {
                    return answer(GroupError::FencedMemberEpoch, member_id, epoch);
                }
            }
        }
        let member = self
            .members
            .get_mut(&member_id)
            .expect("present after the checks above");
        member.last_heartbeat_ms = now_ms;
        if let Some(names) = req.subscribed_topic_names {
            let mut names = names;
            names.sort();
            names.dedup();
            if names != member.subscribed {
                member.subscribed = names;
                membership_changed = true;
            }
        }
        if let Some(regex) = regex {
            if member.regex.as_ref().map(regex::Regex::as_str) != regex.as_ref().map(regex::Regex::as_str) {
                member.regex = regex;
                member.regex_matched.clear();
                membership_changed = true;
                // Matched afresh below.
                self.names_matched.clear();
            }
        }
        if req.server_assignor.is_some() {
            member.assignor = req.server_assignor;
        }
        membership_changed |= self.match_regexes(topics);
        self.refresh_target(topics, membership_changed);
        let owned: Option<BTreeSet<TopicPartition>> = req.owned.map(|o| {
            o.into_iter()
                .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t, p)))
                .collect()
        });
        self.reconcile(&member_id, owned.as_ref());
        let m = self.members.get_mut(&member_id).expect("still present");
        let changed = m.last_sent.as_ref() != Some(&m.assigned);
        if changed {
            m.last_sent = Some(m.assigned.clone());
        }
        HeartbeatResponse {
            error: None,
            member_id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: cfg.consumer_heartbeat_interval_ms,
            assignment: changed.then(|| group_by_topic(&m.assigned)),
        }
    }

    /// Matches the members' regexes against the topic names when those changed (a topic was
    /// created or deleted, or a regex is new), so regex subscriptions follow the topics
    /// (internal topics never match). Whether any member's subscription changed.
    fn match_regexes(&mut self, topics: &BTreeMap<String, (TopicId, i32)>) -> bool {
        if !self.members.values().any(|m| m.regex.is_some()) {
            return false;
        }
        let same_names = self.names_matched.len() == topics.len() && self.names_matched.iter().eq(topics.keys());
        if same_names {
            return false;
        }
        self.names_matched = topics.keys().cloned().collect();
        let loaded = std::mem::take(&mut self.regexes_loaded);
        let mut changed = false;
        for m in self.members.values_mut() {
            let Some(re) = &m.regex else { continue };
            let matched: Vec<String> = topics
                .keys()
                .filter(|t| !t.starts_with("__") && re.is_match(t))
                .cloned()
                .collect();
            if matched != m.regex_matched {
                m.regex_matched = matched;
                changed = true;
            }
        }
        changed && !loaded
    }

    /// Recomputes the target assignment when the group epoch moved past it or the subscribed
    /// topics' metadata changed.
    fn refresh_target(&mut self, topics: &BTreeMap<String, (TopicId, i32)>, membership_changed: bool) {
        let subscribed: BTreeSet<&String> = self.members.values().flat_map(ConsumerMember::subscriptions).collect();
        let seen: BTreeMap<String, (TopicId, i32)> = subscribed
            .iter()
            .filter_map(|n| topics.get(*n).map(|v| ((*n).clone(), *v)))
            .collect();
        let hash = persist::topics_hash(&seen);
        let topics_changed = hash != self.topics_hash;
        self.topics_seen = seen;
        self.topics_hash = hash;
        if membership_changed || topics_changed {
            self.epoch += 1;
        }
        if self.assignment_epoch == self.epoch {
            return;
        }
        let partitions: BTreeMap<TopicId, i32> = self.topics_seen.values().copied().collect();
        let members = self
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.as_str(),
                    m.subscriptions()
                        .filter_map(|n| self.topics_seen.get(n).map(|v| v.0))
                        .collect(),
                )
            })
            .collect();
        let name = self
            .members
            .values()
            .find_map(|m| m.assignor.clone())
            .unwrap_or_else(|| assignor::ASSIGNORS[0].to_string());
        let spec = AssignmentSpec {
            members,
            partitions: &partitions,
            current: &self.target,
        };
        self.target = assignor::assign(&name, &spec);
        self.assignment_epoch = self.epoch;
    }

    /// Moves a member towards its target: first revoke what others need, then take what is
    /// free. Partitions still held by another member wait for that member to let go.
    fn reconcile(&mut self, member_id: &str, owned: Option<&BTreeSet<TopicPartition>>) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others: BTreeSet<TopicPartition> = self
            .members
            .values()
            .filter(|m| m.member_id != member_id)
            .flat_map(|m| m.assigned.iter().chain(m.pending_revocation.iter()).copied())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let m = self.members.get_mut(member_id).expect("reconciling a member");
        if !m.pending_revocation.is_empty() {
            match owned {
                Some(owned) if owned.is_disjoint(&m.pending_revocation) => m.pending_revocation.clear(),
                _ => return,
            }
        }
        let revoke: BTreeSet<TopicPartition> = m.assigned.difference(&target).copied().collect();
        if !revoke.is_empty() {
            m.assigned.retain(|tp| !revoke.contains(tp));
            m.pending_revocation = revoke;
            return;
        }
        let free: Vec<TopicPartition> = target
            .difference(&m.assigned)
            .filter(|tp| !held_by_others.contains(tp))
            .copied()
            .collect();
        m.assigned.extend(free);
        if m.epoch != assignment_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = assignment_epoch;
        }
    }

    /// Whether [`ConsumerGroup::tick`] at `now_ms` would remove a member.
    pub fn has_expired_members(&self, cfg: &GroupConfig, now_ms: i64) -> bool {
        self.members
            .values()
            .any(|m| now_ms > m.last_heartbeat_ms + cfg.consumer_session_timeout_ms)
    }

    /// Removes members whose session timed out; returns whether any was removed.
    pub fn tick(&mut self, cfg: &GroupConfig, now_ms: i64) -> bool {
        let before = self.members.len();
        self.members
            .retain(|_, m| now_ms <= m.last_heartbeat_ms + cfg.consumer_session_timeout_ms);
        let removed = self.members.len() != before;
        if removed {
            let members = &self.members;
            self.target.retain(|id, _| members.contains_key(id));
            self.epoch += 1;
        }
        removed
    }

    /// Topics the members subscribe to.
    pub fn subscribed_topics(&self) -> Vec<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }
}
