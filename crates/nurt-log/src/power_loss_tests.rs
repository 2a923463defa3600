//! Power-loss tests: the real log code runs a workload of appends, fsyncs, rolls, checkpoints,
//! retention, compaction and a clean restart over the simulated storage, and the power is cut
//! after every single storage operation in turn. After each cut (losing all, keeping all, or a
//! seeded random part of what was never synced), recovery must open the data directory and
//! both logs, every acknowledged-and-fsynced record must be there byte for byte (or, on the
//! compacted log, its key's value must be that one or a later one), every batch must pass its
//! CRC, and the log must take new writes at its end.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use nurt_records::batch::Batches;
use nurt_records::record::decode_batch;
use nurt_records::{BatchBuilder, Compression};

use crate::cleaner::{clean_segments, CleanOptions};
use crate::storage::sim::{CutMode, SimStorage};
use crate::{DataDir, Log, LogConfig, LogError, Storage};

const DATA: &str = "/data";
const PLAIN: &str = "/data/plain-0";
const COMPACTED: &str = "/data/compacted-0";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

fn record(key: &str, value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None, 1_000);
    b.push(1_000, Some(key.as_bytes()), Some(value.as_bytes()), &[]);
    b.build().unwrap()
}

/// What the workload had acknowledged as durable when the power went.
#[derive(Debug, Default)]
struct Acked {
    /// Plain log: offset → value, for appends followed by a successful fsync.
    plain: BTreeMap<i64, String>,
    /// Plain log appends not yet covered by an fsync.
    plain_pending: BTreeMap<i64, String>,
    /// Compacted log: key → the sequence number of its latest durable value.
    compacted: BTreeMap<String, u32>,
    compacted_pending: BTreeMap<String, u32>,
    /// Plain log: the log start offset DeleteRecords and retention reported (durable then).
    plain_start: i64,
}

impl Acked {
    fn plain_synced(&mut self) {
        self.plain.append(&mut self.plain_pending);
    }

    fn compacted_synced(&mut self) {
        self.compacted.append(&mut self.compacted_pending);
    }
}

fn new_cluster_id() -> Option<String> {
    Some("sim-cluster".to_string())
}

fn compact(log: &mut Log) -> Result<(), LogError> {
    log.set_high_watermark(log.log_end_offset());
    if let Some(segments) = log.plan_compaction(10_000, 0, 0.0, true) {
        let opts = CleanOptions {
            now_ms: 10_000,
            delete_retention_ms: 1_000_000,
            decompressed_bytes_max: 1 << 20,
        };
        let (cleaned, _) = clean_segments(&**log.storage(), &segments, opts)?;
        log.install_compaction(cleaned)?;
    }
    Ok(())
}

/// The workload. Stops at the first error (the power went out) with what it acknowledged.
fn workload(storage: &Arc<dyn Storage>, acked: &mut Acked) -> Result<(), LogError> {
    let dir = DataDir::open(Arc::clone(storage), Path::new(DATA), 1, new_cluster_id)?;
    let mut plain = Log::open(storage, Path::new(PLAIN), config(), dir.was_clean(), 0)?;
    let mut compacted = Log::open(storage, Path::new(COMPACTED), config(), dir.was_clean(), 0)?;
    let mut seq = 0u32;
    for i in 0..12 {
        let value = format!("plain-{i}");
        let info = plain.append(&record(&format!("p{i}"), &value), 1, None, 0)?;
        acked.plain_pending.insert(info.base_offset, value);
        if i % 3 == 2 {
            plain.flush()?;
            acked.plain_synced();
        }
        let key = format!("k{}", i % 4);
        seq += 1;
        compacted.append(&record(&key, &format!("{key}={seq}")), 1, None, 0)?;
        acked.compacted_pending.insert(key, seq);
        if i % 4 == 3 {
            compacted.flush()?;
            acked.compacted_synced();
        }
    }
    compacted.roll(5_000)?;
    acked.compacted_synced(); // a roll fsyncs the segment it closes
    compact(&mut compacted)?;
    // Retention: DeleteRecords past the first segments, then by size.
    plain.set_high_watermark(plain.log_end_offset());
    acked.plain_start = plain.delete_records_before(4)?;
    plain.enforce_retention(10_000, -1, 600)?;
    acked.plain_start = plain.log_start_offset();
    // A clean shutdown, then a start that trusts the logs, then more writes.
    plain.close()?;
    acked.plain_synced();
    compacted.close()?;
    acked.compacted_synced();
    dir.mark_clean()?;
    drop((plain, compacted, dir));
    let dir = DataDir::open(Arc::clone(storage), Path::new(DATA), 1, new_cluster_id)?;
    let mut plain = Log::open(storage, Path::new(PLAIN), config(), dir.was_clean(), 0)?;
    let mut compacted = Log::open(storage, Path::new(COMPACTED), config(), dir.was_clean(), 0)?;
    for i in 12..18 {
        let value = format!("plain-{i}");
        let info = plain.append(&record(&format!("p{i}"), &value), 2, None, 0)?;
        acked.plain_pending.insert(info.base_offset, value);
        let key = format!("k{}", i % 4);
        seq += 1;
        compacted.append(&record(&key, &format!("{key}={seq}")), 2, None, 0)?;
        acked.compacted_pending.insert(key, seq);
    }
    plain.flush()?;
    acked.plain_synced();
    compacted.flush()?;
    acked.compacted_synced();
    Ok(())
}

