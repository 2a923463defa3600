//! The 3-node workloads: the single node's acks=all produce and latency workloads again,
//! against three `nurt serve` processes on loopback that form one cluster (every topic with
//! replication factor 3 and `min.insync.replicas=2`), reported next to the single node's
//! numbers from the same run. All three brokers and the client share this machine, so the
//! cluster's numbers are a lower bound for three machines.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::report::{self, Compared, Report, Row};
use crate::{bar, kafka, system};

/// Nodes in the cluster; each is a voter of the metadata quorum and a broker.
const NODES: usize = 3;
/// Every replica on its own node.
const REPLICATION: i32 = 3;
/// How long the nodes may take to elect a controller and register, and a new topic's
/// replicas to be in sync.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Records/s of the light latency workload (1 KiB, acks=all), run on both.
pub const LIGHT_RATE: u64 = 2_000;

/// The single node's results the cluster is compared with.
#[derive(Debug, Default)]
pub struct Baseline {
    /// The max-rate acks=all produce: records/s and MB/s.
    pub produce: (f64, f64),
    /// Broker CPU-seconds per GB produced during it.
    pub cpu_per_gb: f64,
    /// The light latency workload's percentiles (label, microseconds).
    pub light_latency_us: Vec<(String, u64)>,
}

/// The workloads (records in the produce run; the latency run's measured time and warm-up).
#[derive(Debug, Clone, Copy)]
pub struct Workloads {
    pub size: usize,
    pub partitions: i32,
    pub count: u64,
    pub latency: (Duration, Duration),
}

/// Starts the cluster in `work`, runs both workloads and adds their results, and the
/// comparison with `baseline` and the single node's latency in `report`, to `report`.
pub fn run(
    nurt: &Path,
    work: &Path,
    workloads: Workloads,
    baseline: &Baseline,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Workloads {
        size,
        partitions,
        count,
        latency: (secs, warm),
    } = workloads;
    let nodes = system::start_cluster(nurt.to_str().context("nurt path")?, NODES, work)?;
    let bootstrap: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let bootstrap = bootstrap.join(",");
    kafka::wait_for_brokers(&bootstrap, NODES, JOIN_TIMEOUT).context("waiting for the cluster to form")?;
    let configs = [("min.insync.replicas", "2")];

    let topic = "cluster-p6-100b-all";
    kafka::create_replicated_topic(&bootstrap, topic, partitions, REPLICATION, &configs)?;
    let leaders = kafka::wait_for_in_sync(&bootstrap, topic, REPLICATION as usize, JOIN_TIMEOUT)?;
    let by_node: Vec<String> = (1..=NODES as i32)
        .map(|id| format!("node {id}: {}", leaders.iter().filter(|&&l| l == id).count()))
        .collect();
    report.notes.push((
        "3 nodes: leaders of the produce topic's partitions".into(),
        by_node.join(", "),
    ));
    let pids: Vec<u32> = nodes.iter().map(|n| n.child.id()).collect();
    let cpu = || pids.iter().map(|&p| system::cpu_seconds(p)).sum::<f64>();
    let label = format!("3 nodes: produce {size} B, {partitions} partition(s), acks=all");
    let pb = bar(&label, count);
    let cpu_before = cpu();
    let (rps, mbps) = kafka::produce(&bootstrap, topic, size, count, "all", &pb)?;
    let cpu_per_gb = (cpu() - cpu_before) / (count as f64 * size as f64 / 1e9);
    pb.finish();
    report.rows.push(Row {
        system: "Nurt, 3 nodes".into(),
        workload: format!(
            "produce {size} B, {partitions} partition(s), acks=all, replication 3, min.insync.replicas=2"
        ),
        records_per_s: rps,
        mb_per_s: mbps,
    });

    let topic = "cluster-latency";
    kafka::create_replicated_topic(&bootstrap, topic, 1, REPLICATION, &configs)?;
    let leader = kafka::wait_for_in_sync(&bootstrap, topic, REPLICATION as usize, JOIN_TIMEOUT)?;
    report.notes.push((
        "3 nodes: leader of the latency topic".into(),
        format!("node {}", leader.first().copied().unwrap_or(-1)),
    ));
    let pb = bar(
        "3 nodes: latency 1 KiB @ 20k/s, acks=all",
        20_000 * (secs + warm).as_secs(),
    );
    let h = kafka::latency(&bootstrap, topic, 1024, 20_000, secs, warm, &pb)?;
    pb.finish();
    report.cluster_latency_us = report::percentiles(&h);
    let topic = "cluster-latency-light";
    kafka::create_replicated_topic(&bootstrap, topic, 1, REPLICATION, &configs)?;
    kafka::wait_for_in_sync(&bootstrap, topic, REPLICATION as usize, JOIN_TIMEOUT)?;
    let pb = bar(
        "3 nodes: latency 1 KiB @ 2k/s, acks=all",
        LIGHT_RATE * (secs + warm).as_secs(),
    );
    let h = kafka::latency(&bootstrap, topic, 1024, LIGHT_RATE, secs, warm, &pb)?;
    pb.finish();
    let light_latency_us = report::percentiles(&h);

    let mut compared = vec![
        Compared {
            measure: format!("produce {size} B, {partitions} partitions, acks=all"),
            unit: "records/s",
            single: baseline.produce.0,
            cluster: rps,
        },
        Compared {
            measure: format!("produce {size} B, {partitions} partitions, acks=all"),
            unit: "MB/s",
            single: baseline.produce.1,
            cluster: mbps,
        },
        Compared {
            measure: "broker CPU per GB produced (3 nodes: the sum of the three brokers)".into(),
            unit: "CPU-s/GB",
            single: baseline.cpu_per_gb,
            cluster: cpu_per_gb,
        },
    ];
    let at = |l: &[(String, u64)], p: &str| {
        l.iter()
            .find(|(q, _)| q == p)
            .map_or(0.0, |(_, us)| *us as f64 / 1000.0)
    };
    for (rate, single, cluster) in [
        ("20,000", &report.latency_us, &report.cluster_latency_us),
        ("2,000", &baseline.light_latency_us, &light_latency_us),
    ] {
        for p in ["p50", "p99", "p99.9"] {
            compared.push(Compared {
                measure: format!("latency {p}, 1 KiB at {rate} records/s"),
                unit: "ms",
                single: at(single, p),
                cluster: at(cluster, p),
            });
        }
    }
    report.cluster = compared;

    // A workload that ran through failovers or refused writes would not measure what it
    // says: count what the brokers complained about, and show the first lines.
    let complaints: usize = (1..)
        .zip(&nodes)
        .map(|(id, node)| node.show_complaints(&format!("nurt node {id}")))
        .sum();
    report.notes.push((
        "3 nodes: warnings and errors in the brokers' logs".into(),
        complaints.to_string(),
    ));
    Ok(())
}
