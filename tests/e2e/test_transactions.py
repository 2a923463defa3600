"""Transactions (KIP-98) with real clients: librdkafka transactional producers committing
and aborting, read_committed consumers (librdkafka, kafka-python) that see only committed
records while read_uncommitted ones see everything, ListOffsets stopping at the last stable
offset, a consume-transform-produce loop killed mid-transaction, and a transaction its
producer abandoned aborted after transaction.timeout.ms."""

import pathlib
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer

from conftest import java
from test_groups import wait_until
from test_librdkafka import create_topic, produce_all

FAST_TIMEOUTS = "transaction.abort.timed.out.transaction.cleanup.interval.ms=200"
LOOP = pathlib.Path(__file__).parent / "txn_loop.py"


def txn_producer(bootstrap, transactional_id, **conf):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id, **conf})
    p.init_transactions(30)
    return p


def read_all(bootstrap, topic, partitions, isolation, group=None):
    """Every record a consumer with `isolation` reads from the beginning, until it has seen
    the end of every partition (its own end: the last stable offset for read_committed)."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group or f"reader-{isolation}-{time.monotonic_ns()}",
        "isolation.level": isolation,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values, at_end = [], set()
    deadline = time.monotonic() + 30
    try:
        while len(at_end) < partitions and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    values.append(m.value())
                    at_end.discard(m.partition())
                elif m.error().code() == -191:  # _PARTITION_EOF
                    at_end.add(m.partition())
        assert len(at_end) == partitions, f"did not reach the end of {topic}"
        return values
    finally:
        c.close()


def end_offsets(bootstrap, topic, partitions, isolation):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends", "isolation.level": isolation})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in range(partitions)]
    finally:
        c.close()


def test_aborted_records_are_invisible_to_read_committed_consumers(broker):
    create_topic(broker.bootstrap, "ledger", 3)
    p = txn_producer(broker.bootstrap, "ledger-writer")
    p.begin_transaction()
    for i in range(150):
        p.produce("ledger", value=f"aborted-{i}".encode(), partition=i % 3)
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(150):
        p.produce("ledger", value=f"committed-{i}".encode(), partition=i % 3)
    p.commit_transaction(30)

    committed = sorted(read_all(broker.bootstrap, "ledger", 3, "read_committed"))
    assert committed == sorted(f"committed-{i}".encode() for i in range(150))
    everything = read_all(broker.bootstrap, "ledger", 3, "read_uncommitted")
    assert len(everything) == 300 and sum(v.startswith(b"aborted") for v in everything) == 150

    # kafka-python's read_committed consumer skips the aborted records too.
    k = KafkaConsumer("ledger", bootstrap_servers=broker.bootstrap, isolation_level="read_committed", auto_offset_reset="earliest", consumer_timeout_ms=5000, group_id=None)
    try:
        seen = [m.value for m in k]
    finally:
        k.close()
    assert sorted(seen) == committed

    # A restart keeps the outcome (markers, aborted-transaction index, producer state).
    broker.restart()
    assert sorted(read_all(broker.bootstrap, "ledger", 3, "read_committed")) == committed


def test_read_committed_ends_at_the_last_stable_offset(broker):
    create_topic(broker.bootstrap, "pending", 1)
    produce_all(broker.bootstrap, "pending", [(None, b"before")] * 5)
    p = txn_producer(broker.bootstrap, "pending-writer")
    p.begin_transaction()
    for i in range(10):
        p.produce("pending", value=b"open", partition=0)
    p.flush(30)
    # The open transaction holds read_committed readers (and their ListOffsets) at its start.
    assert end_offsets(broker.bootstrap, "pending", 1, "read_committed") == [5]
    assert end_offsets(broker.bootstrap, "pending", 1, "read_uncommitted") == [15]
    assert read_all(broker.bootstrap, "pending", 1, "read_committed") == [b"before"] * 5
    p.commit_transaction(30)
    wait_until(lambda: end_offsets(broker.bootstrap, "pending", 1, "read_committed") == [16], 10, "the LSO past the commit marker")
    assert read_all(broker.bootstrap, "pending", 1, "read_committed") == [b"before"] * 5 + [b"open"] * 10


def test_a_late_transactional_batch_cannot_open_a_hanging_transaction(broker):
    """KIP-890 part 1: a transactional batch that arrives after its transaction was aborted
    (a produce delayed in the network, Jepsen's hanging transaction) is refused, because the
    partition's leader asks the coordinator before the batch opens a transaction there. Let
    in, it would open a transaction no marker ever ends: the last stable offset stuck for
    good. The producer's next transaction is unaffected."""
    import kwire
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTopicPartition

    create_topic(broker.bootstrap, "late", 1)
    p = txn_producer(broker.bootstrap, "late-writer")
    p.begin_transaction()
    p.produce("late", value=b"aborted", partition=0)
    p.flush(30)
    p.abort_transaction(30)

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        [state] = admin.describe_producers([KTopicPartition("late", 0)])[KTopicPartition("late", 0)].active_producers
    finally:
        admin.close()
    assert state.current_transaction_start_offset == -1, "the abort ended the transaction"

    # The aborted transaction's next batch, as if it had been stuck in the network until now.
    now = int(time.time() * 1000)
    late = kwire.batch([b"late"], now, producer_id=state.producer_id, producer_epoch=state.producer_epoch,
                       base_sequence=state.last_sequence + 1, attributes=0x10)
    conn = kwire.Conn(broker.bootstrap)
    try:
        INVALID_TXN_STATE = 48
        assert kwire.produce_v3(conn, "late", 0, late, transactional_id="late-writer")[0] == INVALID_TXN_STATE
        # Without a transactional id no coordinator could be asked: refused as well.
        assert kwire.produce_v3(conn, "late", 0, late)[0] == INVALID_TXN_STATE
    finally:
        conn.close()
    # Nothing opened: read_committed ends where read_uncommitted does (data and marker).
    assert end_offsets(broker.bootstrap, "late", 1, "read_committed") == end_offsets(broker.bootstrap, "late", 1, "read_uncommitted") == [2]

    p.begin_transaction()
    p.produce("late", value=b"committed", partition=0)
    p.commit_transaction(30)
    assert read_all(broker.bootstrap, "late", 1, "read_committed") == [b"committed"]
    assert read_all(broker.bootstrap, "late", 1, "read_uncommitted") == [b"aborted", b"committed"]


def test_a_new_producer_with_the_same_id_fences_the_old_one(broker):
    create_topic(broker.bootstrap, "fenced", 1)
    old = txn_producer(broker.bootstrap, "shared-id")
    old.begin_transaction()
    old.produce("fenced", value=b"zombie", partition=0)
    old.flush(30)
    new = txn_producer(broker.bootstrap, "shared-id")  # aborts the old one's transaction
    # The zombie's next batch carries its old epoch: Produce answers INVALID_PRODUCER_EPOCH,
    # which librdkafka (like Kafka's clients) takes as a fatal fence, not a retriable error.
    old.produce("fenced", value=b"zombie-again", partition=0)
    with pytest.raises(KafkaException) as fenced:
        old.flush(10)
    assert fenced.value.args[0].fatal() and fenced.value.args[0].code() == KafkaError._FENCED
    new.begin_transaction()
    new.produce("fenced", value=b"live", partition=0)
    new.commit_transaction(30)
    with pytest.raises(KafkaException):
        old.commit_transaction(10)
    assert read_all(broker.bootstrap, "fenced", 1, "read_committed") == [b"live"]


def test_an_abandoned_transaction_is_aborted_after_its_timeout(make_broker):
    broker = make_broker(FAST_TIMEOUTS)
    create_topic(broker.bootstrap, "abandoned", 1)
    script = (
        "import sys, time\n"
        "from confluent_kafka import Producer\n"
        "p = Producer({'bootstrap.servers': sys.argv[1], 'transactional.id': 'left-open', 'transaction.timeout.ms': 5000})\n"
        "p.init_transactions(30)\n"
        "p.begin_transaction()\n"
        "p.produce('abandoned', value=b'never', partition=0)\n"
        "p.flush(30)\n"
        "print('open', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, broker.bootstrap], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        proc.kill()
        proc.wait(timeout=30)
        produce_all(broker.bootstrap, "abandoned", [(None, b"after")])
        assert end_offsets(broker.bootstrap, "abandoned", 1, "read_committed") == [0]
        # The coordinator aborts it: read_committed readers move past it.
        wait_until(lambda: read_all(broker.bootstrap, "abandoned", 1, "read_committed") == [b"after"], 20, "the abandoned transaction aborted")
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.timeout(240)
def test_consume_transform_produce_killed_mid_transaction_is_exactly_once(broker):
    """The loop (txn_loop.py) is SIGKILLed inside a transaction and started again with the
    same transactional.id: the new producer fences the old one and aborts its transaction,
    the consumer resumes from the offsets committed in transactions, and the output holds
    every input record exactly once; the group's committed offsets are the input's end."""
    create_topic(broker.bootstrap, "loop-in", 2)
    create_topic(broker.bootstrap, "loop-out", 2)
    inputs = [f"v{i}".encode() for i in range(2000)]
    p = Producer({"bootstrap.servers": broker.bootstrap, "batch.num.messages": 50})
    for i, v in enumerate(inputs):
        p.produce("loop-in", value=v, partition=i % 2)
    assert p.flush(30) == 0

    def run(pause):
        return subprocess.Popen([sys.executable, str(LOOP), broker.bootstrap, "loop-in", "loop-out", "looping", "looper", str(pause)], stdout=subprocess.PIPE, text=True)

    first = run(0.3)
    try:
        # Let a few transactions commit, then kill it inside the next one.
        deadline = time.monotonic() + 60
        reached = False
        while not reached and time.monotonic() < deadline:
            line = first.stdout.readline()  # the loop prints after every transaction
            if not line:
                break
            reached = line.startswith("committed") and int(line.split()[1]) >= 400
        assert reached, "the first loop did not commit 400 records within 60 s"
        time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    second = run(0.0)
    try:
        out, _ = second.communicate(timeout=180)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0 and out.strip().endswith("done"), out[-500:]
    output = read_all(broker.bootstrap, "loop-out", 2, "read_committed")
    assert sorted(output) == sorted(v.upper() for v in inputs), f"{len(output)} outputs for {len(inputs)} inputs"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "looping"})
    try:
        committed = c.committed([TopicPartition("loop-in", q) for q in range(2)], timeout=10)
    finally:
        c.close()
    assert [tp.offset for tp in committed] == [1000, 1000]


