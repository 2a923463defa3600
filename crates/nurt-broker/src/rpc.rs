//! Requests between nodes over the internal listener (`--controller-listen`): Raft's RPCs and
//! controller operations forwarded to the active controller. Frames use Kafka's framing (an
//! `i32` length, then a request header) with API keys from [`RPC_KEY_MIN`] up, which no Kafka
//! client sends; bodies are postcard-encoded. Replica fetches use Kafka's own Fetch on the
//! same listener.
//!
//! A client holds one connection per peer and sends one request at a time; any error drops
//! the connection (the next call reconnects).

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The lowest API key of Nurt's internal requests.
pub const RPC_KEY_MIN: i16 = 30_000;
/// Raft AppendEntries.
pub const RAFT_APPEND_ENTRIES: i16 = 30_000;
/// Raft Vote.
pub const RAFT_VOTE: i16 = 30_001;
/// Raft full snapshot transfer.
pub const RAFT_SNAPSHOT: i16 = 30_002;
/// A controller operation, executed by the active controller.
pub const CONTROLLER_OP: i16 = 30_010;
/// Transaction markers from a transaction coordinator to a partition leader (Kafka's
/// WriteTxnMarkers between brokers; `txn_markers.rs`).
pub const TXN_MARKERS: i16 = 30_020;
/// A partition leader asks a transaction coordinator whether partitions are in a producer's
/// ongoing transaction (KIP-890 part 1; see `txn_verify.rs`).
pub const TXN_VERIFY: i16 = 30_021;

/// Responses larger than this are refused (a snapshot of a large image fits).
const RESPONSE_BYTES_MAX: usize = 256 << 20;

/// The request frame for an internal call.
pub fn request_frame(api_key: i16, correlation_id: i32, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(14 + body.len());
    out.put_i32((10 + body.len()) as i32);
    out.put_i16(api_key);
    out.put_i16(0);
    out.put_i32(correlation_id);
    out.put_i16(-1);
    out.put_slice(body);
    out
}

/// The response frame answering `correlation_id`.
pub fn response_frame(correlation_id: i32, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(8 + body.len());
    out.put_i32((4 + body.len()) as i32);
    out.put_i32(correlation_id);
    out.put_slice(body);
    out
}

/// The body of an internal request frame (after the length prefix): skips the header.
pub fn request_body(frame: &[u8]) -> Option<&[u8]> {
    // api key, version, correlation id, client id (i16 length, -1 for null)
    let len = i16::from_be_bytes([*frame.get(8)?, *frame.get(9)?]);
    let start = 10 + usize::try_from(len).unwrap_or(0);
    frame.get(start..)
}

/// A connection to one peer's internal listener.
#[derive(Debug)]
pub struct RpcClient {
    addr: String,
    stream: Option<TcpStream>,
    correlation_id: i32,
}

impl RpcClient {
    /// A client for the peer at `addr` (`HOST:PORT`); it connects on first use.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            stream: None,
            correlation_id: 0,
        }
    }

    /// The peer's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and waits for its answer, all within `timeout`. Connection errors
    /// are `ConnectionRefused`/`NotConnected`-like kinds the caller can tell apart.
    pub async fn call(&mut self, api_key: i16, body: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
        let result = tokio::time::timeout(timeout, self.call_inner(api_key, body)).await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(std::io::ErrorKind::TimedOut.into())
            }
        }
    }

    async fn call_inner(&mut self, api_key: i16, body: &[u8]) -> std::io::Result<Vec<u8>> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        stream
            .write_all(&request_frame(api_key, self.correlation_id, body))
            .await?;
        let len = stream.read_i32().await?;
        let len = usize::try_from(len).map_err(|_| std::io::Error::other("negative response length"))?;
        if !(4..=RESPONSE_BYTES_MAX).contains(&len) {
            return Err(std::io::Error::other(format!("response of {len} bytes")));
        }
        let correlation_id = stream.read_i32().await?;
        if correlation_id != self.correlation_id {
            return Err(std::io::Error::other("response for another request"));
        }
        let mut answer = vec![0u8; len - 4];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }
}
