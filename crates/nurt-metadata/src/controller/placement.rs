//! Where a new partition's replicas go: Kafka's replica assignment (`AdminUtils`), spreading
//! leaders and followers evenly over the brokers and, when every broker has a rack, over the
//! racks first (no two replicas of a partition in one rack while a rack has none).
//!
//! The two random choices Kafka makes (the start index and the shift of the second replica)
//! come in as arguments, so the controller's caller controls randomness and tests are exact.

use std::collections::{BTreeMap, BTreeSet};

use crate::MetadataError;

/// A broker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i32,
    pub rack: Option<String>,
}

/// The random choices of one placement, each any non-negative number (reduced modulo the
/// number of brokers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seeds {
    pub start_index: usize,
    pub replica_shift: usize,
}

/// Replicas for `count` partitions starting at partition `first_partition`, each with
/// `replication_factor` distinct brokers out of `brokers`.
///
/// Errors with `InvalidReplicationFactor` when there are fewer brokers than replicas.
pub fn assign(
    brokers: &[Candidate],
    first_partition: i32,
    count: i32,
    replication_factor: i32,
    seeds: Seeds,
) -> Result<Vec<Vec<i32>>, MetadataError> {
    let n = brokers.len();
    if replication_factor <= 0 || replication_factor as usize > n {
        return Err(MetadataError::InvalidReplicationFactor {
            factor: replication_factor,
            brokers: n as i32,
        });
    }
    let rack_aware = brokers.iter().all(|b| b.rack.is_some());
    let arranged = if rack_aware {
        rack_alternated(brokers)
    } else {
        let mut ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        ids
    };
    let rack_of: BTreeMap<i32, &str> = brokers
        .iter()
        .filter_map(|b| b.rack.as_deref().map(|r| (b.id, r)))
        .collect();
    let racks = rack_of.values().collect::<BTreeSet<_>>().len();
    let start = seeds.start_index % n;
    let mut shift = seeds.replica_shift % n;
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for p in first_partition.max(0)..first_partition.max(0) + count.max(0) {
        let p = p as usize;
        if p > 0 && p.is_multiple_of(n) {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = vec![arranged[first]];
        if !rack_aware {
            for j in 0..replication_factor as usize - 1 {
                replicas.push(arranged[replica_index(first, shift, j, n)]);
            }
        } else {
            let mut racks_used: BTreeSet<&str> = BTreeSet::from([rack_of[&arranged[first]]]);
            let mut k = 0;
            while replicas.len() < replication_factor as usize {
                let broker = arranged[replica_index(first, shift * racks, k, n)];
                let rack = rack_of[&broker];
                // Skip a broker whose rack already has a replica while some rack has none,
                // and a broker that already has one while some broker has none.
                let rack_ok = !racks_used.contains(rack) || racks_used.len() == racks;
                let broker_ok = !replicas.contains(&broker) || replicas.len() == n;
                if rack_ok && broker_ok {
                    replicas.push(broker);
                    racks_used.insert(rack);
                }
                k += 1;
            }
        }
        out.push(replicas);
    }
    Ok(out)
}

fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    if n == 1 {
        return first;
    }
    let step = 1 + (shift + j) % (n - 1);
    (first + step) % n
}

/// Brokers ordered so consecutive ones are in different racks: the first of each rack, then
/// the second of each, and so on (racks and brokers in order).
fn rack_alternated(brokers: &[Candidate]) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack
            .entry(b.rack.as_deref().unwrap_or_default())
            .or_default()
            .push(b.id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(brokers.len());
    for i in 0..longest {
        for ids in by_rack.values() {
            if let Some(&id) = ids.get(i) {
                out.push(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(ids: &[i32]) -> Vec<Candidate> {
        ids.iter().map(|&id| Candidate { id, rack: None }).collect()
    }

    fn racked(spec: &[(i32, &str)]) -> Vec<Candidate> {
        spec.iter()
            .map(|&(id, rack)| Candidate {
                id,
                rack: Some(rack.to_string()),
            })
            .collect()
    }

    #[test]
    fn leaders_and_followers_spread_over_brokers() {
        let out = assign(&brokers(&[1, 2, 3]), 0, 6, 3, Seeds::default()).unwrap();
        assert_eq!(
            out,
            vec![
                vec![1, 2, 3],
                vec![2, 3, 1],
                vec![3, 1, 2],
                // The shift grows after a full round, so followers rotate too.
                vec![1, 3, 2],
                vec![2, 1, 3],
                vec![3, 2, 1],
            ]
        );
        let seeded = assign(
            &brokers(&[1, 2, 3]),
            0,
            3,
            2,
            Seeds {
                start_index: 1,
                replica_shift: 1,
            },
        )
        .unwrap();
        assert_eq!(seeded, vec![vec![2, 1], vec![3, 2], vec![1, 3]]);
        // Partitions added later continue the pattern.
        assert_eq!(
            assign(&brokers(&[1, 2, 3]), 3, 1, 3, Seeds::default()).unwrap(),
            vec![vec![1, 3, 2]]
        );
    }

    #[test]
    fn every_replica_lands_in_another_rack_first() {
        // Racks a: 1, 2; b: 3; c: 4, 5.
        let b = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "c"), (5, "c")]);
        let out = assign(&b, 0, 10, 3, Seeds::default()).unwrap();
        let rack = |id: i32| b.iter().find(|c| c.id == id).unwrap().rack.clone().unwrap();
        for replicas in &out {
            let racks: BTreeSet<String> = replicas.iter().map(|&r| rack(r)).collect();
            assert_eq!(racks.len(), 3, "{replicas:?} spans every rack");
        }
        // Leaders are balanced: 10 partitions over 5 brokers, two each.
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        for r in &out {
            *leaders.entry(r[0]).or_default() += 1;
        }
        assert!(leaders.values().all(|&n| n == 2), "{leaders:?}");
    }

    #[test]
    fn too_few_brokers_is_an_invalid_replication_factor() {
        assert_eq!(
            assign(&brokers(&[1, 2]), 0, 1, 3, Seeds::default()),
            Err(MetadataError::InvalidReplicationFactor { factor: 3, brokers: 2 })
        );
        assert!(assign(&brokers(&[]), 0, 1, 1, Seeds::default()).is_err());
    }
}
