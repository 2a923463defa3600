//! Where a consumer should read a partition from (KIP-392, follower fetching): Kafka's
//! `RackAwareReplicaSelector` as `ReplicaManager.findPreferredReadReplica` applies it.

use super::Leader;

impl Leader {
    /// The replica a consumer in `client_rack` fetching at `fetch_offset` should read from,
    /// if not this leader: an in-sync follower in the client's rack that already has
    /// `fetch_offset` (the most caught-up one, then the one caught up most recently, then the
    /// lowest id). None when the client names no rack, when the leader shares its rack, or
    /// when no such follower exists. `rack_of` gives a broker's `broker.rack`.
    pub fn preferred_read_replica<'a>(
        &self,
        fetch_offset: i64,
        client_rack: &str,
        rack_of: impl Fn(i32) -> Option<&'a str>,
    ) -> Option<i32> {
        if client_rack.is_empty() || rack_of(self.me) == Some(client_rack) {
            return None;
        }
        self.state
            .isr
            .iter()
            .filter(|&&r| r != self.me && rack_of(r) == Some(client_rack))
            .filter_map(|&r| self.followers.get(&r).map(|f| (r, f)))
            .filter(|(_, f)| f.log_end_offset >= fetch_offset)
            .max_by_key(|(r, f)| (f.log_end_offset, f.last_caught_up_ms, std::cmp::Reverse(*r)))
            .map(|(r, _)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Leader, PartitionState};

    fn rack(id: i32) -> Option<&'static str> {
        match id {
            1 => Some("a"),
            2 | 3 => Some("b"),
            4 => Some("c"),
            _ => None,
        }
    }

    #[test]
    fn a_consumer_reads_from_an_in_sync_follower_of_its_rack() {
        let state = PartitionState {
            leader_epoch: 1,
            partition_epoch: 1,
            replicas: vec![1, 2, 3, 4],
            isr: vec![1, 2, 3],
        };
        let mut l = Leader::new(1, state, 10, 0, 0, 30_000);
        // No follower has fetched: none has offset 5 yet.
        assert_eq!(l.preferred_read_replica(5, "b", rack), None);
        l.on_follower_fetch(2, 8, 10, 1);
        l.on_follower_fetch(3, 10, 10, 2);
        assert_eq!(l.preferred_read_replica(5, "b", rack), Some(3), "the most caught up");
        assert_eq!(l.preferred_read_replica(9, "b", rack), Some(3));
        assert_eq!(
            l.preferred_read_replica(11, "b", rack),
            None,
            "nobody has offset 11 yet"
        );
        assert_eq!(l.preferred_read_replica(5, "a", rack), None, "the leader's own rack");
        assert_eq!(l.preferred_read_replica(5, "", rack), None, "no rack given");
        l.on_follower_fetch(4, 10, 10, 3);
        assert_eq!(l.preferred_read_replica(5, "c", rack), None, "4 is not in the ISR");
    }
}
