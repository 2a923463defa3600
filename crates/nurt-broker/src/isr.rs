//! Leader side of ISR changes (Kafka's AlterPartition, KIP-497): a leader asks the active
//! controller to add a follower that caught up or remove ones that lag; the change takes
//! effect here only when it comes back through the metadata image. A refused change is
//! forgotten so the leader may ask again with the partition's current epochs.

use std::sync::Arc;
use std::time::Duration;

use nurt_replication::IsrProposal;
use tokio::sync::watch;

use crate::controller::{ControllerOp, OpAnswer};
use crate::partition::Partition;
use crate::{now_ms, Broker};

impl Broker {
    /// Sends `proposal` for `partition` to the controller in the background.
    pub fn submit_isr_change(self: &Arc<Self>, partition: Arc<Partition>, proposal: IsrProposal) {
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            let op = ControllerOp::AlterPartition {
                items: vec![(
                    partition.topic_id,
                    partition.index,
                    broker.node_id,
                    proposal.leader_epoch,
                    proposal.partition_epoch,
                    proposal.new_isr.clone(),
                )],
            };
            let answer = broker.controller.submit(op).await;
            let applied = matches!(&answer, Ok(OpAnswer::Items(items)) if items.iter().all(Result::is_ok));
            if applied {
                tracing::info!(
                    "{}-{}: ISR is now {:?}",
                    partition.topic,
                    partition.index,
                    proposal.new_isr
                );
            } else {
                tracing::debug!(
                    "{}-{}: ISR change to {:?} not applied: {answer:?}",
                    partition.topic,
                    partition.index,
                    proposal.new_isr
                );
                partition.isr_proposal_failed();
            }
        });
    }
}

/// Every `replica.lag.time.max.ms / 2`, asks to remove lagging followers from the ISR of
/// every partition led here (Kafka's `isr-expiration` task).
pub async fn shrink_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis((broker.config.replica_lag_time_max_ms() / 2).clamp(50, 60_000) as u64);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        let now = now_ms();
        for partition in broker.all_partitions() {
            if let Some(proposal) = partition.maybe_shrink_isr(now) {
                broker.submit_isr_change(partition, proposal);
            }
        }
    }
}
