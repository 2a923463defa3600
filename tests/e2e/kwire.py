"""Hand-built Kafka frames for tests that need exact control of the bytes on the wire
(long-poll timing, wrong CRCs, hostile input). Only old, non-flexible versions are used:
their layout is simple and every broker must still speak them."""

import socket
import struct
import zlib


def string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request(api_key, version, correlation_id, body, client_id="kwire"):
    header = struct.pack(">hhi", api_key, version, correlation_id) + string(client_id)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def uvarint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def compact_string(s):
    """A flexible-version string; None is null. Takes str or bytes."""
    if s is None:
        return b"\x00"
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def flexible_request(api_key, version, correlation_id, body, client_id="kwire"):
    """A request with header v2 (flexible versions): client id, then empty tagged fields."""
    header = struct.pack(">hhi", api_key, version, correlation_id) + string(client_id) + b"\x00"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


class Conn:
    def __init__(self, bootstrap, timeout_s=30.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.correlation_id = 0

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by broker")
            buf += chunk
        return buf

    def recv_frame(self):
        (length,) = struct.unpack(">i", self.recv_exact(4))
        return self.recv_exact(length)

    def call(self, api_key, version, body):
        self.correlation_id += 1
        self.send_raw(request(api_key, version, self.correlation_id, body))
        frame = self.recv_frame()
        (corr,) = struct.unpack(">i", frame[:4])
        assert corr == self.correlation_id, (corr, self.correlation_id)
        return frame[4:]


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        out = self.data[self.pos:self.pos + n]
        assert len(out) == n, "truncated response"
        self.pos += n
        return out

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7

    def compact_string(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes_(self):
        n = self.i32()
        return None if n < 0 else self.take(n)


def crc32c(data):
    """CRC-32C (Castagnoli), bitwise: slow but dependency-free, fine for test batches."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def varint(n):
    n = (n << 1) ^ (n >> 63)
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def record_batch(values, timestamp_ms, corrupt_crc=False):
    """An uncompressed record batch v2 holding `values` (bytes) without keys."""
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, timestamp_ms, timestamp_ms, -1, -1, -1, len(values)) + records
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    head = struct.pack(">ib", -1, 2) + struct.pack(">I", crc)
    batch_length = len(head) + len(after_crc)
    return struct.pack(">qi", 0, batch_length) + head + after_crc


def produce_v3(conn, topic, partition, batch, acks=-1, transactional_id=None):
    """Produce v3; returns (error_code, base_offset)."""
    body = string(transactional_id) + struct.pack(">hi", acks, 30000) + struct.pack(">i", 1) + string(topic)
    body += struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(batch)) + batch
    r = Reader(conn.call(0, 3, body))
    assert r.i32() == 1
    r.string()
    assert r.i32() == 1
    r.i32()
    return r.i16(), r.i64()


def fetch_v4_body(topic, partition, offset, max_wait_ms, min_bytes=1):
    body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, 1 << 20, 0) + struct.pack(">i", 1) + string(topic)
    return body + struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, 1 << 20)


def fetch_v4(conn, topic, partition, offset, max_wait_ms, min_bytes=1):
    """Fetch v4 of one partition; returns (error_code, high_watermark, records bytes)."""
    return parse_fetch_v4(conn.call(1, 4, fetch_v4_body(topic, partition, offset, max_wait_ms, min_bytes)))


def parse_fetch_v4(response):
    """(error_code, high_watermark, records bytes) of a one-partition Fetch v4 response body."""
    r = Reader(response)
    r.i32()  # throttle
    assert r.i32() == 1
    r.string()
    assert r.i32() == 1
    r.i32()
    error, hw = r.i16(), r.i64()
    r.i64()  # last stable offset
    n = r.i32()
    for _ in range(max(n, 0)):
        r.i64(), r.i64()
    return error, hw, r.bytes_() or b""


def metadata_v1(conn, topics):
    """Metadata v1; returns {topic: error_code}."""
    body = struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics)
    r = Reader(conn.call(3, 1, body))
    for _ in range(r.i32()):
        r.i32(), r.string(), r.i32(), r.string()
    r.i32()  # controller
    out = {}
    for _ in range(r.i32()):
        err, name = r.i16(), r.string()
        r.i8()
        for _ in range(r.i32()):
            r.i16(), r.i32(), r.i32()
            [r.i32() for _ in range(r.i32())]
            [r.i32() for _ in range(r.i32())]
        out[name] = err
    return out


def batch(values, timestamp_ms, base_offset=0, max_timestamp_ms=None, last_offset_delta=None, keyed=False,
          producer_id=-1, producer_epoch=-1, base_sequence=-1, record_count=None, attributes=0):
    """A record batch v2 with chosen header fields and a valid CRC; keys equal values if
    `keyed`. Every field defaults to what a plain producer sends (attributes 0x10: transactional)."""
    records = b""
    for i, v in enumerate(values):
        key = varint(len(v)) + v if keyed else varint(-1)
        body = b"\x00" + varint(0) + varint(i) + key + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    lod = len(values) - 1 if last_offset_delta is None else last_offset_delta
    count = len(values) if record_count is None else record_count
    max_ts = timestamp_ms if max_timestamp_ms is None else max_timestamp_ms
    after_crc = struct.pack(">hiqqqhii", attributes, lod, timestamp_ms, max_ts, producer_id, producer_epoch, base_sequence, count) + records
    head = struct.pack(">ib", -1, 2) + struct.pack(">I", crc32c(after_crc))
    return struct.pack(">qi", base_offset, len(head) + len(after_crc)) + head + after_crc
