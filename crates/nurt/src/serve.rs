//! `nurt serve`: configuration from flags and files, logging, signals.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use nurt_broker::{Broker, BrokerConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where logs and metadata live.
    #[arg(long, default_value = "./nurt-data")]
    data_dir: PathBuf,
    /// Address to listen on for Kafka clients.
    #[arg(long, default_value = "localhost:9092")]
    listen: String,
    /// Address clients are told to connect to (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// A broker config by its Kafka name, e.g. --set num.partitions=6 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// A file of key=value lines (Kafka's server.properties format); --set wins over it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's id in a cluster (node.id; default 1).
    #[arg(long)]
    node_id: Option<i32>,
    /// The internal listener (Raft, controller requests, replication) of a cluster node, e.g.
    /// localhost:9093 (the CONTROLLER listener of `listeners`).
    #[arg(long)]
    controller_listen: Option<String>,
    /// The metadata quorum's voters, e.g. 1@localhost:9093,2@localhost:9193,3@localhost:9293
    /// (controller.quorum.voters). A node in the list is controller and broker; one not in it
    /// is a broker only and joins through them. Without it, `nurt serve` is one complete node.
    #[arg(long)]
    voters: Option<String>,
    /// Serve Prometheus metrics over HTTP at this address (GET /metrics), e.g. localhost:9644.
    #[arg(long)]
    metrics_listen: Option<String>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NURT_LOG").unwrap_or_else(|_| "info,openraft=error".into()),
        )
        .init();
    let mut config = BrokerConfig::new(args.data_dir, args.listen, args.advertise);
    if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        config
            .load_properties(&text)
            .with_context(|| format!("in {}", path.display()))?;
    }
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set expects KEY=VALUE, got '{kv}'"))?;
        config.set(k, v)?;
    }
    // The flags win over the same settings given by Kafka name.
    if let Some(id) = args.node_id {
        config.set("node.id", &id.to_string())?;
    }
    if let Some(voters) = &args.voters {
        config.set("controller.quorum.voters", voters)?;
    }
    if let Some(listen) = &args.controller_listen {
        config.controller_listen = Some(listen.clone());
    }
    config.check_cluster()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nurt")
        .build()?;
    runtime.block_on(async move {
        let started = std::time::Instant::now();
        // Signal handlers first: a SIGTERM right after the port opens must still stop cleanly.
        let shutdown = shutdown_signal()?;
        let listeners = nurt_broker::server::bind(&config.listen).await?;
        let listeners_addrs: Vec<std::net::SocketAddr> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let internal = match &config.controller_listen {
            Some(addr) => nurt_broker::server::bind(addr).await?,
            None => vec![],
        };
        let metrics = match &args.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {addr}"))?,
            ),
            None => None,
        };
        let broker = Broker::open(config).await?;
        if let Some(listener) = metrics {
            tokio::spawn(nurt_broker::metrics_http::serve(
                listener,
                std::sync::Arc::clone(&broker),
            ));
        }
        let ready = |broker: &Broker| {
            let addrs: Vec<String> = listeners_addrs.iter().map(|a| a.to_string()).collect();
            tracing::info!(
                "nurt {} ready in {} ms: listening on {} (advertised as {}), cluster {}, node {}, data in {}",
                env!("CARGO_PKG_VERSION"),
                started.elapsed().as_millis(),
                addrs.join(", "),
                broker.config.advertise,
                broker.cluster_id(),
                broker.node_id,
                broker.data_dir().display()
            );
        };
        nurt_broker::serve(broker, listeners, internal, shutdown, ready).await?;
        Ok(())
    })
}

/// A future that completes on Ctrl-C or SIGTERM; the handlers are installed at once.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
