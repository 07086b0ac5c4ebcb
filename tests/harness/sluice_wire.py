"""sluice_wire.py - a small pure-Python codec and client for the Sluice
binary protocol (docs/protocol.md), for tests.

Everything is little-endian. Request frame: u32 length | u16 api_key |
u16 api_version | u32 correlation_id | body. Response frame: u32 length |
u32 correlation_id | i32 error | body (when error != 0 a str16 message
follows and the body ends).

Also: CRC-32C (pure-Python table) and a record-batch encoder/decoder
(protocol/batch.h) so tests can produce and verify records without the C
client. Reuse it from other test suites:

    sys.path.insert(0, os.path.join(SRC, "tests", "harness"))
    import sluice_wire as sw
    c = sw.Client(("127.0.0.1", port))
    c.create_topic("t", 3)
    r = c.produce("t", 0, [b"a", b"b"], acks=sw.ACKS_DURABLE)
    recs = c.fetch_records("t", 0, 0)
"""

import socket
import struct

# api keys (protocol/api.h)
API_HANDSHAKE = 0
API_METADATA = 1
API_CREATE_TOPICS = 2
API_DELETE_TOPICS = 3
API_LIST_TOPICS = 4
API_PRODUCE = 5
API_FETCH = 6
API_LIST_OFFSETS = 7
API_INIT_PRODUCER_ID = 33

ACKS_NONE, ACKS_WRITTEN, ACKS_DURABLE = 0, 1, 2
OFFSET_LATEST, OFFSET_EARLIEST = -1, -2

# error codes (protocol/err.h)
OK = 0
ERR_CORRUPT = 2
ERR_MALFORMED = 3
ERR_TOO_LARGE = 4
ERR_UNSUPPORTED_API = 5
ERR_UNSUPPORTED_VERSION = 6
ERR_UNKNOWN_TOPIC = 7
ERR_UNKNOWN_PARTITION = 8
ERR_TOPIC_EXISTS = 9
ERR_INVALID_CONFIG = 10
ERR_OFFSET_OUT_OF_RANGE = 11
ERR_INVALID_TOPIC = 29
ERR_OUT_OF_ORDER_SEQUENCE = 35
ERR_PRODUCER_FENCED = 36
ERR_UNKNOWN_PRODUCER_ID = 41
ERR_DUPLICATE_SEQUENCE = 37
ERR_FENCED_LEADER_EPOCH = 38
ERR_UNKNOWN_LEADER_EPOCH = 39

# ---- CRC-32C (Castagnoli), reflected polynomial 0x82F63B78 -------------

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---- varints (zigzag LEB128) -------------------------------------------

def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n):
    return uvarint((n << 1) ^ (n >> 63) if n < 0 else n << 1)


def read_varint(buf, off):
    shift = 0
    result = 0
    while True:
        b = buf[off]
        off += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), off


# ---- record batches (protocol/batch.h) ---------------------------------

BATCH_HDR = 57


def _bytes_field(b):
    if b is None:
        return varint(-1)
    return varint(len(b)) + b


def encode_batch(values, keys=None, headers=None, ts=1700000000000,
                 producer=None):
    """One uncompressed batch. values: list of bytes (or None); keys:
    optional list; headers: optional list of lists of (key, value);
    producer: (producer_id, epoch, base_sequence) of an idempotent
    producer (docs/protocol.md 4.5), default not idempotent (-1s)."""
    recs = bytearray()
    for i, v in enumerate(values):
        k = keys[i] if keys else None
        hs = headers[i] if headers else []
        body = bytearray()
        body.append(0)
        body += varint(0)  # timestamp delta
        body += varint(i)  # offset delta
        body += _bytes_field(k)
        body += _bytes_field(v)
        body += varint(len(hs))
        for hk, hv in hs:
            body += _bytes_field(hk)
            body += _bytes_field(hv)
        recs += varint(len(body)) + body
    n = len(values)
    pid, epoch, seq = producer if producer else (-1, -1, -1)
    after_crc = struct.pack("<BHiqqqhiI", 2, 0, n - 1, ts, ts, pid, epoch,
                            seq, n)
    after_crc += bytes(recs)
    crc = crc32c(after_crc)
    length = 4 + len(after_crc)  # crc + rest
    return struct.pack("<qII", 0, length, crc) + after_crc


