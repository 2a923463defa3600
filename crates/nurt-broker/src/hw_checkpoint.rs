//! The high-watermark checkpoint of a data directory, in Kafka's format
//! (`replication-offset-checkpoint`: a version line `0`, a count line, then one
//! `topic partition offset` line per partition). Written every
//! `replica.high.watermark.checkpoint.interval.ms` and at shutdown; read when partitions open,
//! so a restarted replica starts from a high watermark no higher than the one it had (a lower
//! one only makes consumers wait until the leader's next fetch round).

use std::collections::HashMap;
use std::path::Path;

use nurt_log::storage::write_atomic;
use nurt_log::Storage;

/// The file's name in the data directory.
pub const FILE: &str = "replication-offset-checkpoint";

/// High watermarks by (topic, partition).
pub type HighWatermarks = HashMap<(String, i32), i64>;

/// Reads the checkpoint; a missing or damaged file reads as empty (every partition then
/// starts with nothing known committed, which is safe).
pub fn read(storage: &dyn Storage, data_dir: &Path) -> HighWatermarks {
    let Ok(bytes) = storage.read(&data_dir.join(FILE)) else {
        return HighWatermarks::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        tracing::warn!("ignoring {FILE}: unknown version");
        return HighWatermarks::new();
    }
    let mut out = HighWatermarks::new();
    for line in lines.skip(1) {
        let mut fields = line.rsplitn(3, ' ');
        let (Some(offset), Some(partition), Some(topic)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let (Ok(offset), Ok(partition)) = (offset.parse::<i64>(), partition.parse::<i32>()) {
            out.insert((topic.to_string(), partition), offset);
        }
    }
    out
}

/// Replaces the checkpoint with `entries`, durably.
pub fn write(storage: &dyn Storage, data_dir: &Path, entries: &[(String, i32, i64)]) -> std::io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    write_atomic(storage, &data_dir.join(FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nurt_log::storage::sim::SimStorage;

    use super::*;

    #[test]
    fn round_trips_and_tolerates_damage() {
        let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
        let dir = Path::new("/data");
        storage.create_dir_all(dir).unwrap();
        assert!(read(&*storage, dir).is_empty());
        write(&*storage, dir, &[("a.b".into(), 0, 17), ("c".into(), 3, 0)]).unwrap();
        let hw = read(&*storage, dir);
        assert_eq!(hw.get(&("a.b".to_string(), 0)), Some(&17));
        assert_eq!(hw.get(&("c".to_string(), 3)), Some(&0));
        write_atomic(&*storage, &dir.join(FILE), b"7\n1\nx 0 5\n").unwrap();
        assert!(read(&*storage, dir).is_empty());
    }
}
