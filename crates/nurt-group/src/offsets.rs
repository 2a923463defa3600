//! Committed offsets, rebuilt from offset records (commits and tombstones).

use std::collections::{BTreeMap, HashMap};

use crate::record::{GroupRecord, OffsetValue};

/// group → (topic, partition) → committed offset.
#[derive(Debug, Default, Clone)]
pub struct OffsetStore {
    groups: HashMap<String, BTreeMap<(String, i32), OffsetValue>>,
}

impl OffsetStore {
    /// Applies an offset record (others are ignored).
    pub fn apply(&mut self, record: &GroupRecord) {
        if let GroupRecord::Offset {
            group,
            topic,
            partition,
            value,
        } = record
        {
            match value {
                Some(v) => {
                    self.groups
                        .entry(group.clone())
                        .or_default()
                        .insert((topic.clone(), *partition), v.clone());
                }
                None => {
                    if let Some(g) = self.groups.get_mut(group) {
                        g.remove(&(topic.clone(), *partition));
                        if g.is_empty() {
                            self.groups.remove(group);
                        }
                    }
                }
            }
        }
    }

    /// The committed offset of one partition.
    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// Every committed offset of `group`.
    pub fn of_group(&self, group: &str) -> impl Iterator<Item = (&(String, i32), &OffsetValue)> {
        self.groups.get(group).into_iter().flatten()
    }

    /// Groups that have committed offsets.
    pub fn groups(&self) -> impl Iterator<Item = &String> {
        self.groups.keys()
    }

    /// Tombstones for every offset of `group` (or only of `topic`).
    pub fn tombstones(&self, group: &str, topic: Option<&str>) -> Vec<GroupRecord> {
        self.tombstones_where(group, |t, _, _| topic.is_none_or(|only| only == t))
    }

    /// Tombstones for the offsets of `group` on `partitions` of `topic`.
    pub fn tombstones_of(&self, group: &str, topic: &str, partitions: &[i32]) -> Vec<GroupRecord> {
        self.tombstones_where(group, |t, p, _| t == topic && partitions.contains(&p))
    }

    /// Tombstones for every group's offsets of topics `gone` says no longer exist.
    pub fn tombstones_for_topics(&self, gone: impl Fn(&str) -> bool) -> Vec<GroupRecord> {
        self.groups
            .keys()
            .flat_map(|g| self.tombstones_where(g, |t, _, _| gone(t)))
            .collect()
    }

    /// Tombstones for offsets of `group` committed before `cutoff_ms` (offsets.retention.minutes).
    pub fn expired(&self, group: &str, cutoff_ms: i64) -> Vec<GroupRecord> {
        self.tombstones_where(group, |_, _, v| v.commit_timestamp_ms < cutoff_ms)
    }

    fn tombstones_where(&self, group: &str, doomed: impl Fn(&str, i32, &OffsetValue) -> bool) -> Vec<GroupRecord> {
        self.of_group(group)
            .filter(|((t, p), v)| doomed(t, *p, v))
            .map(|((t, p), _)| GroupRecord::Offset {
                group: group.to_string(),
                topic: t.clone(),
                partition: *p,
                value: None,
            })
            .collect()
    }
}
