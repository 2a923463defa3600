//! Log tests: append, read, index lookups, roll, and recovery from torn or garbage tails.

use std::io::Write;

use nurt_records::batch::{self, Batches};
use nurt_records::{BatchBuilder, Compression};
use proptest::prelude::*;

use crate::{Log, LogConfig, LogError, Storage};

fn os() -> std::sync::Arc<dyn Storage> {
    // Three descriptors for every file of every test: each log operation here also runs
    // through closing and reopening files (storage::fd_cache).
    std::sync::Arc::new(crate::storage::fd_cache::CachedStorage::new(3))
}

fn batch(n_records: usize, value_bytes: usize, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None, ts);
    for i in 0..n_records {
        b.push(
            ts,
            Some(format!("k{i}").as_bytes()),
            Some(&vec![b'v'; value_bytes]),
            &[],
        );
    }
    b.build().unwrap()
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Reads every batch from `offset` to the end, checking CRCs and offset continuity.
fn read_all(log: &Log, mut offset: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    while let Some(slice) = log.read_for_follower(offset, 1 << 20).unwrap() {
        let bytes = slice.read_to_vec().unwrap();
        for b in Batches::new(&bytes) {
            let (h, raw) = b.unwrap();
            batch::validate(raw).unwrap();
            if h.last_offset() < offset {
                continue;
            }
            assert!(h.base_offset <= offset, "gap before {offset}");
            out.push((h.base_offset, h.last_offset()));
            offset = h.last_offset() + 1;
        }
    }
    out
}

#[test]
fn append_assigns_contiguous_offsets_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    for i in 0..100 {
        let info = log.append(&batch(3, 20, i), 0, None, i).unwrap();
        assert_eq!(info.base_offset, i * 3);
        assert_eq!(info.last_offset, i * 3 + 2);
    }
    assert_eq!(log.log_end_offset(), 300);
    let batches = read_all(&log, 0);
    assert_eq!(batches.len(), 100);
    // A read from the middle of a batch starts at that batch (clients skip earlier records).
    let slice = log.read_for_follower(151, 100).unwrap().unwrap();
    let h = batch::BatchHeader::parse(&slice.read_to_vec().unwrap()).unwrap();
    assert_eq!(h.base_offset, 150);
    assert!(log.read_for_follower(300, 100).unwrap().is_none());
    assert!(matches!(
        log.read_for_follower(301, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn rolls_segments_by_size_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    for i in 0..50 {
        log.append(&batch(2, 100, i), 0, None, 0).unwrap();
    }
    let logs = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"))
            .count()
    };
    let by_size = logs(dir.path());
    assert!(by_size > 3, "expected several segments, got {by_size}");
    let mut cfg = small_config();
    cfg.segment_ms = 1000;
    log.set_config(cfg);
    log.append(&batch(1, 1, 0), 0, None, 10_000).unwrap();
    // segment.ms rolls only when an append arrives (as Kafka's maybeRoll): time alone does not.
    assert_eq!(logs(dir.path()), by_size + 1);
    log.append(&batch(1, 1, 0), 0, None, 20_000).unwrap();
    assert_eq!(logs(dir.path()), by_size + 2);
    assert_eq!(read_all(&log, 0).len(), 52);
}

#[test]
fn clean_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    for i in 0..40 {
        log.append(&batch(2, 50, i), 0, None, i).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    assert_eq!(log.log_end_offset(), 80);
    assert_eq!(read_all(&log, 0).len(), 40);
    assert_eq!(read_all(&log, 33).first().unwrap().0, 32);
}

#[test]
fn a_clean_open_reads_only_the_batches_after_each_last_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    };
    let mut log = Log::open(&os(), dir.path(), config.clone(), true, 0).unwrap();
    for i in 0..2_000 {
        log.append(&batch(1, 20, i), 0, None, i).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let log = Log::open(&os(), dir.path(), config.clone(), true, 0).unwrap();
    assert_eq!(log.log_end_offset(), 2_000);
    assert!(
        log.headers_read_at_open() < 40,
        "read {} headers",
        log.headers_read_at_open()
    );
    assert_eq!(read_all(&log, 1_990).len(), 10, "the end found from the index is exact");
    assert_eq!(
        log.max_timestamp_batch().unwrap().map(|(ts, _)| ts),
        Some(1_999),
        "max timestamp from the time index"
    );
    drop(log);
    // After a crash nothing is trusted past the recovery point: every batch is read.
    let log = Log::open(&os(), dir.path(), config, false, 0).unwrap();
    assert!(
        log.headers_read_at_open() >= 2_000,
        "read {}",
        log.headers_read_at_open()
    );
    assert_eq!(log.log_end_offset(), 2_000);
}

