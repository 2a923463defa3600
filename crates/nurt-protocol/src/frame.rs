//! Length-prefixed framing: a big-endian i32 size, then that many bytes.

use crate::ProtocolError;

/// Default `socket.request.max.bytes` (100 MiB).
pub const SOCKET_REQUEST_MAX_BYTES: usize = 100 * 1024 * 1024;

/// Checks a frame's length prefix before any byte of it is buffered.
pub fn check_length(prefix: [u8; 4], max_bytes: usize) -> Result<usize, ProtocolError> {
    let length = i32::from_be_bytes(prefix);
    if length < 0 {
        return Err(ProtocolError::NegativeLength(length));
    }
    let length = length as usize;
    if length > max_bytes {
        return Err(ProtocolError::FrameTooLarge { length, max: max_bytes });
    }
    Ok(length)
}
