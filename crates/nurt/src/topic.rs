//! `nurt topic create|list|describe|delete`.

use anyhow::bail;
use clap::{Args, Subcommand};
use nurt_protocol::kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use nurt_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use nurt_protocol::kafka_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest};
use nurt_protocol::kafka_protocol::protocol::StrBytes;

use crate::client::{error_name, topic_name, Client};

#[derive(Debug, Args)]
pub struct Conn {
    /// Broker to talk to.
    #[arg(long, default_value = "localhost:9092", global = true)]
    pub bootstrap_server: String,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// A topic config override, e.g. --config retention.ms=60000 (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List topics.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a topic's partitions and configs.
    Describe {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Set or remove topic config overrides, e.g. `alter-config orders retention.ms=60000`.
    AlterConfig {
        name: String,
        /// KEY=VALUE pairs to set.
        #[arg(value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Remove an override (back to the broker default), repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a topic and its data.
    Delete {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub fn run(cmd: TopicCommand) -> anyhow::Result<()> {
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            conn,
        } => {
            let mut client = Client::connect(&conn.bootstrap_server)?;
            let configs = configs
                .iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => Ok(CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.into()))
                        .with_value(Some(StrBytes::from_string(v.into())))),
                    None => bail!("--config expects KEY=VALUE, got '{kv}'"),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let topic = CreatableTopic::default()
                .with_name(topic_name(&name))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_configs(configs);
            let response = client.send(
                &CreateTopicsRequest::default()
                    .with_topics(vec![topic])
                    .with_timeout_ms(30_000),
                7,
            )?;
            for t in response.topics {
                if t.error_code != 0 {
                    bail!(
                        "cannot create topic {}: {}{}",
                        t.name.0,
                        error_name(t.error_code),
                        t.error_message.map(|m| format!(": {m}")).unwrap_or_default()
                    );
                }
                println!("created topic {} ({} partitions)", t.name.0, t.num_partitions);
            }
        }
        TopicCommand::List { conn } => {
            let mut client = Client::connect(&conn.bootstrap_server)?;
            let md = client.metadata(None)?;
            let mut names: Vec<String> = md
                .topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect();
            names.sort();
            for n in names {
                println!("{n}");
            }
        }
        TopicCommand::Describe { name, conn } => {
            let mut client = Client::connect(&conn.bootstrap_server)?;
            let md = client.metadata(Some(&[name.as_str()]))?;
            let Some(t) = md.topics.first() else {
                bail!("no answer for topic {name}")
            };
            if t.error_code != 0 {
                bail!("cannot describe topic {name}: {}", error_name(t.error_code));
            }
            println!(
                "Topic: {name}\tTopicId: {}\tPartitionCount: {}",
                t.topic_id,
                t.partitions.len()
            );
            for p in &t.partitions {
                let ids = |v: &[nurt_protocol::kafka_protocol::messages::BrokerId]| {
                    v.iter().map(|b| b.0.to_string()).collect::<Vec<_>>().join(",")
                };
                println!(
                    "\tPartition: {}\tLeader: {}\tLeaderEpoch: {}\tReplicas: {}\tIsr: {}",
                    p.partition_index,
                    p.leader_id.0,
                    p.leader_epoch,
                    ids(&p.replica_nodes),
                    ids(&p.isr_nodes)
                );
            }
            let request = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(name.clone()))]);
            let configs = client.send(&request, 4)?;
            for r in configs.results {
                for c in r.configs {
                    let marker = if c.config_source == 5 { "" } else { "  (set)" };
                    println!(
                        "\t{}={}{marker}",
                        c.name,
                        c.value.map(|v| v.to_string()).unwrap_or_default()
                    );
                }
            }
        }
        TopicCommand::AlterConfig {
            name,
            set,
            delete,
            conn,
        } => {
            use nurt_protocol::kafka_protocol::messages::incremental_alter_configs_request::{
                AlterConfigsResource, AlterableConfig,
            };
            use nurt_protocol::kafka_protocol::messages::IncrementalAlterConfigsRequest;
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give KEY=VALUE pairs and/or --delete KEY");
            }
            let mut configs = Vec::new();
            for kv in &set {
                let Some((k, v)) = kv.split_once('=') else {
                    bail!("expected KEY=VALUE, got '{kv}'")
                };
                configs.push(
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(k.into()))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_string(v.into()))),
                );
            }
            for k in &delete {
                configs.push(
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_config_operation(1),
                );
            }
            let mut client = Client::connect(&conn.bootstrap_server)?;
            let request =
                IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_string(name.clone()))
                    .with_configs(configs)]);
            for r in client.send(&request, 1)?.responses {
                if r.error_code != 0 {
                    bail!(
                        "cannot alter configs of {name}: {}{}",
                        error_name(r.error_code),
                        r.error_message.map(|m| format!(": {m}")).unwrap_or_default()
                    );
                }
            }
            println!("altered configs of topic {name}");
        }
        TopicCommand::Delete { name, conn } => {
            let mut client = Client::connect(&conn.bootstrap_server)?;
            let response = client.send(
                &DeleteTopicsRequest::default()
                    .with_topic_names(vec![topic_name(&name)])
                    .with_timeout_ms(30_000),
                5,
            )?;
            for r in response.responses {
                if r.error_code != 0 {
                    bail!("cannot delete topic {name}: {}", error_name(r.error_code));
                }
                println!("deleted topic {name}");
            }
        }
    }
    Ok(())
}
