//! Log tests: append, read, index lookups, roll, and recovery from torn or garbage tails.

use std::io::Write;

use nurt_records::batch::{self, Batches};
use nurt_records::{BatchBuilder, Compression};
use proptest::prelude::*;

use crate::{Log, LogConfig, LogError};

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
    while let Some(slice) = log.read(offset, 1 << 20).unwrap() {
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
    let mut log = Log::open(dir.path(), small_config(), true, 0).unwrap();
    for i in 0..100 {
        let info = log.append(&batch(3, 20, i), 0, None, i).unwrap();
        assert_eq!(info.base_offset, i * 3);
        assert_eq!(info.last_offset, i * 3 + 2);
    }
    assert_eq!(log.log_end_offset(), 300);
    let batches = read_all(&log, 0);
    assert_eq!(batches.len(), 100);
    // A read from the middle of a batch starts at that batch (clients skip earlier records).
    let slice = log.read(151, 100).unwrap().unwrap();
    let h = batch::BatchHeader::parse(&slice.read_to_vec().unwrap()).unwrap();
    assert_eq!(h.base_offset, 150);
    assert!(log.read(300, 100).unwrap().is_none());
    assert!(matches!(log.read(301, 100), Err(LogError::OffsetOutOfRange { .. })));
}

#[test]
fn rolls_segments_by_size_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), true, 0).unwrap();
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
    log.maybe_roll_by_time(20_000).unwrap();
    assert_eq!(logs(dir.path()), by_size + 2);
    assert_eq!(read_all(&log, 0).len(), 51);
}

#[test]
fn clean_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), true, 0).unwrap();
    for i in 0..40 {
        log.append(&batch(2, 50, i), 0, None, i).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), small_config(), true, 0).unwrap();
    assert_eq!(log.log_end_offset(), 80);
    assert_eq!(read_all(&log, 0).len(), 40);
    assert_eq!(read_all(&log, 33).first().unwrap().0, 32);
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
    let mut log = Log::open(dir.path(), small_config(), true, 0).unwrap();
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
    let mut log = Log::open(dir.path(), small_config(), false, 0).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    log.append(&batch(1, 30, 99), 0, None, 99).unwrap();
    assert_eq!(read_all(&log, 0).len(), 11);
}

#[test]
fn corrupt_batch_in_the_middle_truncates_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), true, 0).unwrap();
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
    let log = Log::open(dir.path(), LogConfig::default(), false, 0).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(read_all(&log, 0).len(), 6);
}

#[test]
fn finds_offsets_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), true, 0).unwrap();
    for i in 0..100 {
        log.append(&batch(1, 10, 1000 + i * 10), 0, None, 0).unwrap();
    }
    let slice = log.find_by_timestamp(1255).unwrap().unwrap();
    let h = batch::BatchHeader::parse(&slice.read_to_vec().unwrap()).unwrap();
    assert_eq!((h.base_offset, h.max_timestamp), (26, 1260));
    assert!(log.find_by_timestamp(5000).unwrap().is_none());
    assert_eq!(log.max_timestamp().unwrap(), Some((1990, 99)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Cutting the active segment anywhere loses at most the batches after the cut, and the
    /// reopened log is contiguous and writable.
    #[test]
    fn torn_tail_recovery(sizes in proptest::collection::vec((1usize..5, 1usize..300), 1..30), cut_frac in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default(), true, 0).unwrap();
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
        let mut log = Log::open(dir.path(), LogConfig::default(), false, 0).unwrap();
        prop_assert_eq!(log.log_end_offset(), expected_end);
        log.append(&batch(1, 1, 0), 0, None, 0).unwrap();
        let all = read_all(&log, 0);
        prop_assert_eq!(all.last().unwrap().1, expected_end);
    }
}
