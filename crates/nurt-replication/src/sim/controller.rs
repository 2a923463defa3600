//! The active controller, running `nurt-metadata`'s own controller code over a real
//! `MetadataImage`, as `nurt-broker/src/controller.rs` drives it: `brokers::register` (and the
//! catch-up offset a new registration must reach), `Sessions::heartbeat` (unfencing, with
//! `lead_again`), `Sessions::expired` + `brokers::fence` on its clock, `partitions::alter_isr`
//! for AlterPartition, and `create_topic` once enough brokers are live. Every write is one
//! metadata batch, appended to the log brokers replicate and applied to the image at once
//! (the quorum is modelled as one always-available log; a failover loses only the sessions).

use std::collections::BTreeMap;

use nurt_metadata::controller::brokers::{self, Heartbeat, RegisterRequest, Sessions};
use nurt_metadata::controller::partitions::{self, AlterIsr};
use nurt_metadata::controller::{self as ops, Assignment, Candidate, NewTopic, Seeds};
use nurt_metadata::{MetadataError, MetadataImage, MetadataRecord, TopicId};

use super::msg::{Addr, AlterRefusal, Msg, Out, Outbox};
use super::{SimConfig, TOPIC, TOPIC_ID};

/// Metadata batches per answer to a broker's metadata fetch.
const BATCHES_PER_FETCH: usize = 64;

#[derive(Debug)]
pub struct Controller {
    pub image: MetadataImage,
    /// The metadata log: one batch per write.
    pub log: Vec<Vec<MetadataRecord>>,
    sessions: Sessions,
    /// Per broker: the metadata offset it must reach before it is unfenced.
    catch_up: BTreeMap<i32, i64>,
    pub incarnation: u64,
    unclean: bool,
    /// Every leader epoch the controller ever handed out, and to whom.
    pub leaders_by_epoch: BTreeMap<i32, i32>,
    /// Counts for the run's summary.
    pub partition_changes: u64,
    pub fencings: u64,
}

/// A broker's incarnation id (random per process start in the broker; unique here).
fn incarnation_id(broker: i32, incarnation: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&broker.to_be_bytes());
    id[8..].copy_from_slice(&incarnation.to_be_bytes());
    id
}

impl Controller {
    pub fn new(cfg: &SimConfig, now: i64) -> Self {
        Self {
            image: MetadataImage::default(),
            log: Vec::new(),
            sessions: Sessions::new(cfg.timings.session_timeout_ms, now),
            catch_up: BTreeMap::new(),
            incarnation: 1,
            unclean: cfg.unclean_leader_election,
            leaders_by_epoch: BTreeMap::new(),
            partition_changes: 0,
            fencings: 0,
        }
    }

    /// Commits one batch: appended to the log, applied to the image.
    fn write(&mut self, records: Vec<MetadataRecord>, out: &mut Outbox) {
        if records.is_empty() {
            return;
        }
        for record in &records {
            if let Err(e) = self.image.apply(record) {
                out.impossible(format!("the controller's image refused its own record {record:?}: {e}"));
            }
            if let MetadataRecord::Partition(p) = record {
                self.partition_changes += 1;
                if p.leader >= 0 {
                    let first = *self.leaders_by_epoch.entry(p.leader_epoch).or_insert(p.leader);
                    if first != p.leader {
                        out.impossible(format!(
                            "the controller gave leader epoch {} to broker {first} and to broker {}",
                            p.leader_epoch, p.leader
                        ));
                    }
                }
            }
            out.trace(|| format!("controller commits {record:?}"));
        }
        self.log.push(records);
    }

