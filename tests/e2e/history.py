"""A history checker for replication fault tests: a producer that records every
acknowledgement while faults happen, and the checks a complete read of the topic must pass
afterwards (Jepsen's "every acknowledged write survives" model, for a Kafka log):

- every acknowledged record is read, at exactly the partition and offset it was acknowledged
  with (nothing acknowledged is lost or moved);
- no record is read twice (the idempotent producer's retries are recognised as duplicates,
  also by a new leader);
- within a partition, records appear in the order the producer sent them;
- the replicas of every partition hold byte-identical logs up to the high watermark."""

import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from cluster import QUIET, wait_until


class ProducerHistory:
    """A librdkafka producer (acks=all, idempotent) writing `v<seq>` records to `topic` from
    a thread until stopped, remembering what was acknowledged and where."""

    def __init__(self, bootstrap, topic, **conf):
        self.topic = topic
        self.acked = {}  # value -> (partition, offset)
        self.failed = []  # errors delivered to the callback
        self.sent = 0
        self._stop = threading.Event()
        config = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            # A paused or cut-off leader never answers: requests in flight to it are given up
            # (and retried, in order, on the new leader) after 5 s, not librdkafka's 60 s
            # socket timeout. The idempotent producer sends nothing more to a partition until
            # its requests in flight are resolved, so this bounds the stall of a failover.
            "request.timeout.ms": 5_000,
            "socket.timeout.ms": 5_000,
            "logger": QUIET,
        }
        config.update(conf)
        self._producer = Producer(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_delivery(self, err, msg):
        if err is not None:
            self.failed.append(err)
        else:
            self.acked[msg.value().decode()] = (msg.partition(), msg.offset())

    def _run(self):
        while not self._stop.is_set():
            try:
                self._producer.produce(self.topic, key=f"k{self.sent % 64}", value=f"v{self.sent}", on_delivery=self._on_delivery)
                self.sent += 1
            except BufferError:
                pass
            self._producer.poll(0.002)

    def start(self):
        self._thread.start()
        return self

    def acked_count(self):
        return len(self.acked)

    def wait_for_acks(self, more, timeout_s=30):
        """Waits until `more` further records are acknowledged (the topic is writable)."""
        target = len(self.acked) + more
        wait_until(lambda: len(self.acked) >= target, timeout_s, lambda: f"{more} more acknowledged records (have {len(self.acked)}; producer errors: {self.failed[:3]})")

    def stop(self, flush_timeout_s=120):
        """Stops sending and waits for every sent record's outcome."""
        self._stop.set()
        self._thread.join(timeout=30)
        left = self._producer.flush(flush_timeout_s)
        assert left == 0, f"{left} records had no outcome after {flush_timeout_s} s"
        assert not self.failed, f"the idempotent producer got errors: {self.failed[:5]}"
        assert len(self.acked) == self.sent, f"{self.sent} sent, {len(self.acked)} acknowledged"


def read_topic(bootstrap, topic, partitions, timeout_s=60):
    """Every record of `topic` from the start to the high watermark of each partition:
    {partition: [(offset, value)]} in offset order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "nurt-history-reader", "enable.auto.commit": False, "enable.partition.eof": True, "logger": QUIET})
    ends = {}
    for p in range(partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = high
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    read = {p: [] for p in range(partitions)}
    done = {p for p, high in ends.items() if high == 0}

    def all_read():
        for m in consumer.consume(1000, 0.2):
            if m.error() is None:
                read[m.partition()].append((m.offset(), m.value().decode()))
            elif m.error().code() != KafkaError._PARTITION_EOF:
                raise AssertionError(f"reading {topic}: {m.error()}")
            if read[m.partition()] and read[m.partition()][-1][0] >= ends[m.partition()] - 1:
                done.add(m.partition())
        return len(done) == partitions

    try:
        wait_until(all_read, timeout_s, lambda: f"all of {topic} (ends {ends}, read {[len(v) for v in read.values()]})", interval_s=0)
    finally:
        consumer.close()
    return read


def check_history(history, read):
    """The checks of the module docstring, against a complete read."""
    where = {}
    for p, records in read.items():
        offsets = [o for o, _ in records]
        assert offsets == sorted(offsets), f"partition {p} read out of order"
        last_seq = -1
        for offset, value in records:
            assert value not in where, f"{value} read twice: at {where[value]} and at {(p, offset)}"
            where[value] = (p, offset)
            seq = int(value[1:])
            assert seq > last_seq, f"partition {p}: {value} at offset {offset} after v{last_seq}: not in send order"
            last_seq = seq
    lost = {v: at for v, at in history.acked.items() if where.get(v) != at}
    assert not lost, f"{len(lost)} acknowledged record(s) lost or moved, e.g. {sorted(lost.items())[:5]} (read at {[where.get(v) for v in sorted(lost)[:5]]})"
    return len(where)


def log_bytes(node, topic, partition):
    """The concatenated `.log` segments of a replica, in offset order."""
    d = node.data_dir / f"{topic}-{partition}"
    return b"".join(p.read_bytes() for p in sorted(d.glob("*.log")))


def wait_replicas_identical(cluster, topic, partitions, timeout_s=30):
    """Waits until, for every partition, every replica's log is byte-identical (after the
    producer stopped, the followers catch up to the leader's log end)."""

    def identical():
        for p in range(partitions):
            logs = {n.id: log_bytes(n, topic, p) for n in cluster.nodes if (n.data_dir / f"{topic}-{p}").exists()}
            if len(set(logs.values())) != 1:
                return False
        return True

    wait_until(identical, timeout_s, f"the replicas of {topic} to be byte-identical", interval_s=0.5)


def wait_full_isr(cluster, topic, replication_factor, timeout_s=60):
    """Waits until every partition of `topic` has all its replicas in sync."""

    def full():
        t = cluster.running()[0].metadata().topics.get(topic)
        return t is not None and all(len(p.isrs) == replication_factor and p.leader >= 0 for p in t.partitions.values())

    wait_until(full, timeout_s, f"every replica of {topic} back in the ISR", interval_s=0.5)


def leader_of(cluster, topic, partition):
    """The node leading `partition` of `topic` now (as a running node reports it)."""
    t = cluster.wait_for_topic(topic)
    return cluster.node(t.partitions[partition].leader)


def pause_s(seconds):
    time.sleep(seconds)
