//! Committed offsets, rebuilt from offset records (commits and tombstones), and the pending
//! offsets of open transactions (KIP-98 TxnOffsetCommit).
//!
//! An offset record from a transactional batch of producer P is *pending*: invisible to
//! readers of committed offsets until a transaction marker for P reaches the partition. A
//! commit marker makes P's pending offsets committed, unless a later non-transactional
//! commit of the same partition was applied meanwhile (the most recent record wins, as in
//! Kafka's `OffsetMetadataManager.replayEndTransactionMarker`); an abort marker drops them.
//! A tombstone removes the partition's committed offset and every pending one.
//!
//! Records are applied in log order (at start-up by replaying the log, afterwards right
//! after each append under the coordinator's lock), so the order of application stands in
//! for the records' log offsets.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::record::{GroupRecord, OffsetValue};

type Partitions = BTreeMap<(String, i32), Entry>;

/// An offset and when it was applied (log order).
#[derive(Debug, Clone)]
struct Entry {
    value: OffsetValue,
    order: u64,
}

/// group → (topic, partition) → committed offset; producer id → pending offsets.
#[derive(Debug, Default, Clone)]
pub struct OffsetStore {
    groups: HashMap<String, Partitions>,
    /// Pending transactional offsets: producer id → group → partitions.
    pending: HashMap<i64, HashMap<String, Partitions>>,
    /// Producers with pending offsets, by group.
    open_by_group: HashMap<String, BTreeSet<i64>>,
    /// Order of the next record applied.
    next_order: u64,
}

impl OffsetStore {
    /// Applies an offset record that was not part of a transaction (others are ignored).
    pub fn apply(&mut self, record: &GroupRecord) {
        self.apply_from(record, None);
    }

    /// Applies an offset record (others are ignored); `producer_id` is the producer of the
    /// transactional batch it came from, if it did: its commit stays pending until
    /// [`OffsetStore::complete_transaction`]. Tombstones apply at once either way.
    pub fn apply_from(&mut self, record: &GroupRecord, producer_id: Option<i64>) {
        let GroupRecord::Offset {
            group,
            topic,
            partition,
            value,
        } = record
        else {
            return;
        };
        let key = (topic.clone(), *partition);
        let order = self.next_order;
        self.next_order += 1;
        match (value, producer_id) {
            (Some(v), None) => {
                let entry = Entry {
                    value: v.clone(),
                    order,
                };
                self.groups.entry(group.clone()).or_default().insert(key, entry);
            }
            (Some(v), Some(pid)) => {
                let entry = Entry {
                    value: v.clone(),
                    order,
                };
                self.pending
                    .entry(pid)
                    .or_default()
                    .entry(group.clone())
                    .or_default()
                    .insert(key, entry);
                self.open_by_group.entry(group.clone()).or_default().insert(pid);
            }
            (None, _) => {
                if let Some(g) = self.groups.get_mut(group) {
                    g.remove(&key);
                    if g.is_empty() {
                        self.groups.remove(group);
                    }
                }
                self.drop_pending(group, |k| *k == key);
            }
        }
    }

    /// Applies a transaction marker for `producer_id`: on commit its pending offsets become
    /// the committed ones (where no later commit was applied), on abort they are dropped.
    /// A marker for a producer without pending offsets changes nothing.
    pub fn complete_transaction(&mut self, producer_id: i64, commit: bool) {
        let Some(by_group) = self.pending.remove(&producer_id) else {
            return;
        };
        for (group, partitions) in by_group {
            if let Some(open) = self.open_by_group.get_mut(&group) {
                open.remove(&producer_id);
                if open.is_empty() {
                    self.open_by_group.remove(&group);
                }
            }
            if !commit {
                continue;
            }
            let committed = self.groups.entry(group).or_default();
            for (key, entry) in partitions {
                match committed.get(&key) {
                    Some(existing) if existing.order > entry.order => {}
                    _ => {
                        committed.insert(key, entry);
                    }
                }
            }
        }
    }

    /// Removes the pending offsets of `group` whose partition `doomed` names.
    fn drop_pending(&mut self, group: &str, doomed: impl Fn(&(String, i32)) -> bool) {
        let Some(open) = self.open_by_group.get_mut(group) else {
            return;
        };
        open.retain(|pid| {
            let Some(by_group) = self.pending.get_mut(pid) else {
                return false;
            };
            if let Some(partitions) = by_group.get_mut(group) {
                partitions.retain(|k, _| !doomed(k));
                if partitions.is_empty() {
                    by_group.remove(group);
                }
            }
            let keep = by_group.contains_key(group);
            if by_group.is_empty() {
                self.pending.remove(pid);
            }
            keep
        });
        if open.is_empty() {
            self.open_by_group.remove(group);
        }
    }

