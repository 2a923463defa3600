//! Broker lifecycle, as the active controller runs it (Kafka's `BrokerHeartbeatManager` and
//! `ClusterControlManager`): brokers register (fenced), heartbeat every
//! `broker.heartbeat.interval.ms`, are unfenced once they have caught up with the metadata
//! log, and are fenced after `broker.session.timeout.ms` without a heartbeat. Fencing moves
//! their leaderships away; a broker shutting down asks to have that done first (controlled
//! shutdown) and is fenced once it leads nothing.
//!
//! Sessions live in the controller's memory, not in the log: a new active controller starts
//! every broker's session afresh (they get a full session timeout to reach it). The clock is
//! an argument.

use std::collections::BTreeMap;

use super::partitions::{lead_again, move_away_from};
use crate::image::MetadataImage;
use crate::record::{BrokerRegistration, Endpoint, MetadataRecord};
use crate::{MetadataError, TopicId};

/// A broker's registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    pub broker_id: i32,
    pub incarnation_id: [u8; 16],
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// The cluster id in the broker's `meta.properties`, or (when `adopt_cluster_id`) a fresh
    /// one it proposes, used if the cluster has none yet.
    pub cluster_id: String,
    /// The broker's data directory has no cluster id yet: it takes the cluster's.
    pub adopt_cluster_id: bool,
}

/// What the controller answers a registration: the epoch to heartbeat with, and the cluster
/// id the broker must record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub broker_epoch: i64,
    pub cluster_id: String,
}

/// The records that register a broker. A registration with the incarnation already on record
/// is a retry and keeps its epoch; a new incarnation (the broker restarted) replaces the old
/// one, fenced, and its old leaderships move away first.
pub fn register(
    image: &MetadataImage,
    req: &RegisterRequest,
    unclean: &dyn Fn(&TopicId) -> bool,
) -> Result<(Vec<MetadataRecord>, Registered), MetadataError> {
    let mut records = vec![];
    let cluster_id = match image.cluster_id() {
        Some(c) if c != req.cluster_id && !req.adopt_cluster_id => {
            return Err(MetadataError::InconsistentClusterId {
                broker: req.cluster_id.clone(),
                cluster: c.to_string(),
            })
        }
        Some(c) => c.to_string(),
        None => {
            // The first broker to register names the cluster.
            records.push(MetadataRecord::Cluster {
                cluster_id: req.cluster_id.clone(),
            });
            req.cluster_id.clone()
        }
    };
    if let Some(existing) = image.broker(req.broker_id) {
        let r = &existing.registration;
        if r.incarnation_id == req.incarnation_id {
            let registered = Registered {
                broker_epoch: r.broker_epoch,
                cluster_id,
            };
            return Ok((records, registered));
        }
    }
    let broker_epoch = image.last_broker_epoch() + 1;
    let registration = BrokerRegistration {
        broker_id: req.broker_id,
        incarnation_id: req.incarnation_id,
        broker_epoch,
        endpoints: req.endpoints.clone(),
        rack: req.rack.clone(),
        fenced: true,
    };
    // The old incarnation is gone: nothing it led may stay led by it.
    let id = req.broker_id;
    let may_lead = |b: i32| b != id && image.is_live(b);
    records.extend(move_away_from(image, id, &may_lead, unclean));
    records.push(MetadataRecord::RegisterBroker(registration));
    Ok((
        records,
        Registered {
            broker_epoch,
            cluster_id,
        },
    ))
}

/// The records that fence `broker_id` and move its leaderships away.
pub fn fence(image: &MetadataImage, broker_id: i32, unclean: &dyn Fn(&TopicId) -> bool) -> Vec<MetadataRecord> {
    let Some(b) = image.broker(broker_id) else {
        return vec![];
    };
    let may_lead = |r: i32| r != broker_id && image.is_live(r);
    let mut records = vec![];
    if !b.fenced() {
        records.push(MetadataRecord::BrokerFencing {
            broker_id,
            broker_epoch: b.registration.broker_epoch,
            fenced: true,
        });
    }
    records.extend(move_away_from(image, broker_id, &may_lead, unclean));
    records
}

/// The records that unfence `broker_id` and give it back partitions only it can lead.
pub fn unfence(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let Some(b) = image.broker(broker_id) else {
        return vec![];
    };
    if !b.fenced() {
        return vec![];
    }
    let may_lead = |r: i32| r == broker_id || image.is_live(r);
    let mut records = vec![MetadataRecord::BrokerFencing {
        broker_id,
        broker_epoch: b.registration.broker_epoch,
        fenced: false,
    }];
    records.extend(lead_again(image, broker_id, &may_lead));
    records
}