/// Every record of a log from its start: (offset, key, value), CRCs checked, offsets rising.
fn read_all(log: &Log) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read_for_follower(offset, 1 << 20).expect("readable") {
        let bytes = slice.read_to_vec().expect("bytes");
        let before = offset;
        for b in Batches::new(&bytes) {
            let (header, raw) = b.expect("batch shape");
            let (_, records) = decode_batch(raw, 1 << 20).expect("CRC-valid batch");
            for r in records.into_iter().filter(|r| r.offset >= offset) {
                let text = |v: Option<Vec<u8>>| String::from_utf8(v.unwrap_or_default()).expect("utf8");
                out.push((r.offset, text(r.key), text(r.value)));
            }
            offset = offset.max(header.last_offset() + 1);
        }
        assert!(offset > before, "no progress reading at {before}");
    }
    assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "offsets must rise");
    out
}

/// Recovers after a cut and checks everything acknowledged is there.
fn check_recovery(storage: &Arc<dyn Storage>, acked: &Acked, what: &str) {
    let dir = DataDir::open(Arc::clone(storage), Path::new(DATA), 1, new_cluster_id)
        .unwrap_or_else(|e| panic!("{what}: data dir does not open: {e}"));
    let clean = dir.was_clean();
    let mut plain = Log::open(storage, Path::new(PLAIN), config(), clean, 0)
        .unwrap_or_else(|e| panic!("{what}: plain log does not open: {e}"));
    assert!(
        plain.log_start_offset() >= acked.plain_start,
        "{what}: deleted records came back (log start {} < {})",
        plain.log_start_offset(),
        acked.plain_start
    );
    let records = read_all(&plain);
    let found: BTreeMap<i64, String> = records.into_iter().map(|(o, _, v)| (o, v)).collect();
    for (offset, value) in &acked.plain {
        if *offset < plain.log_start_offset() {
            continue; // deleted by retention or DeleteRecords
        }
        assert_eq!(
            found.get(offset),
            Some(value),
            "{what}: acknowledged record at {offset} lost"
        );
    }
    if let Some((&last, _)) = acked.plain.last_key_value() {
        assert!(
            plain.log_end_offset() > last,
            "{what}: log end went below an acknowledged record"
        );
    }
    let end = plain.log_end_offset();
    let info = plain
        .append(&record("after", "after"), 3, None, 0)
        .expect("append after recovery");
    assert_eq!(info.base_offset, end, "{what}");

    let compacted = Log::open(storage, Path::new(COMPACTED), config(), clean, 0)
        .unwrap_or_else(|e| panic!("{what}: compacted log does not open: {e}"));
    let mut latest: BTreeMap<String, u32> = BTreeMap::new();
    for (_, key, value) in read_all(&compacted) {
        let seq: u32 = value.rsplit('=').next().and_then(|s| s.parse().ok()).expect("seq");
        latest.insert(key, seq);
    }
    for (key, seq) in &acked.compacted {
        let got = latest.get(key).copied();
        assert!(
            got.is_some_and(|g| g >= *seq),
            "{what}: key {key} lost value {seq}, found {got:?}"
        );
    }
}

fn crash_at(ops: u64, mode: CutMode) {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    sim.fail_after(ops);
    let mut acked = Acked::default();
    let outcome = workload(&storage, &mut acked);
    sim.power_cut(mode);
    let what = format!("power cut after {ops} operations ({mode:?}; workload: {outcome:?})");
    check_recovery(&storage, &acked, &what);
}

#[test]
fn every_crash_point_recovers_every_acknowledged_record() {
    // Count the workload's operations once, uninterrupted.
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    workload(&storage, &mut Acked::default()).expect("the workload runs without faults");
    let total = sim.ops();
    assert!(
        total > 100,
        "the workload should exercise the storage ({total} operations)"
    );
    for ops in 0..=total {
        for mode in [
            CutMode::LoseAll,
            CutMode::KeepAll,
            CutMode::Random(ops),
            CutMode::Random(ops ^ 0xA5A5),
        ] {
            crash_at(ops, mode);
        }
    }
}

