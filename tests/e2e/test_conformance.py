"""Kafka's behaviour where real clients, librdkafka's own suite and public bug reports found
Nurt different (issue 15): each checked with a real client where one can show it, with
hand-built requests where no client sends them."""

import signal
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic, OffsetSpec
from confluent_kafka import TopicCollection

import kwire
from conftest import NURT, java
from test_groups import wait_until
from test_librdkafka import create_topic, produce_all


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def test_topic_names_that_differ_only_by_dot_and_underscore_collide(broker):
    create_topic(broker.bootstrap, "orders_eu", 1)
    a = admin(broker)  # held: a client that goes away cancels its futures
    futures = a.create_topics([NewTopic("orders.eu", num_partitions=1, replication_factor=1)])
    with pytest.raises(KafkaException) as refused:
        futures["orders.eu"].result(timeout=30)
    error = refused.value.args[0]
    assert error.code() == KafkaError.TOPIC_EXCEPTION, error
    assert "collides with existing topic: orders_eu" in error.str()
    # Auto-creation refuses it too (INVALID_TOPIC_EXCEPTION in the Metadata answer).
    conn = kwire.Conn(broker.bootstrap)
    assert kwire.metadata_v1(conn, ["orders.eu"]) == {"orders.eu": 17}
    conn.close()
    assert "orders.eu" not in admin(broker).list_topics(timeout=10).topics


def test_list_offsets_max_timestamp_is_the_first_record_carrying_it(broker):
    create_topic(broker.bootstrap, "stamps", 1)
    base = int(time.time() * 1000) - 60_000
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 1000, "acks": "all"})
    for ts in (base + 10, base + 30, base + 20):
        p.produce("stamps", value=b"v", partition=0, timestamp=ts)
    assert p.flush(30) == 0
    tp = TopicPartition("stamps", 0)
    a = admin(broker)
    result = a.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(timeout=30)
    assert (result.offset, result.timestamp) == (1, base + 30)
    # A later batch with smaller timestamps does not move it (the maximum is the log's).
    p.produce("stamps", value=b"late", partition=0, timestamp=base + 5)
    assert p.flush(30) == 0
    result = a.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(timeout=30)
    assert (result.offset, result.timestamp) == (1, base + 30)


def test_idle_segments_are_neither_rolled_nor_cleaned(make_broker):
    broker = make_broker("log.cleaner.backoff.ms=200", "log.flush.scheduler.interval.ms=100")
    create_topic(broker.bootstrap, "quiet", 1, {"cleanup.policy": "compact", "segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    p.produce("quiet", key=b"t", value=b"live")
    assert p.flush(30) == 0
    p.produce("quiet", key=b"t", value=None)  # tombstone
    assert p.flush(30) == 0
    # Well past segment.ms and many cleaner passes, with no further writes.
    time.sleep(3)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader", "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("quiet", 0, 0)])
    seen, eof = [], False
    deadline = time.monotonic() + 30
    while not eof and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
            eof = True
        else:
            seen.append((m.offset(), m.key(), m.value()))
    position = c.position([TopicPartition("quiet", 0)])[0].offset
    c.close()
    assert eof, "the consumer never reached the end of the partition"
    assert seen == [(0, b"t", b"live"), (1, b"t", None)]
    assert position == 2


def test_invalid_sequences_and_empty_batches_are_invalid_records(broker):
    create_topic(broker.bootstrap, "seq", 1)
    conn = kwire.Conn(broker.bootstrap)
    now = int(time.time() * 1000)
    negative_sequence = kwire.batch([b"x"], now, producer_id=1000, producer_epoch=0, base_sequence=-5)
    assert kwire.produce_v3(conn, "seq", 0, negative_sequence)[0] == 87
    # No records and a last offset delta of -1: INVALID_RECORD, not the retriable CORRUPT_MESSAGE.
    empty = kwire.batch([], now, last_offset_delta=-1, record_count=0)
    assert kwire.produce_v3(conn, "seq", 0, empty)[0] == 87
    assert kwire.produce_v3(conn, "seq", 0, kwire.batch([b"ok"], now)) == (0, 0)
    conn.close()


def committed(bootstrap, group, tps):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10)}
    finally:
        c.close()


def commit(bootstrap, group, offsets):
    """Commits `offsets` ({(topic, partition): offset}) outside group management; returns
    {(topic, partition): error code or None}, as the broker answered each partition."""
    done = []
    c = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "on_commit": lambda err, partitions: done.append(partitions),
    })
    try:
        c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True)
        deadline = time.monotonic() + 30
        while not done and time.monotonic() < deadline:
            c.poll(0.1)
        assert done, "no commit result within 30 s"
        return {(tp.topic, tp.partition): tp.error.code() if tp.error else None for tp in done[0]}
    finally:
        c.close()