def decode_batches(data):
    """Records of back-to-back batches: list of dicts with offset,
    timestamp, key, value, headers. Checks every CRC (raises ValueError)."""
    out = []
    off = 0
    while off + 12 <= len(data):
        base, length = struct.unpack_from("<qI", data, off)
        end = off + 12 + length
        if end > len(data):
            break  # partial batch at the end of a fetch
        crc = struct.unpack_from("<I", data, off + 12)[0]
        if crc32c(data[off + 16:end]) != crc:
            raise ValueError("batch at %d: bad CRC" % off)
        (magic, attrs, lod, fts, mts, pid, epoch, seq,
         count) = struct.unpack_from("<BHiqqqhiI", data, off + 16)
        if attrs & 7:
            raise ValueError("compressed batches not supported here")
        p = off + BATCH_HDR
        for _ in range(count):
            rlen, p = read_varint(data, p)
            rend = p + rlen
            p += 1
            tsd, p = read_varint(data, p)
            od, p = read_varint(data, p)
            kl, p = read_varint(data, p)
            key = None if kl < 0 else bytes(data[p:p + kl])
            p += max(kl, 0)
            vl, p = read_varint(data, p)
            val = None if vl < 0 else bytes(data[p:p + vl])
            p += max(vl, 0)
            hc, p = read_varint(data, p)
            hs = []
            for _ in range(hc):
                hkl, p = read_varint(data, p)
                hk = bytes(data[p:p + hkl])
                p += hkl
                hvl, p = read_varint(data, p)
                hv = None if hvl < 0 else bytes(data[p:p + hvl])
                p += max(hvl, 0)
                hs.append((hk, hv))
            out.append({"offset": base + od, "timestamp": fts + tsd,
                        "key": key, "value": val, "headers": hs})
            p = rend
        off = end
    return out


# ---- primitive encoders/decoders ------------------------------------------

def str16(s):
    if s is None:
        return struct.pack("<H", 0xFFFF)
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("<H", len(s)) + s


class Reader:
    def __init__(self, buf, off=0):
        self.buf = buf
        self.off = off

    def _u(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.off)[0]
        self.off += struct.calcsize(fmt)
        return v

    def u16(self):
        return self._u("<H")

    def u32(self):
        return self._u("<I")

    def i32(self):
        return self._u("<i")

    def i64(self):
        return self._u("<q")

    def str16(self):
        n = self.u16()
        if n == 0xFFFF:
            return None
        s = bytes(self.buf[self.off:self.off + n])
        self.off += n
        return s.decode()

    def blob32(self):
        n = self.u32()
        s = bytes(self.buf[self.off:self.off + n])
        self.off += n
        return s

    def left(self):
        return len(self.buf) - self.off


def request_frame(api, corr, body, version=1):
    return struct.pack("<IHHI", 8 + len(body), api, version, corr) + body


# ---- request bodies ------------------------------------------------------

def handshake_body(client="pytest"):
    return str16(client) + struct.pack("<I", 0)


def metadata_body(topics=()):
    return struct.pack("<I", len(topics)) + b"".join(str16(t) for t in topics)


def create_topics_body(topics):
    """topics: list of (name, partitions, {key: value})."""
    b = struct.pack("<I", len(topics))
    for name, parts, cfg in topics:
        b += str16(name) + struct.pack("<I", parts)
        b += struct.pack("<I", len(cfg))
        for k, v in cfg.items():
            b += str16(k) + str16(v)
    return b


def delete_topics_body(topics):
    return struct.pack("<I", len(topics)) + b"".join(str16(t) for t in topics)