#[test]
fn a_power_cut_right_after_a_log_is_created_keeps_its_synced_records() {
    // The narrow case behind the directory fsync of a new log: create, append, fsync, cut.
    // (Epoch -1: no leader-epoch checkpoint is written, whose own directory fsync would
    // otherwise cover the segment's entry by chance.)
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let dir = DataDir::open(Arc::clone(&storage), Path::new(DATA), 1, new_cluster_id).unwrap();
    let mut log = Log::open(&storage, Path::new(PLAIN), config(), dir.was_clean(), 0).unwrap();
    log.append(&record("k", "synced"), -1, None, 0).unwrap();
    log.flush().unwrap();
    sim.power_cut(CutMode::LoseAll);
    let log = Log::open(&storage, Path::new(PLAIN), config(), false, 0).unwrap();
    assert_eq!(read_all(&log), vec![(0, "k".to_string(), "synced".to_string())]);
}

#[test]
fn a_power_cut_after_a_compaction_swap_never_pairs_old_indexes_with_new_bytes() {
    // Ten batches of different sizes; the first two are superseded within the segment, so the
    // cleaned copy is shorter and its batches start at other positions than the old index says.
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h", "a", "b"];
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let cfg = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    DataDir::open(Arc::clone(&storage), Path::new(DATA), 1, new_cluster_id).unwrap();
    let mut log = Log::open(&storage, Path::new(COMPACTED), cfg.clone(), false, 0).unwrap();
    for (i, key) in keys.iter().enumerate() {
        let value = format!("{key}={}{}", i + 1, "x".repeat(i * 40 + 3));
        log.append(&record(key, &value), 0, None, 0).unwrap();
    }
    log.flush().unwrap();
    log.roll(5_000).unwrap();
    log.set_high_watermark(log.log_end_offset());
    compact(&mut log).unwrap();
    // Power goes right after the swap: the rebuilt indexes were never synced.
    sim.power_cut(CutMode::LoseAll);
    let log = Log::open(&storage, Path::new(COMPACTED), cfg, false, 0).unwrap();
    let found: Vec<String> = read_all(&log).into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(found, ["c", "d", "e", "f", "g", "h", "a", "b"]);
    // Every offset still reads from the batch holding it.
    for offset in 2..10 {
        let slice = log.read_for_follower(offset, 1).unwrap().unwrap();
        let header = nurt_records::BatchHeader::parse(&slice.read_to_vec().unwrap()).unwrap();
        assert_eq!(header.base_offset, offset);
    }
}

#[test]
fn a_truncation_is_durable_when_it_returns() {
    // A follower cuts what its leader never committed, then takes the leader's records: a
    // power cut must not bring the cut records back between them.
    for mode in [CutMode::LoseAll, CutMode::Random(7), CutMode::Random(8)] {
        let sim = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(sim.clone());
        DataDir::open(Arc::clone(&storage), Path::new(DATA), 1, new_cluster_id).unwrap();
        let mut log = Log::open(&storage, Path::new(PLAIN), config(), false, 0).unwrap();
        for i in 0..8 {
            log.append(&record(&format!("k{i}"), "old"), 1, None, 0).unwrap();
        }
        log.flush().unwrap();
        log.truncate_to(3).unwrap();
        sim.power_cut(mode);
        let log = Log::open(&storage, Path::new(PLAIN), config(), false, 0).unwrap();
        assert_eq!(log.log_end_offset(), 3, "{mode:?}");
        assert_eq!(read_all(&log).len(), 3);
    }
}

/// A node of a cluster starts without a cluster id and adopts its cluster's: durably, once,
/// and never a second, different one.
#[test]
fn a_joining_data_dir_adopts_its_cluster_id_durably_and_once() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let dir = DataDir::open(Arc::clone(&storage), Path::new(DATA), 7, || None).unwrap();
    assert_eq!(dir.cluster_id(), None);
    dir.adopt_cluster_id("the-cluster").unwrap();
    dir.adopt_cluster_id("the-cluster").unwrap();
    assert!(dir.adopt_cluster_id("another").is_err());
    sim.power_cut(CutMode::LoseAll);
    let again = DataDir::open(Arc::clone(&storage), Path::new(DATA), 7, || Some("fresh".into())).unwrap();
    assert_eq!(again.cluster_id().as_deref(), Some("the-cluster"));
}

const TXN: &str = "/data/txn-0";

fn txn_record(pid: i64, seq: i32, value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None, 1_000).transactional(pid, 0, seq);
    b.push(1_000, Some(b"k"), Some(value.as_bytes()), &[]);
    b.build().unwrap()
}