def test_committed_offsets_are_deleted_with_their_topic(broker):
    create_topic(broker.bootstrap, "reborn", 1)
    produce_all(broker.bootstrap, "reborn", [(None, b"old")] * 12)
    assert commit(broker.bootstrap, "g-reborn", {("reborn", 0): 10}) == {("reborn", 0): None}
    a = admin(broker)
    a.delete_topics(["reborn"])["reborn"].result(timeout=30)
    create_topic(broker.bootstrap, "reborn", 1)
    produce_all(broker.bootstrap, "reborn", [(str(i).encode(), b"new") for i in range(15)])
    assert committed(broker.bootstrap, "g-reborn", [TopicPartition("reborn", 0)]) == {("reborn", 0): -1001}
    # A group member starts from the beginning (auto.offset.reset=earliest): all 15 records.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-reborn", "auto.offset.reset": "earliest"})
    c.subscribe(["reborn"])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < 15 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.offset())
    c.close()
    assert sorted(got) == list(range(15))


def offset_commit_v2(conn, group, topics):
    """OffsetCommit v2 outside group management; `topics` is {name: [(partition, offset)]}.
    Returns {(topic, partition): error code}."""
    body = kwire.string(group) + struct.pack(">i", -1) + kwire.string("") + struct.pack(">q", -1)
    body += struct.pack(">i", len(topics))
    for name, parts in topics.items():
        body += kwire.string(name) + struct.pack(">i", len(parts))
        for p, o in parts:
            body += struct.pack(">iq", p, o) + kwire.string("")
    r = kwire.Reader(conn.call(8, 2, body))
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p = r.i32()
            out[(name, p)] = r.i16()
    return out


def test_offset_commit_for_unknown_topics_and_partitions(broker):
    create_topic(broker.bootstrap, "known", 2)
    conn = kwire.Conn(broker.bootstrap)
    answer = offset_commit_v2(conn, "g-unknown", {"known": [(1, 0), (7, 3)], "no-such-topic": [(0, 5)]})
    conn.close()
    assert answer == {("known", 1): 0, ("known", 7): 3, ("no-such-topic", 0): 3}
    stored = committed(broker.bootstrap, "g-unknown", [TopicPartition("known", 1), TopicPartition("known", 7), TopicPartition("no-such-topic", 0)])
    assert stored == {("known", 1): 0, ("known", 7): -1001, ("no-such-topic", 0): -1001}
    # librdkafka reports the broker's error for such a commit.
    result = commit(broker.bootstrap, "g-unknown-2", {("known", 9): 1})
    assert result == {("known", 9): KafkaError.UNKNOWN_TOPIC_OR_PART}


def test_offset_delete_removes_only_the_named_partitions(broker):
    from kafka.admin import KafkaAdminClient
    from kafka.structs import TopicPartition as KTP

    create_topic(broker.bootstrap, "three", 3)
    assert commit(broker.bootstrap, "g-del", {("three", p): 5 + p for p in range(3)}) == {("three", p): None for p in range(3)}
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        ka.delete_group_offsets("g-del", [KTP("three", 2)])
    finally:
        ka.close()
    tps = [TopicPartition("three", p) for p in range(3)]
    assert committed(broker.bootstrap, "g-del", tps) == {("three", 0): 5, ("three", 1): 6, ("three", 2): -1001}


def produce_v8(conn, topic, partition, batch):
    """Produce v8: returns (error_code, base_offset, record_errors, error_message)."""
    body = kwire.string(None) + struct.pack(">hi", -1, 30000) + struct.pack(">i", 1) + kwire.string(topic)
    body += struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(batch)) + batch
    r = kwire.Reader(conn.call(0, 8, body))
    assert r.i32() == 1
    r.string()
    assert r.i32() == 1
    r.i32()
    error, base = r.i16(), r.i64()
    r.i64(), r.i64()  # log append time, log start offset
    record_errors = [(r.i32(), r.string()) for _ in range(r.i32())]
    return error, base, record_errors, r.string()


