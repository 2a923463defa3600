//! `nurt consume TOPIC`: prints records as they arrive (long-poll fetches, no sleep loop).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use nurt_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use nurt_protocol::kafka_protocol::messages::FetchRequest;
use nurt_records::batch::Batches;
use nurt_records::record::decode_batch;

use crate::client::{error_name, topic_name, Router};
use crate::group::list_offsets;

const FETCH_MAX_WAIT_MS: i32 = 500;
const FETCH_BYTES_MAX: i32 = 8 << 20;
const PARTITION_FETCH_BYTES_MAX: i32 = 1 << 20;
const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    topic: String,
    /// Start at the earliest offset instead of the end (with --group: where nothing is committed).
    #[arg(long)]
    from_beginning: bool,
    /// Join this consumer group (partitions assigned by the broker, offsets committed).
    #[arg(long, conflicts_with_all = ["partition", "offset"])]
    group: Option<String>,
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

/// Where records go, and when to stop.
#[derive(Debug)]
pub struct Printer {
    print_key: bool,
    key_separator: String,
    max_messages: Option<u64>,
    printed: u64,
    out: std::io::Stdout,
}

/// Prints the records of a fetched record set at or after `position`, advancing it.
/// Returns true once `max_messages` have been printed.
pub fn print_records(records: &[u8], position: &mut i64, printer: &mut Printer) -> anyhow::Result<bool> {
    let mut out = printer.out.lock();
    for batch in Batches::new(records) {
        let (_, raw) = batch.context("broker sent a malformed batch")?;
        let (header, decoded) = decode_batch(raw, DECOMPRESSED_BYTES_MAX).context("cannot decode batch")?;
        let from = *position;
        for r in decoded.iter().filter(|r| r.offset >= from) {
            if printer.print_key {
                out.write_all(r.key.as_deref().unwrap_or(b""))?;
                out.write_all(printer.key_separator.as_bytes())?;
            }
            out.write_all(r.value.as_deref().unwrap_or(b""))?;
            out.write_all(b"\n")?;
            printer.printed += 1;
            *position = r.offset + 1;
            if printer.max_messages.is_some_and(|m| printer.printed >= m) {
                out.flush()?;
                return Ok(true);
            }
        }
        *position = (*position).max(header.last_offset() + 1);
    }
    out.flush()?;
    Ok(false)
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut router = Router::connect(&args.bootstrap_server)?;
    let md = router.metadata(Some(&[args.topic.as_str()]))?;
    let topic = md.topics.first().context("broker sent no metadata")?;
    if topic.error_code != 0 {
        bail!(
            "topic {} is not available: {}",
            args.topic,
            error_name(topic.error_code)
        );
    }
    let mut printer = Printer {
        print_key: args.print_key,
        key_separator: args.key_separator.clone(),
        max_messages: args.max_messages,
        printed: 0,
        out: std::io::stdout(),
    };
    let timeout = args.timeout_ms.map(Duration::from_millis);
    if let Some(group) = &args.group {
        return crate::group_consumer::run(
            &mut router,
            group,
            &args.topic,
            topic.topic_id,
            args.from_beginning,
            &mut printer,
            timeout,
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
    let mut positions: BTreeMap<i32, i64> = match args.offset {
        Some(o) => partitions.iter().map(|&p| (p, o)).collect(),
        None => list_offsets(
            &mut router,
            &args.topic,
            &partitions,
            if args.from_beginning { -2 } else { -1 },
        )?,
    };
    let leaders: BTreeMap<i32, i32> = topic
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    let mut last_data = std::time::Instant::now();
    loop {
        if fetch_round(
            &mut router,
            &args.topic,
            &leaders,
            &mut positions,
            &mut printer,
            &mut last_data,
        )? {
            return Ok(());
        }
        if timeout.is_some_and(|t| last_data.elapsed() >= t) {
            return Ok(());
        }
    }
}

/// One fetch from each leader of the partitions read (a short wait when there are several,
/// so one idle leader does not hold the others up). True once the printer has had enough.
pub fn fetch_round(
    router: &mut Router,
    topic: &str,
    leaders: &BTreeMap<i32, i32>,
    positions: &mut BTreeMap<i32, i64>,
    printer: &mut Printer,
    last_data: &mut std::time::Instant,
) -> anyhow::Result<bool> {
    let mut by_leader: BTreeMap<i32, Vec<FetchPartition>> = BTreeMap::new();
    for (&p, &o) in positions.iter() {
        let leader = leaders.get(&p).copied().unwrap_or(-1);
        if leader < 0 {
            bail!("partition {p} of {topic} has no leader now (its replicas are down); try again later");
        }
        by_leader.entry(leader).or_default().push(
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(o)
                .with_partition_max_bytes(PARTITION_FETCH_BYTES_MAX),
        );
    }
    let max_wait_ms = if by_leader.len() > 1 { 100 } else { FETCH_MAX_WAIT_MS };
    for (leader, fetch_partitions) in by_leader {
        let request = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_BYTES_MAX)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(fetch_partitions)]);
        let response = router.broker(leader)?.send(&request, 12)?;
        if response.error_code != 0 {
            bail!("fetch failed: {}", error_name(response.error_code));
        }
        for t in response.responses {
            for p in t.partitions {
                if p.error_code != 0 {
                    bail!(
                        "fetch from partition {} failed: {}",
                        p.partition_index,
                        error_name(p.error_code)
                    );
                }
                let (Some(records), Some(position)) = (p.records, positions.get_mut(&p.partition_index)) else {
                    continue;
                };
                let before = *position;
                if print_records(&records, position, printer)? {
                    return Ok(true);
                }
                if *position != before {
                    *last_data = std::time::Instant::now();
                }
            }
        }
    }
    Ok(false)
}
