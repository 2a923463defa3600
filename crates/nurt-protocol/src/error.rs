//! The one error type of this crate.

/// Why a frame could not become a request. Every variant closes the connection except where
/// the broker chooses to answer (unsupported ApiVersions version).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("frame length {0} is negative")]
    NegativeLength(i32),
    #[error("frame length {length} exceeds socket.request.max.bytes ({max})")]
    FrameTooLarge { length: usize, max: usize },
    #[error("request header truncated or malformed: {0}")]
    BadHeader(&'static str),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("api key {api_key} version {version} is not supported")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error("malformed request body: {0}")]
    Malformed(String),
}