#[test]
fn closing_a_log_that_changed_nothing_writes_nothing() {
    use crate::storage::sim::SimStorage;
    let sim = SimStorage::new();
    let storage: std::sync::Arc<dyn Storage> = std::sync::Arc::new(sim.clone());
    let dir = std::path::Path::new("/sim/idle-0");
    let mut log = Log::open(&storage, dir, small_config(), true, 0).unwrap();
    for i in 0..10 {
        log.append(&batch(1, 20, i), 0, None, i).unwrap();
    }
    let before = sim.ops();
    log.close().unwrap();
    assert!(sim.ops() > before, "the first close flushes and writes its checkpoints");
    drop(log);
    let mut log = Log::open(&storage, dir, small_config(), true, 0).unwrap();
    let before = sim.ops();
    log.close().unwrap();
    assert_eq!(sim.ops(), before, "an idle log closes without a write or an fsync");
    log.append(&batch(1, 20, 10), 0, None, 10).unwrap();
    let before = sim.ops();
    log.close().unwrap();
    assert!(sim.ops() > before, "new data is flushed again");
    drop(log);
    let mut empty = Log::open(&storage, std::path::Path::new("/sim/empty-0"), small_config(), true, 0).unwrap();
    let before = sim.ops();
    empty.close().unwrap();
    assert_eq!(sim.ops(), before, "a never-written log has nothing to close");
}

fn active_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn garbage_tail_is_cut_and_log_accepts_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    for i in 0..10 {
        log.append(&batch(1, 30, i), 0, None, i).unwrap();
    }
    drop(log); // no close: an unclean stop
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(active_segment(dir.path()))
        .unwrap();
    f.write_all(&[0xAB; 300]).unwrap();
    drop(f);
    let mut log = Log::open(&os(), dir.path(), small_config(), false, 0).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    log.append(&batch(1, 30, 99), 0, None, 99).unwrap();
    assert_eq!(read_all(&log, 0).len(), 11);
}

#[test]
fn corrupt_batch_in_the_middle_truncates_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), LogConfig::default(), true, 0).unwrap();
    let one = batch(1, 30, 0);
    for i in 0..10 {
        log.append(&one, 0, None, i).unwrap();
    }
    drop(log);
    let path = active_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = one.len() * 6 + 70; // inside the 7th batch's records
    bytes[at] ^= 0xFF;
    std::fs::write(&path, bytes).unwrap();
    let log = Log::open(&os(), dir.path(), LogConfig::default(), false, 0).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(read_all(&log, 0).len(), 6);
}