/// One heartbeat, as the controller needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// How far the broker has applied the metadata log.
    pub metadata_offset: i64,
    /// The broker is shutting down and asks to lead nothing (controlled shutdown).
    pub want_shutdown: bool,
}

/// What the controller answers a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    /// The heartbeat's epoch is not the registration's: the broker must register again.
    pub stale_epoch: bool,
    pub fenced: bool,
    /// Controlled shutdown is complete: the broker leads nothing and may exit.
    pub should_shut_down: bool,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    broker_epoch: i64,
    last_heartbeat_ms: i64,
    metadata_offset: i64,
    shutting_down: bool,
}

/// Broker sessions of the active controller.
#[derive(Debug, Clone)]
pub struct Sessions {
    /// `broker.session.timeout.ms`
    pub session_timeout_ms: i64,
    sessions: BTreeMap<i32, Session>,
    /// Since when this controller is active: every broker's session starts then at the latest.
    active_since_ms: i64,
}

/// What the controller should commit after a heartbeat or a tick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionChanges {
    pub records: Vec<MetadataRecord>,
}

impl Sessions {
    /// Sessions of a controller that became active at `now_ms`.
    pub fn new(session_timeout_ms: i64, now_ms: i64) -> Self {
        Self {
            session_timeout_ms,
            sessions: BTreeMap::new(),
            active_since_ms: now_ms,
        }
    }

    /// A broker registered (or registered again): its session starts now.
    pub fn registered(&mut self, broker_id: i32, broker_epoch: i64, now_ms: i64) {
        self.sessions.insert(
            broker_id,
            Session {
                broker_epoch,
                last_heartbeat_ms: now_ms,
                metadata_offset: -1,
                shutting_down: false,
            },
        );
    }

    /// Handles a heartbeat: the answer, and the records to commit (unfencing a broker that
    /// has caught up to `catch_up_offset`, or moving leaderships away for a shutdown).
    pub fn heartbeat(
        &mut self,
        image: &MetadataImage,
        hb: Heartbeat,
        catch_up_offset: i64,
        now_ms: i64,
        unclean: &dyn Fn(&TopicId) -> bool,
    ) -> (HeartbeatAnswer, SessionChanges) {
        // Unknown, or registered since with another epoch: the sender must register again.
        let registered = image.broker(hb.broker_id);
        let Some(b) = registered.filter(|b| b.registration.broker_epoch == hb.broker_epoch) else {
            let stale = HeartbeatAnswer {
                stale_epoch: true,
                fenced: true,
                should_shut_down: false,
            };
            return (stale, SessionChanges::default());
        };
        let session = self.sessions.entry(hb.broker_id).or_insert(Session {
            broker_epoch: hb.broker_epoch,
            last_heartbeat_ms: now_ms,
            metadata_offset: hb.metadata_offset,
            shutting_down: false,
        });
        session.broker_epoch = hb.broker_epoch;
        session.last_heartbeat_ms = now_ms;
        session.metadata_offset = hb.metadata_offset;
        session.shutting_down |= hb.want_shutdown;
        let mut changes = SessionChanges::default();
        let mut answer = HeartbeatAnswer {
            stale_epoch: false,
            fenced: b.fenced(),
            should_shut_down: false,
        };
        if session.shutting_down {
            let leads_any = image
                .topics()
                .any(|t| t.partitions.values().any(|p| p.leader == hb.broker_id));
            if leads_any || !b.fenced() {
                changes.records = fence(image, hb.broker_id, unclean);
                answer.fenced = true;
            } else {
                answer.should_shut_down = true;
            }
        } else if b.fenced() && hb.metadata_offset >= catch_up_offset {
            changes.records = unfence(image, hb.broker_id);
            answer.fenced = false;
        }
        (answer, changes)
    }

    /// Brokers whose session expired at `now_ms` and are not yet fenced: the caller fences
    /// them (one at a time, re-reading the image after each commit).
    pub fn expired(&self, image: &MetadataImage, now_ms: i64) -> Vec<i32> {
        image
            .live_brokers()
            .map(|b| b.registration.broker_id)
            .filter(|id| {
                let last = self
                    .sessions
                    .get(id)
                    .map_or(self.active_since_ms, |s| s.last_heartbeat_ms.max(self.active_since_ms));
                now_ms.saturating_sub(last) > self.session_timeout_ms
            })
            .collect()
    }

    /// The metadata offset a broker last reported, if it has a session.
    pub fn metadata_offset(&self, broker_id: i32) -> Option<i64> {
        self.sessions.get(&broker_id).map(|s| s.metadata_offset)
    }

    /// When a broker last heartbeated, if it has a session.
    pub fn last_heartbeat_ms(&self, broker_id: i32) -> Option<i64> {
        self.sessions.get(&broker_id).map(|s| s.last_heartbeat_ms)
    }
}
