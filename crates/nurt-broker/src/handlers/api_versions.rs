//! ApiVersions: the advertised table, and the v0 error answer to versions we do not know.

use bytes::{BufMut, BytesMut};
use nurt_protocol::kafka_protocol::messages::api_versions_response::ApiVersion;
use nurt_protocol::kafka_protocol::messages::ApiVersionsResponse;
use nurt_protocol::kafka_protocol::protocol::Encodable;
use nurt_protocol::versions::SUPPORTED;

use crate::codes;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// The normal answer.
pub fn handle() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_api_keys(api_keys())
        .with_finalized_features_epoch(-1)
}

/// UNSUPPORTED_VERSION in a v0 response (header v0), which every client can parse, listing
/// our versions so the client can retry with one we speak. The connection stays open.
pub fn unsupported_version_response(correlation_id: i32) -> BytesMut {
    let body = ApiVersionsResponse::default()
        .with_error_code(codes::UNSUPPORTED_VERSION)
        .with_api_keys(api_keys());
    let mut out = BytesMut::new();
    out.put_i32(0);
    out.put_i32(correlation_id);
    // v0 of a response built by us cannot fail to encode.
    if body.encode(&mut out, 0).is_err() {
        out.truncate(8);
    }
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}