def produce_body(acks, parts, timeout_ms=30000):
    """parts: {topic: {partition: records_bytes}}."""
    b = struct.pack("<BII", acks, timeout_ms, len(parts))
    for topic, pp in parts.items():
        b += str16(topic) + struct.pack("<I", len(pp))
        for p, recs in pp.items():
            b += struct.pack("<II", p, len(recs)) + recs
    return b


def fetch_body(parts, max_wait_ms=0, min_bytes=0, max_bytes=64 << 20):
    """parts: {topic: [(partition, offset, max_bytes)]}."""
    b = struct.pack("<IIII", max_wait_ms, min_bytes, max_bytes, len(parts))
    for topic, pp in parts.items():
        b += str16(topic) + struct.pack("<I", len(pp))
        for p, off, mb in pp:
            b += struct.pack("<IqI", p, off, mb)
    return b


def list_offsets_body(parts):
    """parts: {topic: [(partition, timestamp)]}."""
    b = struct.pack("<I", len(parts))
    for topic, pp in parts.items():
        b += str16(topic) + struct.pack("<I", len(pp))
        for p, ts in pp:
            b += struct.pack("<Iq", p, ts)
    return b


# ---- response bodies (after corr id; start at the i32 error) -----------

class ProtocolError(Exception):
    def __init__(self, code, msg):
        Exception.__init__(self, "error %d: %s" % (code, msg))
        self.code = code
        self.msg = msg


def status(body):
    r = Reader(body)
    err = r.i32()
    msg = r.str16() if err and r.left() >= 2 else None
    return err, msg, r


def _ok(body):
    err, msg, r = status(body)
    if err:
        raise ProtocolError(err, msg)
    return r


def _by_topic_part(body, read_part):
    """An ok body `u32 ntopics {str16 topic, u32 nparts {u32 partition,
    fields}}` as {(topic, partition): read_part(reader)}."""
    r = _ok(body)
    out = {}
    for _ in range(r.u32()):
        t = r.str16()
        for _ in range(r.u32()):
            p = r.u32()
            out[(t, p)] = read_part(r)
    return out


def decode_produce(body):
    return _by_topic_part(body, lambda r: {
        "error": r.i32(), "base_offset": r.i64(), "last_offset": r.i64(),
        "log_end_offset": r.i64()})


def init_producer_id_body(producer_id=-1, epoch=-1):
    return struct.pack("<qh", producer_id, epoch)


def decode_init_producer_id(body):
    r = _ok(body)
    return r.i64(), struct.unpack("<h", struct.pack("<H", r.u16()))[0]


def _fetch_part(r):
    d = {"error": r.i32(), "high_watermark": r.i64(),
         "log_start_offset": r.i64(), "log_end_offset": r.i64()}
    d["records"] = r.blob32()
    return d


def decode_fetch(body):
    return _by_topic_part(body, _fetch_part)


def decode_topics_result(body):
    r = _ok(body)
    out = {}
    for _ in range(r.u32()):
        name = r.str16()
        err = r.i32()
        msg = r.str16()
        out[name] = (err, msg)
    return out


def decode_list_topics(body):
    r = _ok(body)
    return {r.str16(): r.u32() for _ in range(r.u32())}


def decode_metadata(body):
    r = _ok(body)
    out = {}
    for _ in range(r.u32()):
        name = r.str16()
        err = r.i32()
        parts = {}
        for _ in range(r.u32()):
            p = r.u32()
            parts[p] = (r.i64(), r.i64())
        cfg = {}
        for _ in range(r.u32()):
            k = r.str16()
            cfg[k] = r.str16()
        out[name] = {"error": err, "partitions": parts, "configs": cfg}
    return out


def decode_list_offsets(body):
    return _by_topic_part(body, lambda r: (r.i32(), r.i64()))


# ---- client ---------------------------------------------------------------

