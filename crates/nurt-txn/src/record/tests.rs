//! Byte layouts against Kafka's schemas, round trips, and corrupt input.

use super::*;

fn ongoing() -> TxnLogValue {
    TxnLogValue {
        producer_id: 1000,
        previous_producer_id: 1000,
        next_producer_id: NO_PRODUCER_ID,
        producer_epoch: 5,
        timeout_ms: 60_000,
        state: TxnState::Ongoing,
        partitions: Partitions::from([("t".to_string(), BTreeSet::from([0, 1]))]),
        last_update_ms: 20,
        start_ms: 10,
        client_version: 2,
    }
}

#[test]
fn state_ids_and_names_are_kafkas() {
    let ids: Vec<(i8, &str)> = TxnState::ALL.iter().map(|s| (s.id(), s.name())).collect();
    assert_eq!(
        ids,
        vec![
            (0, "Empty"),
            (1, "Ongoing"),
            (2, "PrepareCommit"),
            (3, "PrepareAbort"),
            (4, "CompleteCommit"),
            (5, "CompleteAbort"),
            (6, "Dead"),
            (7, "PrepareEpochFence"),
        ]
    );
    for s in TxnState::ALL {
        assert_eq!(TxnState::from_id(s.id()), Some(s));
        assert_eq!(TxnState::from_name(s.name()), Some(s));
    }
    assert_eq!(TxnState::from_id(8), None);
}

#[test]
fn key_is_type_0_and_an_i16_string() {
    let r = TxnRecord {
        transactional_id: "abc".into(),
        value: None,
    };
    assert_eq!(r.encode(), (vec![0, 0, 0, 3, b'a', b'b', b'c'], None));
}

#[test]
fn value_v1_layout_matches_kafka() {
    let mut expected = vec![0, 1];
    expected.extend_from_slice(&1000i64.to_be_bytes());
    expected.extend_from_slice(&[0, 5]);
    expected.extend_from_slice(&60_000i32.to_be_bytes());
    expected.push(1); // Ongoing
    expected.extend_from_slice(&[2, 2, b't', 3, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    expected.extend_from_slice(&20i64.to_be_bytes());
    expected.extend_from_slice(&10i64.to_be_bytes());
    // Two tags: PreviousProducerId (0, 8 bytes) and ClientTransactionVersion (2, 2 bytes);
    // NextProducerId is at its default and left out.
    expected.extend_from_slice(&[2, 0, 8]);
    expected.extend_from_slice(&1000i64.to_be_bytes());
    expected.extend_from_slice(&[2, 2, 0, 2]);
    assert_eq!(ongoing().encode(1), expected);
    assert_eq!(TxnLogValue::decode(&expected), Ok(ongoing()));
}

#[test]
fn empty_state_writes_null_partitions_and_no_tags_at_defaults() {
    let v = TxnLogValue {
        producer_id: 7,
        producer_epoch: 0,
        timeout_ms: 1,
        last_update_ms: 3,
        ..TxnLogValue::default()
    };
    let mut expected = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 1, 0, 0];
    expected.extend_from_slice(&3i64.to_be_bytes());
    expected.extend_from_slice(&(-1i64).to_be_bytes());
    expected.push(0);
    assert_eq!(v.encode(1), expected);
    assert_eq!(TxnLogValue::decode(&expected), Ok(v));
}

#[test]
fn value_v0_is_read() {
    let mut bytes = vec![0, 0];
    bytes.extend_from_slice(&1000i64.to_be_bytes());
    bytes.extend_from_slice(&[0, 5]);
    bytes.extend_from_slice(&60_000i32.to_be_bytes());
    bytes.push(1);
    bytes.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
    bytes.extend_from_slice(&20i64.to_be_bytes());
    bytes.extend_from_slice(&10i64.to_be_bytes());
    let expected = TxnLogValue {
        previous_producer_id: NO_PRODUCER_ID,
        client_version: 0,
        ..ongoing()
    };
    assert_eq!(TxnLogValue::decode(&bytes), Ok(expected.clone()));
    assert_eq!(expected.encode(0), bytes);
}

#[test]
fn records_round_trip() {
    let mut v = ongoing();
    v.next_producer_id = 2000;
    v.state = TxnState::PrepareCommit;
    for value in [Some(v), Some(TxnLogValue::default()), None] {
        let r = TxnRecord {
            transactional_id: "txn-1".into(),
            value,
        };
        let (k, v) = r.encode();
        assert_eq!(TxnRecord::decode(&k, v.as_deref()), Ok(r));
    }
}

#[test]
fn unknown_tags_are_skipped() {
    let mut bytes = ongoing().encode(1);
    // Replace the tag count 2 with 3 and append a tag 3 (NextProducerEpoch in newer Kafka).
    let tags_at = bytes.len() - 15;
    assert_eq!(bytes[tags_at], 2);
    bytes[tags_at] = 3;
    bytes.extend_from_slice(&[3, 2, 0, 9]);
    assert_eq!(TxnLogValue::decode(&bytes), Ok(ongoing()));
}

#[test]
fn corrupt_input_is_refused_without_allocating() {
    assert_eq!(
        TxnRecord::decode(&[0, 1, 0, 0], None),
        Err(CorruptRecord("unknown key version"))
    );
    assert!(TxnRecord::decode(&[0, 0, 0, 9, b'a'], None).is_err());
    assert!(TxnLogValue::decode(&[0, 2]).is_err());
    let good = ongoing().encode(1);
    for n in 0..good.len() {
        assert!(TxnLogValue::decode(&good[..n]).is_err(), "truncated at {n}");
    }
    // A topic count of 2^31 with a few bytes behind it.
    let mut huge = good[..17].to_vec();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07, 0]);
    assert_eq!(
        TxnLogValue::decode(&huge),
        Err(CorruptRecord("length exceeds the record"))
    );
    let mut v0 = ongoing().encode(0);
    v0[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(
        TxnLogValue::decode(&v0),
        Err(CorruptRecord("length exceeds the record"))
    );
    let mut bad_state = good.clone();
    bad_state[16] = 9;
    assert_eq!(
        TxnLogValue::decode(&bad_state),
        Err(CorruptRecord("unknown transaction state"))
    );
}
