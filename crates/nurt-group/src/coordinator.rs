//! The group coordinator: every group this node coordinates, and their committed offsets.
//! Each method returns the answers that became ready and the records to persist; the broker
//! appends the records to the offsets log before it sends the answers.

use std::collections::{BTreeMap, HashMap};

use crate::classic::{ClassicGroup, ClassicState, JoinRequest, SyncRequest};
use crate::consumer::{ConsumerGroup, HeartbeatRequest, HeartbeatResponse};
use crate::offsets::OffsetStore;
use crate::record::consumer::ConsumerRecord;
use crate::record::{GroupRecord, OffsetValue};
use crate::{Completion, GroupConfig, GroupError, Token, TopicId};

/// A group of either protocol.
#[derive(Debug, Clone)]
pub enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

impl Group {
    fn has_members(&self) -> bool {
        match self {
            Group::Classic(g) => !g.is_empty(),
            Group::Consumer(g) => !g.is_empty(),
        }
    }

    /// (protocol type, state, group type) as ListGroups reports them.
    pub fn summary(&self) -> (String, String, &'static str) {
        match self {
            Group::Classic(g) => (
                g.protocol_type().unwrap_or_default().to_string(),
                g.state().name().to_string(),
                "classic",
            ),
            Group::Consumer(g) => (
                "consumer".to_string(),
                kip848_state_for_list(g.state_name()).to_string(),
                "consumer",
            ),
        }
    }
}

/// ListGroups shows KIP-848 states capitalized like Kafka does (e.g. "Stable").
fn kip848_state_for_list(state: &str) -> &'static str {
    match state {
        "empty" => "Empty",
        "assigning" => "Assigning",
        "reconciling" => "Reconciling",
        _ => "Stable",
    }
}

fn consumer_records(group_id: &str, records: Vec<ConsumerRecord>) -> Vec<GroupRecord> {
    records
        .into_iter()
        .map(|record| GroupRecord::Consumer {
            group: group_id.to_string(),
            record,
        })
        .collect()
}

/// Answers and records produced by one call.
#[derive(Debug, Default)]
pub struct Output {
    pub completions: Vec<(Token, Completion)>,
    pub records: Vec<GroupRecord>,
}

/// The state of some groups before a call, to put back if the call's records cannot be
/// persisted: a group's in-memory state must never run ahead of its log.
#[derive(Debug, Default)]
pub struct Undo(Vec<(String, Option<Group>)>);

/// One offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Who commits offsets (OffsetCommit, TxnOffsetCommit): a member id, static instance id and
/// generation (member epoch), or none of them (empty id, no instance, -1) outside group
/// management.
#[derive(Debug, Clone, Copy)]
pub struct Committer<'a> {
    pub member_id: &'a str,
    pub instance: Option<&'a str>,
    pub generation: i32,
}

impl<'a> Committer<'a> {
    pub fn new(member_id: &'a str, instance: Option<&'a str>, generation: i32) -> Self {
        Self {
            member_id,
            instance,
            generation,
        }
    }
}

/// All groups and their offsets.
#[derive(Debug, Default)]
pub struct GroupCoordinator {
    pub cfg: GroupConfig,
    groups: HashMap<String, Group>,
    offsets: OffsetStore,
}

impl GroupCoordinator {
    pub fn new(cfg: GroupConfig) -> Self {
        Self {
            cfg,
            groups: HashMap::new(),
            offsets: OffsetStore::default(),
        }
    }

    /// Remembers the current state of `group_id` (present or absent).
    pub fn undo_point(&self, group_id: &str) -> Undo {
        Undo(vec![(group_id.to_string(), self.groups.get(group_id).cloned())])
    }

    /// Puts back what `undo` remembered.
    pub fn undo(&mut self, undo: Undo) {
        for (id, group) in undo.0 {
            match group {
                Some(g) => self.groups.insert(id, g),
                None => self.groups.remove(&id),
            };
        }
    }

    /// Replays a record of the offsets log at start-up.
    pub fn replay(&mut self, record: &GroupRecord, now_ms: i64) {
        self.replay_from(record, None, now_ms);
    }