#[test]
fn finds_offsets_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    for i in 0..100 {
        log.append(&batch(1, 10, 1000 + i * 10), 0, None, 0).unwrap();
    }
    let slice = log.find_by_timestamp(1255).unwrap().unwrap();
    let h = batch::BatchHeader::parse(&slice.read_to_vec().unwrap()).unwrap();
    assert_eq!((h.base_offset, h.max_timestamp), (26, 1260));
    assert!(log.find_by_timestamp(5000).unwrap().is_none());
    let (ts, slice) = log.max_timestamp_batch().unwrap().unwrap();
    let h = batch::BatchHeader::parse(&slice.read_to_vec().unwrap()).unwrap();
    assert_eq!((ts, h.base_offset), (1990, 99));
    // The maximum may sit in an older segment than the newest timestamps.
    log.roll(0).unwrap();
    log.append(&batch(1, 10, 1500), 0, None, 0).unwrap();
    let (ts, slice) = log.max_timestamp_batch().unwrap().unwrap();
    let h = batch::BatchHeader::parse(&slice.read_to_vec().unwrap()).unwrap();
    assert_eq!((ts, h.base_offset), (1990, 99));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Cutting the active segment anywhere loses at most the batches after the cut, and the
    /// reopened log is contiguous and writable.
    #[test]
    fn torn_tail_recovery(sizes in proptest::collection::vec((1usize..5, 1usize..300), 1..30), cut_frac in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(&os(), dir.path(), LogConfig::default(), true, 0).unwrap();
        let mut ends = vec![];
        let mut pos = 0u64;
        for (n, v) in &sizes {
            let b = batch(*n, *v, 0);
            let info = log.append(&b, 0, None, 0).unwrap();
            pos += b.len() as u64;
            ends.push((pos, info.last_offset + 1));
        }
        drop(log);
        let path = active_segment(dir.path());
        let cut = (pos as f64 * cut_frac) as u64;
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();
        let expected_end = ends.iter().filter(|(p, _)| *p <= cut).map(|(_, e)| *e).next_back().unwrap_or(0);
        let mut log = Log::open(&os(), dir.path(), LogConfig::default(), false, 0).unwrap();
        prop_assert_eq!(log.log_end_offset(), expected_end);
        log.append(&batch(1, 1, 0), 0, None, 0).unwrap();
        let all = read_all(&log, 0);
        prop_assert_eq!(all.last().unwrap().1, expected_end);
    }
}

fn keyed(key: &str, value: Option<&str>, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None, ts);
    b.push(ts, Some(key.as_bytes()), value.map(str::as_bytes), &[]);
    b.build().unwrap()
}

#[test]
fn retention_by_time_and_size_moves_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    for i in 0..60 {
        log.append(&batch(1, 200, i * 100), 0, None, i * 100).unwrap();
    }
    let segments_before = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"))
        .count();
    // Everything older than t=3000 expires: whole segments only.
    log.set_high_watermark(log.log_end_offset());
    let deleted = log.enforce_retention(5_000, 2_000, -1).unwrap();
    assert!(deleted > 0);
    let start = log.log_start_offset();
    assert!(start > 0 && start <= 30, "log start {start}");
    assert!(matches!(
        log.read_for_follower(0, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, start).last().unwrap().1, 59);
    // Size: keep at most ~1 KiB beyond the oldest segment.
    log.set_high_watermark(log.log_end_offset());
    log.enforce_retention(5_000, -1, 1024).unwrap();
    assert!(log.size_bytes() < 1024 + 4096);
    // All expired: the active segment is rolled and everything goes.
    log.set_high_watermark(log.log_end_offset());
    log.enforce_retention(1_000_000, 1, -1).unwrap();
    assert_eq!(log.log_start_offset(), 60);
    assert_eq!(log.log_end_offset(), 60);
    let segments_after = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"))
        .count();
    assert!(segments_after < segments_before);
    drop(log);
    let log = Log::open(&os(), dir.path(), small_config(), false, 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (60, 60));
}

#[test]
fn delete_records_moves_start_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    for i in 0..50 {
        log.append(&batch(2, 100, i), 0, None, 0).unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    assert!(matches!(
        log.delete_records_before(101),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.delete_records_before(37).unwrap(), 37);
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.delete_records_before(10).unwrap(), 37, "never moves backwards");
    assert!(log.read_for_follower(36, 100).is_err());
    assert!(log.read_for_follower(37, 100).unwrap().is_some());
    drop(log);
    let log = Log::open(&os(), dir.path(), small_config(), false, 0).unwrap();
    assert_eq!(log.log_start_offset(), 37);
}

