"""Consumer groups with real clients: librdkafka members in separate processes (classic and
KIP-848 protocols), a SIGKILLed member, committed offsets across a restart, Admin listing and
describing, and the Java client's cooperative-sticky rebalancing."""

import collections
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from test_librdkafka import create_topic, produce_all

WORKER = pathlib.Path(__file__).parent / "group_worker.py"


class Worker:
    def __init__(self, broker, group, topic, tmp_path, name, protocol="classic"):
        self.out = tmp_path / f"{name}.jsonl"
        self.proc = subprocess.Popen([sys.executable, str(WORKER), broker.bootstrap, group, topic, str(self.out), protocol])

    def events(self):
        if not self.out.exists():
            return []
        lines = self.out.read_text().splitlines()
        return [json.loads(l) for l in lines if l.strip().endswith("}")]

    def assignment(self):
        current = set()
        for e in self.events():
            current -= set(e.get("revoke", []))
            current |= set(e.get("assign", []))
        return current

    def records(self):
        return [(e["p"], e["o"]) for e in self.events() if "p" in e]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def log_ends(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    c.close()
    return ends


def committed(bootstrap, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    c.close()
    return {tp.partition: tp.offset for tp in got}


def test_classic_group_shares_survives_kill_and_commits(make_broker, tmp_path):
    broker = make_broker("group.initial.rebalance.delay.ms=0")
    create_topic(broker.bootstrap, "shared", 6)
    produce_all(broker.bootstrap, "shared", [(str(i).encode(), b"first wave") for i in range(3000)])
    workers = [Worker(broker, "g1", "shared", tmp_path, f"w{i}") for i in range(3)]
    try:
        wait_until(lambda: all(len(w.assignment()) == 2 for w in workers), 60, "three members with two partitions each")
        assert set().union(*(w.assignment() for w in workers)) == set(range(6))
        victim = workers.pop()
        victim_partitions = victim.assignment()
        victim.kill()
        produce_all(broker.bootstrap, "shared", [(str(i).encode(), b"second wave") for i in range(3000)])
        wait_until(lambda: all(len(w.assignment()) == 3 for w in workers), 60, "survivors with three partitions each")
        ends = log_ends(broker.bootstrap, "shared", 6)
        everything = {(p, o) for p, end in ends.items() for o in range(end)}
        wait_until(lambda: everything <= set().union(*(set(w.records()) for w in workers + [victim])), 60, "every record consumed")
        # At least once: duplicates only on the killed member's partitions.
        seen = collections.Counter(r for w in workers + [victim] for r in w.records())
        duplicated = {p for (p, _), n in seen.items() if n > 1}
        assert duplicated <= victim_partitions, (duplicated, victim_partitions)
        wait_until(lambda: committed(broker.bootstrap, "g1", "shared", 6) == ends, 30, "commits at the log end")

        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        listed = admin.list_consumer_groups().result(timeout=10)
        assert "g1" in {g.group_id for g in listed.valid}
        described = admin.describe_consumer_groups(["g1"])["g1"].result(timeout=10)
        assert len(described.members) == 2
        assert sorted(tp.partition for m in described.members for tp in m.assignment.topic_partitions) == list(range(6))
    finally:
        for w in workers:
            w.stop()
    broker.restart()
    assert committed(broker.bootstrap, "g1", "shared", 6) == ends


def test_kip848_consumer_protocol_splits_and_consumes(make_broker, tmp_path):
    broker = make_broker("group.consumer.heartbeat.interval.ms=500")
    create_topic(broker.bootstrap, "modern", 4)
    produce_all(broker.bootstrap, "modern", [(str(i).encode(), b"x") for i in range(2000)])
    workers = [Worker(broker, "g848", "modern", tmp_path, f"k{i}", protocol="consumer") for i in range(2)]
    try:
        wait_until(lambda: all(len(w.assignment()) == 2 for w in workers), 90, "two members with two partitions each")
        assert workers[0].assignment().isdisjoint(workers[1].assignment())
        ends = log_ends(broker.bootstrap, "modern", 4)
        everything = {(p, o) for p, end in ends.items() for o in range(end)}
        wait_until(lambda: everything <= set(workers[0].records()) | set(workers[1].records()), 60, "every record consumed")
        wait_until(lambda: committed(broker.bootstrap, "g848", "modern", 4) == ends, 30, "commits at the log end")
    finally:
        for w in workers:
            w.stop()


def test_java_cooperative_sticky_keeps_partitions_that_stay(make_broker, tmp_path, java_classpath):
    broker = make_broker("group.initial.rebalance.delay.ms=0")
    create_topic(broker.bootstrap, "coop", 6)
    produce_all(broker.bootstrap, "coop", [(str(i).encode(), b"v") for i in range(3000)])

    def start(name):
        out = tmp_path / f"{name}.log"
        proc = subprocess.Popen(["java", "-cp", java_classpath, "ClientCheck", "group", broker.bootstrap, "coop", "gjava", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return proc, out

    def lines(out):
        return out.read_text().splitlines() if out.exists() else []

    def owned(out):
        current = set()
        for l in lines(out):
            kind, _, rest = l.partition(" ")
            if kind not in ("REVOKED", "ASSIGNED"):
                continue
            parts = {int(x) for x in rest.split(",") if x}
            if kind == "REVOKED":
                current -= parts
            elif kind == "ASSIGNED":
                current |= parts
        return current

    a, a_out = start("a")
    b = None
    try:
        wait_until(lambda: owned(a_out) == set(range(6)), 90, "first Java member owning all partitions")
        before = set(owned(a_out))
        revoked_before = [l for l in lines(a_out) if l.startswith("REVOKED")]
        b, b_out = start("b")
        wait_until(lambda: len(owned(b_out)) == 3 and len(owned(a_out)) == 3, 90, "three partitions each")
        kept, moved = owned(a_out), owned(b_out)
        revoked = set()
        for l in lines(a_out)[len(revoked_before):]:
            if l.startswith("REVOKED"):
                revoked |= {int(x) for x in l.split(" ")[1].split(",")}
        assert kept | moved == before and kept.isdisjoint(moved)
        assert revoked == moved, f"cooperative rebalance revoked {revoked}, but only {moved} moved"
        ends = log_ends(broker.bootstrap, "coop", 6)
        everything = {(p, o) for p, end in ends.items() for o in range(end)}

        def consumed():
            got = set()
            for out in (a_out, b_out):
                for l in lines(out):
                    if l.startswith("RECORD "):
                        _, p, o = l.split(" ")
                        got.add((int(p), int(o)))
            return got

        wait_until(lambda: everything <= consumed(), 60, "every record consumed by the Java members")
        wait_until(lambda: committed(broker.bootstrap, "gjava", "coop", 6) == ends, 30, "Java commits at the log end")
    finally:
        for proc in (a, b):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)


def test_kip848_members_carry_on_across_a_broker_restart(make_broker, tmp_path):
    """KIP-848 group state (members, epochs, target and current assignments) is persisted
    in __consumer_offsets, so after a restart the member carries on with its member id, epoch
    and partitions: no fencing, no revocation, no lost partitions, nothing read twice."""
    broker = make_broker("group.consumer.heartbeat.interval.ms=500")
    create_topic(broker.bootstrap, "restartable", 2)
    produce_all(broker.bootstrap, "restartable", [(str(i).encode(), b"before") for i in range(500)])
    worker = Worker(broker, "g848r", "restartable", tmp_path, "r0", protocol="consumer")
    try:
        wait_until(lambda: len(worker.assignment()) == 2, 60, "the member owning both partitions")
        wait_until(lambda: committed(broker.bootstrap, "g848r", "restartable", 2) == log_ends(broker.bootstrap, "restartable", 2), 60, "first wave committed")
        events_before = len(worker.events())
        broker.restart()
        produce_all(broker.bootstrap, "restartable", [(str(i).encode(), b"after") for i in range(500)])
        ends = log_ends(broker.bootstrap, "restartable", 2)
        everything = {(p, o) for p, end in ends.items() for o in range(end)}
        wait_until(lambda: everything <= set(worker.records()), 90, "every record consumed across the restart")
        wait_until(lambda: committed(broker.bootstrap, "g848r", "restartable", 2) == ends, 60, "commits at the new log end")
        after = worker.events()[events_before:]
        churn = [e for e in after if {"assign", "revoke", "lost", "commit_error"} & e.keys()]
        assert churn == [], f"the member was fenced or rebalanced by the restart: {churn}"
        seen = worker.records()
        assert len(seen) == len(set(seen)), "nothing is read twice"
    finally:
        worker.stop()
