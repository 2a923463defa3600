//! `nurt-bench` (also run as `nurt bench`): OpenMessaging-Benchmark-style workloads against a
//! Nurt broker it starts, driven by librdkafka, side by side with NATS JetStream and Redis
//! Streams on the same machine in the same run, and the acks=all workloads again against a
//! 3-node Nurt cluster. Writes a Markdown table, JSON and an SVG plot.
//!
//! Unsafe code is allowed here only for librdkafka's batch consume API (see `kafka::consume`).
#![allow(unsafe_code)]

mod cluster;
mod kafka;
mod peers;
mod report;
mod scale;
mod system;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use report::{Report, Row};

/// Benchmark Nurt against the systems users would pick instead.
#[derive(Debug, Parser)]
#[command(name = "nurt-bench")]
struct Args {
    /// The `nurt` binary to benchmark (default: the one next to this binary).
    #[arg(long)]
    nurt: Option<PathBuf>,
    /// Smaller workloads (about a minute in all).
    #[arg(long)]
    quick: bool,
    /// Skip NATS JetStream and Redis Streams.
    #[arg(long)]
    no_peers: bool,
    /// Skip the 3-node cluster (acks=all produce and latency against three local nodes).
    #[arg(long)]
    no_cluster: bool,
    /// Only the scale workload: one node with each of these partition counts (comma
    /// separated, e.g. 1000,10000,100000) under a 20,000 open-file limit; writes scale.md and
    /// scale.svg.
    #[arg(long, value_delimiter = ',')]
    scale: Vec<i32>,
    /// Where results.md, results.json and latency.svg go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
}

