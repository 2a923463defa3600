//! `nurt group list|describe|reset-offsets|delete`.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::Subcommand;
use nurt_protocol::kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use nurt_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use nurt_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use nurt_protocol::kafka_protocol::messages::*;
use nurt_protocol::kafka_protocol::protocol::StrBytes;

use crate::client::{error_name, topic_name, Client, Router};
use crate::topic::Conn;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Members, assignments, committed offsets, log ends and lag of a group.
    Describe {
        group: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Move a group's committed offsets (only while it has no active members).
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        #[arg(long, group = "to")]
        to_earliest: bool,
        #[arg(long, group = "to")]
        to_latest: bool,
        #[arg(long, group = "to", value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// UTC, as 2026-11-22T10:00:00 (optionally .mmm and Z), or milliseconds since the epoch.
        #[arg(long, group = "to", value_name = "DATETIME")]
        to_datetime: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a group and its committed offsets (only without active members).
    Delete {
        group: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn gid(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

/// (type, state) of `group`, or None when the broker does not know it.
fn group_state(client: &mut Client, group: &str) -> anyhow::Result<Option<(String, String)>> {
    let listed = client.send(&ListGroupsRequest::default(), 5)?;
    Ok(listed
        .groups
        .into_iter()
        .find(|g| g.group_id.0.as_str() == group)
        .map(|g| (g.group_type.to_string(), g.group_state.to_string())))
}

/// Committed offsets of `group`: (topic, partition) → offset.
pub fn committed(client: &mut Client, group: &str) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let request = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(gid(group))
        .with_topics(None)]);
    let response = client.send(&request, 8)?;
    let mut out = BTreeMap::new();
    for g in response.groups {
        if g.error_code != 0 {
            bail!("cannot read offsets of {group}: {}", error_name(g.error_code));
        }
        for t in g.topics {
            for p in t.partitions.into_iter().filter(|p| p.committed_offset >= 0) {
                out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// ListOffsets for every partition of `topic` at `timestamp` (-1 latest, -2 earliest), each
/// partition asked of its leader.
pub fn list_offsets(
    router: &mut Router,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let md = router.metadata(Some(&[topic]))?;
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in md.topics.iter().flat_map(|t| t.partitions.iter()) {
        if partitions.contains(&p.partition_index) {
            by_leader.entry(p.leader_id.0).or_default().push(p.partition_index);
        }
    }
    let mut out = BTreeMap::new();
    for (leader, partitions) in by_leader {
        if leader < 0 {
            bail!("partitions {partitions:?} of {topic} have no leader now; try again later");
        }
        out.extend(list_offsets_at(router.broker(leader)?, topic, &partitions, timestamp)?);
    }
    Ok(out)
}

/// ListOffsets sent to one broker (the leader of `partitions`).
fn list_offsets_at(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let mut out = BTreeMap::new();
    for t in client.send(&request, 7)?.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "cannot list offsets of {topic}-{}: {}",
                    p.partition_index,
                    error_name(p.error_code)
                );
            }
            out.insert(p.partition_index, p.offset);
        }
    }
    Ok(out)
}

/// Decodes a classic consumer-protocol assignment: topic → partitions.
fn decode_assignment(blob: &[u8]) -> Vec<(String, Vec<i32>)> {
    let mut out = Vec::new();
    let mut r = blob.get(2..).unwrap_or_default();
    let take_i32 = |r: &mut &[u8]| -> Option<i32> {
        let v = r.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))?;
        *r = &r[4..];
        Some(v)
    };
    let Some(n) = take_i32(&mut r) else { return out };
    for _ in 0..n.max(0) {
        let Some(len) = r.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]]).max(0) as usize) else {
            break;
        };
        let Some(name) = r.get(2..2 + len) else { break };
        let name = String::from_utf8_lossy(name).into_owned();
        r = &r[2 + len..];
        let Some(count) = take_i32(&mut r) else { break };
        let parts: Vec<i32> = (0..count.max(0)).map_while(|_| take_i32(&mut r)).collect();
        out.push((name, parts));
    }
    out
}

/// Milliseconds since the epoch for `2026-11-22T10:00:00[.mmm][Z]` (UTC) or a plain number.
fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        anyhow::anyhow!("cannot read '{s}' as a date: use 2026-11-22T10:00:00 (UTC) or milliseconds since the epoch")
    };
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [y, m, day] = d[..] else { return Err(bad()) };
    let [hh, mm, ss] = t[..] else { return Err(bad()) };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let millis: i64 = format!("{millis:0<3}")[..3].parse().map_err(|_| bad())?;
    Ok(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + millis)
}

