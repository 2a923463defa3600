"""The `nurt` command-line tools against the real broker."""

import subprocess

from confluent_kafka import Consumer, TopicPartition

from conftest import NURT, free_port


def nurt(*args, input=None, check=True):
    result = subprocess.run([str(NURT), *map(str, args)], input=input, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_topic_lifecycle_produce_and_consume(broker):
    b = ("--bootstrap-server", broker.bootstrap)
    assert "created topic cli-topic (4 partitions)" in nurt("topic", "create", "cli-topic", "--partitions", 4, "--config", "retention.ms=3600000", *b).stdout
    assert "cli-topic" in nurt("topic", "list", *b).stdout.splitlines()
    described = nurt("topic", "describe", "cli-topic", *b).stdout
    assert "PartitionCount: 4" in described
    assert "retention.ms=3600000  (set)" in described
    lines = [f"user{i % 5}:event {i}" for i in range(200)]
    nurt("produce", "cli-topic", "--key-separator", ":", *b, input="\n".join(lines) + "\n")
    out = nurt("consume", "cli-topic", "--from-beginning", "--print-key", "--key-separator", ":", "--max-messages", 200, *b).stdout.splitlines()
    assert sorted(out) == sorted(lines)
    # One key, one partition: every key's 40 records are in one partition, in order. Each
    # partition is read to exactly its high watermark, so no timing decides the answer.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "cli-probe"})
    highs = [c.get_watermark_offsets(TopicPartition("cli-topic", p), timeout=10)[1] for p in range(4)]
    c.close()
    assert sum(highs) == 200
    seen = {}
    for p, high in enumerate(highs):
        if high == 0:
            continue
        one = nurt("consume", "cli-topic", "--partition", p, "--offset", 0, "--max-messages", high, "--print-key", "--key-separator", ":", *b).stdout.splitlines()
        assert len(one) == high
        for user in {l.split(":")[0] for l in one}:
            assert user not in seen, f"{user} in partitions {seen[user]} and {p}"
            seen[user] = p
            events = [int(l.split(" ")[1]) for l in one if l.startswith(user + ":")]
            assert events == sorted(events) and len(events) == 40
    assert len(seen) == 5
    assert "altered configs" in nurt("topic", "alter-config", "cli-topic", "retention.ms=5000", "cleanup.policy=compact", *b).stdout
    described = nurt("topic", "describe", "cli-topic", *b).stdout
    assert "retention.ms=5000  (set)" in described and "cleanup.policy=compact  (set)" in described
    nurt("topic", "alter-config", "cli-topic", "--delete", "cleanup.policy", *b)
    assert "cleanup.policy=delete\n" in nurt("topic", "describe", "cli-topic", *b).stdout
    bad = nurt("topic", "alter-config", "cli-topic", "segment.bytes=tiny", *b, check=False)
    assert bad.returncode == 1 and "InvalidConfig" in bad.stderr
    assert "deleted topic cli-topic" in nurt("topic", "delete", "cli-topic", *b).stdout
    assert "cli-topic" not in nurt("topic", "list", *b).stdout.splitlines()


def test_errors_say_what_to_do(broker):
    unreachable = nurt("topic", "list", "--bootstrap-server", f"127.0.0.1:{free_port()}", check=False)
    assert unreachable.returncode == 1
    assert "is `nurt serve` running?" in unreachable.stderr
    b = ("--bootstrap-server", broker.bootstrap)
    nurt("topic", "create", "dup", *b)
    again = nurt("topic", "create", "dup", *b, check=False)
    assert again.returncode == 1 and "TopicAlreadyExists" in again.stderr
    bad = nurt("topic", "create", "bad-config", "--config", "retention.ms=soon", *b, check=False)
    assert bad.returncode == 1 and "InvalidConfig" in bad.stderr and "retention.ms" in bad.stderr
    missing = nurt("produce", "no-such-topic-here", *b, input="x\n", check=False)
    assert missing.returncode == 1 and "nurt topic create" in missing.stderr


def test_serve_refuses_bad_config(tmp_path):
    result = subprocess.run([str(NURT), "serve", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{free_port()}", "--set", "auto.create.topic.enable=false"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "unsupported config 'auto.create.topic.enable'" in result.stderr


def test_group_commands(broker):
    import time

    b = ("--bootstrap-server", broker.bootstrap)
    nurt("topic", "create", "cli-groups", "--partitions", 3, *b)
    lines = [f"record {i}" for i in range(90)]
    nurt("produce", "cli-groups", *b, input="\n".join(lines) + "\n")
    first = nurt("consume", "cli-groups", "--group", "cg", "--from-beginning", "--max-messages", 90, *b).stdout.splitlines()
    assert sorted(first) == sorted(lines)
    assert "cg" in nurt("group", "list", *b).stdout
    described = nurt("group", "describe", "cg", *b).stdout
    rows = [l.split() for l in described.splitlines() if l.startswith("cli-groups")]
    assert len(rows) == 3 and all(r[2] == r[3] and r[4] == "0" for r in rows), described
    reset = nurt("group", "reset-offsets", "cg", "--topic", "cli-groups", "--to-earliest", *b).stdout
    assert reset.count(" 0\n") == 3
    described = nurt("group", "describe", "cg", *b).stdout
    rows = [l.split() for l in described.splitlines() if l.startswith("cli-groups")]
    assert all(r[2] == "0" and r[4] == r[3] for r in rows), described
    again = nurt("consume", "cli-groups", "--group", "cg", "--max-messages", 90, *b).stdout.splitlines()
    assert sorted(again) == sorted(lines)

    member = subprocess.Popen([str(NURT), "consume", "cli-groups", "--group", "cg", *b], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "1 member(s)" not in nurt("group", "describe", "cg", *b).stdout:
            assert time.monotonic() < deadline, "the CLI member never joined"
            time.sleep(0.2)
        refused = nurt("group", "reset-offsets", "cg", "--topic", "cli-groups", "--to-latest", *b, check=False)
        assert refused.returncode == 1 and "stop its consumers" in refused.stderr
        busy = nurt("group", "delete", "cg", *b, check=False)
        assert busy.returncode == 1 and "NonEmptyGroup" in busy.stderr
    finally:
        member.kill()
        member.wait()
    # A member that exits cleanly leaves the group, which can then be deleted.
    nurt("consume", "cli-groups", "--group", "cg2", "--from-beginning", "--max-messages", 1, *b)
    assert "deleted group cg2" in nurt("group", "delete", "cg2", *b).stdout
    assert "cg2" not in nurt("group", "list", *b).stdout
