"""Idempotent producers across broker restarts (issue 11, must-show 1), and DescribeProducers
(KIP-664) showing them. The broker's producer
state (sequence numbers of each producer's last five batches) survives a clean restart (from
the producer-state snapshot written at shutdown) and a SIGKILL (from the last snapshot plus
the batches after it), so a librdkafka producer retrying in-flight batches writes nothing
twice and leaves no gap."""

import collections
import logging
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from test_groups import wait_until
from test_librdkafka import consume_all, create_topic

QUIET = logging.getLogger("nurt-e2e-idempotence")

TOTAL = 50_000
PARTITIONS = 3


def test_an_idempotent_producer_across_restarts_and_a_kill_writes_each_record_once(broker):
    create_topic(broker.bootstrap, "exactly", PARTITIONS)
    delivered, failed = {}, []

    def on_delivery(err, msg):
        if err is None:
            delivered[int(msg.value())] = (msg.partition(), msg.offset())
        else:
            failed.append(err)

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.num.messages": 500,
            "message.timeout.ms": 120_000,
            "logger": QUIET,
        }
    )
    stop = threading.Event()

    def stream():
        i = 0
        while i < TOTAL and not stop.is_set():
            try:
                producer.produce("exactly", value=str(i).encode(), partition=i % PARTITIONS, on_delivery=on_delivery)
                i += 1
            except BufferError:
                producer.poll(0.01)
            producer.poll(0)

    t = threading.Thread(target=stream)
    t.start()
    try:

        def wait_for(n):
            deadline = time.monotonic() + 120
            while len(delivered) < n:
                assert time.monotonic() < deadline, f"only {len(delivered)} delivered; errors {failed[:3]}"
                # Delivery callbacks run in poll(), also once the sending thread is done.
                producer.poll(0.01)

        # While batches are in flight: a clean restart, then a SIGKILL and a start.
        wait_for(10_000)
        broker.restart()
        wait_for(25_000)
        broker.kill()
        time.sleep(0.3)
        broker.start()
        t.join(timeout=120)
        assert not t.is_alive(), "the producer did not finish sending"
        assert producer.flush(120) == 0, "records without an outcome"
    finally:
        stop.set()
        t.join(timeout=30)
    assert not failed, f"{len(failed)} records failed, e.g. {failed[:3]}"
    assert len(delivered) == TOTAL
    # Everything in the log, however many that is (a duplicate would make it more).
    probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe", "logger": QUIET})
    stored = sum(probe.get_watermark_offsets(TopicPartition("exactly", p), timeout=10)[1] for p in range(PARTITIONS))
    probe.close()
    got = consume_all(broker.bootstrap, "exactly", PARTITIONS, stored)
    assert len(got) == stored
    values = collections.defaultdict(list)
    for (p, _), (_, v) in sorted(got.items()):
        values[p].append(int(v))
    every = sorted(v for vs in values.values() for v in vs)
    duplicates = len(every) - len(set(every))
    assert duplicates == 0, f"{duplicates} records written twice"
    assert every == list(range(TOTAL)), f"gaps: {sorted(set(range(TOTAL)) - set(every))[:10]}"
    for p, vs in values.items():
        assert vs == sorted(vs), f"partition {p} out of send order"
        assert all(v % PARTITIONS == p for v in vs)
    # Where each record was acknowledged is where it is.
    assert all(got[where][1] == str(v).encode() for v, where in delivered.items())


def test_a_retried_batch_is_recognised_after_a_restart_a_roll_and_a_kill(broker):
    """The deterministic form of the above, with hand-built idempotent batches: a batch
    whose answer was lost is sent again after a clean restart, after segment rolls (the
    producer state then comes from the snapshot written at the roll plus the batches after
    it) and after a SIGKILL. Each time the broker answers with the original offset and the
    log does not grow; the next sequence still appends."""
    import kwire

    create_topic(broker.bootstrap, "retried", 1, {"segment.bytes": "1024"})
    now = int(time.time() * 1000)

    def send(seq):
        conn = kwire.Conn(broker.bootstrap)
        try:
            value = f"{seq:04d}".encode() * 60  # 240 bytes: a roll every few batches
            return kwire.produce_v3(conn, "retried", 0, kwire.batch([value], now, producer_id=4242, producer_epoch=0, base_sequence=seq))
        finally:
            conn.close()

    def log_end():
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe", "logger": QUIET})
        try:
            return c.get_watermark_offsets(TopicPartition("retried", 0), timeout=10)[1]
        finally:
            c.close()

    assert [send(seq) for seq in range(8)] == [(0, seq) for seq in range(8)]
    assert send(7) == (0, 7), "a retry of the last batch answers its offset"
    broker.restart()
    assert send(6) == (0, 6), "after a clean restart"
    broker.kill()
    broker.start()
    assert send(7) == (0, 7), "after a SIGKILL"
    assert send(3) == (0, 3), "an older one of the last five"
    assert log_end() == 8, "nothing was written twice"
    assert send(8) == (0, 8), "the next sequence appends"
    assert send(10)[0] == 45, "a gap is OUT_OF_ORDER_SEQUENCE_NUMBER"


