//! Request headers (v1 and v2), parsed by hand so a short frame is an error, never a panic.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::guard::Cursor;
use crate::ProtocolError;

/// The fields of a request header Nurt uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// Just api key, version and correlation id: enough to answer even when the rest is bad.
pub fn peek(frame: &[u8]) -> Option<(i16, i16, i32)> {
    if frame.len() < 8 {
        return None;
    }
    Some((
        i16::from_be_bytes([frame[0], frame[1]]),
        i16::from_be_bytes([frame[2], frame[3]]),
        i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    ))
}

/// Parses the header at the front of `frame`; returns it and the body.
pub fn parse(frame: &Bytes) -> Result<(RequestHeader, ApiKey, Bytes), ProtocolError> {
    let (api_key, api_version, correlation_id) = peek(frame).ok_or(ProtocolError::BadHeader("shorter than 8 bytes"))?;
    let key = ApiKey::try_from(api_key).map_err(|_| ProtocolError::UnknownApiKey(api_key))?;
    let mut cur = Cursor::new(&frame[8..]);
    let client_id = cur
        .legacy_string()
        .map_err(|_| ProtocolError::BadHeader("client id"))?
        .map(|b| String::from_utf8_lossy(b).into_owned());
    if key.request_header_version(api_version) >= 2 {
        cur.skip_tagged_fields()
            .map_err(|_| ProtocolError::BadHeader("tagged fields"))?;
    }
    let body = frame.slice(8 + cur.position()..);
    Ok((
        RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
        },
        key,
        body,
    ))
}
