//! Idempotent producer state of one partition (KIP-98): per producer id, its epoch and the
//! last five batches' sequence ranges, to refuse gaps and answer retried batches with their
//! original offsets instead of writing them twice. Rebuilt from batch headers on open.

use std::collections::{HashMap, VecDeque};

use nurt_records::BatchHeader;

/// Batches remembered per producer, as Kafka does (max.in.flight.requests ≤ 5).
pub const BATCHES_REMEMBERED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchSeq {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchSeq>,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or the next in sequence: append it.
    Append,
    /// A retry of a batch already written at this base offset: answer success, write nothing.
    Duplicate { base_offset: i64 },
    /// The epoch is older than the producer's current one (PRODUCER_FENCED).
    Fenced,
    /// A gap in sequence numbers (OUT_OF_ORDER_SEQUENCE_NUMBER).
    OutOfOrder,
}

/// Producer id → state.
#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn last_seq(header: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX.
    ((i64::from(header.base_sequence) + i64::from(header.last_offset_delta)) % (i64::from(i32::MAX) + 1)) as i32
}

impl ProducerStateTable {
    /// Checks a batch before it is appended.
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // Unknown producer (new, or its state expired): accept any starting sequence.
            return SequenceCheck::Append;
        };
        if header.producer_epoch < entry.epoch {
            return SequenceCheck::Fenced;
        }
        if header.producer_epoch > entry.epoch {
            return if header.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        let last = last_seq(header);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last)
        {
            return SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| if b.last_seq == i32::MAX { 0 } else { b.last_seq + 1 });
        if header.base_sequence == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::OutOfOrder
        }
    }

    /// Records a batch that was appended at `base_offset` (also used to replay the log).
    pub fn on_append(&mut self, header: &BatchHeader, base_offset: i64) {
        if header.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if header.base_sequence < 0 {
            return;
        }
        if entry.batches.len() == BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchSeq {
            first_seq: header.base_sequence,
            last_seq: last_seq(header),
            base_offset,
        });
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nurt_records::{BatchBuilder, Compression};

    fn header(pid: i64, epoch: i16, seq: i32, n: usize) -> BatchHeader {
        let mut b = BatchBuilder::new(Compression::None, 0).idempotent(pid, epoch, seq);
        for _ in 0..n {
            b.push(0, None, Some(b"x"), &[]);
        }
        BatchHeader::parse(&b.build().unwrap()).unwrap()
    }

    #[test]
    fn sequences_dedupe_and_fence() {
        let mut t = ProducerStateTable::default();
        let h0 = header(7, 0, 0, 3);
        assert_eq!(t.check(&h0), SequenceCheck::Append);
        t.on_append(&h0, 100);
        assert_eq!(t.check(&h0), SequenceCheck::Duplicate { base_offset: 100 });
        assert_eq!(t.check(&header(7, 0, 5, 1)), SequenceCheck::OutOfOrder);
        let h1 = header(7, 0, 3, 2);
        assert_eq!(t.check(&h1), SequenceCheck::Append);
        t.on_append(&h1, 103);
        let bumped = header(7, 1, 0, 1);
        assert_eq!(t.check(&bumped), SequenceCheck::Append);
        t.on_append(&bumped, 105);
        assert_eq!(t.check(&header(7, 0, 5, 1)), SequenceCheck::Fenced);
        assert_eq!(t.check(&header(-1, -1, -1, 1)), SequenceCheck::Append);
    }
}
