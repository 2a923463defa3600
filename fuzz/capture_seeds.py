"""Captures fuzz seed corpora from real clients: runs `nurt serve` behind a recording proxy
(the broker advertises the proxy, so every client request passes through it), drives it with
librdkafka (confluent-kafka) and kafka-python, and saves request frames and stored record
batches of every codec as seeds.

Usage: python3 fuzz/capture_seeds.py [path/to/nurt]   (writes fuzz/seeds/*)
"""

import hashlib
import pathlib
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
NURT = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "debug" / "nurt")
SEEDS = ROOT / "fuzz" / "seeds"
PER_KEY_VERSION = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


frames = {}


def record(frame):
    if len(frame) < 4:
        return
    key, version = struct.unpack(">hh", frame[:4])
    bucket = frames.setdefault((key, version), [])
    if len(bucket) < PER_KEY_VERSION and frame not in bucket:
        bucket.append(frame)


def pump(src, dst, capture):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if capture:
                buf += data
                while len(buf) >= 4:
                    (n,) = struct.unpack(">i", buf[:4])
                    if len(buf) < 4 + n:
                        break
                    record(buf[4:4 + n])
                    buf = buf[4 + n:]
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(listen_port, target_port):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(64)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", target_port))
        threading.Thread(target=pump, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()


def drive(bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka import KafkaConsumer

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = ["seed-none", "seed-gzip", "seed-snappy", "seed-lz4", "seed-zstd"]
    for f in admin.create_topics([NewTopic(t, 2, 1) for t in topics]).values():
        f.result(30)
    for t in topics:
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": t.split("-")[1], "linger.ms": 20})
        for i in range(200):
            p.produce(t, key=str(i).encode(), value=f"seed value {i} " .encode() * 3, headers=[("h", b"v")])
        p.flush(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "seed-classic", "auto.offset.reset": "earliest"})
    c.subscribe(["seed-none"])
    deadline = time.time() + 15
    while time.time() < deadline and not c.assignment():
        c.poll(0.2)
    for _ in range(10):
        c.poll(0.2)
    c.commit(asynchronous=False)
    c.close()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "seed-848", "group.protocol": "consumer", "auto.offset.reset": "earliest"})
    c.subscribe(["seed-zstd"])
    deadline = time.time() + 15
    while time.time() < deadline and not c.assignment():
        c.poll(0.2)
    c.close()
    kc = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000, auto_offset_reset="earliest", group_id="seed-python")
    kc.subscribe(["seed-gzip"])
    for _ in kc:
        pass
    kc.close()
    admin.describe_consumer_groups(["seed-classic"])["seed-classic"].result(10)
    admin.list_consumer_groups().result(10)
    admin.delete_topics(["seed-none"])["seed-none"].result(10)


def main():
    broker_port, proxy_port = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="nurt-seeds-")
    broker = subprocess.Popen([NURT, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{broker_port}", "--advertise", f"127.0.0.1:{proxy_port}", "--set", "group.initial.rebalance.delay.ms=0"], stderr=subprocess.DEVNULL)
    threading.Thread(target=proxy, args=(proxy_port, broker_port), daemon=True).start()
    time.sleep(0.5)
    try:
        drive(f"127.0.0.1:{proxy_port}")
    finally:
        broker.terminate()
        broker.wait(30)
    out = SEEDS / "request_decode"
    out.mkdir(parents=True, exist_ok=True)
    for (key, version), bucket in sorted(frames.items()):
        for frame in bucket:
            (out / f"{key}-{version}-{hashlib.sha1(frame).hexdigest()[:10]}").write_bytes(frame)
    batches = SEEDS / "record_batch"
    batches.mkdir(parents=True, exist_ok=True)
    for seg in pathlib.Path(data).glob("seed-*-0/*.log"):
        raw = seg.read_bytes()
        pos, taken = 0, 0
        while pos + 12 <= len(raw) and taken < 2:
            (length,) = struct.unpack(">i", raw[pos + 8:pos + 12])
            batch = raw[pos:pos + 12 + length]
            (batches / f"{seg.parent.name}-{taken}").write_bytes(batch)
            pos += 12 + length
            taken += 1
    recovery = SEEDS / "log_recovery"
    recovery.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate([b"\x03", b"\x05" + b"\x00" * 61, b"\x07" + b"\xff" * 100]):
        (recovery / f"seed-{i}").write_bytes(seed)
    print(f"{sum(len(b) for b in frames.values())} request frames over {len(frames)} api key/versions")


if __name__ == "__main__":
    main()
