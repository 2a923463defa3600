//! DescribeLogDirs: the data directory with every hosted partition's size, and the disk's
//! total and usable bytes (what `kafka-log-dirs.sh` and consoles show).

use std::collections::{BTreeMap, BTreeSet};

use nurt_protocol::kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use nurt_protocol::kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::sb;
use crate::{codes, Broker};

/// (total, usable) bytes of the file system holding `path`; -1 each when it cannot be read.
fn disk_bytes(path: &std::path::Path) -> (i64, i64) {
    match rustix::fs::statvfs(path) {
        Ok(s) => {
            let block = s.f_frsize as i64;
            (
                (s.f_blocks as i64).saturating_mul(block),
                (s.f_bavail as i64).saturating_mul(block),
            )
        }
        Err(_) => (-1, -1),
    }
}

pub fn describe_log_dirs(broker: &Broker, r: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // None: every partition; Some: only those named (unknown ones are left out, as in Kafka).
    let wanted: Option<BTreeSet<(String, i32)>> = r.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in broker.all_partitions() {
        let key = (p.topic.to_string(), p.index);
        if wanted.as_ref().is_some_and(|w| !w.contains(&key)) {
            continue;
        }
        by_topic.entry(key.0).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(p.index)
                .with_partition_size(p.size_bytes() as i64)
                .with_offset_lag(0),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(sb(name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = std::fs::canonicalize(broker.data_dir()).unwrap_or_else(|_| broker.data_dir().to_path_buf());
    let (total_bytes, usable_bytes) = disk_bytes(&dir);
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_error_code(codes::NONE)
        .with_log_dir(sb(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes)])
}
