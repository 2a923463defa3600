//! The producing client: acks=all, one record per request, a few requests in flight, sent to
//! the broker it believes leads (learnt by asking any broker, as a Kafka client refreshes
//! metadata), never retried (each value is produced once, so an acknowledged value can be
//! looked for at the offset it was acknowledged at).

use std::collections::BTreeMap;

use super::msg::{Addr, Msg, Outbox};
use super::rng::Rng;

/// Requests in flight at once (`max.in.flight.requests.per.connection` is 5 in Kafka).
const IN_FLIGHT_MAX: usize = 5;
/// The client gives up on an answer after this (`request.timeout.ms`, scaled).
const REQUEST_TIMEOUT_MS: i64 = 12_000;

#[derive(Debug, Default)]
pub struct Client {
    believed_leader: Option<i32>,
    next_value: u64,
    next_request: u64,
    /// request → deadline
    in_flight: BTreeMap<u64, i64>,
    /// A metadata question in flight: (request, deadline).
    asking: Option<(u64, i64)>,
    /// No new produces (the run is healing).
    pub stopped: bool,
    pub produced: u64,
    /// Answers with success the client received.
    pub acknowledged: u64,
}

impl Client {
    pub fn tick(&mut self, now: i64, brokers: i32, rng: &mut Rng, out: &mut Outbox) {
        let before = self.in_flight.len();
        self.in_flight.retain(|_, deadline| *deadline > now);
        if self.in_flight.len() < before {
            self.believed_leader = None;
        }
        if self.stopped {
            return;
        }
        match self.believed_leader {
            Some(leader) if self.in_flight.len() < IN_FLIGHT_MAX => {
                self.next_request += 1;
                self.next_value += 1;
                self.produced += 1;
                self.in_flight.insert(self.next_request, now + REQUEST_TIMEOUT_MS);
                let msg = Msg::Produce {
                    request: self.next_request,
                    value: self.next_value,
                };
                out.send(Addr::Node(leader), msg);
            }
            Some(_) => {}
            None => {
                if self.asking.is_none_or(|(_, deadline)| deadline <= now) {
                    self.next_request += 1;
                    self.asking = Some((self.next_request, now + REQUEST_TIMEOUT_MS));
                    let broker = rng.between(1, i64::from(brokers)) as i32;
                    out.send(
                        Addr::Node(broker),
                        Msg::WhoLeads {
                            request: self.next_request,
                        },
                    );
                }
            }
        }
    }

    pub fn on_message(&mut self, msg: Msg) {
        match msg {
            Msg::ProduceAnswer { request, result } => {
                // An answer to a request given up on (or a duplicate) changes nothing.
                if self.in_flight.remove(&request).is_none() {
                    return;
                }
                match result {
                    Ok(_) => self.acknowledged += 1,
                    Err(_) => self.believed_leader = None,
                }
            }
            Msg::Refused { request } => {
                if self.in_flight.remove(&request).is_some() {
                    self.believed_leader = None;
                }
                if self.asking.is_some_and(|(r, _)| r == request) {
                    self.asking = None;
                }
            }
            Msg::Leads { request, leader } if self.asking.is_some_and(|(r, _)| r == request) => {
                self.asking = None;
                self.believed_leader = (leader >= 0).then_some(leader);
            }
            _ => {}
        }
    }
}
