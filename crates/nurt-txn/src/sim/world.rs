//! The scheduler: the network (a time-ordered queue), the coordinator node, the partitions,
//! and the run loop with its quiescence.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use nurt_log::storage::sim::SimStorage;
use nurt_log::{Log, LogConfig, Storage};
use nurt_replication::rng::Rng;

use super::check;
use super::client::{Client, Tag};
use crate::{Output, ProducerIdAndEpoch, TxnConfig, TxnCoordinator, TxnError, TxnMarkers, TxnRecord, TxnResult};

/// What a run varies.
#[derive(Debug, Clone)]
pub(crate) struct SimConfig {
    pub(crate) clients: usize,
    pub(crate) partitions: i32,
    /// Steps of the active phase (each advances the clock 1–10 ms).
    pub(crate) steps: u64,
    /// Partition leaders verify first transactional batches (KIP-890 part 1). Off only to
    /// show the check catches what that prevents.
    pub(crate) verify: bool,
    /// Appends check that the verification's guard still holds (no marker since the ask).
    /// Off only to show the race it closes.
    pub(crate) guard: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            clients: 3,
            partitions: 3,
            steps: 3_000,
            verify: true,
            guard: true,
        }
    }
}

/// What a run did (also what a replay must repeat exactly).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) committed: u64,
    pub(crate) aborted: u64,
    pub(crate) coordinator_crashes: u64,
    pub(crate) late_batches_refused: u64,
    pub(crate) appended: u64,
}

impl Summary {
    pub(crate) fn add(&mut self, o: &Summary) {
        self.committed += o.committed;
        self.aborted += o.aborted;
        self.coordinator_crashes += o.coordinator_crashes;
        self.late_batches_refused += o.late_batches_refused;
        self.appended += o.appended;
    }
}

pub(crate) const TOPIC: &str = "t";
pub(crate) const TXN_TIMEOUT_MS: i32 = 4_000;

/// Messages between producers, the coordinator and the partitions. `req` ties an answer to
/// its request (a producer ignores answers to requests it gave up on).
#[derive(Debug, Clone)]
pub(crate) enum Msg {
    Init {
        client: usize,
        req: u64,
        expected: Option<ProducerIdAndEpoch>,
    },
    Add {
        client: usize,
        req: u64,
        pe: ProducerIdAndEpoch,
        partitions: Vec<i32>,
        tv: i16,
    },
    End {
        client: usize,
        req: u64,
        pe: ProducerIdAndEpoch,
        commit: bool,
        tv: i16,
    },
    InitDone {
        client: usize,
        req: u64,
        result: Result<ProducerIdAndEpoch, TxnError>,
    },
    AddDone {
        client: usize,
        req: u64,
        result: Result<(), TxnError>,
    },
    EndDone {
        client: usize,
        req: u64,
        result: Result<Option<ProducerIdAndEpoch>, TxnError>,
    },
    Produce {
        client: usize,
        partition: i32,
        batch: Vec<u8>,
        tag: Tag,
        late: bool,
    },
    Produced {
        client: usize,
        partition: i32,
        tag: Tag,
        ok: bool,
    },
    VerifyAsk {
        partition: i32,
        ask: u64,
        transactional_id: String,
        pe: ProducerIdAndEpoch,
    },
    VerifyAnswer {
        partition: i32,
        ask: u64,
        ok: bool,
    },
    Marker {
        partition: i32,
        job: u64,
        markers: TxnMarkers,
    },
    MarkerDone {
        partition: i32,
        job: u64,
        coordinator_epoch: i32,
    },
}

pub(crate) use super::partition::{Entry, Partition};

/// Markers being written for one Prepare record.
struct Job {
    markers: TxnMarkers,
    remaining: BTreeSet<i32>,
}

pub(crate) struct Coordinator {
    pub(crate) up: Option<TxnCoordinator>,
    durable: Vec<TxnRecord>,
    epoch: i32,
    down_until_ms: i64,
    jobs: BTreeMap<u64, Job>,
}

pub(crate) struct World {
    pub(crate) rng: Rng,
    pub(crate) now_ms: i64,
    pub(crate) cfg: SimConfig,
    queue: BTreeMap<(i64, u64), Msg>,
    sent: u64,
    pub(crate) coordinator: Coordinator,
    pub(crate) partitions: Vec<Partition>,
    pub(crate) clients: Vec<Client>,
    next_producer_id: i64,
    next_id: u64,
    /// No new transactions, no crashes: the world winds down.
    pub(crate) quiescing: bool,
    pub(crate) summary: Summary,
}

