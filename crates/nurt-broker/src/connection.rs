//! One client connection: frames in, responses out, strictly in request order.
//!
//! Requests of a connection are handled one after another (as Kafka does), so a producer's
//! batches reach each partition in the order sent; responses go to a writer task through a
//! bounded queue so the next request is read while the previous answer is being written.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use nurt_log::ReadSlice;
use nurt_protocol::fetch::{encode_fetch_response, Part};
use nurt_protocol::{encode_response, frame, inspect, ProtocolError};
use tokio::io::Interest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::budget::{Charge, OverBudget, RequestBudget};
use crate::handlers::{self, Reply};
use crate::Broker;

/// Responses queued for the writer before the reader waits (back-pressure).
const RESPONSES_QUEUED_MAX: usize = 16;
/// Bytes the read buffer grows by at most per read, so a large announced frame costs memory
/// only as its bytes actually arrive.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// Logs why a connection was closed: every case at debug level, and at most one a second
/// as a warning (with how many others there were), so a flood cannot flood the log.
fn log_rejected(peer: SocketAddr, reason: &dyn std::fmt::Display) {
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    tracing::debug!("closing connection from {peer}: {reason}");
    let now = crate::now_ms() as u64 / 1000;
    if LAST_SECOND.swap(now, Ordering::Relaxed) != now {
        let suppressed = SUPPRESSED.swap(0, Ordering::Relaxed);
        if suppressed == 0 {
            tracing::warn!("closing connection from {peer}: {reason}");
        } else {
            tracing::warn!(
                "closing connection from {peer}: {reason} (and {suppressed} other connection(s) closed for bad requests since the last such warning; NURT_LOG=debug lists each)"
            );
        }
    } else {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
enum ReadError {
    Closed,
    Io(std::io::Error),
    Idle,
    Frame(ProtocolError),
    OverBudget(OverBudget),
}

/// Reads one frame, waiting at most `idle` for each chunk. Its bytes are charged to the
/// request budget as they arrive, before the buffer grows for them (an announced length
/// costs nothing until it is sent); the charge comes back with the frame.
async fn read_frame(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max_bytes: usize,
    idle: Duration,
    budget: &RequestBudget,
) -> Result<(Bytes, Charge), ReadError> {
    async fn fill(
        rd: &mut OwnedReadHalf,
        buf: &mut BytesMut,
        want: usize,
        idle: Duration,
        mut charge: Option<(&RequestBudget, &mut Charge)>,
    ) -> Result<(), ReadError> {
        while buf.len() < want {
            let grow = (want - buf.len()).min(READ_CHUNK_BYTES);
            if let Some((budget, charge)) = charge.as_mut() {
                // Waiting for room counts as idle time: a frame that cannot get memory for
                // this long is closed rather than held forever.
                match tokio::time::timeout(idle, budget.charge_frame(charge, buf.len() + grow)).await {
                    Err(_) => return Err(ReadError::Idle),
                    Ok(Err(e)) => return Err(ReadError::OverBudget(e)),
                    Ok(Ok(())) => {}
                }
            }
            buf.reserve(grow);
            match tokio::time::timeout(idle, rd.read_buf(buf)).await {
                Err(_) => return Err(ReadError::Idle),
                Ok(Err(e)) => return Err(ReadError::Io(e)),
                Ok(Ok(0)) => return Err(ReadError::Closed),
                Ok(Ok(_)) => {}
            }
        }
        Ok(())
    }
    fill(rd, buf, 4, idle, None).await?;
    let len = frame::check_length([buf[0], buf[1], buf[2], buf[3]], max_bytes).map_err(ReadError::Frame)?;
    let mut charge = budget.admit_frame(len).map_err(ReadError::OverBudget)?;
    fill(rd, buf, 4 + len, idle, Some((budget, &mut charge))).await?;
    buf.advance(4);
    Ok((buf.split_to(len).freeze(), charge))
}

/// An encoded response: byte runs and file ranges, written in order.
type Outgoing = Vec<Part<ReadSlice>>;

/// Record sets at least this large go from the segment to the socket with `sendfile`;
/// smaller ones are read and written with the surrounding bytes (fewer syscalls).
const SENDFILE_MIN_BYTES: usize = 32 * 1024;

/// Sends a file range with `sendfile(2)`, waiting for socket space. Storage without a file
/// descriptor is read and written instead.
async fn send_file(wr: &mut OwnedWriteHalf, slice: &ReadSlice) -> std::io::Result<()> {
    let Some(file) = slice.file.os_file() else {
        return wr.write_all(&slice.read_to_vec()?).await;
    };
    let fd = std::os::fd::AsFd::as_fd(&*file);
    let stream: &TcpStream = wr.as_ref();
    let mut offset = slice.position;
    let end = slice.position + slice.len as u64;
    while offset < end {
        let want = (end - offset) as usize;
        let sent = stream
            .async_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(stream, fd, Some(&mut offset), want).map_err(std::io::Error::from)
            })
            .await?;
        if sent == 0 {
            // The file shrank under us: the declared length can no longer be honoured.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// Writes one part; small record sets join the pending bytes, large ones are sent from the
/// file after flushing what is pending.
async fn write_part(wr: &mut OwnedWriteHalf, pending: &mut BytesMut, part: Part<ReadSlice>) -> std::io::Result<()> {
    match part {
        Part::Bytes(b) => pending.extend_from_slice(&b),
        Part::Records(slice, len) if len < SENDFILE_MIN_BYTES => pending.extend_from_slice(&slice.read_to_vec()?),
        Part::Records(slice, _) => {
            wr.write_all(pending).await?;
            pending.clear();
            send_file(wr, &slice).await?;
        }
    }
    Ok(())
}

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Outgoing>) {
    let mut pending = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let mut responses = vec![first];
        // Coalesce whatever else is ready into as few writes as possible.
        while responses.len() < 64 {
            match rx.try_recv() {
                Ok(more) => responses.push(more),
                Err(_) => break,
            }
        }
        for part in responses.into_iter().flatten() {
            if write_part(&mut wr, &mut pending, part).await.is_err() {
                return;
            }
        }
        if wr.write_all(&pending).await.is_err() {
            return;
        }
        pending.clear();
    }
    let _ = wr.shutdown().await;
}

/// Serves one connection until the client leaves, misbehaves, idles out, or shutdown.
/// `internal`: a connection of the internal listener, from another node.
pub async fn run(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    internal: bool,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Outgoing>(RESPONSES_QUEUED_MAX);
    let writer = tokio::spawn(write_loop(wr, rx));
    let max_bytes = broker.config.socket_request_max_bytes();
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms());
    let budget = broker.request_budget.clone();
    let mut buf = BytesMut::with_capacity(4 * 1024);
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, &mut buf, max_bytes, idle, &budget) => f,
            _ = shutdown.changed() => break,
        };
        let (frame, mut charge) = match frame {
            Ok(f) => f,
            Err(ReadError::Closed) => break,
            Err(ReadError::Idle) => {
                tracing::debug!("closing idle connection from {peer}");
                break;
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!("connection from {peer}: {e}");
                break;
            }
            Err(ReadError::Frame(e)) => {
                log_rejected(peer, &e);
                break;
            }
            Err(ReadError::OverBudget(e)) => {
                log_rejected(peer, &e);
                break;
            }
        };
        if internal {
            if let Some((api_key, _, correlation_id)) = nurt_protocol::header::peek(&frame) {
                if api_key >= crate::rpc::RPC_KEY_MIN {
                    let answer = match crate::rpc::request_body(&frame) {
                        Some(body) => crate::internal::handle(&broker, api_key, body).await,
                        None => Err(std::io::Error::other("truncated internal request")),
                    };
                    match answer {
                        Ok(answer) => {
                            let out = crate::rpc::response_frame(correlation_id, &answer);
                            drop(charge);
                            if tx.send(vec![Part::Bytes(out.freeze())]).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        Err(e) => {
                            log_rejected(peer, &e);
                            break;
                        }
                    }
                }
            }
        }
        let request = match inspect(&frame) {
            Ok(r) => r,
            Err(ProtocolError::UnsupportedVersion { api_key: 18, .. }) => {
                let correlation_id = nurt_protocol::header::peek(&frame).map_or(0, |h| h.2);
                if tx
                    .send(vec![Part::Bytes(
                        handlers::unsupported_version_response(correlation_id).freeze(),
                    )])
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Err(e) => {
                log_rejected(peer, &e);
                break;
            }
        };
        if let Err(e) = budget.admit_decoding(&mut charge, request.elements).await {
            log_rejected(peer, &e);
            break;
        }
        let request = match request.decode() {
            Ok(r) => r,
            Err(e) => {
                log_rejected(peer, &e);
                break;
            }
        };
        let (api_key, version, correlation_id) = (
            request.api_key,
            request.header.api_version,
            request.header.correlation_id,
        );
        let out = match handlers::handle(&broker, peer, internal, request).await {
            Reply::None => continue,
            Reply::Fetch(parts) => encode_fetch_response(version, correlation_id, parts),
            Reply::Message(response) => {
                let mut buf = BytesMut::new();
                if let Err(e) = encode_response(&mut buf, api_key, version, correlation_id, &response) {
                    tracing::error!("cannot encode {api_key:?} v{version} response for {peer}: {e}");
                    break;
                }
                vec![Part::Bytes(buf.freeze())]
            }
        };
        // The request and its decoded form are gone; the response is queued (bounded).
        drop(charge);
        if tx.send(out).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