/// Transactions over rolls, a truncation, a clean restart and an unclean end. Records in
/// `aborted` each abort (producer id, first offset, marker offset) once an fsync covered its
/// marker.
fn txn_workload(storage: &Arc<dyn Storage>, aborted: &mut Vec<(i64, i64, i64)>) -> Result<(), LogError> {
    use nurt_records::ControlType;
    let mut pending = Vec::new();
    for round in 0..2 {
        let dir = DataDir::open(Arc::clone(storage), Path::new(DATA), 1, new_cluster_id)?;
        let mut log = Log::open(storage, Path::new(TXN), config(), dir.was_clean(), 0)?;
        for i in 0..9 {
            let pid = i % 3 + 1;
            log.append(&txn_record(pid, round * 100 + i as i32, "v"), 1, None, 0)?;
            if i % 2 == 1 {
                let end = (i + pid) % 2 == 0;
                let kind = if end { ControlType::Commit } else { ControlType::Abort };
                let Some(first) = log.producer_state().open_transaction(pid) else {
                    continue;
                };
                let marker = log.append_marker(pid, 0, kind, 0, 1, 0)?;
                if kind == ControlType::Abort {
                    pending.push((pid, first, marker.base_offset));
                }
            }
            if i % 3 == 2 {
                log.flush()?;
                aborted.append(&mut pending);
            }
        }
        if round == 0 {
            // A follower's cut of its last records (durable when it returns; aborts whose
            // markers it removed are gone), then a clean shutdown.
            let end = log.log_end_offset() - 3;
            log.flush()?;
            aborted.append(&mut pending);
            // Forgotten before the cut: once it has started, they may be gone.
            aborted.retain(|a| a.2 < end);
            log.truncate_to(end)?;
            log.close()?;
            dir.mark_clean()?;
        }
    }
    Ok(())
}

/// Recovers the transactional log and checks its indexes and state against a replay of the
/// whole log from scratch, and that every durable abort is listed.
fn check_txn_recovery(storage: &Arc<dyn Storage>, aborted: &[(i64, i64, i64)], what: &str) {
    use crate::ProducerStateTable;
    use nurt_records::control::parse_marker_batch;
    let dir = DataDir::open(Arc::clone(storage), Path::new(DATA), 1, new_cluster_id)
        .unwrap_or_else(|e| panic!("{what}: data dir does not open: {e}"));
    let mut log = Log::open(storage, Path::new(TXN), config(), dir.was_clean(), 0)
        .unwrap_or_else(|e| panic!("{what}: log does not open: {e}"));
    log.set_high_watermark(log.log_end_offset());
    let mut reference = ProducerStateTable::default();
    let mut expected_aborts = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read_for_follower(offset, 1 << 20).expect("readable") {
        let bytes = slice.read_to_vec().expect("bytes");
        for b in Batches::new(&bytes) {
            let (h, raw) = b.expect("batch shape");
            match parse_marker_batch(raw).expect("CRC-valid batch") {
                Some(m) => {
                    let done = reference.on_marker(h.producer_id, h.producer_epoch, m, h.base_offset, 0);
                    if let Some(t) = done.filter(|t| t.aborted) {
                        expected_aborts.push((t.producer_id, t.first_offset));
                    }
                }
                None => reference.on_append(&h, h.base_offset),
            }
            offset = h.last_offset() + 1;
        }
    }
    assert_eq!(log.aborted_transactions(0, i64::MAX), expected_aborts, "{what}");
    assert_eq!(
        log.producer_state().open_transactions(),
        reference.open_transactions(),
        "{what}"
    );
    for &(pid, first, _) in aborted {
        assert!(
            expected_aborts.contains(&(pid, first)),
            "{what}: durable abort of {pid} at {first} lost"
        );
    }
    let end = log.log_end_offset();
    let info = log
        .append(&txn_record(9, 0, "after"), 3, None, 0)
        .expect("append after recovery");
    assert_eq!(info.base_offset, end, "{what}");
}

#[test]
fn every_crash_point_recovers_transaction_indexes_and_state() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    txn_workload(&storage, &mut Vec::new()).expect("the workload runs without faults");
    let total = sim.ops();
    assert!(
        total > 100,
        "the workload should exercise the storage ({total} operations)"
    );
    for ops in 0..=total {
        for mode in [CutMode::LoseAll, CutMode::KeepAll, CutMode::Random(ops)] {
            let sim = SimStorage::new();
            let storage: Arc<dyn Storage> = Arc::new(sim.clone());
            sim.fail_after(ops);
            let mut aborted = Vec::new();
            let outcome = txn_workload(&storage, &mut aborted);
            sim.power_cut(mode);
            let what = format!("power cut after {ops} operations ({mode:?}; workload: {outcome:?})");
            check_txn_recovery(&storage, &aborted, &what);
        }
    }
}
