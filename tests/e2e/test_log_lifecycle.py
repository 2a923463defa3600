"""The log over time, with real clients: retention by time and size, compaction with
tombstones, config changes that survive restarts, DeleteRecords, ListOffsets by timestamp,
CreatePartitions, DeleteTopics, max.message.bytes, and kills during deletion and cleaning."""

import random
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions

from test_groups import wait_until
from test_librdkafka import create_topic, produce_all

FAST = ("log.retention.check.interval.ms=300", "log.cleaner.backoff.ms=300", "log.flush.scheduler.interval.ms=200")


def watermarks(bootstrap, topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def read_partition(bootstrap, topic, partition=0):
    """Every record from the log start to the end: [(offset, key, value)]."""
    low, high = watermarks(bootstrap, topic, partition)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.partition.eof": True, "check.crcs": True})
    c.assign([TopicPartition(topic, partition, low)])
    out = []
    try:
        while True:
            m = c.poll(5)
            assert m is not None, "no EOF from the broker"
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                break
            out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return out, low, high


def test_retention_by_time_and_size_moves_log_start(make_broker):
    broker = make_broker(*FAST)
    create_topic(broker.bootstrap, "by-time", 1, {"segment.bytes": "2000", "retention.ms": "3000"})
    create_topic(broker.bootstrap, "by-size", 1, {"segment.bytes": "2000", "retention.bytes": "6000"})
    small_batches = {"batch.size": 1000}
    produce_all(broker.bootstrap, "by-time", [(None, b"t" * 100) for _ in range(200)], **small_batches)
    produce_all(broker.bootstrap, "by-size", [(None, b"s" * 100) for _ in range(500)], **small_batches)
    def size():
        return sum(f.stat().st_size for f in (broker.data_dir / "by-size-0").glob("*.log"))

    # Kafka keeps at most retention.bytes plus the segment that would cross it.
    wait_until(lambda: watermarks(broker.bootstrap, "by-size")[0] > 0 and size() <= 6000 + 2000, 30, "size retention moving the log start")
    records, low, high = read_partition(broker.bootstrap, "by-size")
    assert [o for o, _, _ in records] == list(range(low, high))
    # Nothing of by-time is deleted before it is 3 s old; all of it within seconds after.
    wait_until(lambda: watermarks(broker.bootstrap, "by-time") == (200, 200), 30, "time retention deleting expired data")


def test_compaction_converges_to_latest_values(make_broker):
    broker = make_broker(*FAST)
    config = {"cleanup.policy": "compact", "segment.bytes": "16384", "segment.ms": "1000", "delete.retention.ms": "0", "min.cleanable.dirty.ratio": "0.01"}
    create_topic(broker.bootstrap, "compacted", 1, config)
    latest = {}
    updates = []
    for i in range(20_000):
        key = f"key-{i % 200}"
        updates.append((key.encode(), f"value-{i}".encode()))
        latest[key.encode()] = f"value-{i}".encode()
    produce_all(broker.bootstrap, "compacted", updates, **{"compression.type": "lz4"})
    for k in range(50):
        produce_all(broker.bootstrap, "compacted", [(f"key-{k}".encode(), None)])
        del latest[f"key-{k}".encode()]
    # Keyless records are refused on a compacted topic.
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("compacted", value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors

    # The active segment is never cleaned, and it rolls only when an append arrives after
    # segment.ms (as in Kafka): one more record rolls it, so everything before is cleanable.
    time.sleep(1.2)
    produce_all(broker.bootstrap, "compacted", [(b"roll", b"trigger")])
    latest[b"roll"] = b"trigger"

    def converged():
        records, _, _ = read_partition(broker.bootstrap, "compacted")
        return len(records) == 151 and {k: v for _, k, v in records} == latest

    wait_until(converged, 60, "compaction to exactly the 150 latest values (and the newest record)")
    records, _, high = read_partition(broker.bootstrap, "compacted")
    assert high == 20_051 and all(a < b for (a, _, _), (b, _, _) in zip(records, records[1:]))


def test_incremental_alter_configs_survives_restart(broker):
    create_topic(broker.bootstrap, "tunable", 1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource("topic", "tunable", incremental_configs=[
        ConfigEntry("retention.ms", "123456", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    admin.incremental_alter_configs([resource])[resource].result(10)
    bad = ConfigResource("topic", "tunable", incremental_configs=[ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    try:
        admin.incremental_alter_configs([bad])[bad].result(10)
        raise AssertionError("an invalid value was accepted")
    except Exception as e:  # KafkaException carrying INVALID_CONFIG
        assert "INVALID_CONFIG" in str(e) or "retention.ms" in str(e), e
    broker.restart()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = admin.describe_configs([ConfigResource("topic", "tunable")])
    configs = list(described.values())[0].result(10)
    assert configs["retention.ms"].value == "123456"
    assert configs["retention.ms"].source == 1  # DYNAMIC_TOPIC_CONFIG
    assert configs["cleanup.policy"].value == "delete,compact"
    assert configs["segment.bytes"].source == 5 and configs["segment.bytes"].value == "1073741824"  # DEFAULT_CONFIG


def test_delete_records_offsets_for_times_partitions_and_delete_topics(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create_topic(broker.bootstrap, "lifecycle", 2)
    base = int(time.time() * 1000) - 100_000
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        p.produce("lifecycle", value=f"v{i}".encode(), partition=0, timestamp=base + i * 1000)
    assert p.flush(30) == 0
    result = admin.delete_records([TopicPartition("lifecycle", 0, 40)])
    assert list(result.values())[0].result(10).low_watermark == 40
    assert watermarks(broker.bootstrap, "lifecycle") == (40, 100)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "times"})
    found = c.offsets_for_times([TopicPartition("lifecycle", 0, base + 55_500)], timeout=10)
    assert found[0].offset == 56
    beyond = c.offsets_for_times([TopicPartition("lifecycle", 0, base + 10_000_000)], timeout=10)
    assert beyond[0].offset in (-1, 100)  # no such record: librdkafka reports the end
    c.close()
    admin.create_partitions([NewPartitions("lifecycle", 5)])["lifecycle"].result(10)
    assert len(admin.list_topics(timeout=10).topics["lifecycle"].partitions) == 5
    shrink = admin.create_partitions([NewPartitions("lifecycle", 3)])["lifecycle"]
    with pytest.raises(KafkaException) as refused:
        shrink.result(10)
    assert refused.value.args[0].code() == KafkaError.INVALID_PARTITIONS, refused.value
    assert len(admin.list_topics(timeout=10).topics["lifecycle"].partitions) == 5
    admin.delete_topics(["lifecycle"])["lifecycle"].result(10)
    assert "lifecycle" not in admin.list_topics(timeout=10).topics
    create_topic(broker.bootstrap, "lifecycle", 1)
    assert watermarks(broker.bootstrap, "lifecycle") == (0, 0), "a re-created topic starts empty"


def test_message_over_max_message_bytes_is_refused(broker):
    create_topic(broker.bootstrap, "small-messages", 1, {"max.message.bytes": "1000"})
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap})
    # Separate batches: the limit applies to a whole batch.
    p.produce("small-messages", value=b"x" * 5000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    p.produce("small-messages", value=b"fits", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    codes = sorted(e.code() if e else 0 for e in errors)
    assert codes == [0, KafkaError.MSG_SIZE_TOO_LARGE], errors


def test_kill_during_deletion_and_compaction_leaves_valid_logs(make_broker):
    broker = make_broker("log.retention.check.interval.ms=100", "log.cleaner.backoff.ms=100")
    create_topic(broker.bootstrap, "churn-delete", 1, {"segment.bytes": "1500", "retention.bytes": "4000"})
    create_topic(broker.bootstrap, "churn-compact", 1, {"cleanup.policy": "compact", "segment.bytes": "1500", "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"})
    rng = random.Random(5)
    for round_ in range(4):
        stop = threading.Event()

        def churn():
            p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 1, "message.timeout.ms": 3000})
            i = 0
            while not stop.is_set():
                try:
                    p.produce("churn-delete", value=b"d" * 60)
                    p.produce("churn-compact", key=f"k{i % 20}".encode(), value=f"c{i}".encode())
                    i += 1
                except BufferError:
                    pass
                p.poll(0.0005)
            p.flush(5)

        t = threading.Thread(target=churn)
        t.start()
        time.sleep(rng.uniform(0.5, 1.5))
        broker.kill()
        stop.set()
        t.join()
        broker.start()
        for topic in ("churn-delete", "churn-compact"):
            records, low, high = read_partition(broker.bootstrap, topic)
            offsets = [o for o, _, _ in records]
            assert all(a < b for a, b in zip(offsets, offsets[1:])), f"{topic}: offsets out of order after kill {round_}"
            if topic == "churn-delete":
                assert offsets == list(range(low, high)), f"gap in {topic} after kill {round_}"
        assert len(produce_all(broker.bootstrap, "churn-delete", [(None, b"after")])) == 1


def test_full_disk_gives_storage_error_and_keeps_serving(make_broker, tmp_path):
    import subprocess

    import pytest

    import conftest

    mount = tmp_path / "small-disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        broker = conftest.Broker(mount / "data", ["log.flush.scheduler.interval.ms=100000"])
        broker.log_path = tmp_path / "broker.log"  # not on the full disk
        broker.start()
        try:
            create_topic(broker.bootstrap, "filler", 1, {"segment.bytes": "65536"})
            create_topic(broker.bootstrap, "other", 1)
            other = produce_all(broker.bootstrap, "other", [(None, f"o{i}".encode()) for i in range(100)])
            acked, errors = {}, []

            def on_delivery(err, msg):
                if err is None:
                    acked[msg.offset()] = msg.value()
                else:
                    errors.append(err)

            p = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0, "linger.ms": 0, "message.timeout.ms": 10000})
            i = 0
            while not errors and i < 1000:
                p.produce("filler", value=f"{i:08d}".encode() * 2000, on_delivery=on_delivery)
                p.flush(10)
                i += 1
            assert errors and errors[0].code() == KafkaError.KAFKA_STORAGE_ERROR, errors[:1]
            assert broker.proc.poll() is None
            # Everything acknowledged before is intact, in both topics.
            records, _, _ = read_partition(broker.bootstrap, "filler")
            got = {o: v for o, _, v in records}
            assert all(got.get(o) == v for o, v in acked.items()), "an acknowledged record was damaged"
            records, _, _ = read_partition(broker.bootstrap, "other")
            assert {o: v for o, _, v in records} == {o: kv[1] for (_, o), kv in other.items()}
            # Free the space the way an operator can on a full disk, without a metadata write:
            # DeleteRecords drops filler's old segments. The broker writes again.
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            end = max(acked) + 1
            admin.delete_records([TopicPartition("filler", 0, end)])[TopicPartition("filler", 0, end)].result(10)
            wait_until(lambda: len(produce_all(broker.bootstrap, "other", [(None, b"after")])) == 1, 30, "writes after space is freed")

            # Metadata changes work again too (the metadata quorum restarts after a full disk).
            def deleted():
                try:
                    admin.delete_topics(["filler"], operation_timeout=5)["filler"].result(10)
                    return True
                except KafkaException:
                    return False

            wait_until(deleted, 30, "a topic deletion once the disk has room")
        except BaseException:
            print(broker.logs())
            raise
        finally:
            broker.kill()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_log_append_time_topics_stamp_broker_time(broker):
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    create_topic(broker.bootstrap, "stamped", 1, {"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("stamped", value=b"v", timestamp=1_000_000)  # a client time far in the past
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "stamp"})
    c.assign([TopicPartition("stamped", 0, 0)])
    m = c.poll(10)
    c.close()
    kind, ts = m.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= int(time.time() * 1000) + 1000
