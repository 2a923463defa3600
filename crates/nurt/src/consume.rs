//! `nurt consume TOPIC`: prints records as they arrive (long-poll fetches, no sleep loop).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{bail, Context};
use clap::Args;
use nurt_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use nurt_protocol::kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use nurt_protocol::kafka_protocol::messages::{FetchRequest, ListOffsetsRequest};
use nurt_records::batch::Batches;
use nurt_records::record::decode_batch;

use crate::client::{error_name, topic_name, Client};

const FETCH_MAX_WAIT_MS: i32 = 500;
const FETCH_BYTES_MAX: i32 = 8 << 20;
const PARTITION_FETCH_BYTES_MAX: i32 = 1 << 20;
const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    topic: String,
    /// Start at the earliest offset instead of the end.
    #[arg(long)]
    from_beginning: bool,
    /// Only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Start at this offset (needs --partition).
    #[arg(long, requires = "partition")]
    offset: Option<i64>,
    /// Print keys too, as KEY<separator>VALUE.
    #[arg(long)]
    print_key: bool,
    /// Separator between key and value with --print-key.
    #[arg(long, default_value = "\t")]
    key_separator: String,
    /// Exit after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Exit when no record arrives for this long.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Broker to talk to.
    #[arg(long, default_value = "localhost:9092")]
    bootstrap_server: String,
}

fn start_offsets(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(nurt_protocol::kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response = client.send(&request, 7)?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "cannot find start offset of partition {}: {}",
                    p.partition_index,
                    error_name(p.error_code)
                );
            }
            out.insert(p.partition_index, p.offset);
        }
    }
    Ok(out)
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut client = Client::connect(&args.bootstrap_server)?;
    let md = client.metadata(Some(&[args.topic.as_str()]))?;
    let topic = md.topics.first().context("broker sent no metadata")?;
    if topic.error_code != 0 {
        bail!(
            "topic {} is not available: {}",
            args.topic,
            error_name(topic.error_code)
        );
    }
    let all: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    let partitions = match args.partition {
        Some(p) if !all.contains(&p) => bail!(
            "partition {p} does not exist: {} has {} partition(s)",
            args.topic,
            all.len()
        ),
        Some(p) => vec![p],
        None => all,
    };
    let mut positions = match args.offset {
        Some(o) => partitions.iter().map(|&p| (p, o)).collect(),
        None => start_offsets(
            &mut client,
            &args.topic,
            &partitions,
            if args.from_beginning { -2 } else { -1 },
        )?,
    };
    let stdout = std::io::stdout();
    let mut printed = 0u64;
    let mut last_data = std::time::Instant::now();
    loop {
        let fetch_partitions = positions
            .iter()
            .map(|(&p, &o)| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(o)
                    .with_partition_max_bytes(PARTITION_FETCH_BYTES_MAX)
            })
            .collect();
        let request = FetchRequest::default()
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_BYTES_MAX)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(&args.topic))
                .with_partitions(fetch_partitions)]);
        let response = client.send(&request, 12)?;
        if response.error_code != 0 {
            bail!("fetch failed: {}", error_name(response.error_code));
        }
        let mut out = stdout.lock();
        for t in response.responses {
            for p in t.partitions {
                if p.error_code != 0 {
                    bail!(
                        "fetch from partition {} failed: {}",
                        p.partition_index,
                        error_name(p.error_code)
                    );
                }
                let Some(records) = p.records else { continue };
                let Some(position) = positions.get_mut(&p.partition_index) else {
                    continue;
                };
                for batch in Batches::new(&records) {
                    let (_, raw) = batch.context("broker sent a malformed batch")?;
                    let (header, decoded) = decode_batch(raw, DECOMPRESSED_BYTES_MAX).context("cannot decode batch")?;
                    for r in decoded.iter().filter(|r| r.offset >= *position) {
                        if args.print_key {
                            out.write_all(r.key.as_deref().unwrap_or(b""))?;
                            out.write_all(args.key_separator.as_bytes())?;
                        }
                        out.write_all(r.value.as_deref().unwrap_or(b""))?;
                        out.write_all(b"\n")?;
                        printed += 1;
                        if args.max_messages.is_some_and(|m| printed >= m) {
                            out.flush()?;
                            return Ok(());
                        }
                    }
                    *position = (*position).max(header.last_offset() + 1);
                    last_data = std::time::Instant::now();
                }
            }
        }
        out.flush()?;
        if args
            .timeout_ms
            .is_some_and(|t| last_data.elapsed().as_millis() as u64 >= t)
        {
            return Ok(());
        }
    }
}
