//! Time-driven work: aborting transactions open longer than their timeout (the producer is
//! fenced first, as Kafka's PrepareEpochFence does), and expiring transactional ids idle for
//! `transactional.id.expiration.ms` (a tombstone each).

use crate::record::{TxnRecord, TxnState};
use crate::{Output, TxnCoordinator, Undo};

impl TxnCoordinator {
    /// Aborts every transaction open for longer than its timeout: one output per abort (its
    /// records and markers), each with the undo point of its transactional id. A transaction
    /// whose fence needs a producer id that is not available yet is left for a later tick.
    pub fn tick(
        &mut self,
        now_ms: i64,
        fresh_producer_id: &mut impl FnMut() -> Option<i64>,
    ) -> Vec<(Undo, Output<()>)> {
        let due: Vec<String> = self
            .transactions()
            .filter(|(_, v)| {
                let open = matches!(v.state, TxnState::Ongoing | TxnState::PrepareEpochFence);
                open && v.start_ms + i64::from(v.timeout_ms) < now_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut outputs = Vec::new();
        for id in due {
            let undo = self.undo_point(&id);
            if let Ok((records, markers)) = self.fence_and_abort(&id, fresh_producer_id, now_ms) {
                let out = Output {
                    response: (),
                    records,
                    markers,
                };
                outputs.push((undo, out));
            }
        }
        outputs
    }

    /// Tombstones for transactional ids without an open transaction whose last update is
    /// `transactional.id.expiration.ms` old, applied like any record; with their undo point.
    pub fn expire_transactional_ids(&mut self, now_ms: i64) -> (Undo, Vec<TxnRecord>) {
        let cutoff = now_ms - self.cfg.id_expiration_ms;
        let expired: Vec<String> = self
            .transactions()
            .filter(|(_, v)| v.state.is_idle() && v.last_update_ms <= cutoff)
            .map(|(id, _)| id.clone())
            .collect();
        let mut undo = Undo::default();
        let mut records = Vec::with_capacity(expired.len());
        for id in expired {
            undo.absorb(self.undo_point(&id));
            let tombstone = TxnRecord {
                transactional_id: id,
                value: None,
            };
            self.replay(&tombstone);
            records.push(tombstone);
        }
        (undo, records)
    }
}
