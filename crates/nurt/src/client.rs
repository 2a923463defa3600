//! A small blocking Kafka client for the CLI tools, over `kafka-protocol`'s encoders.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use nurt_protocol::kafka_protocol::messages::{MetadataRequest, MetadataResponse, RequestHeader, TopicName};
use nurt_protocol::kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Responses larger than this are refused (the CLI asks for at most a few MiB).
const RESPONSE_BYTES_MAX: usize = 256 << 20;

/// One connection to a broker.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    addr: String,
    correlation_id: i32,
}

impl Client {
    /// Connects, with an error that tells a person what to do.
    pub fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("cannot reach broker at {addr} — is `nurt serve` running? (use --bootstrap-server HOST:PORT for another address)"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Self {
            stream,
            addr: addr.to_string(),
            correlation_id: 0,
        })
    }

    /// Sends `request` at `version` and waits for its response.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("nurt-cli")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version))?;
        request.encode(&mut body, version)?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .with_context(|| format!("sending to {}", self.addr))?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .with_context(|| format!("broker at {} closed the connection", self.addr))?;
        let len = i32::from_be_bytes(len);
        if len < 4 || len as usize > RESPONSE_BYTES_MAX {
            bail!("broker at {} sent an invalid response length {len}", self.addr);
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        let mut bytes = Bytes::from(buf);
        let correlation = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if correlation != self.correlation_id {
            bail!(
                "response correlation id {correlation} does not match request {}",
                self.correlation_id
            );
        }
        let _ = bytes::Buf::get_i32(&mut bytes);
        if R::Response::header_version(version) >= 1 {
            // Tagged fields of the response header: the CLI expects none but skips any.
            let count = read_uvarint(&mut bytes)?;
            for _ in 0..count {
                let _tag = read_uvarint(&mut bytes)?;
                let size = read_uvarint(&mut bytes)? as usize;
                if size > bytes.len() {
                    bail!("truncated response header");
                }
                let _ = bytes.split_to(size);
            }
        }
        R::Response::decode(&mut bytes, version).context("decoding response")
    }

    /// Metadata for `topics` (all topics with `None`), never auto-creating.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> anyhow::Result<MetadataResponse> {
        use nurt_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                    })
                    .collect()
            }));
        self.send(&request, 12)
    }
}

fn read_uvarint(b: &mut Bytes) -> anyhow::Result<u32> {
    let mut v = 0u32;
    for i in 0..5 {
        if b.is_empty() {
            bail!("truncated varint");
        }
        let byte = bytes::Buf::get_u8(b);
        v |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("varint too long")
}

/// A topic name for requests.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Kafka's name for an error code, for messages people read.
pub fn error_name(code: i16) -> String {
    use nurt_protocol::kafka_protocol::error::ResponseError;
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?} ({code})"),
        None => format!("error code {code}"),
    }
}

/// Connections to every broker of a cluster, found through one bootstrap broker: requests
/// about a partition go to its leader, requests about a group to its coordinator (the CLI
/// works the same against one node or a cluster).
#[derive(Debug)]
pub struct Router {
    bootstrap: String,
    /// Broker id → `HOST:PORT`, from the last Metadata.
    brokers: std::collections::HashMap<i32, String>,
    conns: std::collections::HashMap<String, Client>,
}

impl Router {
    /// Connects to the bootstrap broker.
    pub fn connect(bootstrap: &str) -> anyhow::Result<Self> {
        let mut router = Self {
            bootstrap: bootstrap.to_string(),
            brokers: Default::default(),
            conns: Default::default(),
        };
        router.conn(bootstrap)?;
        Ok(router)
    }

    fn conn(&mut self, addr: &str) -> anyhow::Result<&mut Client> {
        if !self.conns.contains_key(addr) {
            self.conns.insert(addr.to_string(), Client::connect(addr)?);
        }
        self.conns.get_mut(addr).context("a connection made just now is there")
    }

    /// The bootstrap broker's connection (for requests any broker answers).
    pub fn any(&mut self) -> anyhow::Result<&mut Client> {
        let addr = self.bootstrap.clone();
        self.conn(&addr)
    }

    /// Metadata (of `topics`, or all), remembering every broker's address.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> anyhow::Result<MetadataResponse> {
        let md = self.any()?.metadata(topics)?;
        self.brokers = md
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        Ok(md)
    }

    /// The connection to broker `id` (as the last Metadata named it).
    pub fn broker(&mut self, id: i32) -> anyhow::Result<&mut Client> {
        let addr = self
            .brokers
            .get(&id)
            .cloned()
            .with_context(|| format!("broker {id} is not in the cluster's metadata (is it down?)"))?;
        self.conn(&addr)
    }

    /// The connection to the coordinator of group `group_id` (FindCoordinator).
    pub fn coordinator(&mut self, group_id: &str) -> anyhow::Result<&mut Client> {
        self.coordinator_of(group_id, 0)
    }

    /// The connection to the coordinator of `key`: a group (key type 0) or a transactional
    /// id (1).
    pub fn coordinator_of(&mut self, key: &str, key_type: i8) -> anyhow::Result<&mut Client> {
        use nurt_protocol::kafka_protocol::messages::FindCoordinatorRequest;
        let group_id = key;
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(key.to_string()))
            .with_key_type(key_type);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let answer = self.any()?.send(&request, 3)?;
            if answer.error_code == 0 {
                let addr = format!("{}:{}", answer.host, answer.port);
                return self.conn(&addr);
            }
            // COORDINATOR_NOT_AVAILABLE while the offsets topic is created or moves.
            if std::time::Instant::now() > deadline {
                bail!("no coordinator for {group_id}: {}", error_name(answer.error_code));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