def test_produce_names_the_invalid_records_of_a_batch(broker):
    create_topic(broker.bootstrap, "keyed-only", 1, {"cleanup.policy": "compact"})
    now = int(time.time() * 1000)
    records = b""
    for i, (key, value) in enumerate([(b"a", b"1"), (None, b"2"), (b"c", b"3"), (None, b"4")]):
        k = kwire.varint(-1) if key is None else kwire.varint(len(key)) + key
        rec = b"\x00" + kwire.varint(0) + kwire.varint(i) + k + kwire.varint(len(value)) + value + kwire.varint(0)
        records += kwire.varint(len(rec)) + rec
    after_crc = struct.pack(">hiqqqhii", 0, 3, now, now, -1, -1, -1, 4) + records
    head = struct.pack(">ib", -1, 2) + struct.pack(">I", kwire.crc32c(after_crc))
    batch = struct.pack(">qi", 0, len(head) + len(after_crc)) + head + after_crc
    conn = kwire.Conn(broker.bootstrap)
    error, _, record_errors, message = produce_v8(conn, "keyed-only", 0, batch)
    conn.close()
    assert error == 87
    assert [i for i, _ in record_errors] == [1, 3]
    assert all("without key" in m for _, m in record_errors)
    assert "2 record errors" in message
    # librdkafka fails such a record with INVALID_RECORD and the broker's reason.
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 10000})
    p.produce("keyed-only", value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors


def test_authorized_operations_are_reported_when_asked(broker):
    create_topic(broker.bootstrap, "described", 1)
    a = admin(broker)
    topic = a.describe_topics(TopicCollection(["described"]), include_authorized_operations=True)["described"].result(timeout=30)
    assert set(topic.authorized_operations) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE,
        AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
    }
    cluster = a.describe_cluster(include_authorized_operations=True).result(timeout=30)
    assert AclOperation.IDEMPOTENT_WRITE in cluster.authorized_operations
    assert AclOperation.CLUSTER_ACTION in cluster.authorized_operations
    commit(broker.bootstrap, "g-ops", {("described", 0): 0})
    group = a.describe_consumer_groups(["g-ops"], include_authorized_operations=True)["g-ops"].result(timeout=30)
    assert set(group.authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE}
    # Not asked: not reported.
    plain = a.describe_topics(TopicCollection(["described"]))["described"].result(timeout=30)
    assert not plain.authorized_operations


def test_join_group_v1_is_served(broker):
    """Debian's Sarama 1.22 always sends JoinGroup v1: served as in Kafka 4.1 (KAFKA-19444)."""
    conn = kwire.Conn(broker.bootstrap)
    protocol = kwire.string("range") + struct.pack(">i", 4) + b"meta"
    body = kwire.string("g-v1") + struct.pack(">ii", 10_000, 30_000) + kwire.string("") + kwire.string("consumer") + struct.pack(">i", 1) + protocol
    r = kwire.Reader(conn.call(11, 1, body))
    error, generation = r.i16(), r.i32()
    conn.close()
    assert (error, generation) == (0, 1)


def test_describe_log_dirs_reports_partition_sizes(broker):
    from kafka.admin import KafkaAdminClient

    create_topic(broker.bootstrap, "sized", 2)
    produce_all(broker.bootstrap, "sized", [(b"k", b"x" * 1000)] * 50)
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        response = ka.describe_log_dirs()
    finally:
        ka.close()
    [broker_dirs] = response
    [log_dir] = broker_dirs["log_dirs"]
    assert log_dir["error_code"] == 0
    assert log_dir["log_dir"] == str(broker.data_dir.resolve())
    assert log_dir["usable_bytes"] > 0 and log_dir["total_bytes"] >= log_dir["usable_bytes"]
    [topic] = [t for t in log_dir["topics"] if t["name"] == "sized"]
    assert sorted(p["partition_index"] for p in topic["partitions"]) == [0, 1]
    # 50 records of 1 KB, all with one key, so on one partition: over 50,000 bytes.
    assert sum(p["partition_size"] for p in topic["partitions"]) > 50_000, topic


def test_kip848_assign_only_consumer_commits(broker):
    create_topic(broker.bootstrap, "assigned", 1)
    produce_all(broker.bootstrap, "assigned", [(None, b"x")] * 5)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-assign", "group.protocol": "consumer", "enable.auto.commit": False})
    c.assign([TopicPartition("assigned", 0, 0)])
    got = 0
    deadline = time.monotonic() + 30
    while got < 5 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got += 1
    result = c.commit(asynchronous=False)
    c.close()
    assert got == 5
    assert [(tp.offset, tp.error) for tp in result] == [(5, None)]
    assert committed(broker.bootstrap, "g-assign", [TopicPartition("assigned", 0)]) == {("assigned", 0): 5}


def test_cli_group_member_leaves_on_sigterm(broker):
    b = ("--bootstrap-server", broker.bootstrap)
    create_topic(broker.bootstrap, "leaving", 1)

    def describe():
        return subprocess.run([str(NURT), "group", "describe", "cg-leave", *b], capture_output=True, text=True, timeout=30).stdout

    member = subprocess.Popen([str(NURT), "consume", "leaving", "--group", "cg-leave", *b], stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: "1 member(s)" in describe(), 30, "the CLI member to join")
        member.send_signal(signal.SIGTERM)
        assert member.wait(timeout=30) == 0
        # It left at once: well before its 45 s session timeout.
        wait_until(lambda: "0 member(s)" in describe() or "member(s)" not in describe(), 10, "the member to leave")
    finally:
        if member.poll() is None:
            member.kill()
    reset = subprocess.run([str(NURT), "group", "reset-offsets", "cg-leave", "--topic", "leaving", "--to-earliest", *b], capture_output=True, text=True, timeout=30)
    assert reset.returncode == 0, reset.stderr


