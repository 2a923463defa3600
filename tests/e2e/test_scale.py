"""Scale on one node (issue 13) with real clients: more partitions than the process may
open files, a node that starts and serves whatever its metadata holds."""

import os
import resource
import select
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, free_port
from test_groups import wait_until

WIDE = {"wide-a": 800, "wide-b": 700}


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def create_wide_topics(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, n, 1) for t, n in WIDE.items()], request_timeout=120)
    for f in futures.values():
        f.result(180)


def produce_one_per_partition(bootstrap, tag):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    errors = []
    for topic, n in WIDE.items():
        for i in range(n):
            p.produce(topic, value=f"{tag}-{topic}-{i}".encode(), partition=i,
                      on_delivery=lambda err, _m: err and errors.append(err))
            p.poll(0)
    assert p.flush(120) == 0, "records still queued"
    assert not errors, errors[:5]


def read_every_partition(bootstrap, expected, timeout_s=180):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wide-{time.monotonic_ns()}", "enable.auto.commit": False})
    c.assign([TopicPartition(t, i, 0) for t, n in WIDE.items() for i in range(n)])
    values = set()
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < expected and time.monotonic() < deadline:
            values |= {m.value().decode() for m in c.consume(1000, 0.5) if m.error() is None}
    finally:
        c.close()
    return values


def test_a_node_serves_more_files_than_its_open_file_limit(tmp_path):
    """1,500 partitions (about 6,000 segment and index files) on a node whose open-file limit
    is 1,024: created, written and read on every partition, SIGKILLed and restarted under the
    same limit with everything readable. Log files are a cache of descriptors (nurt-log's
    fd_cache), so the process never holds more than its limit."""
    broker = Broker(tmp_path / "data")
    broker.open_files_max = 1024
    broker.start()
    try:
        create_wide_topics(broker.bootstrap)
        produce_one_per_partition(broker.bootstrap, "first")
        total = sum(WIDE.values())
        first = {f"first-{t}-{i}" for t, n in WIDE.items() for i in range(n)}
        assert read_every_partition(broker.bootstrap, total) == first
        assert open_fds(broker.proc.pid) < 1024
        broker.kill()
        broker.start()
        produce_one_per_partition(broker.bootstrap, "second")
        second = {f"second-{t}-{i}" for t, n in WIDE.items() for i in range(n)}
        assert read_every_partition(broker.bootstrap, 2 * total) == first | second
        assert open_fds(broker.proc.pid) < 1024
        assert "Too many open files" not in broker.logs()
    finally:
        broker.kill()


def test_a_partition_that_cannot_be_opened_is_offline_and_the_rest_serve(make_broker):
    """A replica whose files cannot be opened (here a directory stands where its segment
    should be) no longer keeps the node from starting: that partition answers
    KAFKA_STORAGE_ERROR and the log says why, every other partition serves."""
    import kwire
    from test_librdkafka import consume_all, create_topic, produce_all

    broker = make_broker()
    create_topic(broker.bootstrap, "sound", 2)
    create_topic(broker.bootstrap, "damaged", 1)
    produce_all(broker.bootstrap, "sound", [(None, b"before")] * 10)
    produce_all(broker.bootstrap, "damaged", [(None, b"lost")])
    broker.stop()
    segment = broker.data_dir / "damaged-0" / "00000000000000000000.log"
    segment.unlink()
    segment.mkdir()

    broker.start()
    produce_all(broker.bootstrap, "sound", [(None, b"after")] * 10)
    values = [v for _, v in consume_all(broker.bootstrap, "sound", 2, 20).values()]
    assert sorted(values) == [b"after"] * 10 + [b"before"] * 10
    conn = kwire.Conn(broker.bootstrap)
    try:
        KAFKA_STORAGE_ERROR = 56
        batch = kwire.batch([b"x"], int(time.time() * 1000))
        assert kwire.produce_v3(conn, "damaged", 0, batch)[0] == KAFKA_STORAGE_ERROR
        assert kwire.fetch_v4(conn, "damaged", 0, 0, 0)[0] == KAFKA_STORAGE_ERROR
    finally:
        conn.close()
    assert "damaged-0 is offline" in broker.logs()


