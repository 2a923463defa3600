"""The Java client, kafka-python and kcat against the real broker, sharing data."""

import pathlib
import subprocess
import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from conftest import java

def test_java_admin_producer_consumer_then_kafka_python(broker, java_classpath):
    out = java(java_classpath, "admin-create", broker.bootstrap, "java-topic", 3)
    assert out[0].startswith("partitions=3 id=")
    assert out[1].startswith("cluster=") and out[1].endswith("nodes=1")
    assert java(java_classpath, "produce", broker.bootstrap, "java-topic", 3000, "zstd") == ["acked=3000"]
    lines = java(java_classpath, "consume", broker.bootstrap, "java-topic", 3000)
    assert len(lines) == 3000
    java_records = {}
    for line in lines:
        p, o, k, v = line.split(" ")
        java_records[(int(p), int(o))] = (k, v)
    assert sorted(v for _, v in java_records.values()) == sorted(f"java-{i}" for i in range(3000))
    for p in range(3):
        offsets = sorted(o for (pp, o) in java_records if pp == p)
        assert offsets == list(range(len(offsets)))

    # kafka-python reads the very same records at the same offsets.
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=10_000)
    consumer.assign([TopicPartition("java-topic", p) for p in range(3)])
    consumer.seek_to_beginning()
    python_records = {}
    deadline = time.monotonic() + 60
    while len(python_records) < 3000 and time.monotonic() < deadline:
        for tp, msgs in consumer.poll(timeout_ms=1000).items():
            for m in msgs:
                python_records[(m.partition, m.offset)] = (m.key.decode(), m.value.decode())
    consumer.close()
    assert python_records == java_records


def test_kcat_produces_and_consumes_lines(broker):
    lines = [f"line {i} from kcat" for i in range(500)]
    subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", "kcat-topic", "-K", ":"], input="\n".join(f"k{i % 7}:{l}" for i, l in enumerate(lines)) + "\n", text=True, check=True, timeout=60)
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", "kcat-topic", "-o", "beginning", "-e", "-f", "%k=%s\\n"], capture_output=True, text=True, check=True, timeout=60)
    got = out.stdout.splitlines()
    assert sorted(got) == sorted(f"k{i % 7}={l}" for i, l in enumerate(lines))
