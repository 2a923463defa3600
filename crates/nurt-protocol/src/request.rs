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

/// A request whose header is parsed and whose body passed the guard, not yet decoded: what
/// decoding it will cost is known ([`InspectedRequest::elements`]) before anything is allocated.
#[derive(Debug)]
pub struct InspectedRequest {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    body: Bytes,
    flexible: bool,
    /// Collection elements in the body (each becomes at least one decoded value).
    pub elements: usize,
}

/// Parses the header and walks the body of a whole frame (without its length prefix).
/// Unknown keys, versions not served and malformed bodies are errors; the caller answers
/// ApiVersions' `UnsupportedVersion` and closes the connection for the rest.
pub fn inspect(frame: &Bytes) -> Result<InspectedRequest, ProtocolError> {
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
    let elements = guard::check(header.api_key, version, flexible, &body)?;
    Ok(InspectedRequest {
        header,
        api_key,
        body,
        flexible,
        elements,
    })
}

impl InspectedRequest {
    /// Decodes the body the guard has walked.
    pub fn decode(self) -> Result<DecodedRequest, ProtocolError> {
        debug_assert_eq!(
            self.flexible,
            self.api_key.request_header_version(self.header.api_version) >= 2
        );
        let version = self.header.api_version;
        let decoded = if crate::legacy::is_legacy(self.header.api_key, version) {
            crate::legacy::decode(self.header.api_key, version, &self.body)?
        } else {
            let mut body = self.body;
            RequestKind::decode(self.api_key, &mut body, version)
                .map_err(|e| ProtocolError::Malformed(e.to_string()))?
        };
        Ok(DecodedRequest {
            header: self.header,
            api_key: self.api_key,
            body: decoded,
        })
    }
}

/// [`inspect`] then [`InspectedRequest::decode`].
pub fn decode_request(frame: &Bytes) -> Result<DecodedRequest, ProtocolError> {
    inspect(frame)?.decode()
}