/// Runs `seed`: the summary, or the first invariant it breaks.
pub(crate) fn run(seed: u64, cfg: &SimConfig) -> Result<Summary, String> {
    let mut w = World::new(seed, cfg.clone());
    for _ in 0..cfg.steps {
        w.step();
    }
    w.quiescing = true;
    let deadline = w.now_ms + 120_000;
    while w.now_ms < deadline && !w.settled() {
        w.step();
    }
    if !w.settled() {
        return Err("the world did not settle within two simulated minutes".into());
    }
    check::final_state(&w)?;
    Ok(w.summary.clone())
}

impl World {
    fn new(seed: u64, cfg: SimConfig) -> Self {
        let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
        let partitions = (0..cfg.partitions)
            .map(|p| {
                let dir = PathBuf::from(format!("/sim/{TOPIC}-{p}"));
                let log = Log::open(&storage, &dir, LogConfig::default(), true, 0).expect("in-memory log");
                Partition {
                    log,
                    entries: Vec::new(),
                    waiting: BTreeMap::new(),
                }
            })
            .collect();
        let mut rng = Rng::new(seed);
        let clients = (0..cfg.clients).map(|i| Client::new(i, &mut rng)).collect();
        Self {
            rng,
            now_ms: 0,
            queue: BTreeMap::new(),
            sent: 0,
            coordinator: Coordinator {
                up: Some(TxnCoordinator::new(TxnConfig::default(), 0)),
                durable: Vec::new(),
                epoch: 0,
                down_until_ms: 0,
                jobs: BTreeMap::new(),
            },
            partitions,
            clients,
            next_producer_id: 1_000,
            next_id: 0,
            quiescing: false,
            summary: Summary::default(),
            cfg,
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends `msg`, delivered after a random delay; a late produce takes seconds.
    pub(crate) fn send(&mut self, msg: Msg) {
        let delay = match &msg {
            Msg::Produce { late: true, .. } => self.rng.between(2_000, 9_000),
            _ => self.rng.between(1, 25),
        };
        self.sent += 1;
        self.queue.insert((self.now_ms + delay, self.sent), msg);
    }

    fn settled(&self) -> bool {
        self.queue.is_empty()
            && self.coordinator.up.is_some()
            && self.coordinator.jobs.is_empty()
            && self.clients.iter().all(Client::is_done)
            && self
                .coordinator
                .up
                .as_ref()
                .is_some_and(|c| c.transactions().all(|(_, v)| v.state.is_idle()))
    }

    fn step(&mut self) {
        self.now_ms += self.rng.between(1, 10);
        if self.quiescing && self.queue.is_empty() {
            // Nothing in flight: let time run towards the next timeout.
            self.now_ms += 200;
        }
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now_ms {
                break;
            }
            let msg = entry.remove();
            self.deliver(msg);
        }
        self.coordinator_step();
        for i in 0..self.clients.len() {
            super::client::step(self, i);
        }
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Init { .. } | Msg::Add { .. } | Msg::End { .. } => self.coordinator_request(msg),
            Msg::VerifyAsk {
                partition,
                ask,
                transactional_id,
                pe,
            } => {
                let ok = self.coordinator.up.as_ref().is_some_and(|c| {
                    let parts = [(TOPIC.to_string(), BTreeSet::from([partition]))].into();
                    c.verify_partitions(&transactional_id, pe.producer_id, pe.epoch, &parts)
                        .is_ok_and(|v| v.iter().all(|(_, r)| r.is_ok()))
                });
                self.send(Msg::VerifyAnswer { partition, ask, ok });
            }
            Msg::VerifyAnswer { partition, ask, ok } => self.verified(partition, ask, ok),
            Msg::Produce {
                client,
                partition,
                batch,
                tag,
                late,
            } => self.produce(client, partition, batch, tag, late),
            Msg::Marker {
                partition,
                job,
                markers,
            } => self.write_marker(partition, job, markers),
            Msg::MarkerDone {
                partition,
                job,
                coordinator_epoch,
            } => self.marker_done(partition, job, coordinator_epoch),
            Msg::InitDone { .. } | Msg::AddDone { .. } | Msg::EndDone { .. } | Msg::Produced { .. } => {
                super::client::on_answer(self, msg)
            }
        }
    }

    // ---- the coordinator node ----

    fn coordinator_step(&mut self) {
        let c = &mut self.coordinator;
        if c.up.is_none() {
            if self.now_ms >= c.down_until_ms {
                c.epoch += 1;
                let mut loaded = TxnCoordinator::new(TxnConfig::default(), c.epoch);
                for r in &c.durable {
                    loaded.replay(r);
                }
                let owed = loaded.pending_markers();
                c.up = Some(loaded);
                for m in owed {
                    self.start_markers(m);
                }
            }
            return;
        }
        if !self.quiescing && self.rng.chance(0.002) {
            self.crash();
            return;
        }
        if self.now_ms % 100 < 10 {
            let mut next = self.next_producer_id;
            let outs = self
                .coordinator
                .up
                .as_mut()
                .map(|c| c.tick(self.now_ms, &mut || Some(bump(&mut next))))
                .unwrap_or_default();
            self.next_producer_id = next;
            for (_, out) in outs {
                if !self.persist(out).0 {
                    return;
                }
            }
        }
    }