def test_describe_producers_shows_each_producers_last_sequence(broker):
    """DescribeProducers (KIP-664) by kafka-python's admin: the idempotent producers a
    partition's leader tracks, with epoch and last sequence, surviving a restart; an unknown
    partition is an error."""
    import kafka.errors
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTopicPartition

    import kwire

    create_topic(broker.bootstrap, "described", 2)
    now = int(time.time() * 1000)
    conn = kwire.Conn(broker.bootstrap)
    for seq, count in [(0, 3), (3, 2)]:
        batch = kwire.batch([b"v"] * count, now, producer_id=777, producer_epoch=2, base_sequence=seq)
        assert kwire.produce_v3(conn, "described", 0, batch)[0] == 0
    assert kwire.produce_v3(conn, "described", 0, kwire.batch([b"plain"], now))[0] == 0
    conn.close()

    def described(partition):
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            state = admin.describe_producers([KTopicPartition("described", partition)])
            return [(p.producer_id, p.producer_epoch, p.last_sequence, p.current_transaction_start_offset) for p in state[KTopicPartition("described", partition)].active_producers]
        finally:
            admin.close()

    conn = kwire.Conn(broker.bootstrap)
    INVALID_PRODUCER_EPOCH = 47  # Kafka's answer to a stale epoch on Produce (not PRODUCER_FENCED)
    stale = kwire.batch([b"v"], now, producer_id=777, producer_epoch=1, base_sequence=0)
    assert kwire.produce_v3(conn, "described", 0, stale)[0] == INVALID_PRODUCER_EPOCH
    conn.close()
    assert described(0) == [(777, 2, 4, -1)], "one idempotent producer; plain batches track nothing"
    assert described(1) == []
    broker.restart()
    assert described(0) == [(777, 2, 4, -1)]
    with pytest.raises(kafka.errors.KafkaError):
        described(9)


def test_idle_producers_expire_after_producer_id_expiration_ms(make_broker):
    """producer.id.expiration.ms: a producer idle that long is forgotten by the partition (it
    leaves DescribeProducers), so its next batch is taken as a new producer's, as in Kafka;
    before that, a gap in its sequence is refused."""
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTopicPartition

    import kwire

    broker = make_broker("producer.id.expiration.ms=3000", "producer.id.expiration.check.interval.ms=200")
    create_topic(broker.bootstrap, "expiring", 1)

    def producers():
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            state = admin.describe_producers([KTopicPartition("expiring", 0)])
            return [p.producer_id for p in state[KTopicPartition("expiring", 0)].active_producers]
        finally:
            admin.close()

    conn = kwire.Conn(broker.bootstrap)
    try:
        first = kwire.batch([b"v"], int(time.time() * 1000), producer_id=888, producer_epoch=0, base_sequence=0)
        assert kwire.produce_v3(conn, "expiring", 0, first)[0] == 0
        assert producers() == [888]
        OUT_OF_ORDER_SEQUENCE_NUMBER = 45
        gap = kwire.batch([b"v"], int(time.time() * 1000), producer_id=888, producer_epoch=0, base_sequence=5)
        assert kwire.produce_v3(conn, "expiring", 0, gap)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        wait_until(lambda: producers() == [], 30, "the idle producer to expire")
        gap = kwire.batch([b"v"], int(time.time() * 1000), producer_id=888, producer_epoch=0, base_sequence=5)
        assert kwire.produce_v3(conn, "expiring", 0, gap)[0] == 0, "a forgotten producer starts anew"
        assert producers() == [888]
    finally:
        conn.close()
