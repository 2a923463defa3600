//! `nurt`: the broker (`nurt serve`) and the command-line tools that talk to it.

mod client;
mod consume;
mod group;
mod group_consumer;
mod murmur;
mod produce;
mod serve;
mod topic;

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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Topic(cmd) => topic::run(cmd),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(cmd) => group::run(cmd),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