    fn crash(&mut self) {
        let c = &mut self.coordinator;
        c.up = None;
        c.jobs.clear();
        c.down_until_ms = self.now_ms + self.rng.between(50, 1_500);
        self.summary.coordinator_crashes += 1;
    }

    /// Persists a call's records (all or, when the node crashes mid-way, none) and starts its
    /// markers; returns whether it was persisted, and the response.
    fn persist<R>(&mut self, out: Output<R>) -> (bool, R) {
        if !out.records.is_empty() && !self.quiescing && self.rng.chance(0.02) {
            self.crash();
            return (false, out.response);
        }
        self.coordinator.durable.extend(out.records);
        if let Some(m) = out.markers {
            self.start_markers(m);
        }
        (true, out.response)
    }

    fn start_markers(&mut self, markers: TxnMarkers) {
        let job = self.next_id();
        let remaining: BTreeSet<i32> = markers.partitions.values().flatten().copied().collect();
        for &partition in &remaining {
            let m = markers.clone();
            self.send(Msg::Marker {
                partition,
                job,
                markers: m,
            });
        }
        self.coordinator.jobs.insert(job, Job { markers, remaining });
    }

    fn marker_done(&mut self, partition: i32, job: u64, coordinator_epoch: i32) {
        if self.coordinator.up.is_none() || coordinator_epoch != self.coordinator.epoch {
            return;
        }
        let Some(j) = self.coordinator.jobs.get_mut(&job) else {
            return;
        };
        j.remaining.remove(&partition);
        if !j.remaining.is_empty() {
            return;
        }
        let Some(j) = self.coordinator.jobs.remove(&job) else {
            return;
        };
        let m = &j.markers;
        let now = self.now_ms;
        let records = self
            .coordinator
            .up
            .as_mut()
            .map(|c| c.markers_written(&m.transactional_id, m.producer_id, m.producer_epoch, now))
            .unwrap_or_default();
        self.persist(Output {
            response: (),
            records,
            markers: None,
        });
    }

    fn coordinator_request(&mut self, msg: Msg) {
        let now = self.now_ms;
        let mut next = self.next_producer_id;
        let Some(c) = self.coordinator.up.as_mut() else {
            // A refused connection: the producer learns at once and retries.
            let reply = match msg {
                Msg::Init { client, req, .. } => Msg::InitDone {
                    client,
                    req,
                    result: Err(TxnError::CoordinatorNotAvailable),
                },
                Msg::Add { client, req, .. } => Msg::AddDone {
                    client,
                    req,
                    result: Err(TxnError::CoordinatorNotAvailable),
                },
                Msg::End { client, req, .. } => Msg::EndDone {
                    client,
                    req,
                    result: Err(TxnError::CoordinatorNotAvailable),
                },
                _ => return,
            };
            self.send(reply);
            return;
        };
        let id = |client: usize| format!("txn-{client}");
        let reply = match msg {
            Msg::Init { client, req, expected } => {
                let out = c.init_producer_id(
                    &id(client),
                    TXN_TIMEOUT_MS,
                    expected,
                    &mut || Some(bump(&mut next)),
                    now,
                );
                self.next_producer_id = next;
                let (ok, result) = self.persist(out);
                ok.then_some(Msg::InitDone { client, req, result })
            }
            Msg::Add {
                client,
                req,
                pe,
                partitions,
                tv,
            } => {
                let parts = [(TOPIC.to_string(), partitions.into_iter().collect())].into();
                let out = c.add_partitions(&id(client), pe.producer_id, pe.epoch, &parts, tv, now);
                let (ok, result) = self.persist(out);
                ok.then_some(Msg::AddDone { client, req, result })
            }
            Msg::End {
                client,
                req,
                pe,
                commit,
                tv,
            } => {
                let result = if commit { TxnResult::Commit } else { TxnResult::Abort };
                let out = c.end_txn(
                    &id(client),
                    pe.producer_id,
                    pe.epoch,
                    result,
                    tv,
                    &mut || Some(bump(&mut next)),
                    now,
                );
                self.next_producer_id = next;
                let (ok, result) = self.persist(out);
                ok.then_some(Msg::EndDone { client, req, result })
            }
            _ => None,
        };
        if let Some(reply) = reply {
            self.send(reply);
        }
    }
}

fn bump(next: &mut i64) -> i64 {
    *next += 1;
    *next
}
