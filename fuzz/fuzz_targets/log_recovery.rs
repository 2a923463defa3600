//! A segment of valid batches followed by arbitrary bytes: recovery keeps every whole valid
//! batch before the garbage, cuts the rest, and the log accepts new writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nurt_log::{Log, LogConfig, OsStorage};
use nurt_records::{BatchBuilder, Compression};

fn batch(i: u8) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None, 1_000);
    b.push(1_000, Some(&[i]), Some(&[i; 20]), &[]);
    b.build().expect("small batch")
}

fuzz_target!(|data: &[u8]| {
    let Some((&valid, garbage)) = data.split_first() else { return };
    let valid = valid % 8;
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = OsStorage::shared();
    {
        let mut log = Log::open(&storage, dir.path(), LogConfig::default(), true, 0).expect("new log");
        for i in 0..valid {
            log.append(&batch(i), 0, None, 0).expect("append");
        }
    }
    let segment = dir.path().join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&segment).expect("segment");
    bytes.extend_from_slice(garbage);
    std::fs::write(&segment, bytes).expect("write garbage");
    let mut log = Log::open(&storage, dir.path(), LogConfig::default(), false, 0).expect("recovery never fails on garbage");
    // Garbage may happen to be valid batches; never fewer than the valid prefix survive.
    assert!(log.log_end_offset() >= i64::from(valid));
    let end = log.log_end_offset();
    let info = log.append(&batch(9), 0, None, 0).expect("append after recovery");
    assert_eq!(info.base_offset, end);
});
