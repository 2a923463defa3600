//! `nurt produce TOPIC`: lines from stdin become records.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use nurt_protocol::kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use nurt_protocol::kafka_protocol::messages::ProduceRequest;
use nurt_records::{BatchBuilder, Compression};

use crate::client::{error_name, topic_name, Router};
use crate::murmur::partition_for_key;

/// Records per batch at most when input is piped in quickly.
const BATCH_RECORDS_MAX: usize = 10_000;
/// Uncompressed bytes per partition batch at most.
const BATCH_BYTES_MAX: usize = 512 * 1024;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    topic: String,
    /// Split each line at the first SEP into key and value (default: no key).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send everything to this partition (default: by key hash, round-robin without key).
    #[arg(long)]
    partition: Option<i32>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Broker to talk to.
    #[arg(long, default_value = "localhost:9092")]
    bootstrap_server: String,
}

fn codec(name: &str) -> anyhow::Result<Compression> {
    Ok(match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => bail!("unknown compression '{other}': use none, gzip, snappy, lz4 or zstd"),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let compression = codec(&args.compression)?;
    let mut router = Router::connect(&args.bootstrap_server)?;
    let md = router.metadata(Some(&[args.topic.as_str()]))?;
    let topic = md.topics.first().context("broker sent no metadata")?;
    if topic.error_code != 0 {
        bail!(
            "topic {} is not available: {} (create it with `nurt topic create {}`)",
            args.topic,
            error_name(topic.error_code),
            args.topic
        );
    }
    let partitions = topic.partitions.len() as i32;
    let leaders: BTreeMap<i32, i32> = topic
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    if let Some(p) = args.partition {
        if p < 0 || p >= partitions {
            bail!(
                "partition {p} does not exist: {} has {partitions} partition(s)",
                args.topic
            );
        }
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut pending: BTreeMap<i32, BatchBuilder> = BTreeMap::new();
    let mut count = 0usize;
    let mut next_rr = 0i32;
    let mut line = String::new();
    loop {
        line.clear();
        let n = input.read_line(&mut line)?;
        if n > 0 {
            let text = line.trim_end_matches(['\n', '\r']);
            let (key, value) = match &args.key_separator {
                Some(sep) => match text.split_once(sep.as_str()) {
                    Some((k, v)) => (Some(k.as_bytes()), v.as_bytes()),
                    None => (None, text.as_bytes()),
                },
                None => (None, text.as_bytes()),
            };
            let partition = args.partition.unwrap_or_else(|| match key {
                Some(k) => partition_for_key(k, partitions),
                None => {
                    next_rr = (next_rr + 1) % partitions;
                    next_rr
                }
            });
            let ts = now_ms();
            pending
                .entry(partition)
                .or_insert_with(|| BatchBuilder::new(compression, ts))
                .push(ts, key, Some(value), &[]);
            count += 1;
        }
        let full = pending
            .values()
            .any(|b| b.len() >= BATCH_RECORDS_MAX || b.records_bytes() >= BATCH_BYTES_MAX);
        // Send when input pauses (interactive use), a batch is full, or at the end.
        if n == 0 || full || input.fill_buf().map(|b| b.is_empty()).unwrap_or(true) {
            send(&mut router, &leaders, &args.topic, &mut pending)?;
        }
        if n == 0 {
            break;
        }
    }
    eprintln!("sent {count} record(s) to {}", args.topic);
    Ok(())
}

/// Sends the pending batches, each partition's to its leader (one request per leader).
fn send(
    router: &mut Router,
    leaders: &BTreeMap<i32, i32>,
    topic: &str,
    pending: &mut BTreeMap<i32, BatchBuilder>,
) -> anyhow::Result<()> {
    let mut by_leader: BTreeMap<i32, Vec<PartitionProduceData>> = BTreeMap::new();
    for (p, builder) in std::mem::take(pending) {
        let leader = leaders.get(&p).copied().unwrap_or(-1);
        if leader < 0 {
            bail!("partition {p} of {topic} has no leader now (its replicas are down); try again later");
        }
        by_leader.entry(leader).or_default().push(
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(Bytes::from(builder.build()?))),
        );
    }
    for (leader, partition_data) in by_leader {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(partition_data)]);
        let response = router.broker(leader)?.send(&request, 9)?;
        for t in response.responses {
            for p in t.partition_responses {
                if p.error_code != 0 {
                    bail!(
                        "partition {} refused the records: {}{}",
                        p.index,
                        error_name(p.error_code),
                        p.error_message.map(|m| format!(": {m}")).unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}
