"""A consume-transform-produce loop for the e2e tests (KIP-98 exactly-once), run as its own
process so it can be SIGKILLed mid-transaction.

Usage: txn_loop.py BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP TRANSACTIONAL_ID PAUSE_S
Reads IN_TOPIC in group GROUP, writes each value upper-cased to OUT_TOPIC and commits the
consumed offsets in the same transaction (send_offsets_to_transaction), one transaction per
polled batch, sleeping PAUSE_S inside each transaction (so a kill lands mid-transaction).
Prints "committed N" after each commit; exits once every input partition is at its end and
nothing new arrived for 3 s.
"""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

bootstrap, in_topic, out_topic, group, txn_id, pause = sys.argv[1:7]
pause = float(pause)
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
    # A killed member leaves the group after this: the restarted loop waits for no longer.
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
})
producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
producer.init_transactions(60)
consumer.subscribe([in_topic])
at_end, idle_since, total = set(), None, 0
while True:
    msgs = consumer.consume(200, 1.0)
    data = [m for m in msgs if m.error() is None]
    for m in msgs:  # in order: an end-of-partition event after data means at the end now
        if m.error() is None:
            at_end.discard(m.partition())
        elif m.error().code() == -191:  # _PARTITION_EOF
            at_end.add(m.partition())
    if not data:
        assignment = consumer.assignment()
        if assignment and at_end >= {tp.partition for tp in assignment}:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 3:
                break
        continue
    idle_since = None
    producer.begin_transaction()
    for m in data:
        producer.produce(out_topic, key=m.key(), value=m.value().upper(), partition=m.partition())
    time.sleep(pause)
    positions = consumer.position(consumer.assignment())
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(30)
    total += len(data)
    print(f"committed {total}", flush=True)
consumer.close()
print("done", flush=True)
