//! A transactional producer as the Java client and librdkafka behave: init, then per
//! transaction add partitions, produce one batch to each, and commit (or abort after any
//! failed batch, then bump its epoch with KIP-360's InitProducerId before going on); requests
//! without an answer are retried, retriable errors after a backoff, fatal ones end the
//! incarnation (a restart with a fresh InitProducerId). Sometimes it restarts on its own in
//! the middle of a transaction, leaving its batches in flight: a zombie.

use std::collections::{BTreeMap, BTreeSet};

use nurt_records::{BatchBuilder, Compression};
use nurt_replication::rng::Rng;

use super::world::{Msg, World};
use crate::txn_version::{bumps_epoch, TV_0, TV_2};
use crate::{ProducerIdAndEpoch, TxnError};

/// One transaction of one producer incarnation: (client, incarnation, transaction number).
pub(crate) type Tag = (usize, u32, u32);

const REQUEST_TIMEOUT_MS: i64 = 3_000;
const DELIVERY_TIMEOUT_MS: i64 = 2_500;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Needs InitProducerId; `bump` names the producer id and epoch it holds (KIP-360).
    NeedInit {
        bump: Option<ProducerIdAndEpoch>,
    },
    Initing,
    Ready,
    Adding {
        partitions: Vec<i32>,
    },
    Producing {
        waiting: BTreeSet<i32>,
        acked: BTreeSet<i32>,
        failed: bool,
        deadline_ms: i64,
    },
    Ending {
        commit: bool,
        acked: BTreeSet<i32>,
    },
    Done,
}

pub(crate) struct Client {
    index: usize,
    /// Transaction version it speaks (AddPartitionsToTxn and EndTxn alike).
    tv: i16,
    pe: Option<ProducerIdAndEpoch>,
    sequences: BTreeMap<i32, i32>,
    incarnation: u32,
    txn: u32,
    phase: Phase,
    /// The request in flight (its id, when it was sent, the message to resend).
    pending: Option<(u64, i64, Msg)>,
    not_before_ms: i64,
    /// What the producer was told: transaction → committed, and the partitions whose batch was
    /// acknowledged.
    pub(crate) outcomes: BTreeMap<Tag, (bool, BTreeSet<i32>)>,
}

