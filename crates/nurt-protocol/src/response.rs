//! Encoding responses with their header and length prefix.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};

use crate::ProtocolError;

/// Appends `[length][header][body]` for a response to `out`.
pub fn encode_response(
    out: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<(), ProtocolError> {
    let start = out.len();
    out.put_i32(0); // patched below
    out.put_i32(correlation_id);
    if api_key.response_header_version(version) >= 1 {
        out.put_u8(0); // no tagged fields
    }
    if crate::legacy::is_legacy(api_key as i16, version) {
        crate::legacy::encode(out, version, body)?;
    } else {
        body.encode(out, version)
            .map_err(|e| ProtocolError::Malformed(format!("encoding response: {e}")))?;
    }
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}
