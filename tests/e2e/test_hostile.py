"""Hostile input against the real broker: garbage, lies about lengths, floods of idle
connections and half-sent frames. The broker must answer or close, stay up, keep its memory
bounded, and keep serving well-behaved clients with every record intact."""

import random
import socket
import struct
import time

import pytest
from confluent_kafka import Producer

import kwire
from test_librdkafka import consume_all, create_topic, produce_all


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def closed_or_answered(bootstrap, payload, read_timeout_s=5.0):
    """Sends `payload`; returns 'closed' if the broker closes, else the bytes it answered."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=read_timeout_s) as s:
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)  # end of input: a half frame is then a closed connection
            data = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return "closed"
        except socket.timeout:
            # Neither an answer nor a close within the deadline: the broker is stuck on it.
            raise AssertionError(f"no answer and no close within {read_timeout_s}s for {payload[:64]!r}")
        return "closed" if data == b"" else data


def api_versions_frame(version, correlation_id=7):
    return kwire.request(18, version, correlation_id, b"")


TLS_CLIENT_HELLO = bytes.fromhex("16030100a5010000a10303") + bytes(32) + bytes.fromhex("000020c02bc02fc02cc030cca9cca8c013c014009c009d002f0035c012000a01000058")


def test_garbage_is_closed_and_nothing_is_lost(broker):
    create_topic(broker.bootstrap, "precious", 2)
    records = [(str(i).encode(), f"precious {i}".encode()) for i in range(5000)]
    acked = produce_all(broker.bootstrap, "precious", records)
    rss_before = rss_kib(broker.proc.pid)

    assert closed_or_answered(broker.bootstrap, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n") == "closed"
    assert closed_or_answered(broker.bootstrap, TLS_CLIENT_HELLO) == "closed"
    assert closed_or_answered(broker.bootstrap, struct.pack(">i", 2**31 - 1) + b"\x00" * 100) == "closed"
    assert closed_or_answered(broker.bootstrap, struct.pack(">i", -5)) == "closed"
    assert closed_or_answered(broker.bootstrap, kwire.request(9999, 0, 1, b"")) == "closed"
    # An array length of i32::MAX inside an otherwise valid Metadata v1 request.
    assert closed_or_answered(broker.bootstrap, kwire.request(3, 1, 1, struct.pack(">i", 2**31 - 1) + b"\x00" * 64)) == "closed"

    rng = random.Random(1234)
    valid = [api_versions_frame(3), kwire.request(3, 1, 1, struct.pack(">i", 1) + kwire.string("precious"))]
    for i in range(3000):
        kind = i % 3
        if kind == 0:  # random bytes
            payload = rng.randbytes(rng.randint(1, 200))
        elif kind == 1:  # a valid frame with random bytes flipped
            payload = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 4)):
                payload[rng.randrange(4, len(payload))] = rng.randrange(256)
            payload = bytes(payload)
        else:  # a right-sized frame of random body with a real header
            body = struct.pack(">hhi", rng.choice([0, 1, 2, 3, 18, 19, 20, 22, 23, 32, 37, 60]), rng.randint(0, 13), i) + rng.randbytes(rng.randint(0, 120))
            payload = struct.pack(">i", len(body)) + body
        result = closed_or_answered(broker.bootstrap, payload)
        assert result == "closed" or len(result) >= 4
        assert broker.proc.poll() is None, f"broker died on payload {payload!r}"

    rss_after = rss_kib(broker.proc.pid)
    assert rss_after - rss_before < 64 * 1024, f"RSS grew from {rss_before} to {rss_after} KiB"
    assert consume_all(broker.bootstrap, "precious", 2, len(acked)) == acked


def test_bad_crc_and_unsupported_api_versions(broker):
    create_topic(broker.bootstrap, "crc", 1)
    conn = kwire.Conn(broker.bootstrap)
    now = int(time.time() * 1000)
    assert kwire.produce_v3(conn, "crc", 0, kwire.record_batch([b"bad"], now, corrupt_crc=True))[0] == 2  # CORRUPT_MESSAGE
    assert kwire.produce_v3(conn, "crc", 0, kwire.record_batch([b"good"], now)) == (0, 0)
    # Bad acks.
    body = kwire.string(None) + struct.pack(">hi", 7, 1000) + struct.pack(">i", 1) + kwire.string("crc")
    batch = kwire.record_batch([b"x"], now)
    body += struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch
    r = kwire.Reader(conn.call(0, 3, body))
    r.i32(), r.string(), r.i32(), r.i32()
    assert r.i16() == 21  # INVALID_REQUIRED_ACKS
    # ApiVersions v99: error 35 in a v0 response, and the connection stays usable.
    conn.correlation_id += 1
    conn.send_raw(kwire.request(18, 99, conn.correlation_id, b""))
    frame = conn.recv_frame()
    assert struct.unpack(">i", frame[:4])[0] == conn.correlation_id
    assert struct.unpack(">h", frame[4:6])[0] == 35
    r = kwire.Reader(conn.call(18, 0, b""))
    assert r.i16() == 0
    keys = {r.i16(): (r.i16(), r.i16()) for _ in range(r.i32())}
    assert keys[18] == (0, 4) and keys[0] == (0, 13)
    # The good record is there, the bad one is not.
    error, hw, records = kwire.fetch_v4(conn, "crc", 0, 0, max_wait_ms=0)
    assert (error, hw) == (0, 1) and b"good" in records and b"bad" not in records
    # Invalid topic names.
    assert kwire.metadata_v1(conn, ["bad topic!"]) == {"bad topic!": 17}
    conn.close()


def test_idle_flood_and_half_sent_frames_do_not_stall_others(broker):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 10000), hard))
    create_topic(broker.bootstrap, "busy", 1)
    rss_before = rss_kib(broker.proc.pid)
    host, port = broker.bootstrap.rsplit(":", 1)
    idle = []
    for i in range(3000):
        s = socket.create_connection((host, int(port)))
        if i % 10 == 0:
            # Announce a 1 MiB frame, send 10 bytes of it, then stall.
            s.sendall(struct.pack(">i", 1 << 20) + b"\x00" * 10)
        idle.append(s)
    records = [(None, f"through the crowd {i}".encode()) for i in range(2000)]
    acked = produce_all(broker.bootstrap, "busy", records)
    assert consume_all(broker.bootstrap, "busy", 1, len(acked)) == acked
    rss_held = rss_kib(broker.proc.pid)
    for s in idle:
        s.close()
    assert broker.proc.poll() is None
    # 3000 connections, 300 of them with a frame announced: well under 64 KiB each.
    assert rss_held - rss_before < 3000 * 64, f"RSS grew from {rss_before} to {rss_held} KiB"


def test_connection_limits_and_idle_timeout(make_broker):
    broker = make_broker("max.connections.per.ip=5")
    host, port = broker.bootstrap.rsplit(":", 1)

    def five_served():
        """Five connections, each answered; None while the harness's own port probe still
        holds a slot (its close may not have reached the broker yet)."""
        socks = [socket.create_connection((host, int(port)), timeout=10) for _ in range(5)]
        for s in socks:
            s.sendall(api_versions_frame(0))
            try:
                if len(s.recv(4)) == 4:
                    continue
            except ConnectionResetError:
                pass
            for t in socks:
                t.close()
            return None
        return socks

    deadline = time.monotonic() + 10
    while (held := five_served()) is None:
        assert time.monotonic() < deadline, "five connections from one address were never all served"
        time.sleep(0.1)
    # A sixth from the same address is closed at once.
    extra = socket.create_connection((host, int(port)), timeout=10)
    assert extra.recv(1) == b""
    extra.close()
    # Once one of the five leaves, a new connection is accepted and served.
    held.pop().close()
    deadline = time.monotonic() + 10
    while True:
        again = socket.create_connection((host, int(port)), timeout=10)
        again.sendall(api_versions_frame(0))
        try:
            if len(again.recv(4)) == 4:
                break
        except ConnectionResetError:
            pass
        again.close()
        assert time.monotonic() < deadline, "the freed slot was never reused"
        time.sleep(0.1)
    for s in held + [again]:
        s.close()

    # Idle connections are closed after connections.max.idle.ms, and only those.
    idle_broker = make_broker("connections.max.idle.ms=1000")
    host, port = idle_broker.bootstrap.rsplit(":", 1)
    idle = socket.create_connection((host, int(port)), timeout=30)
    start = time.monotonic()
    assert idle.recv(1) == b"", "an idle connection is closed, without an answer"
    assert time.monotonic() - start >= 0.9, "closed before its idle time was up"
    idle.close()
    assert len(produce_all(idle_broker.bootstrap, "after-idle", [(None, b"ok")])) == 1
