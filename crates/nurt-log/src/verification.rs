//! Transaction verification on the leader (KIP-890 part 1, Kafka's `VerificationStateEntry`):
//! a producer's first transactional batch on a partition opens a transaction here, so before
//! it is appended the leader asks the transaction coordinator whether the partition is in the
//! producer's ongoing transaction. A late or rogue batch — one the coordinator already ended
//! the transaction of, or one whose producer never added the partition — would otherwise open
//! a transaction no marker will ever close (a hanging transaction: the last stable offset
//! stuck, `read_committed` readers stalled, compaction blocked).
//!
//! The ask is asynchronous, so a marker may land between the coordinator's answer and the
//! append. The guard closes that window: it is taken before asking, dropped by any marker of
//! the producer (and by the append that opens the transaction), and the append goes ahead
//! only if the guard it carries is still the one held. Leader-only and in memory: a restart
//! or a new leader just asks again.

use std::collections::HashMap;

/// Proof that a verification started for one producer; compared, never interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationGuard(u64);

/// The verifications in flight on one partition, by producer id.
#[derive(Debug, Default)]
pub struct Verifications {
    pending: HashMap<i64, VerificationGuard>,
    next_guard: u64,
}

impl Verifications {
    /// Starts (or restarts) a verification for `producer_id`: a new guard replaces any
    /// earlier one, so only the latest ask can admit a batch.
    pub fn start(&mut self, producer_id: i64) -> VerificationGuard {
        self.next_guard += 1;
        let guard = VerificationGuard(self.next_guard);
        self.pending.insert(producer_id, guard);
        guard
    }

    /// Whether `guard` is still the guard held for `producer_id` (no marker since it started).
    pub fn holds(&self, producer_id: i64, guard: VerificationGuard) -> bool {
        self.pending.get(&producer_id) == Some(&guard)
    }

    /// Drops `producer_id`'s guard: a marker ended what it verified, or the transaction opened.
    pub fn clear(&mut self, producer_id: i64) {
        self.pending.remove(&producer_id);
    }

    /// Producers with a verification in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no verification is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_holds_until_cleared_or_replaced() {
        let mut v = Verifications::default();
        let first = v.start(7);
        assert!(v.holds(7, first));
        assert!(!v.holds(8, first));
        let second = v.start(7);
        assert!(!v.holds(7, first), "a newer ask replaces the older guard");
        assert!(v.holds(7, second));
        v.clear(7);
        assert!(!v.holds(7, second));
        assert!(v.is_empty());
    }
}
