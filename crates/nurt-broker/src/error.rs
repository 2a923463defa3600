//! The one error type of this crate: why the broker could not start or keep running.

use std::path::PathBuf;

/// A broker-level failure (request-level failures become Kafka error codes instead).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("config error: {0}")]
    Config(String),
    #[error("I/O error on {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(
        "cannot listen on {addr}: {source} (is another broker already running there? pick another port with --listen)"
    )]
    Bind { addr: String, source: std::io::Error },
    #[error("storage error: {0}")]
    Storage(#[from] nurt_log::LogError),
    #[error("the metadata log is corrupt: {0}")]
    CorruptMetadata(String),
    #[error("data dir belongs to another node: {0}")]
    WrongNode(String),
    #[error("metadata quorum: {0}")]
    Quorum(String),
}