    /// The committed offset of one partition (pending transactional offsets are not).
    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.groups
            .get(group)?
            .get(&(topic.to_string(), partition))
            .map(|e| &e.value)
    }

    /// The pending offset of `producer_id` for one partition.
    pub fn pending(&self, producer_id: i64, group: &str, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.pending
            .get(&producer_id)?
            .get(group)?
            .get(&(topic.to_string(), partition))
            .map(|e| &e.value)
    }

    /// True when some open transaction has a pending offset for the partition (OffsetFetch
    /// with `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.open_by_group.get(group).is_some_and(|open| {
            open.iter().any(|pid| {
                self.pending
                    .get(pid)
                    .and_then(|g| g.get(group))
                    .is_some_and(|p| p.contains_key(&key))
            })
        })
    }

    /// True when `group` has an open transaction with pending offsets.
    pub fn has_open_transactions(&self, group: &str) -> bool {
        self.open_by_group.contains_key(group)
    }

    /// Producers with pending offsets in `group`.
    pub fn open_transactions(&self, group: &str) -> impl Iterator<Item = i64> + '_ {
        self.open_by_group.get(group).into_iter().flatten().copied()
    }

    /// Every committed offset of `group`.
    pub fn of_group(&self, group: &str) -> impl Iterator<Item = (&(String, i32), &OffsetValue)> {
        self.groups.get(group).into_iter().flatten().map(|(k, e)| (k, &e.value))
    }

    /// Groups that have committed offsets.
    pub fn groups(&self) -> impl Iterator<Item = &String> {
        self.groups.keys()
    }

    /// Groups that have committed or pending offsets.
    pub fn all_groups(&self) -> impl Iterator<Item = &String> {
        self.groups
            .keys()
            .chain(self.open_by_group.keys().filter(|g| !self.groups.contains_key(*g)))
    }

    /// True when `group` has committed or pending offsets.
    pub fn knows(&self, group: &str) -> bool {
        self.groups.contains_key(group) || self.open_by_group.contains_key(group)
    }

    /// Partitions of `group` with a committed or a pending offset.
    fn partitions_of(&self, group: &str) -> BTreeSet<(String, i32)> {
        let mut out: BTreeSet<(String, i32)> = self.of_group(group).map(|(k, _)| k.clone()).collect();
        for pid in self.open_transactions(group) {
            if let Some(partitions) = self.pending.get(&pid).and_then(|g| g.get(group)) {
                out.extend(partitions.keys().cloned());
            }
        }
        out
    }

    /// Tombstones for every offset of `group` (or only of `topic`), pending ones included.
    pub fn tombstones(&self, group: &str, topic: Option<&str>) -> Vec<GroupRecord> {
        self.tombstones_where(group, |t, _| topic.is_none_or(|only| only == t))
    }

    /// Tombstones for the offsets (committed or pending) of `group` on `partitions` of `topic`.
    pub fn tombstones_of(&self, group: &str, topic: &str, partitions: &[i32]) -> Vec<GroupRecord> {
        self.tombstones_where(group, |t, p| t == topic && partitions.contains(&p))
    }

    /// Tombstones for every group's offsets (committed or pending) of topics `gone` says no
    /// longer exist.
    pub fn tombstones_for_topics(&self, gone: impl Fn(&str) -> bool) -> Vec<GroupRecord> {
        self.all_groups()
            .flat_map(|g| self.tombstones_where(g, |t, _| gone(t)))
            .collect()
    }

    /// Tombstones for committed offsets of `group` committed before `cutoff_ms`
    /// (offsets.retention.minutes). A partition with a pending transactional offset is kept
    /// until its transaction ends, as Kafka does.
    pub fn expired(&self, group: &str, cutoff_ms: i64) -> Vec<GroupRecord> {
        self.of_group(group)
            .filter(|((t, p), v)| v.commit_timestamp_ms < cutoff_ms && !self.has_pending(group, t, *p))
            .map(|((t, p), _)| tombstone(group, t, *p))
            .collect()
    }

    fn tombstones_where(&self, group: &str, doomed: impl Fn(&str, i32) -> bool) -> Vec<GroupRecord> {
        self.partitions_of(group)
            .into_iter()
            .filter(|(t, p)| doomed(t, *p))
            .map(|(t, p)| tombstone(group, &t, p))
            .collect()
    }
}

fn tombstone(group: &str, topic: &str, partition: i32) -> GroupRecord {
    GroupRecord::Offset {
        group: group.to_string(),
        topic: topic.to_string(),
        partition,
        value: None,
    }
}
