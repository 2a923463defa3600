//! The invariants of a settled world: no hanging transaction, one outcome per transaction
//! on every partition it reached, and producers told the truth.

use std::collections::{BTreeMap, BTreeSet};

use super::client::Tag;
use super::world::{Entry, World};

/// Checks the settled world; the first violation found.
pub(crate) fn final_state(w: &World) -> Result<(), String> {
    // Transaction → (partition → outcome), from the partitions' logs.
    let mut outcomes: BTreeMap<Tag, BTreeMap<i32, bool>> = BTreeMap::new();
    for (index, p) in w.partitions.iter().enumerate() {
        let partition = index as i32;
        if let Some((pid, first)) = p.log.producer_state().open_transactions().first() {
            return Err(format!(
                "hanging transaction on partition {partition}: producer {pid} open since offset {first}, log {:?}",
                p.entries
            ));
        }
        let mut open: BTreeMap<i64, Vec<Tag>> = BTreeMap::new();
        for entry in &p.entries {
            match *entry {
                Entry::Data { producer_id, tag } => open.entry(producer_id).or_default().push(tag),
                Entry::Marker { producer_id, commit } => {
                    for tag in open.remove(&producer_id).unwrap_or_default() {
                        let previous = outcomes.entry(tag).or_default().insert(partition, commit);
                        if previous.is_some_and(|p| p != commit) {
                            return Err(format!(
                                "transaction {tag:?} both committed and aborted on partition {partition}"
                            ));
                        }
                    }
                }
            }
        }
        if let Some((pid, tags)) = open.iter().next() {
            return Err(format!(
                "partition {partition}: batches of producer {pid} ({tags:?}) never ended by a marker"
            ));
        }
    }
    for (tag, by_partition) in &outcomes {
        let seen: BTreeSet<bool> = by_partition.values().copied().collect();
        if seen.len() > 1 {
            return Err(format!(
                "transaction {tag:?} committed on some partitions and aborted on others: {by_partition:?}"
            ));
        }
    }
    for c in &w.clients {
        for (tag, (committed, acked)) in &c.outcomes {
            let written = outcomes.get(tag);
            for p in acked {
                let outcome = written.and_then(|o| o.get(p));
                if *committed && outcome != Some(&true) {
                    return Err(format!(
                        "commit of {tag:?} acknowledged, but partition {p} has {outcome:?}"
                    ));
                }
            }
            if !*committed && written.is_some_and(|o| o.values().any(|&commit| commit)) {
                return Err(format!("abort of {tag:?} acknowledged, but it committed: {written:?}"));
            }
        }
    }
    let coordinator = w.coordinator.up.as_ref().ok_or("the coordinator is down")?;
    if let Some((id, v)) = coordinator.transactions().find(|(_, v)| !v.state.is_idle()) {
        return Err(format!("transaction of {id} unfinished: {v:?}"));
    }
    Ok(())
}