def test_describe_and_list_transactions(broker):
    """DescribeTransactions and ListTransactions by kafka-python's admin: an open transaction
    with its partitions, then the same id CompleteCommit; filters by state."""
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTopicPartition

    create_topic(broker.bootstrap, "watched", 2)
    p = txn_producer(broker.bootstrap, "watched-writer", **{"transaction.timeout.ms": 45000})
    p.begin_transaction()
    p.produce("watched", value=b"x", partition=1)
    p.flush(30)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        d = admin.describe_transactions(["watched-writer"])["watched-writer"]
        assert str(d.state.value if hasattr(d.state, "value") else d.state) == "Ongoing", d
        assert d.topic_partitions == {KTopicPartition("watched", 1)}
        assert d.transaction_timeout_ms == 45000

        def listed(state):
            """Transactional ids in `state`, over every broker's answer."""
            return [t.transactional_id for ts in admin.list_transactions(state_filters=[state]).values() for t in ts]

        assert listed("Ongoing") == ["watched-writer"]
        p.commit_transaction(30)
        wait_until(lambda: listed("CompleteCommit") == ["watched-writer"], 10, "the transaction complete")
        assert listed("Ongoing") == []
    finally:
        admin.close()


def test_java_transactional_producer_and_read_committed_consumers(broker, java_classpath):
    """The Java client's transactional producer aborts a transaction and commits the next;
    the Java, librdkafka and kafka-python read_committed consumers see only the committed
    records, a read_uncommitted one sees both."""
    create_topic(broker.bootstrap, "java-txn", 2)
    assert java(java_classpath, "txn-produce", broker.bootstrap, "java-txn", 40) == ["committed"]
    committed = sorted(f"java-committed-{i}".encode() for i in range(40))
    assert java(java_classpath, "consume-committed", broker.bootstrap, "java-txn", 4) == sorted(v.decode() for v in committed)
    assert sorted(read_all(broker.bootstrap, "java-txn", 2, "read_committed")) == committed
    assert len(read_all(broker.bootstrap, "java-txn", 2, "read_uncommitted")) == 80
    k = KafkaConsumer("java-txn", bootstrap_servers=broker.bootstrap, isolation_level="read_committed", auto_offset_reset="earliest", consumer_timeout_ms=5000, group_id=None)
    try:
        assert sorted(m.value for m in k) == committed
    finally:
        k.close()