    /// Replays a record of the offsets log at start-up; `producer_id` is the producer of the
    /// transactional batch the record came from, if it did (its offset commits stay pending
    /// until [`GroupCoordinator::complete_transaction`] replays the batch's marker). Other
    /// records apply as usual.
    pub fn replay_from(&mut self, record: &GroupRecord, producer_id: Option<i64>, now_ms: i64) {
        match record {
            GroupRecord::Offset { .. } => self.offsets.apply_from(record, producer_id),
            GroupRecord::Group { group, value: Some(v) } => {
                self.groups.insert(
                    group.clone(),
                    Group::Classic(ClassicGroup::load(group.clone(), v, now_ms)),
                );
            }
            GroupRecord::Group { group, value: None } => {
                self.groups.remove(group);
            }
            GroupRecord::Consumer {
                group,
                record: ConsumerRecord::GroupEpoch(None),
            } => {
                if matches!(self.groups.get(group), Some(Group::Consumer(_))) {
                    self.groups.remove(group);
                }
            }
            GroupRecord::Consumer { group, record } => {
                // A consumer record after a classic group's: the group changed protocol.
                if !matches!(self.groups.get(group), Some(Group::Consumer(_))) {
                    self.groups
                        .insert(group.clone(), Group::Consumer(ConsumerGroup::new(group.clone())));
                }
                if let Some(Group::Consumer(g)) = self.groups.get_mut(group) {
                    g.replay(record, now_ms);
                }
            }
        }
    }

    /// Applies persisted offset records (the same path as replay).
    pub fn apply(&mut self, records: &[GroupRecord]) {
        self.apply_from(records, None);
    }

    /// Applies persisted offset records written in one batch; `producer_id` is the
    /// producer when that batch was transactional (TxnOffsetCommit): the commits stay
    /// pending until the producer's transaction marker is applied.
    pub fn apply_from(&mut self, records: &[GroupRecord], producer_id: Option<i64>) {
        for r in records {
            self.offsets.apply_from(r, producer_id);
        }
    }

    /// Applies a transaction marker for `producer_id` written to this partition (live, or
    /// replayed in log order): on commit its pending offsets become committed (unless a
    /// later non-transactional commit of the partition was applied meanwhile), on abort
    /// they are dropped. A marker without pending offsets is a no-op.
    pub fn complete_transaction(&mut self, producer_id: i64, commit: bool) {
        self.offsets.complete_transaction(producer_id, commit);
    }

    /// A group, if known.
    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// Groups known by membership or by committed offsets.
    pub fn list(&self) -> Vec<(String, String, String, &'static str)> {
        let mut out: BTreeMap<String, (String, String, &'static str)> =
            self.groups.iter().map(|(id, g)| (id.clone(), g.summary())).collect();
        for id in self.offsets.all_groups() {
            out.entry(id.clone())
                .or_insert_with(|| (String::new(), "Empty".to_string(), "classic"));
        }
        out.into_iter().map(|(id, (pt, st, ty))| (id, pt, st, ty)).collect()
    }

    fn classic_mut(&mut self, group_id: &str, now_ms: i64, create: bool) -> Result<&mut ClassicGroup, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if create {
            let replace = matches!(self.groups.get(group_id), Some(Group::Consumer(g)) if g.is_empty());
            if replace || !self.groups.contains_key(group_id) {
                self.groups.insert(
                    group_id.to_string(),
                    Group::Classic(ClassicGroup::new(group_id.to_string(), now_ms)),
                );
            }
        }
        match self.groups.get_mut(group_id) {
            Some(Group::Classic(g)) => Ok(g),
            Some(Group::Consumer(_)) => Err(GroupError::InconsistentGroupProtocol),
            None => Err(GroupError::UnknownMemberId),
        }
    }

    /// JoinGroup.
    pub fn join(
        &mut self,
        group_id: &str,
        token: Token,
        req: JoinRequest,
        fresh_member_id: String,
        now_ms: i64,
    ) -> Output {
        let cfg = self.cfg.clone();
        match self.classic_mut(group_id, now_ms, true) {
            Ok(g) => {
                let (completions, records) = g.join(token, req, fresh_member_id, &cfg, now_ms);
                Output { completions, records }
            }
            Err(e) => Output {
                completions: vec![(
                    token,
                    Completion::Join(crate::classic::JoinResponse {
                        error: Some(e),
                        generation_id: -1,
                        member_id: req.member_id,
                        ..Default::default()
                    }),
                )],
                records: vec![],
            },
        }
    }

