//! Leader side of ISR changes (Kafka's AlterPartition, KIP-497): a leader asks the active
//! controller to add a follower that caught up or remove ones that lag; the change takes
//! effect here only when it comes back through the metadata image.

use std::sync::Arc;
use std::time::Duration;

use nurt_replication::IsrProposal;
use tokio::sync::watch;

use crate::controller::{ControllerOp, OpAnswer};
use crate::partition::Partition;
use crate::{codes, now_ms, Broker};

impl Broker {
    /// Sends `proposal` for `partition` to the controller in the background, as Kafka's
    /// `handleAlterPartitionError` does: a definite refusal (INELIGIBLE_REPLICA,
    /// INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION) forgets it; a stale epoch
    /// (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION) waits for the image, which settles it; an
    /// unknown outcome (timeout, no controller) sends it again while it is still in flight —
    /// forgetting a change the controller may have applied would let the high watermark pass
    /// a replica it put in the ISR (found by the replication simulation).
    pub fn submit_isr_change(self: &Arc<Self>, partition: Arc<Partition>, proposal: IsrProposal) {
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            while partition.isr_proposal_pending(&proposal) {
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
                match broker.controller.submit(op).await {
                    Ok(OpAnswer::Items(items)) => {
                        match items.first() {
                            Some(Ok(())) => tracing::info!(
                                "{}-{}: ISR is now {:?}",
                                partition.topic,
                                partition.index,
                                proposal.new_isr
                            ),
                            Some(Err(e))
                                if matches!(e.code, codes::FENCED_LEADER_EPOCH | codes::INVALID_UPDATE_VERSION) =>
                            {
                                tracing::debug!(
                                    "{}-{}: ISR change outdated: {}",
                                    partition.topic,
                                    partition.index,
                                    e.message
                                );
                            }
                            Some(Err(e)) => {
                                tracing::debug!(
                                    "{}-{}: ISR change refused: {}",
                                    partition.topic,
                                    partition.index,
                                    e.message
                                );
                                partition.isr_proposal_refused(&proposal);
                            }
                            None => {}
                        }
                        // Applied or outdated: the image brings the outcome.
                        return;
                    }
                    Ok(other) => {
                        tracing::warn!("unexpected AlterPartition answer {other:?}");
                        partition.isr_proposal_refused(&proposal);
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(
                            "{}-{}: ISR change outcome unknown ({e}); sending it again",
                            partition.topic,
                            partition.index
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
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
