"""A consumer-group member for the e2e tests, run as its own process so it can be killed.

Usage: group_worker.py BOOTSTRAP GROUP TOPIC OUT_FILE PROTOCOL
Writes JSON lines to OUT_FILE: {"assign": [...]}, {"revoke": [...]}, {"lost": [...]} (the
coordinator fenced the member: its partitions went without a clean revoke), {"p": P, "o": O} per
record, and {"committed": true} after each synchronous commit of a processed batch. Runs until
SIGTERM (clean close: leaves the group) or SIGKILL.
"""

import json
import signal
import sys

from confluent_kafka import Consumer, KafkaException

bootstrap, group, topic, out_path, protocol = sys.argv[1:6]
out = open(out_path, "a", buffering=1)
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)

conf = {
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
}
if protocol == "consumer":
    conf["group.protocol"] = "consumer"
else:
    conf["session.timeout.ms"] = 6000
    conf["heartbeat.interval.ms"] = 500
consumer = Consumer(conf)


def on_assign(c, partitions):
    out.write(json.dumps({"assign": sorted(p.partition for p in partitions)}) + "\n")


def on_revoke(c, partitions):
    out.write(json.dumps({"revoke": sorted(p.partition for p in partitions)}) + "\n")


def on_lost(c, partitions):
    out.write(json.dumps({"lost": sorted(p.partition for p in partitions)}) + "\n")


consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
while running:
    msgs = consumer.consume(num_messages=200, timeout=0.2)
    good = [m for m in msgs if m.error() is None]
    for m in good:
        out.write(json.dumps({"p": m.partition(), "o": m.offset()}) + "\n")
    if good:
        try:
            consumer.commit(asynchronous=False)
            out.write(json.dumps({"committed": True}) + "\n")
        except KafkaException as e:
            out.write(json.dumps({"commit_error": str(e)}) + "\n")
consumer.close()
out.write(json.dumps({"closed": True}) + "\n")