    /// SyncGroup.
    pub fn sync(&mut self, group_id: &str, token: Token, req: SyncRequest, now_ms: i64) -> Output {
        match self.classic_mut(group_id, now_ms, false) {
            Ok(g) => {
                let (completions, records) = g.sync(token, req, now_ms);
                Output { completions, records }
            }
            Err(e) => Output {
                completions: vec![(
                    token,
                    Completion::Sync(crate::classic::SyncResponse {
                        error: Some(e),
                        ..Default::default()
                    }),
                )],
                records: vec![],
            },
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        self.classic_mut(group_id, now_ms, false)?
            .heartbeat(member_id, instance, generation, now_ms)
    }

    /// LeaveGroup for several members; one result per member.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> (Vec<Result<(), GroupError>>, Output) {
        let cfg = self.cfg.clone();
        let mut out = Output::default();
        let g = match self.classic_mut(group_id, now_ms, false) {
            Ok(g) => g,
            Err(e) => return (members.iter().map(|_| Err(e)).collect(), out),
        };
        let results = members
            .iter()
            .map(|(id, instance)| {
                g.leave(id, instance.as_deref(), &cfg, now_ms).map(|(c, r)| {
                    out.completions.extend(c);
                    out.records.extend(r);
                })
            })
            .collect();
        (results, out)
    }

    /// ConsumerGroupHeartbeat (KIP-848): the answer, and the records of what it changed
    /// (to persist before the answer goes out).
    pub fn consumer_heartbeat(
        &mut self,
        group_id: &str,
        req: HeartbeatRequest,
        topics: &BTreeMap<String, (TopicId, i32)>,
        fresh_member_id: String,
        now_ms: i64,
    ) -> (HeartbeatResponse, Vec<GroupRecord>) {
        if group_id.is_empty() {
            let answer = HeartbeatResponse {
                error: Some(GroupError::InvalidGroupId),
                ..Default::default()
            };
            return (answer, Vec::new());
        }
        let replace = match self.groups.get(group_id) {
            None => true,
            Some(Group::Classic(g)) => g.is_empty(),
            Some(Group::Consumer(_)) => false,
        };
        if replace {
            self.groups.insert(
                group_id.to_string(),
                Group::Consumer(ConsumerGroup::new(group_id.to_string())),
            );
        }
        match self.groups.get_mut(group_id) {
            Some(Group::Consumer(g)) => {
                let answer = g.heartbeat(req, topics, fresh_member_id, &self.cfg, now_ms);
                (answer, consumer_records(group_id, g.take_records()))
            }
            _ => {
                let answer = HeartbeatResponse {
                    error: Some(GroupError::GroupTypeMismatch),
                    member_id: req.member_id,
                    member_epoch: req.member_epoch,
                    ..Default::default()
                };
                (answer, Vec::new())
            }
        }
    }

    /// OffsetCommit: validates membership (a generation of -1 with no member id commits for
    /// a group without members, as admin tools do) and returns the records to persist. Per
    /// partition, metadata over `offset.metadata.max.bytes` is refused.
    pub fn commit_offsets(
        &mut self,
        group_id: &str,
        committer: Committer<'_>,
        commits: Vec<OffsetCommit>,
        now_ms: i64,
    ) -> Result<(Vec<GroupRecord>, Vec<Option<GroupError>>), GroupError> {
        self.checked_commit(group_id, commits, now_ms, |c| {
            c.validate_commit(group_id, committer, now_ms)
        })
    }

    /// OffsetCommit's membership check (creating a simple group for an unmanaged commit).
    fn validate_commit(&mut self, group_id: &str, committer: Committer<'_>, now_ms: i64) -> Result<(), GroupError> {
        let Committer {
            member_id,
            instance,
            generation,
        } = committer;
        // A generation (member epoch) of -1 commits outside group management: the admin client,
        // or a consumer that assigns its partitions itself (which may still carry a member id,
        // as KIP-848 clients do). Kafka accepts it while the group has no members.
        let unmanaged = generation < 0;
        match self.groups.get(group_id) {
            Some(g) if unmanaged && !g.has_members() => {}
            Some(Group::Classic(g)) if generation >= 0 || !member_id.is_empty() || instance.is_some() => {
                g.validate_member(member_id, instance, generation)?;
                if g.state() == ClassicState::CompletingRebalance {
                    return Err(GroupError::RebalanceInProgress);
                }
            }
            Some(Group::Consumer(g)) if generation >= 0 || !member_id.is_empty() => {
                g.validate_commit(member_id, generation)?
            }
            Some(_) => return Err(GroupError::UnknownMemberId),
            None if !unmanaged => return Err(GroupError::IllegalGeneration),
            None => {
                self.groups.insert(
                    group_id.to_string(),
                    Group::Classic(ClassicGroup::new(group_id.to_string(), now_ms)),
                );
            }
        }
        Ok(())
    }