impl Client {
    pub(crate) fn new(index: usize, rng: &mut Rng) -> Self {
        Self {
            index,
            tv: if rng.chance(0.5) { TV_2 } else { TV_0 },
            pe: None,
            sequences: BTreeMap::new(),
            incarnation: 0,
            txn: 0,
            phase: Phase::NeedInit { bump: None },
            pending: None,
            not_before_ms: 0,
            outcomes: BTreeMap::new(),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn tag(&self) -> Tag {
        (self.index, self.incarnation, self.txn)
    }

    fn restart(&mut self) {
        self.incarnation += 1;
        self.pe = None;
        self.phase = Phase::NeedInit { bump: None };
        self.pending = None;
    }
}

fn request(w: &mut World, i: usize, make: impl FnOnce(u64) -> Msg) {
    let req = w.next_id();
    let msg = make(req);
    w.clients[i].pending = Some((req, w.now_ms, msg.clone()));
    w.send(msg);
}

/// Moves producer `i` on: starts what its phase calls for, resends what timed out.
pub(crate) fn step(w: &mut World, i: usize) {
    let now = w.now_ms;
    let quiescing = w.quiescing;
    let c = &mut w.clients[i];
    if now < c.not_before_ms {
        return;
    }
    if let Some((_, sent, msg)) = &c.pending {
        if now - sent > REQUEST_TIMEOUT_MS {
            let msg = msg.clone();
            request(w, i, |req| with_req(msg, req));
        }
        return;
    }
    if !quiescing && matches!(c.phase, Phase::Producing { .. } | Phase::Adding { .. }) && w.rng.chance(0.0005) {
        c.restart();
        return;
    }
    match c.phase.clone() {
        Phase::NeedInit { .. } if quiescing => c.phase = Phase::Done,
        Phase::NeedInit { bump } => {
            c.phase = Phase::Initing;
            request(w, i, |req| Msg::Init {
                client: i,
                req,
                expected: bump,
            });
        }
        Phase::Ready if quiescing => c.phase = Phase::Done,
        Phase::Ready => {
            let count = w.rng.between(1, i64::from(w.partitions.len() as i32));
            let mut partitions: Vec<i32> = (0..w.partitions.len() as i32).collect();
            while partitions.len() > count as usize {
                let at = w.rng.below(partitions.len() as u64) as usize;
                partitions.remove(at);
            }
            let c = &mut w.clients[i];
            c.txn += 1;
            let (pe, tv) = (c.pe.expect("ready means initialised"), c.tv);
            c.phase = Phase::Adding {
                partitions: partitions.clone(),
            };
            request(w, i, |req| Msg::Add {
                client: i,
                req,
                pe,
                partitions,
                tv,
            });
        }
        Phase::Producing {
            waiting,
            acked,
            failed,
            deadline_ms,
        } if waiting.is_empty() || now > deadline_ms => {
            let commit = !failed && waiting.is_empty() && w.rng.chance(0.7);
            let c = &mut w.clients[i];
            let (pe, tv) = (c.pe.expect("producing means initialised"), c.tv);
            c.phase = Phase::Ending { commit, acked };
            request(w, i, |req| Msg::End {
                client: i,
                req,
                pe,
                commit,
                tv,
            });
        }
        _ => {}
    }
}

fn with_req(msg: Msg, req: u64) -> Msg {
    match msg {
        Msg::Init { client, expected, .. } => Msg::Init { client, req, expected },
        Msg::Add {
            client,
            pe,
            partitions,
            tv,
            ..
        } => Msg::Add {
            client,
            req,
            pe,
            partitions,
            tv,
        },
        Msg::End {
            client, pe, commit, tv, ..
        } => Msg::End {
            client,
            req,
            pe,
            commit,
            tv,
        },
        other => other,
    }
}

/// Whether a coordinator error means: the same request again, later.
fn retriable(e: TxnError) -> bool {
    matches!(
        e,
        TxnError::ConcurrentTransactions | TxnError::CoordinatorNotAvailable | TxnError::ProducerIdUnavailable
    )
}

/// An answer for producer `client`.
pub(crate) fn on_answer(w: &mut World, msg: Msg) {
    let (client, req) = match &msg {
        Msg::InitDone { client, req, .. } | Msg::AddDone { client, req, .. } | Msg::EndDone { client, req, .. } => {
            (*client, Some(*req))
        }
        Msg::Produced { client, .. } => (*client, None),
        _ => return,
    };
    let c = &mut w.clients[client];
    if let Some(req) = req {
        if c.pending.as_ref().map(|p| p.0) != Some(req) {
            return; // an answer to a request given up on
        }
    }
    let backoff = w.rng.between(20, 200);
    let now = w.now_ms;
    let resend = |c: &mut Client| {
        c.not_before_ms = now + backoff;
        if let Some(p) = c.pending.as_mut() {
            p.1 = i64::MIN / 2; // resend at the next step past the backoff
        }
    };
    match msg {
        Msg::InitDone { result, .. } => match result {
            Ok(pe) => {
                c.pending = None;
                c.pe = Some(pe);
                c.sequences.clear();
                c.phase = Phase::Ready;
            }
            Err(e) if retriable(e) => resend(c),
            Err(_) => c.restart(),
        },
        Msg::AddDone { result, .. } => match (result, c.phase.clone()) {
            (Ok(()), Phase::Adding { partitions }) => {
                c.pending = None;
                produce_all(w, client, partitions);
            }
            (Err(e), _) if retriable(e) => resend(c),
            _ => c.restart(),
        },
        Msg::EndDone { result, .. } => match (result, c.phase.clone()) {
            (Ok(next), Phase::Ending { commit, acked }) => {
                c.pending = None;
                let tag = c.tag();
                c.outcomes.insert(tag, (commit, acked));
                if commit {
                    w.summary.committed += 1;
                } else {
                    w.summary.aborted += 1;
                }
                let c = &mut w.clients[client];
                if let (Some(next), true) = (next, bumps_epoch(c.tv)) {
                    c.pe = Some(next);
                    c.sequences.clear();
                }
                // After a failed transaction the producer bumps its epoch (KIP-360) so none of
                // its earlier batches can land later; a version 2 end bumped it already.
                c.phase = if commit || bumps_epoch(c.tv) {
                    Phase::Ready
                } else {
                    Phase::NeedInit { bump: c.pe }
                };
            }
            (Err(e), _) if retriable(e) => resend(c),
            _ => c.restart(),
        },
        Msg::Produced { partition, tag, ok, .. } => {
            let current = c.tag();
            if let Phase::Producing {
                waiting, acked, failed, ..
            } = &mut c.phase
            {
                if tag == current && waiting.remove(&partition) {
                    if ok {
                        acked.insert(partition);
                    } else {
                        *failed = true;
                    }
                }
            }
        }
        _ => {}
    }
}

/// Sends one transactional batch to each partition; some are held up for seconds.
fn produce_all(w: &mut World, i: usize, partitions: Vec<i32>) {
    let now = w.now_ms;
    let c = &mut w.clients[i];
    let pe = c.pe.expect("producing means initialised");
    let tag = c.tag();
    let mut batches = Vec::new();
    for &p in &partitions {
        let seq = c.sequences.entry(p).or_insert(0);
        let mut b = BatchBuilder::new(Compression::None, now).transactional(pe.producer_id, pe.epoch, *seq);
        *seq += 1;
        b.push(now, None, Some(format!("{tag:?}").as_bytes()), &[]);
        batches.push((p, b.build().expect("one record")));
    }
    c.phase = Phase::Producing {
        waiting: partitions.iter().copied().collect(),
        acked: BTreeSet::new(),
        failed: false,
        deadline_ms: now + DELIVERY_TIMEOUT_MS,
    };
    for (partition, batch) in batches {
        let late = w.rng.chance(0.04);
        w.send(Msg::Produce {
            client: i,
            partition,
            batch,
            tag,
            late,
        });
    }
}
