//! `nurt txn list`, `nurt txn describe ID` and `nurt producers TOPIC PARTITION`: the
//! transactions coordinators hold (ListTransactions on every broker, DescribeTransactions on
//! the id's coordinator) and the producers a partition's leader tracks (DescribeProducers),
//! as `kafka-transactions.sh` shows them.

use clap::Subcommand;
use nurt_protocol::kafka_protocol::messages::describe_producers_request::TopicRequest;
use nurt_protocol::kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId,
};
use nurt_protocol::kafka_protocol::protocol::StrBytes;

use crate::client::{error_name, topic_name, Router};
use crate::topic::Conn;

#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// Every transactional id the cluster's coordinators hold, with its producer and state.
    List {
        /// Only these states (Ongoing, PrepareCommit, CompleteCommit, ...), repeatable.
        #[arg(long = "state")]
        states: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// One transactional id: state, producer, timeout, start time and partitions.
    Describe {
        transactional_id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub fn run(cmd: TxnCommand) -> anyhow::Result<()> {
    match cmd {
        TxnCommand::List { states, conn } => list(&conn, states),
        TxnCommand::Describe { transactional_id, conn } => describe(&conn, &transactional_id),
    }
}

fn list(conn: &Conn, states: Vec<String>) -> anyhow::Result<()> {
    let mut router = Router::connect(&conn.bootstrap_server)?;
    let md = router.metadata(None)?;
    let request =
        ListTransactionsRequest::default().with_state_filters(states.into_iter().map(StrBytes::from_string).collect());
    let mut rows = Vec::new();
    for b in &md.brokers {
        let answer = router.broker(b.node_id.0)?.send(&request, 1)?;
        if answer.error_code != 0 {
            anyhow::bail!("broker {}: {}", b.node_id.0, error_name(answer.error_code));
        }
        if !answer.unknown_state_filters.is_empty() {
            anyhow::bail!(
                "unknown transaction states {:?}: use Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, PrepareEpochFence or Dead",
                answer.unknown_state_filters
            );
        }
        for t in answer.transaction_states {
            rows.push((
                t.transactional_id.0.to_string(),
                t.producer_id.0,
                t.transaction_state.to_string(),
                b.node_id.0,
            ));
        }
    }
    rows.sort();
    println!(
        "{:<40} {:>12} {:<16} COORDINATOR",
        "TRANSACTIONAL-ID", "PRODUCER-ID", "STATE"
    );
    for (id, producer, state, coordinator) in rows {
        println!("{id:<40} {producer:>12} {state:<16} {coordinator}");
    }
    Ok(())
}

fn describe(conn: &Conn, transactional_id: &str) -> anyhow::Result<()> {
    let mut router = Router::connect(&conn.bootstrap_server)?;
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
        StrBytes::from_string(transactional_id.to_string()),
    )]);
    let answer = router.coordinator_of(transactional_id, 1)?.send(&request, 0)?;
    for t in answer.transaction_states {
        if t.error_code != 0 {
            anyhow::bail!("{transactional_id}: {}", error_name(t.error_code));
        }
        println!("transactional id  {}", t.transactional_id.0);
        println!("state             {}", t.transaction_state);
        println!("producer          {} (epoch {})", t.producer_id.0, t.producer_epoch);
        println!("timeout           {} ms", t.transaction_timeout_ms);
        println!(
            "started           {}",
            if t.transaction_start_time_ms < 0 {
                "-".to_string()
            } else {
                format!("{} ms since the epoch", t.transaction_start_time_ms)
            }
        );
        for topic in t.topics {
            let parts: Vec<String> = topic.partitions.iter().map(i32::to_string).collect();
            println!("partitions        {}: {}", topic.topic.0, parts.join(","));
        }
    }
    Ok(())
}

/// `nurt producers TOPIC PARTITION`.
pub fn producers(conn: &Conn, topic: &str, partition: i32) -> anyhow::Result<()> {
    let mut router = Router::connect(&conn.bootstrap_server)?;
    let md = router.metadata(Some(&[topic]))?;
    let leader = md
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| p.leader_id.0)
        .filter(|&l| l >= 0)
        .ok_or_else(|| anyhow::anyhow!("{topic}-{partition} has no leader (does it exist?)"))?;
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic_name(topic))
        .with_partition_indexes(vec![partition])]);
    let answer = router.broker(leader)?.send(&request, 0)?;
    println!(
        "{:>12} {:>6} {:>14} {:>16} {:>12}",
        "PRODUCER-ID", "EPOCH", "LAST-SEQUENCE", "LAST-TIMESTAMP", "TXN-START"
    );
    for p in answer.topics.iter().flat_map(|t| t.partitions.iter()) {
        if p.error_code != 0 {
            anyhow::bail!("{topic}-{partition}: {}", error_name(p.error_code));
        }
        for s in &p.active_producers {
            println!(
                "{:>12} {:>6} {:>14} {:>16} {:>12}",
                s.producer_id.0, s.producer_epoch, s.last_sequence, s.last_timestamp, s.current_txn_start_offset
            );
        }
    }
    Ok(())
}