fn bar(label: &str, len: u64) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>34} [{bar:30}] {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(label.to_string());
    pb
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nurt = match args.nurt {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("nurt"),
    };
    let work = tempfile_dir()?;
    if !args.scale.is_empty() {
        return run_scale(&nurt, &work, &args.scale, &args.out);
    }
    let scale = if args.quick { 5 } else { 1 };
    let mut report = Report {
        machine: system::machine(),
        ..Default::default()
    };

    let broker = system::start(
        "nurt",
        nurt.to_str().context("nurt path")?,
        &["serve", "--data-dir", "{dir}/nurt", "--listen", "127.0.0.1:{port}"],
        &work,
    )?;
    let bootstrap = format!("127.0.0.1:{}", broker.port);
    let pid = broker.child.id();
    std::thread::sleep(Duration::from_millis(300));
    report
        .notes
        .push(("Nurt idle RSS".into(), format!("{} MiB", system::rss_kib(pid) / 1024)));

    let produce_runs: &[(&str, usize, i32, &str, u64)] = &[
        ("p6-100b", 100, 6, "1", 5_000_000),
        ("p6-100b-all", 100, 6, "all", 5_000_000),
        ("p6-1k", 1024, 6, "1", 1_000_000),
        ("p6-1k-all", 1024, 6, "all", 1_000_000),
        ("p1-100b", 100, 1, "1", 3_000_000),
        ("p100-100b", 100, 100, "1", 3_000_000),
    ];
    // The 3-node cluster runs this one again (`cluster::run`).
    let cluster_run = produce_runs[1];
    let mut baseline = cluster::Baseline::default();
    let cpu_before = system::cpu_seconds(pid);
    let mut moved_bytes = 0f64;
    for &(topic, size, partitions, acks, count) in produce_runs {
        let count = count / scale;
        kafka::create_topic(&bootstrap, topic, partitions)?;
        let label = format!("produce {size} B, {partitions} partition(s), acks={acks}");
        let pb = bar(&label, count);
        let run_cpu_before = system::cpu_seconds(pid);
        let (rps, mbps) = kafka::produce(&bootstrap, topic, size, count, acks, &pb)?;
        let bytes = count as f64 * size as f64;
        if topic == cluster_run.0 {
            baseline.produce = (rps, mbps);
            baseline.cpu_per_gb = (system::cpu_seconds(pid) - run_cpu_before) / (bytes / 1e9);
        }
        pb.finish();
        moved_bytes += bytes;
        report.rows.push(Row {
            system: "Nurt".into(),
            workload: label,
            records_per_s: rps,
            mb_per_s: mbps,
        });
    }
    for &(topic, size, partitions, _, count) in [produce_runs[0], produce_runs[2]].iter() {
        let count = count / scale;
        let label = format!("consume {size} B, {partitions} partition(s)");
        let pb = bar(&label, count);
        let (rps, mbps) = kafka::consume(&bootstrap, topic, partitions, count, &pb)?;
        pb.finish();
        moved_bytes += count as f64 * size as f64;
        report.rows.push(Row {
            system: "Nurt".into(),
            workload: label,
            records_per_s: rps,
            mb_per_s: mbps,
        });
    }
    let cpu = system::cpu_seconds(pid) - cpu_before;
    report.notes.push((
        "Nurt broker CPU per GB produced+consumed".into(),
        format!("{:.2} CPU-s/GB", cpu / (moved_bytes / 1e9)),
    ));
    report.notes.push((
        "Nurt RSS after the throughput runs".into(),
        format!("{} MiB", system::rss_kib(pid) / 1024),
    ));

    kafka::create_topic(&bootstrap, "latency", 1)?;
    let (secs, warm) = if args.quick { (5, 1) } else { (20, 3) };
    let pb = bar("latency 1 KiB @ 20k/s, acks=all", 20_000 * (secs + warm));
    let h = kafka::latency(
        &bootstrap,
        "latency",
        1024,
        20_000,
        Duration::from_secs(secs),
        Duration::from_secs(warm),
        &pb,
    )?;
    pb.finish();
    report.latency_us = report::percentiles(&h);
    // A light load too, for the 3-node comparison: what replication adds when the three
    // brokers and the client do not have to share this machine's cores at their limit.
    kafka::create_topic(&bootstrap, "latency-light", 1)?;
    let rate = cluster::LIGHT_RATE;
    let pb = bar("latency 1 KiB @ 2k/s, acks=all", rate * (secs + warm));
    let h = kafka::latency(
        &bootstrap,
        "latency-light",
        1024,
        rate,
        Duration::from_secs(secs),
        Duration::from_secs(warm),
        &pb,
    )?;
    pb.finish();
    baseline.light_latency_us = report::percentiles(&h);

    kafka::create_topic(&bootstrap, "p1000", 1000)?;
    let count = 1_000_000 / scale;
    let pb = bar("produce 100 B, 1000 partitions", count);
    let (rps, mbps) = kafka::produce(&bootstrap, "p1000", 100, count, "1", &pb)?;
    pb.finish();
    report.rows.push(Row {
        system: "Nurt".into(),
        workload: "produce 100 B, 1000 partitions, acks=1".into(),
        records_per_s: rps,
        mb_per_s: mbps,
    });
    let pb = bar("consume 100 B, 1000 partitions", count);
    let (rps, mbps) = kafka::consume(&bootstrap, "p1000", 1000, count, &pb)?;
    pb.finish();
    report.rows.push(Row {
        system: "Nurt".into(),
        workload: "consume 100 B, 1000 partitions".into(),
        records_per_s: rps,
        mb_per_s: mbps,
    });
    report.notes.push((
        "Nurt RSS with 1000 more partitions".into(),
        format!("{} MiB", system::rss_kib(pid) / 1024),
    ));
    // Errors or warnings would mean a run measured something else than it says.
    report.notes.push((
        "Nurt: warnings and errors in the broker's log".into(),
        broker.show_complaints("nurt").to_string(),
    ));
    drop(broker);
    // The single node's data is not needed any more; the cluster writes three copies of its own.
    let _ = std::fs::remove_dir_all(work.join("nurt"));

    if !args.no_cluster {
        let (_, size, partitions, _, count) = cluster_run;
        let workloads = cluster::Workloads {
            size,
            partitions,
            count: count / scale,
            latency: (Duration::from_secs(secs), Duration::from_secs(warm)),
        };
        cluster::run(&nurt, &work, workloads, &baseline, &mut report)?;
    }

    if !args.no_peers {
        let nurt_rps = report.rows[0].records_per_s;
        let nats = system::start(
            "nats-server",
            "nats-server",
            &["-a", "127.0.0.1", "-p", "{port}", "-js", "-sd", "{dir}/nats"],
            &work,
        )?;
        let count = 1_000_000 / scale;
        let pb = bar("NATS JetStream publish 100 B (acked)", count);
        let rps = peers::nats_jetstream(nats.port, 100, count, 512, &pb)?;
        pb.finish();
        drop(nats);
        peer_result(
            &mut report,
            "NATS JetStream 2.9 (file)",
            "acked publish 100 B, window 512",
            rps,
            nurt_rps,
        );
        let redis = system::start(
            "redis-server",
            "redis-server",
            &[
                "--port",
                "{port}",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "{dir}",
            ],
            &work,
        )?;
        let rps = peers::redis_streams(redis.port, 100, 2_000_000 / scale, 256)?;
        drop(redis);
        peer_result(
            &mut report,
            "Redis Streams 7.0",
            "XADD 100 B, pipeline 256",
            rps,
            nurt_rps,
        );
    }

    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("results.md"), report.table())?;
    std::fs::write(args.out.join("results.json"), report.json())?;
    std::fs::write(args.out.join("latency.svg"), report.svg())?;
    println!("{}", report.table());
    println!(
        "written to {}/results.md, results.json, latency.svg",
        args.out.display()
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// The scale workload alone: every size, then scale.md and scale.svg.
fn run_scale(
    nurt: &std::path::Path,
    work: &std::path::Path,
    sizes: &[i32],
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let nurt = nurt.to_str().context("nurt path")?;
    let mut points = Vec::new();
    std::fs::create_dir_all(out)?;
    let mut table = String::new();
    for &n in sizes {
        let pb = bar(&format!("scale: {n} partitions"), n as u64);
        points.push(scale::run(nurt, work, n, &pb)?);
        pb.finish();
        // Written after every size: a long run that fails late keeps what it measured.
        table = report::scale_table(&system::machine(), &points);
        std::fs::write(out.join("scale.md"), &table)?;
        std::fs::write(out.join("scale.svg"), report::scale_svg(&points))?;
    }
    println!("{table}");
    println!("written to {}/scale.md, scale.svg", out.display());
    let _ = std::fs::remove_dir_all(work);
    Ok(())
}

/// Records a peer's 100 B produce rate and Nurt's ratio to it.
fn peer_result(report: &mut Report, system: &str, workload: &str, rps: f64, nurt_rps: f64) {
    report.rows.push(Row {
        system: system.into(),
        workload: workload.into(),
        records_per_s: rps,
        mb_per_s: rps * 100.0 / 1e6,
    });
    report.notes.push((
        format!("Nurt / {system} (100 B produce)"),
        format!("{:.1}x", nurt_rps / rps),
    ));
}

/// A scratch directory for the servers' data.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("nurt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