def test_a_produce_wakes_only_the_fetch_waiting_on_its_partition(tmp_path):
    """2,000 consumers long-poll 2,000 partitions (one each, Fetch with a 30 s wait); a
    produce to one partition wakes exactly that one fetch: the broker's wakeup counter
    (/metrics, counted only when a change ends a wait) goes up by one and the other 1,999 stay
    parked. Before, every append woke every parked fetch to re-read all its partitions."""
    import kwire

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # One socket per consumer here: 2,000 where the hard limit allows (it does on CI).
    consumers = min(2000, hard - 300)
    assert consumers >= 500, f"an open-file hard limit of {hard} is too low for this test"
    broker = Broker(tmp_path / "data")
    broker.metrics_port = free_port()
    broker.start()
    conns = []
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("parked", consumers, 1)], request_timeout=120)["parked"].result(180)
        for i in range(consumers):
            conn = kwire.Conn(broker.bootstrap)
            conn.send_raw(kwire.request(1, 4, 1, kwire.fetch_v4_body("parked", i, 0, 30_000)))
            conns.append(conn)
        wait_until(lambda: broker.metrics()["nurt_fetches_parked"] == consumers, 60, "every fetch parked")
        before = broker.metrics()["nurt_fetch_wakeups_total"]

        producer = kwire.Conn(broker.bootstrap)
        assert kwire.produce_v3(producer, "parked", 7, kwire.batch([b"wake"], int(time.time() * 1000)), acks=1)[0] == 0
        producer.close()
        error, high_watermark, records = kwire.parse_fetch_v4(conns[7].recv_frame()[4:])
        assert (error, high_watermark) == (0, 1) and b"wake" in records

        after = broker.metrics()
        assert after["nurt_fetch_wakeups_total"] - before == 1, "only the fetch of partition 7 woke"
        assert after["nurt_fetches_parked"] == consumers - 1
        poller = select.poll()
        for i, c in enumerate(conns):
            if i != 7:
                poller.register(c.sock, select.POLLIN)
        assert poller.poll(0) == [], "the other fetches are still parked"
    finally:
        for c in conns:
            c.close()
        broker.kill()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_clean_restart_does_not_read_every_batch_header(tmp_path):
    """After a clean shutdown the segments' indexes are trusted: opening a log reads only the
    batches after each segment's last index entry (/metrics nurt_log_open_batch_headers_read),
    not all 5,000 written; after a SIGKILL the unflushed part is read again, batch by batch."""
    batches = 5_000
    broker = Broker(tmp_path / "data")
    broker.metrics_port = free_port()
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("many-batches", 1, 1)])["many-batches"].result(30)
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.num.messages": 1,
                      "max.in.flight.requests.per.connection": 1})
        for i in range(batches):
            p.produce("many-batches", value=f"v{i}".encode(), partition=0)
            if i % 100 == 99:
                p.flush(30)
        assert p.flush(30) == 0
        hosted = broker.metrics()["nurt_partitions"]  # with __consumer_offsets' 50

        def opened():
            wait_until(lambda: broker.metrics()["nurt_partitions"] == hosted, 30, "every partition opened")
            return broker.metrics()["nurt_log_open_batch_headers_read"]

        broker.stop()
        broker.start()
        clean = opened()
        broker.kill()
        broker.start()
        crashed = opened()
        assert clean < batches / 10, f"a clean start read {clean} batch headers"
        assert crashed >= batches, f"a start after SIGKILL read only {crashed}: the counter counts"
    finally:
        broker.kill()


def test_oversized_topic_creations_are_refused_before_anything_is_committed(make_broker):
    """CreateTopics of 2,000,000,000 and of 50,000 partitions (over the 10,000 per request),
    and one that would take the node past max.partitions.per.broker, are refused with
    POLICY_VIOLATION; nothing of them is created (no topic, no directory), validate_only
    creates nothing either, and the node serves and restarts as before."""
    from confluent_kafka import KafkaError, KafkaException

    from test_librdkafka import consume_all, produce_all

    broker = make_broker("max.partitions.per.broker=2500")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    def create(name, partitions, validate_only=False):
        f = admin.create_topics([NewTopic(name, partitions, 1)], validate_only=validate_only, request_timeout=60)[name]
        try:
            f.result(60)
            return KafkaError.NO_ERROR
        except KafkaException as e:
            return e.args[0].code()

    # librdkafka refuses more than 100,000 partitions itself: kafka-python sends what it is given.
    import kafka.errors
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic as KNewTopic

    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        with pytest.raises(kafka.errors.PolicyViolationError):
            kadmin.create_topics([KNewTopic("huge", 2_000_000_000, 1)], timeout_ms=60_000)
    finally:
        kadmin.close()
    assert create("large", 50_000) == KafkaError.POLICY_VIOLATION
    assert create("within", 2_000) == KafkaError.NO_ERROR
    assert create("beyond", 1_000) == KafkaError.POLICY_VIOLATION
    assert create("beyond", 1_000, validate_only=True) == KafkaError.POLICY_VIOLATION
    assert create("checked", 100, validate_only=True) == KafkaError.NO_ERROR
    topics = set(admin.list_topics(timeout=10).topics)
    assert {"huge", "large", "beyond", "checked"}.isdisjoint(topics) and "within" in topics
    dirs = [d.name for d in broker.data_dir.iterdir() if d.is_dir() and not d.name.startswith("__")]
    assert len(dirs) == 2_000 and all(d.startswith("within-") for d in dirs)

    produce_all(broker.bootstrap, "within", [(None, b"still serving")])
    broker.restart()
    assert [v for _, v in consume_all(broker.bootstrap, "within", 2_000, 1).values()] == [b"still serving"]
