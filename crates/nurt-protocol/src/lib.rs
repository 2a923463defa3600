//! The Kafka wire protocol as Nurt speaks it.
//!
//! Every request goes through three steps: the frame length is checked against
//! `socket.request.max.bytes` ([`frame`]), the header is parsed by hand ([`header`]), and the body
//! is walked against a static description of its schema ([`guard`]) before `kafka-protocol`
//! decodes it. The walk proves that every array and string length fits in the bytes actually
//! received, so the generated decoders (which pre-allocate from lengths) never see a lie.

pub mod error;
pub mod fetch;
pub mod frame;
pub mod guard;
pub mod header;
pub mod legacy;
pub mod request;
pub mod response;
mod schema;
pub mod versions;

pub use error::ProtocolError;
pub use header::RequestHeader;
pub use kafka_protocol;
pub use request::{decode_request, inspect, DecodedRequest, InspectedRequest};
pub use response::encode_response;

#[cfg(test)]
mod tests;