class Client:
    """Blocking client: send() pipelines, recv() reads one response."""

    def __init__(self, addr, timeout=30.0):
        if isinstance(addr, str):
            h, p = addr.rsplit(":", 1)
            addr = (h, int(p))
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.corr = 0
        self.buf = bytearray()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, api, body, version=1):
        self.corr += 1
        self.sock.sendall(request_frame(api, self.corr, body, version))
        return self.corr

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            self.buf += chunk

    def recv(self):
        """(correlation_id, body) of the next response frame."""
        self._fill(4)
        n = struct.unpack_from("<I", self.buf)[0]
        self._fill(4 + n)
        frame = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        return struct.unpack_from("<I", frame)[0], frame[4:]

    def call(self, api, body, version=1):
        corr = self.send(api, body, version)
        rc, resp = self.recv()
        assert rc == corr, "correlation id %d, expected %d" % (rc, corr)
        return resp

    # -- conveniences --
    def handshake(self):
        return status(self.call(API_HANDSHAKE, handshake_body()))

    def create_topic(self, name, partitions=1, configs=None):
        res = decode_topics_result(self.call(
            API_CREATE_TOPICS,
            create_topics_body([(name, partitions, configs or {})])))
        return res[name]

    def delete_topic(self, name):
        return decode_topics_result(
            self.call(API_DELETE_TOPICS, delete_topics_body([name])))[name]

    def list_topics(self):
        return decode_list_topics(self.call(API_LIST_TOPICS, b""))

    def metadata(self, topics=()):
        return decode_metadata(self.call(API_METADATA, metadata_body(topics)))

    def produce(self, topic, partition, values, acks=ACKS_WRITTEN, keys=None):
        body = produce_body(acks, {topic: {partition: encode_batch(values,
                                                                   keys)}})
        if acks == ACKS_NONE:
            self.send(API_PRODUCE, body)
            return None
        return decode_produce(self.call(API_PRODUCE, body))[(topic,
                                                              partition)]

    def init_producer_id(self, producer_id=-1, epoch=-1):
        """(producer_id, epoch) from INIT_PRODUCER_ID (api 33)."""
        return decode_init_producer_id(self.call(
            API_INIT_PRODUCER_ID, init_producer_id_body(producer_id, epoch)))

    def produce_batch(self, topic, partition, batch, acks=ACKS_DURABLE):
        """Send one encoded batch as it is (resend the same bytes to
        retry); the partition's result dict."""
        body = produce_body(acks, {topic: {partition: batch}})
        return decode_produce(self.call(API_PRODUCE, body))[(topic,
                                                              partition)]

    def fetch(self, topic, partition, offset, max_bytes=16 << 20,
              max_wait_ms=0, min_bytes=0):
        return decode_fetch(self.call(API_FETCH, fetch_body(
            {topic: [(partition, offset, max_bytes)]}, max_wait_ms,
            min_bytes)))[(topic, partition)]

    def fetch_records(self, topic, partition, offset, upto=None,
                      max_wait_ms=10000):
        """Every record from offset to the visible end. With upto, keep
        long-polling (max_wait_ms per poll) until offset upto is reached:
        records acked as written become visible once durable (flush=always
        topics), one group commit later."""
        out = []
        while True:
            wait = max_wait_ms if upto is not None else 0
            r = self.fetch(topic, partition, offset, max_wait_ms=wait,
                           min_bytes=1 if wait else 0)
            if r["error"]:
                raise ProtocolError(r["error"], "fetch %s/%d@%d" % (
                    topic, partition, offset))
            recs = [x for x in decode_batches(r["records"])
                    if x["offset"] >= offset]
            if upto is not None:
                recs = [x for x in recs if x["offset"] < upto]
            if not recs:
                if upto is not None and offset < upto:
                    raise ProtocolError(-1, "fetch %s/%d: nothing at %d "
                                        "after %d ms (want up to %d)" % (
                                            topic, partition, offset, wait,
                                            upto))
                return out
            out += recs
            offset = recs[-1]["offset"] + 1
            if upto is not None and offset >= upto:
                return out

    def list_offset(self, topic, partition, ts):
        return decode_list_offsets(self.call(
            API_LIST_OFFSETS,
            list_offsets_body({topic: [(partition, ts)]})))[(topic,
                                                             partition)]
