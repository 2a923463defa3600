"""librdkafka (through confluent-kafka) against the real broker: keyed produce with acks=all,
byte-identical read-back, codecs, restarts, kill -9, long-poll and auto-creation."""

import collections
import os
import random
import select
import struct
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kwire


def create_topic(bootstrap, name, partitions, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
    futures[name].result(timeout=30)


def produce_all(bootstrap, topic, records, **conf):
    """Produces (key, value) pairs; returns {(partition, offset): (key, value)} of acked ones."""
    acked, errors = {}, []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **conf})
    for key, value in records:
        while True:
            try:
                p.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:5]
    return acked


def consume_all(bootstrap, topic, partitions, expected_count, timeout_s=60):
    """Reads every partition from the beginning until `expected_count` records arrived."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < expected_count and time.monotonic() < deadline:
            for m in c.consume(num_messages=10000, timeout=1.0):
                assert m.error() is None or m.error().code() == KafkaError._PARTITION_EOF, m.error()
                if m.error() is None:
                    got[(m.partition(), m.offset())] = (m.key(), m.value())
    finally:
        c.close()
    return got


def test_keyed_acks_all_contiguous_and_byte_identical(broker):
    create_topic(broker.bootstrap, "keyed", 6)
    rng = random.Random(7)
    records = [(f"key-{i % 997}".encode(), rng.randbytes(rng.randint(0, 300))) for i in range(100_000)]
    acked = produce_all(broker.bootstrap, "keyed", records)
    assert len(acked) == len(records)
    by_partition = collections.defaultdict(list)
    partitions_of_key = collections.defaultdict(set)
    for (p, o), (k, _) in acked.items():
        by_partition[p].append(o)
        partitions_of_key[k].add(p)
    assert len(by_partition) == 6, "keys should spread over all partitions"
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p} offsets not contiguous"
    assert all(len(ps) == 1 for ps in partitions_of_key.values()), "a key landed in two partitions"
    got = consume_all(broker.bootstrap, "keyed", 6, len(acked))
    assert got == acked


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_codecs_round_trip_and_are_stored_compressed(broker, codec):
    topic = f"codec-{codec}"
    create_topic(broker.bootstrap, topic, 1)
    records = [(None, (f"{codec} record {i} " * 20).encode()) for i in range(5000)]
    acked = produce_all(broker.bootstrap, topic, records, **{"compression.type": codec, "linger.ms": 50})
    got = consume_all(broker.bootstrap, topic, 1, len(records))
    assert got == acked
    assert [kv[1] for _, kv in sorted(got.items())] == [v for _, v in records]
    raw = sum(len(v) for _, v in records)
    stored = sum(f.stat().st_size for f in (broker.data_dir / f"{topic}-0").glob("*.log"))
    assert stored * 5 < raw, f"{codec}: {stored} bytes stored for {raw} raw: batches were not kept compressed"


def test_clean_restart_keeps_everything(broker):
    create_topic(broker.bootstrap, "durable", 3)
    records = [(str(i).encode(), f"v{i}".encode()) for i in range(20_000)]
    acked = produce_all(broker.bootstrap, "durable", records)
    broker.restart()
    assert consume_all(broker.bootstrap, "durable", 3, len(acked)) == acked
    more = produce_all(broker.bootstrap, "durable", [(b"k", b"after restart")])
    ((p, o),) = more.keys()
    assert o == sum(1 for (pp, _) in acked if pp == p), "offsets must continue after restart"


def test_kill_9_loses_no_acknowledged_record(broker):
    create_topic(broker.bootstrap, "crash", 3)
    acked, stop = {}, threading.Event()

    def on_delivery(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 1, "message.timeout.ms": 5000, "retries": 0})

    def stream():
        i = 0
        while not stop.is_set():
            try:
                producer.produce("crash", key=str(i).encode(), value=f"value-{i}".encode(), on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            producer.poll(0.001)

    t = threading.Thread(target=stream)
    t.start()
    try:
        deadline = time.monotonic() + 120
        while len(acked) < 30_000:
            assert time.monotonic() < deadline and t.is_alive(), f"only {len(acked)} records acknowledged in 120 s"
            time.sleep(0.01)
        broker.kill()
        time.sleep(0.5)
    finally:
        # Also on failure: a producer thread left running would keep pytest from exiting.
        stop.set()
        t.join()
    producer.flush(10)
    snapshot = dict(acked)
    broker.start()
    got = consume_all(broker.bootstrap, "crash", 3, len(snapshot))
    missing = [k for k, v in snapshot.items() if got.get(k, (None, None))[1] != v]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
    after = produce_all(broker.bootstrap, "crash", [(b"x", b"after crash")])
    assert len(after) == 1


def test_waiting_fetch_is_woken_by_produce(broker):
    create_topic(broker.bootstrap, "longpoll", 1)
    conn = kwire.Conn(broker.bootstrap, timeout_s=60)
    # Asks to wait up to 25 s (the broker caps waits at 30 s) for one byte at offset 0 of an
    # empty partition.
    conn.correlation_id += 1
    conn.send_raw(kwire.request(1, 4, conn.correlation_id, kwire.fetch_v4_body("longpoll", 0, 0, max_wait_ms=25_000)))
    # The fetch is in the broker's hands and parked: nothing comes back while there is no data.
    readable, _, _ = select.select([conn.sock], [], [], 2.0)
    assert not readable, "the fetch was answered before any record existed"
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("longpoll", value=b"wake up")
    assert p.flush(30) == 0
    # Only the wake-up can answer within 10 s: the fetch's own deadline is over 20 s away.
    readable, _, _ = select.select([conn.sock], [], [], 10.0)
    assert readable, "the produce did not wake the waiting fetch"
    frame = conn.recv_frame()
    assert struct.unpack(">i", frame[:4])[0] == conn.correlation_id
    error, hw, records = kwire.parse_fetch_v4(frame[4:])
    assert (error, hw) == (0, 1)
    assert b"wake up" in records
    conn.close()


def test_produce_auto_creates_topic(broker):
    acked = produce_all(broker.bootstrap, "born-on-produce", [(None, b"hello")])
    assert len(acked) == 1
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert len(md.topics["born-on-produce"].partitions) == 1


def test_without_auto_create_unknown_topic_fails(make_broker):
    broker = make_broker("auto.create.topics.enable=false")
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "topic.metadata.propagation.max.ms": 1000, "message.timeout.ms": 5000})
    p.produce("never-created", value=b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), errors[0]
    conn = kwire.Conn(broker.bootstrap)
    assert kwire.metadata_v1(conn, ["never-created"]) == {"never-created": 3}
    batch = kwire.record_batch([b"v"], int(time.time() * 1000))
    assert kwire.produce_v3(conn, "never-created", 0, batch)[0] == 3
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert "never-created" not in md.topics