def test_kip848_regex_subscription_follows_new_topics(broker):
    """librdkafka's `^`-prefixed subscription is a KIP-848 regex subscription: the broker
    matches it against whole topic names, and a topic created later joins the assignment."""
    create_topic(broker.bootstrap, "regex-a", 2)
    create_topic(broker.bootstrap, "xregex-a", 1)  # contains the pattern, does not match it
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-regex", "group.protocol": "consumer", "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 1000})
    c.subscribe(["^regex-.*"])
    try:
        def assigned():
            c.poll(0.2)
            return sorted((tp.topic, tp.partition) for tp in c.assignment())

        wait_until(lambda: assigned() == [("regex-a", 0), ("regex-a", 1)], 30, "the regex's topics assigned")
        create_topic(broker.bootstrap, "regex-b", 1)
        wait_until(lambda: ("regex-b", 0) in assigned(), 30, "a new matching topic assigned")
        assert ("xregex-a", 0) not in assigned()
        produce_all(broker.bootstrap, "regex-b", [(None, b"found")])
        deadline = time.monotonic() + 30
        values = []
        while not values and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                values.append(m.value())
        assert values == [b"found"]
    finally:
        c.close()


def test_dynamic_broker_and_group_configs(broker, java_classpath):
    """IncrementalAlterConfigs on BROKER resources (the cluster default "" and one broker)
    changes topic-config defaults at run time, with Kafka's config sources; GROUP resources
    (KIP-848 group configs) are described and validated (librdkafka's 0081 does both)."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create_topic(broker.bootstrap, "dyn", 1)

    def alter(resource_type, name, key, value):
        """IncrementalAlterConfigs SET by the Java client, as kafka-configs.sh does (librdkafka
        and kafka-python refuse the cluster default's empty BROKER name); "ok" or "error=..."."""
        (answer,) = java(java_classpath, "alter-config", broker.bootstrap, resource_type, name, key, value)
        return answer

    def alter_group(key, value):
        """The same by librdkafka (the Java client in the test cache predates GROUP resources)."""
        entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
        (f,) = admin.incremental_alter_configs([ConfigResource(ResourceType.GROUP, "dyn-group", incremental_configs=[entry])]).values()
        f.result(30)

    def topic_retention():
        (entries,) = [f.result(30) for f in admin.describe_configs([ConfigResource(ResourceType.TOPIC, "dyn")]).values()]
        e = entries["retention.ms"]
        return e.value, e.source

    assert topic_retention() == ("604800000", ConfigSource.DEFAULT_CONFIG.value)
    assert alter("BROKER", "", "log.retention.ms", "3600000") == "ok"
    wait_until(lambda: topic_retention() == ("3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value), 10, "the cluster default applied")
    assert alter("BROKER", "1", "log.retention.ms", "7200000") == "ok"
    wait_until(lambda: topic_retention() == ("7200000", ConfigSource.DYNAMIC_BROKER_CONFIG.value), 10, "the per-broker value applied")
    # It survives a restart (it is metadata).
    broker.restart()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert topic_retention() == ("7200000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    # Not every key is dynamic: a clear refusal.
    refused = alter("BROKER", "", "socket.request.max.bytes", "1")
    assert refused in ("error=InvalidConfigurationException", "error=InvalidRequestException"), refused
    # Group configs: described with their defaults, validated against their bounds.
    (group_entries,) = [f.result(30) for f in admin.describe_configs([ConfigResource(ResourceType.GROUP, "dyn-group")]).values()]
    assert group_entries["consumer.session.timeout.ms"].value == "45000"
    alter_group("consumer.session.timeout.ms", "50000")
    (group_entries,) = [f.result(30) for f in admin.describe_configs([ConfigResource(ResourceType.GROUP, "dyn-group")]).values()]
    assert group_entries["consumer.session.timeout.ms"].value == "50000"
    with pytest.raises(KafkaException, match="INVALID_CONFIG"):
        alter_group("consumer.session.timeout.ms", "1")


def test_internal_topics_are_listed_and_marked_internal(broker, java_classpath):
    """An all-topics Metadata lists __consumer_offsets with is_internal=true, as Kafka does:
    librdkafka sees it, and the Java Admin lists it only when asked for internal topics
    (it filters on the flag)."""
    create_topic(broker.bootstrap, "plain", 1)
    names = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    assert "__consumer_offsets" in names and "plain" in names, sorted(names)
    listed = dict(line.split("=", 1) for line in java(java_classpath, "list-topics", broker.bootstrap, "-"))
    assert "__consumer_offsets" in listed["all"].split(","), listed
    assert listed["default"].split(",") == ["plain"], listed
