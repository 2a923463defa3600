//! `nurt cluster status`: the nodes, the active controller, the metadata quorum and how far
//! each member is behind, fenced brokers, partitions without a leader and under-replicated
//! partitions — from DescribeQuorum, DescribeCluster and Metadata, as any Kafka admin sees it.

use clap::Subcommand;
use nurt_protocol::kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use nurt_protocol::kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest};

use crate::client::{error_name, topic_name, Router};
use crate::topic::Conn;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Nodes, controller, quorum lag, fenced brokers, leaderless and under-replicated partitions.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
}

pub fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    let ClusterCommand::Status { conn } = cmd;
    let mut router = Router::connect(&conn.bootstrap_server)?;
    let cluster = router
        .any()?
        .send(&DescribeClusterRequest::default().with_include_fenced_brokers(true), 2)?;
    println!(
        "cluster {}  active controller {}",
        cluster.cluster_id, cluster.controller_id.0
    );
    println!("\n{:<6} {:<32} {:<10} STATE", "NODE", "ADDRESS", "RACK");
    for b in &cluster.brokers {
        let state = if b.is_fenced { "FENCED" } else { "live" };
        let rack = b.rack.as_ref().map_or("-".to_string(), |r| r.to_string());
        println!(
            "{:<6} {:<32} {:<10} {state}",
            b.broker_id.0,
            format!("{}:{}", b.host, b.port),
            rack
        );
    }
    let quorum = router.any()?.send(
        &DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(topic_name("__cluster_metadata"))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]),
        2,
    )?;
    if quorum.error_code != 0 {
        println!("\nmetadata quorum: {}", error_name(quorum.error_code));
    }
    for p in quorum.topics.iter().flat_map(|t| t.partitions.iter()) {
        println!(
            "\nmetadata quorum: leader {} in term {}, committed up to {}",
            p.leader_id.0, p.leader_epoch, p.high_watermark
        );
        let leader_end = p
            .current_voters
            .iter()
            .find(|v| v.replica_id == p.leader_id)
            .map_or(p.high_watermark, |v| v.log_end_offset);
        println!("{:<6} {:<9} {:>12} {:>8}", "NODE", "ROLE", "LOG-END", "LAG");
        let roles = p
            .current_voters
            .iter()
            .map(|v| (v, "voter"))
            .chain(p.observers.iter().map(|o| (o, "observer")));
        for (r, role) in roles {
            let lag = if r.log_end_offset < 0 {
                "?".to_string()
            } else {
                (leader_end - r.log_end_offset).max(0).to_string()
            };
            println!("{:<6} {:<9} {:>12} {:>8}", r.replica_id.0, role, r.log_end_offset, lag);
        }
    }
    let md = router.metadata(None)?;
    let mut leaderless = Vec::new();
    let mut under = Vec::new();
    for t in &md.topics {
        let name = t.name.as_ref().map_or(String::new(), |n| n.to_string());
        for p in &t.partitions {
            if p.leader_id.0 < 0 {
                leaderless.push(format!("{name}-{}", p.partition_index));
            } else if p.isr_nodes.len() < p.replica_nodes.len() {
                under.push(format!(
                    "{name}-{} (in sync {:?} of {:?})",
                    p.partition_index,
                    p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                    p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>()
                ));
            }
        }
    }
    println!(
        "\npartitions without a leader: {}",
        if leaderless.is_empty() {
            "none".to_string()
        } else {
            leaderless.join(", ")
        }
    );
    println!(
        "under-replicated partitions: {}",
        if under.is_empty() {
            "none".to_string()
        } else {
            under.len().to_string()
        }
    );
    for u in under {
        println!("  {u}");
    }
    Ok(())
}
