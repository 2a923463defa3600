//! A follower that was told its log diverges from the leader's (Fetch's `DivergingEpoch`,
//! KIP-320/KIP-595) truncates to the point where both logs provably agree.

/// Where a follower must truncate its log when the leader reports that the follower's last
/// fetched epoch ends, on the leader, at `(leader_epoch, leader_end_offset)`.
///
/// `own_end_for` is the follower's own epoch history: for an epoch, the largest epoch it has
/// that is ≤ it and the offset where that epoch ends in its log (Kafka's
/// `LeaderEpochFileCache.endOffsetFor`), None when it has no such epoch. Both logs agree below
/// the smaller of the two end offsets; when the follower's matching epoch is older than the
/// leader's, the next fetch (with that older epoch) narrows it further. A follower with no
/// epoch at or below the leader's shares nothing known with it: it truncates everything (0;
/// the leader's log start then tells it where to begin). Never above `log_end_offset`.
pub fn truncation_offset(
    leader_epoch: i32,
    leader_end_offset: i64,
    log_end_offset: i64,
    own_end_for: impl Fn(i32) -> Option<(i32, i64)>,
) -> i64 {
    let agreed = match own_end_for(leader_epoch) {
        Some((_, own_end)) => own_end.min(leader_end_offset),
        None => 0,
    };
    agreed.min(log_end_offset).max(0)
}

#[cfg(test)]
mod tests {
    use super::truncation_offset;

    /// Epoch history as (epoch, start offset); ends at `leo`.
    fn history(entries: &'static [(i32, i64)], leo: i64) -> impl Fn(i32) -> Option<(i32, i64)> {
        move |epoch| {
            let i = entries.iter().rposition(|&(e, _)| e <= epoch)?;
            let end = entries.get(i + 1).map_or(leo, |&(_, start)| start);
            Some((entries[i].0, end))
        }
    }

    #[test]
    fn truncates_to_where_the_shared_epoch_ends_on_either_side() {
        // Follower wrote epoch 1 to offset 10, then as a deposed leader epoch 2 to 15; the
        // leader's epoch 1 ended at 8 (it took over at epoch 3 from offset 8).
        assert_eq!(truncation_offset(1, 8, 15, history(&[(0, 0), (1, 5), (2, 10)], 15)), 8);
        // The leader's epoch 1 ran longer than the follower's: keep the follower's.
        assert_eq!(
            truncation_offset(1, 12, 15, history(&[(0, 0), (1, 5), (2, 10)], 15)),
            10
        );
        // No epoch in common: nothing is known to agree.
        assert_eq!(truncation_offset(0, 3, 15, history(&[(2, 0)], 15)), 0);
        // Never past the log end.
        assert_eq!(truncation_offset(5, 100, 15, history(&[(5, 0)], 15)), 15);
    }
}