#[test]
fn compaction_keeps_latest_per_key_and_drops_old_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    for i in 0..300 {
        let key = format!("k{}", i % 10);
        log.append(&keyed(&key, Some(&format!("v{i}")), 1_000 + i), 0, None, 0)
            .unwrap();
    }
    for k in 0..3 {
        log.append(&keyed(&format!("k{k}"), None, 2_000), 0, None, 0).unwrap();
    }
    log.roll(3_000).unwrap();
    log.set_high_watermark(log.log_end_offset());
    let segments = log.cleanable_segments(10_000, 0);
    assert!(segments.len() > 1);
    let (cleaned, stats) = crate::cleaner::clean_segments(
        &*os(),
        &segments,
        crate::cleaner::CleanOptions {
            now_ms: 10_000,
            delete_retention_ms: 5_000,
            decompressed_bytes_max: 1 << 20,
        },
    )
    .unwrap();
    assert_eq!((stats.records_before, stats.records_after), (303, 7));
    for (seg, path) in cleaned {
        assert!(log.install_cleaned(seg.base_offset, &path, seg.size_bytes).unwrap());
    }
    let mut values = std::collections::BTreeMap::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read_for_follower(offset, 1 << 20).unwrap() {
        let bytes = slice.read_to_vec().unwrap();
        for b in Batches::new(&bytes) {
            let (h, raw) = b.unwrap();
            let (_, records) = nurt_records::record::decode_batch(raw, 1 << 20).unwrap();
            for r in records {
                values.insert(r.key.unwrap(), (r.offset, r.value));
            }
            offset = h.last_offset() + 1;
        }
    }
    assert_eq!(values.len(), 7);
    assert_eq!(values[&b"k9".to_vec()], (299, Some(b"v299".to_vec())));
    // A reopen (recovery scan) accepts the offset gaps left by compaction.
    let end = log.log_end_offset();
    drop(log);
    let mut log = Log::open(&os(), dir.path(), small_config(), false, 0).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(
        log.append(&keyed("k1", Some("new"), 4_000), 0, None, 0)
            .unwrap()
            .base_offset,
        end
    );
}

#[test]
fn leftovers_of_interrupted_cleaning_and_deletion_are_tidied() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    for i in 0..30 {
        log.append(&batch(1, 300, i), 0, None, 0).unwrap();
    }
    drop(log);
    std::fs::write(dir.path().join("00000000000000000000.log.cleaned"), b"half written").unwrap();
    std::fs::write(dir.path().join("00000000000000000003.log.deleted"), b"doomed").unwrap();
    let log = Log::open(&os(), dir.path(), small_config(), false, 0).unwrap();
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(read_all(&log, 0).len(), 30);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().filter(|e| {
        let n = e.as_ref().unwrap().file_name().to_string_lossy().into_owned();
        n.ends_with(".cleaned") || n.ends_with(".deleted")
    });
    assert_eq!(leftovers.count(), 0);
}

/// A batch as a leader's log holds it: offsets and leader epoch stamped.
fn replicated(base_offset: i64, epoch: i32, n: usize) -> Vec<u8> {
    let mut b = batch(n, 20, 1_000);
    nurt_records::batch::set_base_offset(&mut b, base_offset);
    nurt_records::batch::set_partition_leader_epoch(&mut b, epoch);
    b
}

#[test]
fn follower_appends_keep_the_leaders_offsets_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    log.append_as_follower(&replicated(0, 3, 2), 0).unwrap();
    // Compaction on the leader may leave gaps: a later base offset is fine.
    log.append_as_follower(&replicated(5, 4, 1), 0).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert!(matches!(
        log.append_as_follower(&replicated(4, 4, 1), 0),
        Err(LogError::OffsetsGoBack { .. })
    ));
    assert_eq!(log.epochs().end_offset_for(3, 6), Some((3, 5)));
    assert_eq!(log.epochs().end_offset_for(4, 6), Some((4, 6)));
    let bytes = log
        .read_for_follower(0, 1 << 20)
        .unwrap()
        .unwrap()
        .read_to_vec()
        .unwrap();
    let ranges: Vec<(i64, i64)> = Batches::new(&bytes)
        .map(|b| {
            let (h, raw) = b.unwrap();
            batch::validate(raw).unwrap();
            (h.base_offset, h.last_offset())
        })
        .collect();
    assert_eq!(ranges, vec![(0, 1), (5, 5)]);
    // A read from inside the gap starts at the next batch.
    let slice = log.read_for_follower(3, 1 << 20).unwrap().unwrap();
    assert_eq!(
        batch::BatchHeader::parse(&slice.read_to_vec().unwrap())
            .unwrap()
            .base_offset,
        5
    );
}