    /// TxnOffsetCommit (KIP-98): validates like Kafka's transactional offset commit and
    /// returns the offset records to persist as ONE transactional batch of the producer
    /// (then applied with [`GroupCoordinator::apply_from`] and that producer id), and an
    /// error per commit (metadata over `offset.metadata.max.bytes`). Unlike OffsetCommit, a
    /// request without member id and generation (v0-v2) is accepted in any state of a
    /// classic group, and a classic group completing a rebalance is not refused; a stale
    /// KIP-848 member epoch is ILLEGAL_GENERATION.
    pub fn txn_commit_offsets(
        &mut self,
        group_id: &str,
        committer: Committer<'_>,
        commits: Vec<OffsetCommit>,
        now_ms: i64,
    ) -> Result<(Vec<GroupRecord>, Vec<Option<GroupError>>), GroupError> {
        self.checked_commit(group_id, commits, now_ms, |c| {
            c.validate_txn_commit(group_id, committer, now_ms)
        })
    }

    /// TxnOffsetCommit's membership check (creating a simple group for an unmanaged commit).
    fn validate_txn_commit(&mut self, group_id: &str, committer: Committer<'_>, now_ms: i64) -> Result<(), GroupError> {
        let Committer {
            member_id,
            instance,
            generation,
        } = committer;
        match self.groups.get(group_id) {
            None if generation < 0 => {
                // A "simple" group: offsets committed without group management.
                self.groups.insert(
                    group_id.to_string(),
                    Group::Classic(ClassicGroup::new(group_id.to_string(), now_ms)),
                );
            }
            None => return Err(GroupError::IllegalGeneration),
            Some(Group::Classic(g)) => {
                let unmanaged_empty = generation < 0 && g.state() == ClassicState::Empty;
                let identified = generation >= 0 || !member_id.is_empty() || instance.is_some();
                if !unmanaged_empty && identified {
                    g.validate_member(member_id, instance, generation)?;
                }
            }
            Some(Group::Consumer(g)) => {
                if !(generation < 0 && g.is_empty()) {
                    g.validate_commit(member_id, generation).map_err(|e| match e {
                        GroupError::StaleMemberEpoch => GroupError::IllegalGeneration,
                        e => e,
                    })?;
                }
            }
        }
        Ok(())
    }

