"""A history checker for transactions under faults: a librdkafka transactional producer
writes transactions of RECORDS records spread over a topic's partitions, committing most
and aborting every fourth, and records what it was told of each (committed, aborted, or
unknown when the producer itself failed); a complete read_committed read afterwards must
show:

- every record of every committed transaction, exactly once;
- nothing of an aborted transaction;
- all or nothing of a transaction whose outcome is unknown (atomicity);
- nothing that was never sent."""

import collections
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from cluster import QUIET

RECORDS = 6


class TxnHistory:
    def __init__(self, bootstrap, topic, partitions, transactional_id):
        self.bootstrap, self.topic, self.partitions, self.id = bootstrap, topic, partitions, transactional_id
        self.outcomes = {}  # transaction number -> "committed" | "aborted" | "unknown"
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _producer(self):
        p = Producer({
            "bootstrap.servers": self.bootstrap,
            "transactional.id": self.id,
            "transaction.timeout.ms": 30_000,
            "request.timeout.ms": 5_000,
            "socket.timeout.ms": 5_000,
            "logger": QUIET,
        })
        p.init_transactions(60)
        return p

    def start(self):
        self._thread.start()
        return self

    def committed(self):
        return sum(1 for o in self.outcomes.values() if o == "committed")

    def wait_for_commits(self, more, timeout_s=90):
        target = self.committed() + more
        deadline = time.monotonic() + timeout_s
        while self.committed() < target:
            assert time.monotonic() < deadline, f"{self.committed()} commits, wanted {target}; errors {self.errors[-5:]}"
            assert self._thread.is_alive(), f"the producer thread died; errors {self.errors[-5:]}"
            time.sleep(0.1)

    def stop(self):
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the producer did not stop"

    def _one(self, p, n):
        """Runs transaction `n`; returns its outcome as the producer was told it."""
        p.begin_transaction()
        for k in range(RECORDS):
            p.produce(self.topic, value=f"t{n}-r{k}".encode(), partition=k % self.partitions)
        if n % 4 == 3:
            # Written first, so the abort has records to hide (an abort before they are sent
            # would only drop them from librdkafka's queue).
            assert p.flush(60) == 0, "records of a transaction to abort still queued"
            p.abort_transaction(60)
            return "aborted"
        for _ in range(3):
            try:
                p.commit_transaction(60)
                return "committed"
            except KafkaException as e:
                if not e.args[0].retriable():
                    raise
        raise RuntimeError("commit still retriable after three tries")

    def _run(self):
        p, n = None, 0
        while not self._stop.is_set():
            n += 1
            try:
                p = p or self._producer()
                self.outcomes[n] = self._one(p, n)
            except Exception as e:  # noqa: BLE001 (every failure is recorded and handled)
                self.errors.append(repr(e))
                self.outcomes[n] = "unknown"
                err = e.args[0] if isinstance(e, KafkaException) else None
                if err is not None and err.txn_requires_abort() and not err.fatal():
                    try:
                        p.abort_transaction(60)
                        self.outcomes[n] = "aborted"
                        continue
                    except Exception as again:  # noqa: BLE001
                        self.errors.append(repr(again))
                # Start over with a new producer: its InitProducerId fences this one and ends
                # whatever it left open.
                p = None
                time.sleep(0.5)


def read_committed(bootstrap, topic, partitions, timeout_s=60):
    """Every value a read_committed consumer reads from the start to the end of each partition."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"txn-check-{time.monotonic_ns()}",
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        "enable.auto.commit": False,
        "logger": QUIET,
    })
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values, at_end = [], set()
    deadline = time.monotonic() + timeout_s
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"read_committed did not reach the end of {topic}: {sorted(at_end)}"
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    values.append(m.value().decode())
                    at_end.discard(m.partition())
                elif m.error().code() == -191:  # _PARTITION_EOF
                    at_end.add(m.partition())
        return values
    finally:
        c.close()


def check_txn_history(history, values):
    """Checks a read_committed read against what the producer was told; returns the number of
    committed transactions read."""
    counts = collections.Counter(values)
    twice = [v for v, k in counts.items() if k > 1]
    assert not twice, f"read more than once: {twice[:10]}"
    by_txn = collections.defaultdict(set)
    for v in values:
        txn, record = v.split("-")
        by_txn[int(txn[1:])].add(record)
    unknown_sent = set(by_txn) - set(history.outcomes)
    assert not unknown_sent, f"transactions read that were never sent: {sorted(unknown_sent)[:10]}"
    full = {f"r{k}" for k in range(RECORDS)}
    for n, outcome in history.outcomes.items():
        got = by_txn.get(n, set())
        if outcome == "committed":
            assert got == full, f"committed transaction {n} read as {sorted(got)}"
        elif outcome == "aborted":
            assert not got, f"aborted transaction {n} read: {sorted(got)}"
        else:
            assert got in (set(), full), f"transaction {n} of unknown outcome read in part: {sorted(got)}"
    return sum(1 for n, o in history.outcomes.items() if o == "committed")
