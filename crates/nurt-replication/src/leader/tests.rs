//! The leader's decisions under a controlled clock, with exact expected values.

use std::collections::BTreeSet;

use super::*;

const LAG_MS: i64 = 30_000;

fn state(isr: &[i32]) -> PartitionState {
    PartitionState {
        leader_epoch: 3,
        partition_epoch: 7,
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
    }
}

#[test]
fn the_high_watermark_waits_for_every_in_sync_replica() {
    let mut l = Leader::new(1, state(&[1, 2, 3]), 10, 4, 0, LAG_MS);
    assert_eq!(
        l.high_watermark(),
        4,
        "followers have not fetched under this leader yet"
    );
    assert_eq!(l.on_append(12, 1), None);
    assert_eq!(
        l.on_follower_fetch(2, 12, 12, 2).high_watermark,
        None,
        "3 has not fetched"
    );
    assert_eq!(l.on_follower_fetch(3, 9, 12, 3).high_watermark, Some(9));
    assert_eq!(l.on_follower_fetch(3, 12, 12, 4).high_watermark, Some(12));
    // It never moves back, whatever a follower says later.
    assert_eq!(l.on_follower_fetch(2, 5, 12, 5).high_watermark, None);
    assert_eq!(l.high_watermark(), 12);
}

#[test]
fn a_leader_alone_in_the_isr_commits_at_once() {
    let mut l = Leader::new(1, state(&[1]), 10, 0, 0, LAG_MS);
    assert_eq!(l.high_watermark(), 10);
    assert_eq!(l.on_append(11, 1), Some(11));
    assert_eq!(l.acks_all_outcome(11, 1), Some(AcksOutcome::Done));
    assert_eq!(l.acks_all_outcome(11, 2), Some(AcksOutcome::TooFewInSync));
    assert!(!l.may_append_acks_all(2));
}

#[test]
fn a_follower_that_reaches_the_high_watermark_is_proposed_for_the_isr() {
    let mut l = Leader::new(1, state(&[1, 2]), 10, 10, 0, LAG_MS);
    assert_eq!(l.on_follower_fetch(2, 10, 10, 1).high_watermark, None);
    // 3 is behind the high watermark: not yet.
    assert_eq!(l.on_follower_fetch(3, 6, 10, 2).expand_isr, None);
    let outcome = l.on_follower_fetch(3, 10, 10, 3);
    let expected = IsrProposal {
        leader_epoch: 3,
        partition_epoch: 7,
        new_isr: vec![1, 2, 3],
    };
    assert_eq!(outcome.expand_isr, Some(expected));
    // While it is in flight, 3 counts for the high watermark and nothing else is proposed.
    assert_eq!(l.on_append(15, 4), None);
    l.on_follower_fetch(2, 15, 15, 5);
    assert_eq!(l.high_watermark(), 10, "joining replica 3 is still at 10");
    assert_eq!(l.tick(15, 100_000), None, "one change at a time");
    // The controller commits it: the image brings the new ISR and partition epoch.
    let mut committed = state(&[1, 2, 3]);
    committed.partition_epoch = 8;
    l.update_state(committed, BTreeSet::new(), 15, 6);
    assert_eq!(l.pending(), None);
}

#[test]
fn a_fenced_broker_is_not_proposed_and_does_not_hold_back_the_high_watermark() {
    let mut l = Leader::new(1, state(&[1, 2]), 10, 10, 0, LAG_MS);
    l.update_state(state(&[1, 2]), BTreeSet::from([3]), 10, 0);
    l.on_follower_fetch(2, 10, 10, 1);
    assert_eq!(l.on_follower_fetch(3, 10, 10, 2).expand_isr, None);
    l.on_append(20, 3);
    l.on_follower_fetch(3, 12, 20, 4);
    assert_eq!(l.on_follower_fetch(2, 20, 20, 5).high_watermark, Some(20));
}

#[test]
fn followers_that_stop_catching_up_are_proposed_for_removal_after_the_lag_time() {
    let mut l = Leader::new(1, state(&[1, 2, 3]), 10, 10, 0, LAG_MS);
    l.on_follower_fetch(2, 10, 10, 1_000);
    l.on_follower_fetch(3, 10, 10, 1_000);
    l.on_append(20, 2_000);
    // 2 keeps fetching, each time reaching what the leader had at its previous fetch: it
    // counts as caught up as of that previous fetch.
    l.on_follower_fetch(2, 10, 20, 10_000);
    l.on_follower_fetch(2, 20, 20, 20_000);
    // 3 never fetches again.
    assert_eq!(l.tick(20, 20_000), None, "within the lag time");
    let shrink = l.tick(20, 31_001).expect("3 lags");
    assert_eq!(shrink.new_isr, vec![1, 2]);
    // Until the controller commits it, 3 still holds back the high watermark.
    assert_eq!(l.high_watermark(), 10);
    let mut committed = state(&[1, 2]);
    committed.partition_epoch = 8;
    l.update_state(committed, BTreeSet::new(), 20, 31_002);
    assert_eq!(l.high_watermark(), 20);
}

#[test]
fn a_failed_proposal_can_be_made_again() {
    let mut l = Leader::new(1, state(&[1, 2, 3]), 10, 10, 0, LAG_MS);
    assert!(l.tick(10, LAG_MS + 1).is_some());
    assert!(l.tick(10, LAG_MS + 2).is_none());
    l.proposal_failed();
    assert!(l.tick(10, LAG_MS + 3).is_some());
}

#[test]
fn a_new_follower_joins_only_past_the_start_of_this_leader_epoch() {
    // The leader took over at log end 10 with a high watermark of 6 from before.
    let mut l = Leader::new(1, state(&[1]), 10, 6, 0, LAG_MS);
    assert_eq!(l.high_watermark(), 10, "alone in the ISR, it commits its log at once");
    assert_eq!(l.on_follower_fetch(2, 8, 10, 1).expand_isr, None);
    assert!(l.on_follower_fetch(2, 10, 10, 2).expand_isr.is_some());
}

#[test]
fn only_a_refusal_of_the_change_in_flight_forgets_it() {
    let mut l = Leader::new(1, state(&[1, 2]), 10, 10, 0, LAG_MS);
    let expand = l.on_follower_fetch(3, 10, 10, 1).expand_isr.expect("3 caught up");
    let older = IsrProposal {
        partition_epoch: 6,
        ..expand.clone()
    };
    l.proposal_refused(&older);
    assert_eq!(
        l.pending(),
        Some(&expand),
        "an answer to another proposal changes nothing"
    );
    l.proposal_refused(&expand);
    assert_eq!(l.pending(), None);
}