    /// An offset commit of `group_id` (refused without a group id) that `validate` accepts:
    /// the offset records for `commits`, and per commit the error refusing it.
    fn checked_commit(
        &mut self,
        group_id: &str,
        commits: Vec<OffsetCommit>,
        now_ms: i64,
        validate: impl FnOnce(&mut Self) -> Result<(), GroupError>,
    ) -> Result<(Vec<GroupRecord>, Vec<Option<GroupError>>), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        validate(self)?;
        Ok(self.offset_records(group_id, commits, now_ms))
    }

    /// Offset records for `commits`, and per commit the error refusing it.
    fn offset_records(
        &self,
        group_id: &str,
        commits: Vec<OffsetCommit>,
        now_ms: i64,
    ) -> (Vec<GroupRecord>, Vec<Option<GroupError>>) {
        let max = self.cfg.offset_metadata_max_bytes;
        let mut records = Vec::new();
        let errors = commits
            .into_iter()
            .map(|c| {
                let metadata = c.metadata.unwrap_or_default();
                if metadata.len() > max {
                    return Some(GroupError::OffsetMetadataTooLarge);
                }
                records.push(GroupRecord::Offset {
                    group: group_id.to_string(),
                    topic: c.topic,
                    partition: c.partition,
                    value: Some(OffsetValue {
                        offset: c.offset,
                        leader_epoch: c.leader_epoch,
                        metadata,
                        commit_timestamp_ms: now_ms,
                    }),
                });
                None
            })
            .collect();
        (records, errors)
    }

    /// True when an open transaction has a pending offset for the partition (OffsetFetch
    /// with `require_stable` answers UNSTABLE_OFFSET_COMMIT for it).
    pub fn has_pending_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.offsets.has_pending(group_id, topic, partition)
    }

    /// The pending offset a transaction of `producer_id` committed for one partition.
    pub fn pending_offset(
        &self,
        producer_id: i64,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<&OffsetValue> {
        self.offsets.pending(producer_id, group_id, topic, partition)
    }

    /// The committed offset of one partition.
    pub fn committed(&self, group_id: &str, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.offsets.get(group_id, topic, partition)
    }

    /// Every committed offset of a group.
    pub fn committed_all(&self, group_id: &str) -> Vec<((String, i32), OffsetValue)> {
        self.offsets
            .of_group(group_id)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// DeleteGroups: only groups without members; returns the tombstones.
    pub fn delete_group(&mut self, group_id: &str) -> Result<Vec<GroupRecord>, GroupError> {
        let known = self.groups.contains_key(group_id) || self.offsets.knows(group_id);
        if !known {
            return Err(GroupError::GroupIdNotFound);
        }
        if self.groups.get(group_id).is_some_and(Group::has_members) {
            return Err(GroupError::NonEmptyGroup);
        }
        let mut records = match self.groups.remove(group_id) {
            Some(Group::Consumer(g)) => consumer_records(group_id, g.tombstones()),
            _ => Vec::new(),
        };
        records.extend(self.offsets.tombstones(group_id, None));
        records.push(GroupRecord::Group {
            group: group_id.to_string(),
            value: None,
        });
        Ok(records)
    }

    /// Tombstones for every group's offsets of topics that `gone` says were deleted (Kafka
    /// deletes them with the topic, so a re-created topic starts without any).
    pub fn forget_topics(&self, gone: impl Fn(&str) -> bool) -> Vec<GroupRecord> {
        self.offsets.tombstones_for_topics(gone)
    }

    /// OffsetDelete for some partitions of one topic of a group.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Vec<GroupRecord>, GroupError> {
        let subscribed = match self.groups.get(group_id) {
            Some(Group::Classic(g)) => g.subscribed_topics(),
            Some(Group::Consumer(g)) => g.subscribed_topics(),
            None if self.offsets.knows(group_id) => vec![],
            None => return Err(GroupError::GroupIdNotFound),
        };
        if subscribed.iter().any(|t| t == topic) {
            return Err(GroupError::GroupSubscribedToTopic);
        }
        Ok(self.offsets.tombstones_of(group_id, topic, partitions))
    }

    /// Session and rebalance timeouts: one output per group that produced answers or
    /// records, each with the undo point of that group.
    pub fn tick(&mut self, now_ms: i64) -> Vec<(Undo, Output)> {
        let cfg = self.cfg.clone();
        let mut outputs = Vec::new();
        for (id, g) in self.groups.iter_mut() {
            match g {
                Group::Classic(classic) => {
                    // Most groups have nothing due; only those that may change are copied.
                    let before = classic.tick_may_change(now_ms).then(|| Group::Classic(classic.clone()));
                    let (completions, records) = classic.tick(&cfg, now_ms);
                    if !completions.is_empty() || !records.is_empty() {
                        debug_assert!(before.is_some(), "tick_may_change missed a change of {id}");
                        let undo = Undo(before.map(|g| (id.clone(), Some(g))).into_iter().collect());
                        outputs.push((undo, Output { completions, records }));
                    }
                }
                Group::Consumer(g) => {
                    if !g.has_expired_members(&cfg, now_ms) {
                        continue;
                    }
                    let undo = Undo(vec![(id.clone(), Some(Group::Consumer(g.clone())))]);
                    g.tick(&cfg, now_ms);
                    let records = consumer_records(id, g.take_records());
                    outputs.push((
                        undo,
                        Output {
                            completions: Vec::new(),
                            records,
                        },
                    ));
                }
            }
        }
        outputs
    }

    /// Tombstones for offsets of groups without members older than `offsets.retention.minutes`.
    pub fn expire_offsets(&self, now_ms: i64) -> Vec<GroupRecord> {
        let cutoff = now_ms - self.cfg.offsets_retention_ms;
        self.offsets
            .groups()
            .filter(|g| !self.groups.get(*g).is_some_and(Group::has_members))
            .flat_map(|g| self.offsets.expired(g, cutoff))
            .collect()
    }
}
