"""Gives a consumer group a known lag for Burrow to report, using confluent-kafka
(librdkafka), a client Nurt already serves, so that Burrow's own requests are the only
unknowns: creates TOPIC (one partition), produces RECORDS keyed records, commits offset
COMMIT for GROUP without joining (a "simple consumer" commit), reads the commit back, and
prints {"log_end", "committed", "expected_lag"} as JSON. With --commit-only the topic and
its records are taken as there and only the commit is made, so a second commit can follow
while Burrow watches. Exits non-zero on any failure. Every wait has a deadline."""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

DEADLINE_S = 20.0


def create_and_produce(common, args):
    admin = AdminClient(common)
    futures = admin.create_topics([NewTopic(args.topic, num_partitions=1, replication_factor=1)],
                                  operation_timeout=DEADLINE_S, request_timeout=DEADLINE_S)
    futures[args.topic].result(timeout=DEADLINE_S)

    producer = Producer({**common, "acks": "all", "message.timeout.ms": int(DEADLINE_S * 1000)})
    failures = []
    for i in range(args.records):
        producer.produce(args.topic, key=f"k{i}", value=f"v{i}", partition=0,
                         on_delivery=lambda err, _msg: err and failures.append(str(err)))
    if producer.flush(DEADLINE_S) != 0 or failures:
        sys.exit(f"produce failed: {failures or 'not delivered within the deadline'}")


def commit(common, args):
    """Commits args.commit, waits until it reads back, returns (log end, committed)."""
    consumer = Consumer({**common, "group.id": args.group, "enable.auto.commit": False,
                         "session.timeout.ms": 10000})
    try:
        _, log_end = consumer.get_watermark_offsets(TopicPartition(args.topic, 0), timeout=DEADLINE_S)
        consumer.commit(offsets=[TopicPartition(args.topic, 0, args.commit)], asynchronous=False)
        # The commit must be readable before Burrow is asked about it.
        deadline = time.monotonic() + DEADLINE_S
        while True:
            [tp] = consumer.committed([TopicPartition(args.topic, 0)], timeout=DEADLINE_S)
            if tp.offset == args.commit or time.monotonic() > deadline:
                return log_end, tp.offset
            time.sleep(0.2)
    finally:
        consumer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--records", type=int, default=10)
    ap.add_argument("--commit", type=int, default=4, help="offset to commit (the next record to read)")
    ap.add_argument("--commit-only", action="store_true", help="the topic and its records exist: only commit")
    args = ap.parse_args()
    if not 0 <= args.commit <= args.records:
        sys.exit("--commit must be within 0..--records")

    common = {"bootstrap.servers": args.bootstrap, "client.id": "compat-seed"}  # names it in the capture
    if not args.commit_only:
        create_and_produce(common, args)
    log_end, committed = commit(common, args)
    if log_end != args.records or committed != args.commit:
        sys.exit(f"unexpected state: log end {log_end} (want {args.records}), committed {committed} (want {args.commit})")
    print(json.dumps({"log_end": log_end, "committed": committed, "expected_lag": log_end - committed}))


if __name__ == "__main__":
    try:
        main()
    except KafkaException as e:
        sys.exit(f"kafka error: {e}")
