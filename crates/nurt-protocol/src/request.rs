//! From a frame to a typed request, guarded.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};

use crate::{guard, header, versions, ProtocolError, RequestHeader};

const API_VERSIONS: i16 = 18;

/// A request ready for its handler.
#[derive(Debug)]
pub struct DecodedRequest {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
}

/// Decodes a whole frame (without its length prefix). Unknown keys, versions not served and
/// malformed bodies are errors; the caller answers ApiVersions' `UnsupportedVersion` and closes
/// the connection for the rest.
pub fn decode_request(frame: &Bytes) -> Result<DecodedRequest, ProtocolError> {
    // ApiVersions from a newer client: its header layout may be one we cannot know, so answer
    // from the fixed prefix alone (the broker replies UNSUPPORTED_VERSION and stays open).
    if let Some((API_VERSIONS, version, _)) = header::peek(frame) {
        if !versions::is_served(API_VERSIONS, version) {
            return Err(ProtocolError::UnsupportedVersion {
                api_key: API_VERSIONS,
                version,
            });
        }
    }
    let (header, api_key, body) = header::parse(frame)?;
    let version = header.api_version;
    if !versions::is_served(header.api_key, version) {
        return Err(ProtocolError::UnsupportedVersion {
            api_key: header.api_key,
            version,
        });
    }
    let flexible = api_key.request_header_version(version) >= 2;
    guard::check(header.api_key, version, flexible, &body)?;
    let mut body = body;
    let decoded =
        RequestKind::decode(api_key, &mut body, version).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    Ok(DecodedRequest {
        header,
        api_key,
        body: decoded,
    })
}
