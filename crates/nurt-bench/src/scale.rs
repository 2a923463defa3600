//! The scale workload (`nurt bench --scale`, issue 13): one node hosting 1,000, 10,000 and
//! 100,000 partitions (one topic, grown 10,000 partitions per request) under an open-file
//! limit of 20,000, and what each cost becomes: creation time, RSS, open descriptors, a
//! produce and a consume spread over every partition, clean shutdown, start-up after a clean
//! shutdown and after SIGKILL (until every partition is open, read from `/metrics`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use crate::{kafka, system};

/// The open-file limit the node runs under (the machine).
pub const OPEN_FILES: u64 = 20_000;
/// Partitions added per CreatePartitions request (Kafka's per-request bound).
const PARTITIONS_PER_REQUEST: i32 = 10_000;
/// Partitions one producer or consumer handles.
const PARTITIONS_PER_CLIENT: i32 = 10_000;
/// Records produced per partition (100 B each): one, so 100,000 partitions stay a test of
/// partitions rather than of bytes.
const RECORDS_PER_PARTITION: u64 = 1;

/// What one size cost.
#[derive(Debug, Clone, Default)]
pub struct Point {
    pub partitions: i32,
    pub create_s: f64,
    pub rss_mib: u64,
    pub open_fds: usize,
    /// Seconds to write one record to every partition (acks=1), and to read them all back.
    pub produce_s: f64,
    pub consume_s: f64,
    pub shutdown_s: f64,
    pub clean_start_s: f64,
    pub crash_start_s: f64,
    pub rss_after_start_mib: u64,
}

/// A node under the open-file limit, its client and metrics ports.
struct Node {
    server: system::Server,
    metrics_port: u16,
}

fn start(nurt: &str, dir: &Path) -> anyhow::Result<(Node, Instant)> {
    let metrics_port = system::free_port()?;
    let script = format!(
        "ulimit -n {OPEN_FILES} && exec {nurt} serve --data-dir {{dir}}/scale --listen 127.0.0.1:{{port}} --metrics-listen 127.0.0.1:{metrics_port}"
    );
    let began = Instant::now();
    let server = system::start("nurt-scale", "sh", &["-c", &script], dir)?;
    Ok((Node { server, metrics_port }, began))
}

/// One sample of the node's `/metrics` (0 when absent or unreachable).
fn metric(port: u16, name: &str) -> u64 {
    let read = || -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    };
    read()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the node hosts `partitions` partitions; the seconds since `began`.
fn wait_open(node: &Node, partitions: u64, began: Instant) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(900);
    while metric(node.metrics_port, "nurt_partitions ") < partitions {
        if Instant::now() > deadline {
            bail!("{partitions} partitions not open within 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(began.elapsed().as_secs_f64())
}

fn grow(bootstrap: &str, topic: &str, total: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "300000")
        .create()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(600)));
    let results = rt.block_on(admin.create_partitions(&[NewPartitions::new(topic, total as usize)], &options))?;
    for r in results {
        if let Err((t, e)) = r {
            bail!("growing {t} to {total} partitions: {e}");
        }
    }
    Ok(())
}

fn signal(node: &Node, sig: &str) -> anyhow::Result<()> {
    let pid = node.server.child.id().to_string();
    let status = Command::new("kill").args([sig, &pid]).status()?;
    if !status.success() {
        bail!("kill {sig} {pid} failed");
    }
    Ok(())
}

/// Runs one size in a fresh data directory.
pub fn run(nurt: &str, work: &Path, partitions: i32, pb: &indicatif::ProgressBar) -> anyhow::Result<Point> {
    let dir = work.join(format!("scale-{partitions}"));
    std::fs::create_dir_all(&dir)?;
    let (mut node, _) = start(nurt, &dir)?;
    let bootstrap = format!("127.0.0.1:{}", node.server.port);
    // The offsets topic's 50 partitions are there from the start.
    let internal = 50;
    wait_open(&node, internal, Instant::now())?;
    let began = Instant::now();
    kafka::create_topic(&bootstrap, "wide", partitions.min(PARTITIONS_PER_REQUEST))?;
    let mut total = partitions.min(PARTITIONS_PER_REQUEST);
    while total < partitions {
        total = (total + PARTITIONS_PER_REQUEST).min(partitions);
        grow(&bootstrap, "wide", total)?;
        pb.set_position(total as u64);
    }
    let hosted = internal + partitions as u64;
    let create_s = wait_open(&node, hosted, began)?;
    let pid = node.server.child.id();
    let mut point = Point {
        partitions,
        create_s,
        rss_mib: system::rss_kib(pid) / 1024,
        open_fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
        ..Point::default()
    };
    // One client per 10,000 partitions, one after another: librdkafka's cost per partition
    // grows with the partitions one client handles (a single producer could not get one
    // record to each of 100,000 partitions within its 5-minute message timeout), and that
    // many partitions are written by many clients in practice.
    let slices: Vec<(i32, i32)> = (0..partitions)
        .step_by(PARTITIONS_PER_CLIENT as usize)
        .map(|first| (first, PARTITIONS_PER_CLIENT.min(partitions - first)))
        .collect();
    let t = Instant::now();
    for &(first, n) in &slices {
        kafka::produce_spread(&bootstrap, "wide", first, n, 100, n as u64 * RECORDS_PER_PARTITION)?;
    }
    point.produce_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for &(first, n) in &slices {
        kafka::read_all(&bootstrap, "wide", first, n, n as u64 * RECORDS_PER_PARTITION)?;
    }
    point.consume_s = t.elapsed().as_secs_f64();

    let stopping = Instant::now();
    signal(&node, "-TERM")?;
    node.server.child.wait().context("waiting for the clean shutdown")?;
    point.shutdown_s = stopping.elapsed().as_secs_f64();
    drop(node);

    let (node, began) = start(nurt, &dir)?;
    point.clean_start_s = wait_open(&node, hosted, began)?;
    point.rss_after_start_mib = system::rss_kib(node.server.child.id()) / 1024;
    signal(&node, "-KILL")?;
    drop(node);
    let (node, began) = start(nurt, &dir)?;
    point.crash_start_s = wait_open(&node, hosted, began)?;
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(point)
}