def test_cli_lists_and_describes_transactions_and_producers(broker):
    """`nurt txn list`, `nurt txn describe` and `nurt producers` show an open transaction,
    its partitions and its producer; an unknown state filter is a clear error."""
    from test_cli import nurt

    b = ("--bootstrap-server", broker.bootstrap)
    create_topic(broker.bootstrap, "shown", 2)
    p = txn_producer(broker.bootstrap, "shown-writer")
    p.begin_transaction()
    p.produce("shown", value=b"x", partition=1)
    p.flush(30)
    listed = nurt("txn", "list", *b).stdout
    assert "shown-writer" in listed and "Ongoing" in listed, listed
    assert "shown-writer" not in nurt("txn", "list", "--state", "CompleteCommit", *b).stdout
    described = nurt("txn", "describe", "shown-writer", *b).stdout
    assert "Ongoing" in described and "shown: 1" in described, described
    producers = nurt("producers", "shown", 1, *b).stdout.splitlines()
    assert len(producers) == 2 and producers[1].split()[4] == "0", producers  # its transaction starts at offset 0
    bad = nurt("txn", "list", "--state", "Sleeping", *b, check=False)
    assert bad.returncode != 0 and "unknown transaction states" in bad.stderr
    p.commit_transaction(30)
    wait_until(lambda: "CompleteCommit" in nurt("txn", "describe", "shown-writer", *b).stdout, 10, "the commit described")