    pub fn on_message(&mut self, from: Addr, from_incarnation: u64, msg: Msg, now: i64, out: &mut Outbox) {
        let Addr::Node(broker) = from else { return };
        let unclean = self.unclean;
        let no_unclean = move |_: &TopicId| unclean;
        match msg {
            Msg::Register => {
                let req = RegisterRequest {
                    broker_id: broker,
                    incarnation_id: incarnation_id(broker, from_incarnation),
                    endpoints: vec![],
                    rack: None,
                    cluster_id: "sim".into(),
                    adopt_cluster_id: true,
                };
                match brokers::register(&self.image, &req, &no_unclean) {
                    Ok((records, registered)) => {
                        self.write(records, out);
                        self.sessions.registered(broker, registered.broker_epoch, now);
                        self.catch_up.insert(broker, self.log.len() as i64);
                        let msg = Msg::Registered {
                            broker_epoch: registered.broker_epoch,
                        };
                        out.reply(from, from_incarnation, msg);
                    }
                    Err(e) => out.impossible(format!("registration of broker {broker} refused: {e}")),
                }
            }
            Msg::Heartbeat {
                broker_epoch,
                metadata_offset,
            } => {
                let catch_up = *self.catch_up.entry(broker).or_insert(self.log.len() as i64);
                let hb = Heartbeat {
                    broker_id: broker,
                    broker_epoch,
                    metadata_offset,
                    want_shutdown: false,
                };
                let (answer, changes) = self.sessions.heartbeat(&self.image, hb, catch_up, now, &no_unclean);
                self.write(changes.records, out);
                let msg = Msg::HeartbeatAnswer {
                    stale: answer.stale_epoch,
                    fenced: answer.fenced,
                };
                out.reply(from, from_incarnation, msg);
            }
            Msg::AlterPartition { rpc, proposal } => {
                let req = AlterIsr {
                    topic_id: TOPIC_ID,
                    partition: 0,
                    leader: broker,
                    leader_epoch: proposal.leader_epoch,
                    partition_epoch: proposal.partition_epoch,
                    new_isr: proposal.new_isr,
                };
                let image = &self.image;
                let result = match partitions::alter_isr(image, &req, &|b| image.is_live(b)) {
                    Ok(records) => {
                        let before = image.partition(TOPIC, 0).map(|p| p.isr.clone()).unwrap_or_default();
                        self.write(records, out);
                        let after = self
                            .image
                            .partition(TOPIC, 0)
                            .map(|p| p.isr.clone())
                            .unwrap_or_default();
                        if after.len() > before.len() {
                            out.items.push(Out::IsrGrew {
                                leader: broker,
                                before,
                                after,
                            });
                        }
                        Ok(())
                    }
                    Err(MetadataError::FencedLeaderEpoch | MetadataError::InvalidUpdateVersion) => {
                        Err(AlterRefusal::StaleEpoch)
                    }
                    Err(_) => Err(AlterRefusal::NotApplied),
                };
                out.reply(from, from_incarnation, Msg::AlterAnswer { rpc, result });
            }
            Msg::MetadataFetch { from: offset } if offset < self.log.len() => {
                let end = (offset + BATCHES_PER_FETCH).min(self.log.len());
                let batches = self.log.get(offset..end).unwrap_or_default().to_vec();
                let msg = Msg::MetadataBatches { from: offset, batches };
                out.reply(from, from_incarnation, msg);
            }
            _ => {}
        }
    }

    /// The controller's clock: fence brokers whose session expired (one write each, the
    /// image re-read in between), and create the topic once enough brokers are live.
    pub fn tick(&mut self, cfg: &SimConfig, now: i64, seeds: Seeds, out: &mut Outbox) {
        let unclean = self.unclean;
        let no_unclean = move |_: &TopicId| unclean;
        for broker in self.sessions.expired(&self.image, now) {
            let records = brokers::fence(&self.image, broker, &no_unclean);
            out.trace(|| format!("controller fences broker {broker}: session expired"));
            self.fencings += 1;
            self.write(records, out);
        }
        if self.image.topic(TOPIC).is_none() {
            let brokers: Vec<Candidate> = self
                .image
                .live_brokers()
                .map(|b| Candidate {
                    id: b.registration.broker_id,
                    rack: None,
                })
                .collect();
            if brokers.len() as i32 >= cfg.replication_factor {
                let topic = NewTopic {
                    name: TOPIC.into(),
                    num_partitions: 1,
                    assignment: Assignment::Auto {
                        replication_factor: cfg.replication_factor,
                        brokers,
                        seeds,
                    },
                    configs: vec![],
                };
                match ops::create_topic(&self.image, &topic, TOPIC_ID) {
                    Ok(records) => self.write(records, out),
                    Err(e) => out.impossible(format!("creating the topic failed: {e}")),
                }
            }
        }
    }

    /// A new active controller: the image and log are the quorum's, the sessions start
    /// afresh (every broker gets a full session timeout), requests to the old one are lost.
    pub fn fail_over(&mut self, cfg: &SimConfig, now: i64) {
        self.sessions = Sessions::new(cfg.timings.session_timeout_ms, now);
        self.catch_up.clear();
        self.incarnation += 1;
    }
}
