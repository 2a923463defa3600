//! The partitions: transactional batches appended with `nurt-broker`'s `Partition::append`
//! checks in its order (verification first for a batch that would open a transaction), and
//! markers written as `txn_markers::write_local` writes them.

use std::collections::BTreeMap;

use nurt_log::{Log, SequenceCheck, VerificationGuard};
use nurt_records::batch::BatchHeader;
use nurt_records::ControlType;

use super::client::Tag;
use super::world::{Msg, World};
use crate::{ProducerIdAndEpoch, TxnMarkers, TxnResult};

/// One entry of a partition's log as the checker reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Data { producer_id: i64, tag: Tag },
    Marker { producer_id: i64, commit: bool },
}

pub(crate) struct Partition {
    pub(crate) log: Log,
    pub(crate) entries: Vec<Entry>,
    /// Produces waiting for the coordinator's word: ask id → (client, batch, tag, guard, late).
    pub(crate) waiting: BTreeMap<u64, (usize, Vec<u8>, Tag, VerificationGuard, bool)>,
}

impl World {
    pub(crate) fn produce(&mut self, client: usize, partition: i32, batch: Vec<u8>, tag: Tag, late: bool) {
        let Ok(header) = BatchHeader::parse(&batch) else { return };
        let p = &mut self.partitions[partition as usize];
        if self.cfg.verify && p.log.needs_verification(&header) {
            let guard = p.log.start_verification(header.producer_id);
            let ask = self.next_id();
            let p = &mut self.partitions[partition as usize];
            p.waiting.insert(ask, (client, batch, tag, guard, late));
            let pe = ProducerIdAndEpoch {
                producer_id: header.producer_id,
                epoch: header.producer_epoch,
            };
            let transactional_id = format!("txn-{client}");
            self.send(Msg::VerifyAsk {
                partition,
                ask,
                transactional_id,
                pe,
            });
            return;
        }
        let ok = self.append(partition, &batch, &header, None, tag);
        self.answer_produce(client, partition, tag, ok, late);
    }

    pub(crate) fn verified(&mut self, partition: i32, ask: u64, ok: bool) {
        let Some((client, batch, tag, guard, late)) = self.partitions[partition as usize].waiting.remove(&ask) else {
            return;
        };
        let Ok(header) = BatchHeader::parse(&batch) else { return };
        let ok = ok && self.append(partition, &batch, &header, Some(guard), tag);
        self.answer_produce(client, partition, tag, ok, late);
    }

    fn answer_produce(&mut self, client: usize, partition: i32, tag: Tag, ok: bool, late: bool) {
        if late && !ok {
            self.summary.late_batches_refused += 1;
        }
        self.send(Msg::Produced {
            client,
            partition,
            tag,
            ok,
        });
    }

    /// The checks of `Partition::append`, in its order, then the append.
    fn append(
        &mut self,
        partition: i32,
        batch: &[u8],
        h: &BatchHeader,
        guard: Option<VerificationGuard>,
        tag: Tag,
    ) -> bool {
        let (verify, guarded) = (self.cfg.verify, self.cfg.guard);
        let p = &mut self.partitions[partition as usize];
        // Without the guard check an answered ask admits the batch whatever came since.
        let unverified = verify && (guarded || guard.is_none()) && !p.log.verified(h, guard);
        if p.log.producer_state().breaks_transaction(h) || unverified {
            return false;
        }
        match p.log.producer_state().check(h) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate { .. } => return true,
            SequenceCheck::OutOfOrder | SequenceCheck::Fenced => return false,
        }
        p.log.append(batch, 0, None, self.now_ms).expect("in-memory append");
        p.entries.push(Entry::Data {
            producer_id: h.producer_id,
            tag,
        });
        self.summary.appended += 1;
        true
    }

    pub(crate) fn write_marker(&mut self, partition: i32, job: u64, m: TxnMarkers) {
        let p = &mut self.partitions[partition as usize];
        let commit = m.result == TxnResult::Commit;
        let control = if commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        // Fenced markers count as done, as txn_markers.rs treats every non-retriable error.
        if p.log
            .append_marker(
                m.producer_id,
                m.producer_epoch,
                control,
                m.coordinator_epoch,
                0,
                self.now_ms,
            )
            .is_ok()
        {
            p.entries.push(Entry::Marker {
                producer_id: m.producer_id,
                commit,
            });
        }
        self.send(Msg::MarkerDone {
            partition,
            job,
            coordinator_epoch: m.coordinator_epoch,
        });
    }
}
