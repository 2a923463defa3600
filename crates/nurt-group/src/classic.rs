//! The classic group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) as a state
//! machine: Empty → PreparingRebalance → CompletingRebalance → Stable, with Kafka's rules for
//! member ids (KIP-394), static members (KIP-345), session and rebalance timeouts.
//!
//! Join and Sync answers may be delayed until the rebalance they wait for completes: callers
//! pass a [`Token`] with each request and get `(Token, Completion)` pairs back whenever
//! answers are ready, possibly for other members' requests. Time comes in as `now_ms`.

use std::collections::{BTreeMap, HashMap};

use crate::record::{GroupMetadataValue, GroupRecord, MemberValue};
use crate::{Completion, GroupConfig, GroupError, Token};

/// JoinGroup, as the state machine needs it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Vec<u8>)>,
    /// v4+: a new member must first be given an id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in the JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Vec<u8>,
}

/// The JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinMember>,
}

/// SyncGroup, as the state machine needs it.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Vec<u8>)>,
}

/// The SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Vec<u8>,
}

/// Where a classic group is in its rebalance cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl ClassicState {
    /// Kafka's name for the state (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
        }
    }
}

/// A member of a classic group.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Vec<u8>)>,
    pub assignment: Vec<u8>,
    last_heartbeat_ms: i64,
    awaiting_join: Option<Token>,
    awaiting_sync: Option<Token>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Vec<u8> {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// One classic group.
#[derive(Debug, Clone)]
pub struct ClassicGroup {
    pub group_id: String,
    state: ClassicState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    static_members: HashMap<String, String>,
    pending_members: HashMap<String, i64>,
    rebalance_deadline_ms: i64,
    join_not_before_ms: i64,
    state_timestamp_ms: i64,
}

type Out = Vec<(Token, Completion)>;

fn join_error(error: GroupError, member_id: String) -> Completion {
    Completion::Join(JoinResponse {
        error: Some(error),
        generation_id: -1,
        member_id,
        ..Default::default()
    })
}

fn sync_error(error: GroupError) -> Completion {
    Completion::Sync(SyncResponse {
        error: Some(error),
        ..Default::default()
    })
}

impl ClassicGroup {
    /// A new, empty group.
    pub fn new(group_id: String, now_ms: i64) -> Self {
        Self {
            group_id,
            state: ClassicState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline_ms: 0,
            join_not_before_ms: 0,
            state_timestamp_ms: now_ms,
        }
    }

    /// Restores a group from its persisted metadata: stable with its members (who must keep
    /// heartbeating), or empty.
    pub fn load(group_id: String, value: &GroupMetadataValue, now_ms: i64) -> Self {
        let mut g = Self::new(group_id, now_ms);
        g.generation = value.generation;
        g.protocol_type = Some(value.protocol_type.clone()).filter(|t| !t.is_empty());
        g.protocol = value.protocol.clone();
        g.leader = value.leader.clone();
        for m in &value.members {
            if let Some(instance) = &m.group_instance_id {
                g.static_members.insert(instance.clone(), m.member_id.clone());
            }
            let protocols = g.protocol.iter().map(|p| (p.clone(), m.subscription.clone())).collect();
            g.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols,
                    assignment: m.assignment.clone(),
                    last_heartbeat_ms: now_ms,
                    awaiting_join: None,
                    awaiting_sync: None,
                },
            );
        }
        g.state = if g.members.is_empty() {
            ClassicState::Empty
        } else {
            ClassicState::Stable
        };
        g
    }

    pub fn state(&self) -> ClassicState {
        self.state
    }
    pub fn generation(&self) -> i32 {
        self.generation
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `member_id` (or the static `instance`) is a current member at `generation`.
    pub fn validate_member(&self, member_id: &str, instance: Option<&str>, generation: i32) -> Result<(), GroupError> {
        self.check_member(member_id, instance)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    fn check_member(&self, member_id: &str, instance: Option<&str>) -> Result<(), GroupError> {
        if let Some(instance) = instance {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => return Err(GroupError::FencedInstanceId),
                _ => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(GroupError::UnknownMemberId)
        }
    }

    fn protocols_compatible(&self, protocol_type: &str, protocols: &[(String, Vec<u8>)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// JoinGroup. `fresh_member_id` is used if the request needs a new member id.
    pub fn join(
        &mut self,
        token: Token,
        req: JoinRequest,
        fresh_member_id: String,
        cfg: &GroupConfig,
        now_ms: i64,
    ) -> (Out, Vec<GroupRecord>) {
        let mut out = Out::new();
        if req.session_timeout_ms < cfg.min_session_timeout_ms || req.session_timeout_ms > cfg.max_session_timeout_ms {
            out.push((token, join_error(GroupError::InvalidSessionTimeout, req.member_id)));
            return (out, vec![]);
        }
        let known = self.members.contains_key(&req.member_id);
        if !known && !self.protocols_compatible(&req.protocol_type, &req.protocols)
            || known && !self.protocols_compatible_for_existing(&req)
        {
            out.push((token, join_error(GroupError::InconsistentGroupProtocol, req.member_id)));
            return (out, vec![]);
        }
        let member_id = if req.member_id.is_empty() {
            if let Some(instance) = req.group_instance_id.clone() {
                return self.join_static(token, req, instance, fresh_member_id, cfg, now_ms);
            }
            if req.require_known_member_id {
                self.pending_members
                    .insert(fresh_member_id.clone(), now_ms + i64::from(req.session_timeout_ms));
                out.push((token, join_error(GroupError::MemberIdRequired, fresh_member_id)));
                return (out, vec![]);
            }
            self.add_member(&req, fresh_member_id.clone(), now_ms);
            fresh_member_id
        } else if self.pending_members.remove(&req.member_id).is_some() {
            self.add_member(&req, req.member_id.clone(), now_ms);
            req.member_id.clone()
        } else {
            if let Err(e) = self.check_member(&req.member_id, req.group_instance_id.as_deref()) {
                out.push((token, join_error(e, req.member_id)));
                return (out, vec![]);
            }
            return self.rejoin(token, req, cfg, now_ms);
        };
        self.park_join(token, &member_id, cfg, now_ms, &mut out);
        let records = self.maybe_complete_join(now_ms, &mut out);
        (out, records)
    }

    fn protocols_compatible_for_existing(&self, req: &JoinRequest) -> bool {
        // An existing member may change its protocols, as long as the others still agree.
        let others: Vec<&Member> = self.members.values().filter(|m| m.member_id != req.member_id).collect();
        !req.protocols.is_empty()
            && self.protocol_type.as_deref() == Some(req.protocol_type.as_str())
            && req
                .protocols
                .iter()
                .any(|(name, _)| others.iter().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
    }

    fn add_member(&mut self, req: &JoinRequest, member_id: String, now_ms: i64) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), member_id.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                member_id,
                group_instance_id: req.group_instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols.clone(),
                assignment: Vec::new(),
                last_heartbeat_ms: now_ms,
                awaiting_join: None,
                awaiting_sync: None,
            },
        );
    }

    /// A static member (re)joins without a member id: a known instance replaces its old
    /// member id (fencing the old one) and keeps its assignment.
    fn join_static(
        &mut self,
        token: Token,
        req: JoinRequest,
        instance: String,
        fresh: String,
        cfg: &GroupConfig,
        now_ms: i64,
    ) -> (Out, Vec<GroupRecord>) {
        let mut out = Out::new();
        match self.static_members.get(&instance).cloned() {
            Some(old_id) => {
                let Some(mut member) = self.members.remove(&old_id) else {
                    self.static_members.remove(&instance);
                    return self.join(token, req, fresh, cfg, now_ms);
                };
                for t in [member.awaiting_join.take(), member.awaiting_sync.take()]
                    .into_iter()
                    .flatten()
                {
                    out.push((t, join_error(GroupError::FencedInstanceId, old_id.clone())));
                }
                let unchanged = member.protocols == req.protocols;
                member.member_id = fresh.clone();
                member.protocols = req.protocols.clone();
                member.session_timeout_ms = req.session_timeout_ms;
                member.rebalance_timeout_ms = req.rebalance_timeout_ms;
                member.last_heartbeat_ms = now_ms;
                self.members.insert(fresh.clone(), member);
                self.static_members.insert(instance, fresh.clone());
                if self.leader.as_deref() == Some(old_id.as_str()) {
                    self.leader = Some(fresh.clone());
                }
                if self.state == ClassicState::Stable && unchanged {
                    // KIP-345: a known static member coming back does not cause a rebalance.
                    out.push((token, self.current_join_answer(&fresh)));
                    return (out, vec![]);
                }
                self.park_join(token, &fresh, cfg, now_ms, &mut out);
            }
            None => {
                self.add_member(&req, fresh.clone(), now_ms);
                self.park_join(token, &fresh, cfg, now_ms, &mut out);
            }
        }
        let records = self.maybe_complete_join(now_ms, &mut out);
        (out, records)
    }

    /// A known member joins again.
    fn rejoin(&mut self, token: Token, req: JoinRequest, cfg: &GroupConfig, now_ms: i64) -> (Out, Vec<GroupRecord>) {
        let mut out = Out::new();
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let member = self.members.get_mut(&req.member_id).expect("checked by caller");
        let unchanged = member.protocols == req.protocols;
        member.protocols = req.protocols.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.last_heartbeat_ms = now_ms;
        let answer_now = match self.state {
            ClassicState::CompletingRebalance => unchanged,
            ClassicState::Stable => unchanged && !is_leader,
            _ => false,
        };
        if answer_now {
            // It probably missed its answer: give it the current generation again.
            out.push((token, self.current_join_answer(&req.member_id)));
            return (out, vec![]);
        }
        self.park_join(token, &req.member_id, cfg, now_ms, &mut out);
        let records = self.maybe_complete_join(now_ms, &mut out);
        (out, records)
    }

    fn current_join_answer(&self, member_id: &str) -> Completion {
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if self.leader.as_deref() == Some(member_id) {
            self.members
                .values()
                .map(|m| JoinMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            vec![]
        };
        Completion::Join(JoinResponse {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        })
    }

    fn park_join(&mut self, token: Token, member_id: &str, cfg: &GroupConfig, now_ms: i64, out: &mut Out) {
        if let Some(member) = self.members.get_mut(member_id) {
            if let Some(previous) = member.awaiting_join.replace(token) {
                out.push((
                    previous,
                    join_error(GroupError::RebalanceInProgress, member_id.to_string()),
                ));
            }
        }
        if self.state != ClassicState::PreparingRebalance {
            self.prepare_rebalance(cfg, now_ms, out);
        }
    }

    fn prepare_rebalance(&mut self, cfg: &GroupConfig, now_ms: i64, out: &mut Out) {
        if self.state == ClassicState::CompletingRebalance {
            for m in self.members.values_mut() {
                if let Some(t) = m.awaiting_sync.take() {
                    out.push((t, sync_error(GroupError::RebalanceInProgress)));
                }
            }
        }
        let was_empty = self.state == ClassicState::Empty;
        self.state = ClassicState::PreparingRebalance;
        self.state_timestamp_ms = now_ms;
        let timeout = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.rebalance_deadline_ms = now_ms + timeout;
        // A new group waits a little for more members (group.initial.rebalance.delay.ms).
        self.join_not_before_ms = if was_empty {
            now_ms + cfg.initial_rebalance_delay_ms
        } else {
            now_ms
        };
    }

    fn maybe_complete_join(&mut self, now_ms: i64, out: &mut Out) -> Vec<GroupRecord> {
        let all_joined = self.members.values().all(|m| m.awaiting_join.is_some()) && self.pending_members.is_empty();
        if self.state == ClassicState::PreparingRebalance && all_joined && now_ms >= self.join_not_before_ms {
            self.complete_join(now_ms, out)
        } else {
            vec![]
        }
    }

    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == *n)))
            .collect();
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(p, _)| candidates.iter().position(|c| *c == p))
            {
                votes[i] += 1;
            }
        }
        let best = votes
            .iter()
            .enumerate()
            .max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)))?
            .0;
        candidates.get(best).map(|s| s.to_string())
    }

    fn complete_join(&mut self, now_ms: i64, out: &mut Out) -> Vec<GroupRecord> {
        self.generation += 1;
        self.state_timestamp_ms = now_ms;
        if self.members.is_empty() {
            self.state = ClassicState::Empty;
            self.protocol = None;
            self.leader = None;
            return vec![self.metadata_record()];
        }
        self.protocol = self.select_protocol();
        if !self.leader.as_ref().is_some_and(|l| self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = ClassicState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let answer = self.current_join_answer(&id);
            let m = self.members.get_mut(&id).expect("listed above");
            m.assignment.clear();
            m.last_heartbeat_ms = now_ms;
            if let Some(t) = m.awaiting_join.take() {
                out.push((t, answer));
            }
        }
        vec![]
    }

    /// SyncGroup.
    pub fn sync(&mut self, token: Token, req: SyncRequest, now_ms: i64) -> (Out, Vec<GroupRecord>) {
        let mut out = Out::new();
        if let Err(e) = self.validate_member(&req.member_id, req.group_instance_id.as_deref(), req.generation_id) {
            out.push((token, sync_error(e)));
            return (out, vec![]);
        }
        let mismatch =
            |given: &Option<String>, ours: &Option<String>| given.as_ref().is_some_and(|g| Some(g) != ours.as_ref());
        if mismatch(&req.protocol_type, &self.protocol_type) || mismatch(&req.protocol_name, &self.protocol) {
            out.push((token, sync_error(GroupError::InconsistentGroupProtocol)));
            return (out, vec![]);
        }
        if let Some(m) = self.members.get_mut(&req.member_id) {
            m.last_heartbeat_ms = now_ms;
        }
        match self.state {
            ClassicState::PreparingRebalance | ClassicState::Empty => {
                out.push((token, sync_error(GroupError::RebalanceInProgress)));
                (out, vec![])
            }
            ClassicState::Stable => {
                out.push((token, self.sync_answer(&req.member_id)));
                (out, vec![])
            }
            ClassicState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.awaiting_sync = Some(token);
                }
                if self.leader.as_deref() != Some(req.member_id.as_str()) {
                    return (out, vec![]);
                }
                let mut assignments: HashMap<String, Vec<u8>> = req.assignments.into_iter().collect();
                for m in self.members.values_mut() {
                    m.assignment = assignments.remove(&m.member_id).unwrap_or_default();
                }
                self.state = ClassicState::Stable;
                self.state_timestamp_ms = now_ms;
                let ids: Vec<String> = self.members.keys().cloned().collect();
                for id in ids {
                    let answer = self.sync_answer(&id);
                    if let Some(t) = self.members.get_mut(&id).and_then(|m| m.awaiting_sync.take()) {
                        out.push((t, answer));
                    }
                }
                (out, vec![self.metadata_record()])
            }
        }
    }

    fn sync_answer(&self, member_id: &str) -> Completion {
        Completion::Sync(SyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        })
    }

    /// Heartbeat: keeps the member alive; tells it when a rebalance is under way.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if self.state == ClassicState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        self.validate_member(member_id, instance, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat_ms = now_ms;
        }
        match self.state {
            ClassicState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup for one member (by id, or by static instance id when the id is empty).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        cfg: &GroupConfig,
        now_ms: i64,
    ) -> Result<(Out, Vec<GroupRecord>), GroupError> {
        let id = match (member_id.is_empty(), instance) {
            (true, Some(i)) => self.static_members.get(i).cloned().ok_or(GroupError::UnknownMemberId)?,
            _ => {
                self.check_member(member_id, instance)?;
                member_id.to_string()
            }
        };
        let mut out = Out::new();
        self.remove_member(&id, GroupError::UnknownMemberId, &mut out);
        let records = self.after_removal(cfg, now_ms, &mut out);
        Ok((out, records))
    }

    fn remove_member(&mut self, member_id: &str, error: GroupError, out: &mut Out) {
        if let Some(m) = self.members.remove(member_id) {
            if let Some(instance) = &m.group_instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
            if let Some(t) = m.awaiting_join {
                out.push((t, join_error(error, member_id.to_string())));
            }
            if let Some(t) = m.awaiting_sync {
                out.push((t, sync_error(error)));
            }
        }
    }

    fn after_removal(&mut self, cfg: &GroupConfig, now_ms: i64, out: &mut Out) -> Vec<GroupRecord> {
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.prepare_rebalance(cfg, now_ms, out);
                self.maybe_complete_join(now_ms, out)
            }
            ClassicState::PreparingRebalance => self.maybe_complete_join(now_ms, out),
            ClassicState::Empty => vec![],
        }
    }

    /// Whether [`ClassicGroup::tick`] at `now_ms` may change anything but expired pending
    /// members (a rebalance in progress, or a member or pending member past its deadline).
    pub fn tick_may_change(&self, now_ms: i64) -> bool {
        self.state == ClassicState::PreparingRebalance
            || self.pending_members.values().any(|expiry| *expiry <= now_ms)
            || self
                .members
                .values()
                .any(|m| m.awaiting_join.is_none() && now_ms > m.last_heartbeat_ms + i64::from(m.session_timeout_ms))
    }

    /// Expires members whose session timed out and completes rebalances whose time is up.
    pub fn tick(&mut self, cfg: &GroupConfig, now_ms: i64) -> (Out, Vec<GroupRecord>) {
        let mut out = Out::new();
        self.pending_members.retain(|_, expiry| *expiry > now_ms);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && now_ms > m.last_heartbeat_ms + i64::from(m.session_timeout_ms))
            .map(|m| m.member_id.clone())
            .collect();
        let mut records = Vec::new();
        if !expired.is_empty() {
            for id in &expired {
                self.remove_member(id, GroupError::UnknownMemberId, &mut out);
            }
            records.extend(self.after_removal(cfg, now_ms, &mut out));
        }
        if self.state == ClassicState::PreparingRebalance
            && now_ms >= self.rebalance_deadline_ms.max(self.join_not_before_ms)
        {
            // Members that did not rejoin in time are dropped from the new generation.
            let late: Vec<String> = self
                .members
                .values()
                .filter(|m| m.awaiting_join.is_none())
                .map(|m| m.member_id.clone())
                .collect();
            for id in &late {
                self.remove_member(id, GroupError::UnknownMemberId, &mut out);
            }
            self.pending_members.clear();
            records.extend(self.complete_join(now_ms, &mut out));
        } else {
            records.extend(self.maybe_complete_join(now_ms, &mut out));
        }
        (out, records)
    }

    /// The record that persists this group's current state.
    pub fn metadata_record(&self) -> GroupRecord {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupRecord::Group {
            group: self.group_id.clone(),
            value: Some(GroupMetadataValue {
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation: self.generation,
                protocol: self.protocol.clone(),
                leader: self.leader.clone(),
                state_timestamp_ms: self.state_timestamp_ms,
                members: self
                    .members
                    .values()
                    .map(|m| MemberValue {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        subscription: m.metadata_for(&protocol),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
            }),
        }
    }

    /// Topics the members subscribe to (consumer protocol only), for OffsetDelete.
    pub fn subscribed_topics(&self) -> Vec<String> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return vec![];
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .flat_map(|m| crate::subscription::topics(&m.metadata_for(&protocol)))
            .collect()
    }
}
