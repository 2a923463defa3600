//! Server-side assignors for KIP-848 groups: `uniform` (balanced and sticky) and `range`
//! (contiguous ranges per topic, like the client-side range assignor).

use std::collections::{BTreeMap, BTreeSet};

use crate::TopicId;

/// A partition of a topic, by topic id.
pub type TopicPartition = (TopicId, i32);

/// What an assignor needs: members (sorted by id) with their subscribed topics, the
/// partition count of each topic, and the current assignment (for stickiness).
#[derive(Debug)]
pub struct AssignmentSpec<'a> {
    pub members: Vec<(&'a str, Vec<TopicId>)>,
    pub partitions: &'a BTreeMap<TopicId, i32>,
    pub current: &'a BTreeMap<String, BTreeSet<TopicPartition>>,
}

/// The assignors Nurt serves, in the default order of `group.consumer.assignors`.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// Runs the named assignor.
pub fn assign(name: &str, spec: &AssignmentSpec<'_>) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    match name {
        "range" => range(spec),
        _ => uniform(spec),
    }
}

fn range(spec: &AssignmentSpec<'_>) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = spec
        .members
        .iter()
        .map(|(m, _)| (m.to_string(), BTreeSet::new()))
        .collect();
    for (&topic, &count) in spec.partitions {
        let subscribers: Vec<&str> = spec
            .members
            .iter()
            .filter(|(_, ts)| ts.contains(&topic))
            .map(|(m, _)| *m)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as i32;
        let (base, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in subscribers.iter().enumerate() {
            let take = base + i32::from((i as i32) < extra);
            out.entry(m.to_string())
                .or_default()
                .extend((next..next + take).map(|p| (topic, p)));
            next += take;
        }
    }
    out
}

fn uniform(spec: &AssignmentSpec<'_>) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = spec
        .members
        .iter()
        .map(|(m, _)| (m.to_string(), BTreeSet::new()))
        .collect();
    let all: Vec<TopicPartition> = spec
        .partitions
        .iter()
        .filter(|(t, _)| spec.members.iter().any(|(_, ts)| ts.contains(t)))
        .flat_map(|(&t, &n)| (0..n).map(move |p| (t, p)))
        .collect();
    if spec.members.is_empty() {
        return out;
    }
    let subscribed = |m: &str, tp: &TopicPartition| spec.members.iter().any(|(id, ts)| *id == m && ts.contains(&tp.0));
    let quota = all.len().div_ceil(spec.members.len());
    let mut taken = BTreeSet::new();
    // Stickiness: members keep what they had, up to the quota.
    for (m, _) in &spec.members {
        if let Some(had) = spec.current.get(*m) {
            for tp in had.iter().filter(|tp| all.contains(tp) && subscribed(m, tp)) {
                let mine = out.get_mut(*m).expect("every member has an entry");
                if mine.len() < quota && taken.insert(*tp) {
                    mine.insert(*tp);
                }
            }
        }
    }
    // The rest go to the least loaded subscribed member.
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let target = spec
            .members
            .iter()
            .filter(|(m, _)| subscribed(m, tp))
            .min_by_key(|(m, _)| (out[*m].len(), *m))
            .map(|(m, _)| m.to_string());
        if let Some(m) = target {
            out.entry(m).or_default().insert(*tp);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_for<'a>(
        members: &[&'a str],
        partitions: &'a BTreeMap<TopicId, i32>,
        current: &'a BTreeMap<String, BTreeSet<TopicPartition>>,
    ) -> AssignmentSpec<'a> {
        AssignmentSpec {
            members: members
                .iter()
                .map(|m| (*m, partitions.keys().copied().collect()))
                .collect(),
            partitions,
            current,
        }
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let partitions: BTreeMap<TopicId, i32> = [([1; 16], 6)].into();
        let none = BTreeMap::new();
        let first = uniform(&spec_for(&["a"], &partitions, &none));
        assert_eq!(first["a"].len(), 6);
        let second = uniform(&spec_for(&["a", "b", "c"], &partitions, &first));
        assert!(second.values().all(|s| s.len() == 2));
        // a keeps two of its old partitions; nothing is assigned twice.
        assert!(second["a"].is_subset(&first["a"]));
        let all: BTreeSet<_> = second.values().flatten().collect();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let partitions: BTreeMap<TopicId, i32> = [([1; 16], 5)].into();
        let none = BTreeMap::new();
        let r = range(&spec_for(&["a", "b"], &partitions, &none));
        assert_eq!(r["a"].iter().map(|tp| tp.1).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(r["b"].iter().map(|tp| tp.1).collect::<Vec<_>>(), vec![3, 4]);
    }
}
