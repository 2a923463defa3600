//! `nurt`: the broker (`nurt serve`) and the command-line tools that talk to it.

mod client;
mod cluster;
mod consume;
mod group;
mod group_consumer;
mod murmur;
mod produce;
mod serve;
mod topic;
mod txn;

use clap::{Parser, Subcommand};

/// Nurt: a Kafka-compatible streaming platform.
#[derive(Debug, Parser)]
#[command(name = "nurt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (default: one node, data in ./nurt-data, clients at localhost:9092).
    Serve(serve::ServeArgs),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Send lines from stdin to a topic, one record per line.
    Produce(produce::ProduceArgs),
    /// Print a topic's records as they arrive.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// The cluster's nodes, controller, metadata quorum and partition health.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// List and describe transactions.
    #[command(subcommand)]
    Txn(txn::TxnCommand),
    /// The producers a partition's leader tracks (id, epoch, last sequence, open transaction).
    Producers {
        topic: String,
        partition: i32,
        #[command(flatten)]
        conn: topic::Conn,
    },
    /// Benchmark Nurt against NATS JetStream and Redis Streams (runs `nurt-bench`).
    Bench {
        /// Arguments for nurt-bench, e.g. --quick, --no-peers, --out DIR.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Topic(cmd) => topic::run(cmd),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(cmd) => group::run(cmd),
        Command::Cluster(cmd) => cluster::run(cmd),
        Command::Txn(cmd) => txn::run(cmd),
        Command::Producers { topic, partition, conn } => txn::producers(&conn, &topic, partition),
        Command::Bench { args } => bench(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Runs the benchmark driver built next to this binary. It is a separate binary so the
/// broker does not carry librdkafka and the peers' clients.
fn bench(args: Vec<String>) -> anyhow::Result<()> {
    use anyhow::Context;
    let exe = std::env::current_exe()?;
    let driver = exe.with_file_name("nurt-bench");
    if !driver.exists() {
        anyhow::bail!("{} not found: build it with `cargo build --release -p nurt-bench` (and install the peers with scripts/install-bench-deps.sh)", driver.display());
    }
    let status = std::process::Command::new(&driver)
        .args(&args)
        .arg("--nurt")
        .arg(&exe)
        .status()
        .with_context(|| format!("running {}", driver.display()))?;
    std::process::exit(status.code().unwrap_or(1));
}