#[test]
fn truncation_drops_whole_batches_epochs_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    let mut offset = 0;
    for epoch in 0..4 {
        for _ in 0..10 {
            log.append_as_follower(&replicated(offset, epoch, 2), 0).unwrap();
            offset += 2;
        }
    }
    assert!(log.size_bytes() > 4096, "several segments");
    // Cut inside a batch (offset 51 is in the batch 50..51): the whole batch goes.
    assert_eq!(log.truncate_to(51).unwrap(), 50);
    assert_eq!(log.log_end_offset(), 50);
    assert_eq!(log.epochs().latest_epoch(), Some(2));
    assert_eq!(log.epochs().end_offset_for(2, 50), Some((2, 50)));
    assert_eq!(read_all(&log, 0).last().unwrap().1, 49);
    // Appends continue from the cut, and everything survives an unclean reopen.
    log.append_as_follower(&replicated(50, 5, 1), 0).unwrap();
    drop(log);
    let mut log = Log::open(&os(), dir.path(), small_config(), false, 0).unwrap();
    assert_eq!(log.log_end_offset(), 51);
    assert_eq!(log.epochs().latest_epoch(), Some(5));
    assert_eq!(read_all(&log, 0).len(), 26);
    // Below the log start, the log starts over at the offset.
    log.set_high_watermark(log.log_end_offset());
    log.delete_records_before(20).unwrap();
    log.truncate_to(10).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    log.truncate_fully_and_start_at(1_000).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1_000, 1_000));
    assert_eq!(log.append(&batch(1, 1, 0), 6, None, 0).unwrap().base_offset, 1_000);
    drop(log);
    let log = Log::open(&os(), dir.path(), small_config(), false, 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1_000, 1_001));
}

/// Consumers read below the high watermark, followers to the log end; retention and the
/// cleaner never touch a segment that reaches past the high watermark.
#[test]
fn reads_retention_and_cleaning_stop_at_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&os(), dir.path(), small_config(), true, 0).unwrap();
    assert_eq!(log.high_watermark(), 0, "nothing is committed until the owner says so");
    for i in 0..60 {
        log.append(&batch(1, 200, i * 100), 0, None, i * 100).unwrap();
    }
    assert!(
        log.read(0, 1 << 20).unwrap().is_none(),
        "nothing below the high watermark yet"
    );
    log.set_high_watermark(25);
    let mut consumer = Vec::new();
    let mut offset = 0;
    while let Some(slice) = log.read(offset, 1 << 20).unwrap() {
        for b in Batches::new(&slice.read_to_vec().unwrap()) {
            let (h, _) = b.unwrap();
            consumer.push(h.base_offset);
            offset = h.last_offset() + 1;
        }
    }
    assert_eq!(
        consumer,
        (0..25).collect::<Vec<_>>(),
        "a consumer sees exactly the committed records"
    );
    assert!(matches!(log.read(26, 100), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(
        read_all(&log, 0).last().unwrap().1,
        59,
        "a follower reads to the log end"
    );
    // Everything is expired and everything would be cleanable, but only below offset 25.
    log.enforce_retention(100_000, 1, -1).unwrap();
    assert!(log.log_start_offset() <= 25);
    assert!(log.cleanable_segments(100_000, 0).iter().all(|s| s.base_offset < 25));
    assert_eq!(read_all(&log, log.log_start_offset()).last().unwrap().1, 59);
    // The high watermark never passes the log end, nor falls below the log start.
    log.set_high_watermark(1_000);
    assert_eq!(log.high_watermark(), 60);
}