pub fn run(cmd: GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::List { conn } => {
            // Each broker lists the groups it coordinates (Kafka's ListGroups): ask them all.
            let mut router = Router::connect(&conn.bootstrap_server)?;
            let md = router.metadata(None)?;
            let mut groups = Vec::new();
            for b in &md.brokers {
                groups.extend(
                    router
                        .broker(b.node_id.0)?
                        .send(&ListGroupsRequest::default(), 5)?
                        .groups,
                );
            }
            groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
            println!("{:<40} {:<10} STATE", "GROUP", "TYPE");
            for g in groups {
                println!("{:<40} {:<10} {}", g.group_id.0, g.group_type, g.group_state);
            }
        }
        GroupCommand::Describe { group, conn } => describe(&mut Router::connect(&conn.bootstrap_server)?, &group)?,
        GroupCommand::ResetOffsets {
            group,
            topic,
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
            conn,
        } => {
            let mut router = Router::connect(&conn.bootstrap_server)?;
            if let Some((_, state)) = group_state(router.coordinator(&group)?, &group)? {
                if !state.eq_ignore_ascii_case("empty") && !state.eq_ignore_ascii_case("dead") {
                    bail!("group {group} is {state}: stop its consumers before resetting offsets (Kafka refuses too)");
                }
            }
            let md = router.metadata(Some(&[topic.as_str()]))?;
            let t = md.topics.first().context("no metadata")?;
            if t.error_code != 0 {
                bail!("topic {topic}: {}", error_name(t.error_code));
            }
            let partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            let targets = match (to_earliest, to_latest, to_offset, to_datetime) {
                (true, ..) => list_offsets(&mut router, &topic, &partitions, -2)?,
                (_, true, ..) => list_offsets(&mut router, &topic, &partitions, -1)?,
                (_, _, Some(o), _) => partitions.iter().map(|&p| (p, o)).collect(),
                (_, _, _, Some(dt)) => {
                    let at = list_offsets(&mut router, &topic, &partitions, parse_datetime(&dt)?)?;
                    let latest = list_offsets(&mut router, &topic, &partitions, -1)?;
                    at.into_iter()
                        .map(|(p, o)| (p, if o < 0 { latest[&p] } else { o }))
                        .collect()
                }
                _ => bail!("say where to: --to-earliest, --to-latest, --to-offset N or --to-datetime DATETIME"),
            };
            let request = OffsetCommitRequest::default()
                .with_group_id(gid(&group))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(
                        targets
                            .iter()
                            .map(|(&p, &o)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(o)
                            })
                            .collect(),
                    )]);
            for t in router.coordinator(&group)?.send(&request, 8)?.topics {
                for p in t.partitions {
                    if p.error_code != 0 {
                        bail!(
                            "cannot reset {topic}-{}: {}",
                            p.partition_index,
                            error_name(p.error_code)
                        );
                    }
                }
            }
            println!("{:<30} {:>9} NEW-OFFSET", "TOPIC", "PARTITION");
            for (p, o) in targets {
                println!("{topic:<30} {p:>9} {o}");
            }
        }
        GroupCommand::Delete { group, conn } => {
            let mut router = Router::connect(&conn.bootstrap_server)?;
            for r in router
                .coordinator(&group)?
                .send(&DeleteGroupsRequest::default().with_groups_names(vec![gid(&group)]), 2)?
                .results
            {
                if r.error_code != 0 {
                    bail!("cannot delete group {group}: {}", error_name(r.error_code));
                }
            }
            println!("deleted group {group}");
        }
    }
    Ok(())
}

fn describe(router: &mut Router, group: &str) -> anyhow::Result<()> {
    let client = router.coordinator(group)?;
    let Some((kind, state)) = group_state(client, group)? else {
        bail!("group {group} does not exist")
    };
    // Who owns each partition: (topic, partition) → (member, host, client).
    let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    let mut members = 0;
    if kind == "consumer" {
        let d = client.send(
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid(group)]),
            0,
        )?;
        for g in d.groups {
            for m in g.members {
                members += 1;
                for tp in m.assignment.topic_partitions {
                    for p in tp.partitions {
                        owners.insert(
                            (tp.topic_name.0.to_string(), p),
                            (
                                m.member_id.to_string(),
                                m.client_host.to_string(),
                                m.client_id.to_string(),
                            ),
                        );
                    }
                }
            }
        }
    } else {
        let d = client.send(&DescribeGroupsRequest::default().with_groups(vec![gid(group)]), 5)?;
        for g in d.groups {
            for m in g.members {
                members += 1;
                for (t, ps) in decode_assignment(&m.member_assignment) {
                    for p in ps {
                        owners.insert(
                            (t.clone(), p),
                            (
                                m.member_id.to_string(),
                                m.client_host.to_string(),
                                m.client_id.to_string(),
                            ),
                        );
                    }
                }
            }
        }
    }
    println!("Group {group} ({kind} protocol) is {state} with {members} member(s).\n");
    let offsets = committed(client, group)?;
    let mut rows: BTreeMap<(String, i32), (Option<i64>, Option<i64>)> = BTreeMap::new();
    for (tp, o) in &offsets {
        rows.entry(tp.clone()).or_default().0 = Some(*o);
    }
    for tp in owners.keys() {
        rows.entry(tp.clone()).or_default();
    }
    let topics: std::collections::BTreeSet<String> = rows.keys().map(|(t, _)| t.clone()).collect();
    for t in topics {
        let parts: Vec<i32> = rows.keys().filter(|(tt, _)| *tt == t).map(|(_, p)| *p).collect();
        for (p, end) in list_offsets(router, &t, &parts, -1)? {
            if let Some(row) = rows.get_mut(&(t.clone(), p)) {
                row.1 = Some(end);
            }
        }
    }
    println!(
        "{:<24} {:>9} {:>14} {:>14} {:>8}  {:<40} {:<16} CLIENT-ID",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"
    );
    let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    for ((t, p), (current, end)) in rows {
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).to_string(),
            _ => "-".to_string(),
        };
        let (member, host, client_id) = owners
            .get(&(t.clone(), p))
            .cloned()
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        println!(
            "{t:<24} {p:>9} {:>14} {:>14} {lag:>8}  {member:<40} {host:<16} {client_id}",
            show(current),
            show(end)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_utc_datetimes() {
        assert_eq!(super::parse_datetime("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            super::parse_datetime("2026-11-22T10:00:00.5").unwrap(),
            1_795_341_600_500
        );
        assert_eq!(super::parse_datetime("12345").unwrap(), 12345);
        assert!(super::parse_datetime("yesterday").is_err());
    }
}
