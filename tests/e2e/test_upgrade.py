"""Upgrades: a data dir written by an older Nurt opens in this one with nothing lost.

`fixtures/data-e85ffe1` was written by `nurt serve` built from commit e85ffe1 (the single-node
format, before the metadata quorum): topic `legacy` with 3 partitions and a retention.ms
override, 30 keyed records (10 per partition), and group `legacy-group` with committed offsets
legacy-0 → 4 and legacy-1 → 7; then a clean shutdown."""

import pathlib
import shutil

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

import conftest
from test_librdkafka import produce_all
from test_log_lifecycle import read_partition

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "data-e85ffe1"


def check_legacy_state(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics("legacy", timeout=10)
    assert sorted(meta.topics["legacy"].partitions) == [0, 1, 2]
    config = admin.describe_configs([ConfigResource("topic", "legacy")])
    (entries,) = [f.result(10) for f in config.values()]
    assert entries["retention.ms"].value == "86400000"
    for p in range(3):
        records, low, high = read_partition(bootstrap, "legacy", p)
        assert (low, high) == (0, 10)
        assert [(k, v) for _, k, v in records] == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(p, 30, 3)]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "legacy-group"})
    try:
        committed = c.committed([TopicPartition("legacy", p) for p in range(3)], timeout=10)
        assert [tp.offset for tp in committed] == [4, 7, -1001]
    finally:
        c.close()


def test_a_single_node_data_dir_from_before_the_quorum_opens_with_nothing_lost(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    broker = conftest.Broker(data).start()
    try:
        check_legacy_state(broker.bootstrap)
        # It takes writes, and the migrated state survives the next restart (and a kill).
        assert len(produce_all(broker.bootstrap, "legacy", [(b"new", b"after-upgrade")])) == 1
        broker.restart()
        check_legacy_state_after_write(broker.bootstrap)
        broker.kill()
        broker.start()
        check_legacy_state_after_write(broker.bootstrap)
        assert not (data / "__cluster_metadata-0.legacy").exists(), "the old metadata log is removed once migrated"
    except BaseException:
        print(broker.logs())
        raise
    finally:
        broker.kill()


def check_legacy_state_after_write(bootstrap):
    total = 0
    for p in range(3):
        _, low, high = read_partition(bootstrap, "legacy", p)
        total += high - low
    assert total == 31
