"""Issue 18 (hardening): hostile but well-framed input and damaged data on
disk, through the real broker.

Finding 1: a batch whose records lie about their offset deltas (with a
valid CRC) is refused on produce with an error naming the record, and a
partition that already holds one keeps delivering the records after it.
"""
import os
import struct

import sluice_wire as sw
import sluice_wire_groups as swg
from sluice_harness import Broker


def crafted_batch(offset_deltas, ts=1700000000000, ts_deltas=None):
    """An uncompressed batch with a valid CRC whose records claim these
    offset deltas (and timestamp deltas)."""
    recs = bytearray()
    for i, od in enumerate(offset_deltas):
        body = bytearray([0])
        body += sw.varint(ts_deltas[i] if ts_deltas else 0)
        body += sw.varint(od)
        body += sw.varint(-1)
        body += sw.varint(5) + b"bad-%d" % i
        body += sw.varint(0)
        recs += sw.varint(len(body)) + body
    n = len(offset_deltas)
    after_crc = struct.pack("<BHiqqqhiI", 2, 0, n - 1, ts, ts, -1, -1, -1, n)
    after_crc += bytes(recs)
    return struct.pack("<qII", 0, 4 + len(after_crc),
                       sw.crc32c(after_crc)) + after_crc


def produce_raw(c, topic, batch):
    """The partition's error code (the detail is in the broker log: the
    produce response carries no per-partition message)."""
    return sw.decode_produce(c.call(sw.API_PRODUCE, sw.produce_body(
        sw.ACKS_DURABLE, {topic: {0: batch}})))[(topic, 0)]["error"]


def queue_drain(c, group, topic, want):
    """Acquire and ack until `want` records came; their values in order."""
    q = swg.Queue(c, group, topic, "hardening")
    got = []
    while len(got) < want:
        recs = q.acquire(1000, max_wait_ms=5000)
        assert recs, "queue stalled after %d of %d records: %r" % (
            len(got), want, got[-3:])
        got += recs
        q.ack([(r["partition"], r["offset"]) for r in recs])
    return got


def test_lying_offset_deltas_refused(broker):
    with sw.Client(broker.binary_addr) as c:
        c.create_topic("lies", 1)
        assert c.produce("lies", 0, [b"a", b"b"],
                         acks=sw.ACKS_DURABLE)["error"] == 0
        for deltas in ([0, 1000000], [-5, -5]):
            assert produce_raw(c, "lies", crafted_batch(deltas)) == \
                sw.ERR_MALFORMED
        assert produce_raw(c, "lies", crafted_batch(
            [0, 1], ts_deltas=[0, 1 << 62])) == sw.ERR_MALFORMED
        # The connection stays usable; later records follow on at offset 2.
        for i in range(20):
            r = c.produce("lies", 0, [b"after-%d" % i], acks=sw.ACKS_DURABLE)
            assert r["error"] == 0 and r["base_offset"] == 2 + i, r
        recs = c.fetch_records("lies", 0, 0)
        assert [x["offset"] for x in recs] == list(range(22))
        got = queue_drain(c, "g", "lies", 22)
        assert [x["offset"] for x in got] == list(range(22))
    log = broker.log()
    for want in ("produce to lies/0 refused, batch 0: record 1: offset delta "
                 "1000000, expected 1",
                 "record 0: offset delta -5, expected 0",
                 "record 1: timestamp"):
        assert want in log, log[-3000:]


def test_bad_batch_on_disk_does_not_strand_partition(tmp_path):
    """A lying batch stored by an older broker (written here straight into
    the segment): the queue group delivers every record after it, also
    after a restart, and the stream reader's offsets never jump."""
    b = Broker(str(tmp_path / "data"))
    b.start()
    try:
        with sw.Client(b.binary_addr) as c:
            c.create_topic("old", 1)
            for i in range(2):
                c.produce("old", 0, [b"before-%d" % i], acks=sw.ACKS_DURABLE)
        b.stop()
        seg = os.path.join(b.data_dir, "topics", "old", "0",
                           "%020d.log" % 0)
        bad = bytearray(crafted_batch([0, 1000000]))
        bad[0:8] = struct.pack("<q", 2)  # the base offset the broker assigns
        with open(seg, "ab") as f:
            f.write(bad)
        b.start()
        with sw.Client(b.binary_addr) as c:
            for i in range(20):
                r = c.produce("old", 0, [b"after-%d" % i],
                              acks=sw.ACKS_DURABLE)
                assert r["error"] == 0 and r["base_offset"] == 4 + i, r
            got = queue_drain(c, "g", "old", 2 + 1 + 20)
            vals = [x["value"] for x in got]
            # record 0 of the bad batch is readable; record 1 (offset 3) is
            # skipped with a logged reason
            assert vals == [b"before-0", b"before-1", b"bad-0"] + [
                b"after-%d" % i for i in range(20)], vals
            offs = [x["offset"] for x in got]
            assert offs == [0, 1, 2] + list(range(4, 24)), offs
            d = swg.describe(c, "g")
            p = d["partitions"][0]
            assert p["lag"] == 0 and p["in_flight"] == 0, d
        assert "offsets 2..3" in b.log(), b.log()[-2000:]
    finally:
        if b.running():
            b.stop()
        b.cleanup()


# ---- finding 2: one flipped bit must not delete acknowledged data ----------

def sluice_cli(broker, *args):
    import subprocess
    from sluice_harness import bin_dir
    addr = "%s:%d" % broker.binary_addr
    p = subprocess.run([os.path.join(bin_dir(), "sluice"), "-b", addr] +
                       list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def batch_positions(path):
    """{base_offset: file position} of the batches in a segment file
    (stops at preallocated zeros)."""
    data = open(path, "rb").read()
    out, pos = {}, 0
    while pos + 12 <= len(data):
        base, length = struct.unpack_from("<qI", data, pos)
        if length == 0:
            break
        out[base] = pos
        pos += 12 + length
    return out, data


def test_bitflip_mid_log_keeps_acked_data(tmp_path):
    """The issue's scenario: 300 durably acked one-record batches, one bit
    flipped inside batch 50, kill -9, restart. Nothing is cut, offsets are
    not reused, the queue group and stream readers get past it, and the
    damage is reported (log, `sluice topic describe`)."""
    b = Broker(str(tmp_path / "data"))
    b.start()
    try:
        with sw.Client(b.binary_addr) as c:
            c.create_topic("flip", 1)
            for i in range(300):
                r = c.produce("flip", 0, [b"value-%03d" % i],
                              acks=sw.ACKS_DURABLE)
                assert r["error"] == 0 and r["base_offset"] == i, r
        seg = os.path.join(b.data_dir, "topics", "flip", "0", "%020d.log" % 0)
        pos, data = batch_positions(seg)
        at = pos[50] + 12 + struct.unpack_from("<I", data, pos[50] + 8)[0] - 3
        with open(seg, "r+b") as f:
            f.seek(at)
            f.write(bytes([data[at] ^ 0x04]))
        b.kill9()
        b.start()
        log = b.log()
        assert "cutting" not in log, log[-3000:]
        assert "CORRUPT batch (CRC mismatch), offsets 50..50: kept" in log, \
            log[-3000:]
        assert os.path.getsize(seg) >= len(data.rstrip(b"\0"))
        with sw.Client(b.binary_addr) as c:
            # offsets are not reused
            r = c.produce("flip", 0, [b"value-300"], acks=sw.ACKS_DURABLE)
            assert r["error"] == 0 and r["base_offset"] == 300, r
            # the queue group delivers everything but the damaged record
            got = queue_drain(c, "g", "flip", 300)
            assert [x["offset"] for x in got] == \
                list(range(50)) + list(range(51, 301))
            assert [x["value"] for x in got][49:51] == [b"value-049",
                                                       b"value-051"]
            # a stream read from 51 on is whole
            recs = c.fetch_records("flip", 0, 51)
            assert [x["offset"] for x in recs] == list(range(51, 301))
        # the describe output names the damage
        rc, out, err = sluice_cli(b, "topic", "describe", "flip")
        assert rc == 0, err
        assert "DAMAGED partition 0 offsets 50..50" in out, out
        # a stream consumer from the beginning stops with an error naming
        # the offsets and how to skip; seeking past it reads the rest
        rc, out, err = sluice_cli(b, "consume", "flip", "--from-beginning")
        assert rc != 0
        assert out.split("\n")[:50] == ["value-%03d" % i for i in range(50)]
        assert "damaged batch at offsets 50..50" in err and \
            "seek to 51 to skip it" in err, err
        rc, out, err = sluice_cli(b, "consume", "flip", "--offset", "51")
        assert rc == 0, err
        assert out.split() == ["value-%03d" % i for i in range(51, 301)]
        # a second restart keeps it all
        b.stop()
        b.start()
        with sw.Client(b.binary_addr) as c:
            assert c.list_offset("flip", 0, sw.OFFSET_LATEST) == (0, 301)
    finally:
        if b.running():
            b.stop()
        b.cleanup()


# ---- finding 7: DLQ names of long topics ------------------------------------

def fnv1a32(s):
    h = 2166136261
    for ch in s.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


def test_long_topic_names_dead_letter_once(broker):
    """Topics of 246-249 characters: '<topic>.DLQ' would exceed the
    249-character limit and the dead-letter append was retried every second
    forever. The DLQ is named '<first 236>-<hash>.DLQ' instead."""
    with sw.Client(broker.binary_addr) as c:
        for n in (245, 246, 249):
            topic = ("t%d-" % n) + "x" * (n - 5)
            assert len(topic) == n
            assert c.create_topic(topic, 1)[0] == 0
            r = c.produce(topic, 0, [b"poison-%d" % n], acks=sw.ACKS_DURABLE)
            assert r["error"] == 0
            q = swg.Queue(c, "g%d" % n, topic, "c1")
            recs = q.acquire(10, max_wait_ms=5000)
            assert [x["offset"] for x in recs] == [0]
            q.reject([(0, 0)], reason="test")
            dlq = topic + ".DLQ" if n <= 245 else \
                "%s-%08x.DLQ" % (topic[:236], fnv1a32(topic))
            assert len(dlq) <= 249
            d = swg.describe(c, "g%d" % n)
            assert d["dlq_topic"] == dlq, (d["dlq_topic"], dlq)
            got = c.fetch_records(dlq, 0, 0, upto=1)
            assert [x["value"] for x in got] == [b"poison-%d" % n]
            hs = dict((k.decode(), v) for k, v in got[0]["headers"])
            assert hs["dlq.topic"] == topic.encode()
    assert "will retry" not in broker.log(), broker.log()[-2000:]


# ---- finding 5: zstd bombs and STOMP frame limits ---------------------------

def zstd_compress(data, level=3):
    import ctypes
    z = ctypes.CDLL("libzstd.so.1")
    z.ZSTD_compressBound.restype = ctypes.c_size_t
    z.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
    z.ZSTD_compress.restype = ctypes.c_size_t
    z.ZSTD_compress.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                ctypes.c_char_p, ctypes.c_size_t,
                                ctypes.c_int]
    z.ZSTD_isError.argtypes = [ctypes.c_size_t]
    cap = z.ZSTD_compressBound(len(data))
    out = ctypes.create_string_buffer(cap)
    n = z.ZSTD_compress(out, cap, data, len(data), level)
    assert not z.ZSTD_isError(n)
    return out.raw[:n]


def zstd_zeros_frame(prefix, nzeros, suffix):
    """zstd frame (with its content size) of prefix + nzeros zero bytes +
    suffix, streamed through the zstd CLI (no big buffer in the test)."""
    import subprocess
    size = len(prefix) + nzeros + len(suffix)
    p = subprocess.Popen(["zstd", "-3", "-q", "-c", "--stream-size=%d" % size],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    import threading
    out = []
    t = threading.Thread(target=lambda: out.append(p.stdout.read()))
    t.start()
    p.stdin.write(prefix)
    chunk = b"\0" * (1 << 20)
    left = nzeros
    while left:
        n = min(left, len(chunk))
        p.stdin.write(chunk[:n])
        left -= n
    p.stdin.write(suffix)
    p.stdin.close()
    t.join()
    assert p.wait() == 0
    return out[0]


def zstd_batch(value, ts=1700000000000, zeros=0):
    """One record with this value (or `zeros` zero bytes), as a
    zstd-compressed batch."""
    vlen = zeros or len(value)
    body = bytearray([0]) + sw.varint(0) + sw.varint(0) + sw.varint(-1)
    body += sw.varint(vlen)
    prefix = bytes(sw.varint(len(body) + vlen + 1)) + bytes(body)
    if zeros:
        z = zstd_zeros_frame(prefix, zeros, sw.varint(0))
    else:
        z = zstd_compress(prefix + value + sw.varint(0))
    after_crc = struct.pack("<BHiqqqhiI", 2, 1, 0, ts, ts, -1, -1, -1, 1) + z
    return struct.pack("<qII", 0, 4 + len(after_crc),
                       sw.crc32c(after_crc)) + after_crc


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_zstd_bomb_refused_before_inflating(broker):
    """A 6-7 KB batch that inflates to 200 MB: refused from its declared
    size (max-frame-bytes, 64 MiB by default), before any of it is
    allocated; the broker's peak RSS does not move by the bomb's size and
    nothing is stored."""
    bomb = zstd_batch(None, zeros=200 << 20)
    assert len(bomb) < 16 << 10, len(bomb)
    with sw.Client(broker.binary_addr) as c:
        c.create_topic("bomb", 1)
        before = peak_rss_kb(broker.pid)
        assert produce_raw(c, "bomb", bomb) == sw.ERR_TOO_LARGE
        assert peak_rss_kb(broker.pid) - before < 32 << 10
        # a small compressed batch goes through, at offset 0
        r = sw.decode_produce(c.call(sw.API_PRODUCE, sw.produce_body(
            sw.ACKS_DURABLE, {"bomb": {0: zstd_batch(b"x" * 1000)}})))
        assert r[("bomb", 0)]["error"] == 0
        assert r[("bomb", 0)]["base_offset"] == 0
    assert "compressed batch inflates beyond 67108864 bytes" in broker.log()


class MiniStomp:
    """Just enough STOMP 1.2 for these tests."""

    def __init__(self, addr):
        import socket
        self.s = socket.create_connection(addr, timeout=30)
        self.buf = b""

    def send(self, cmd, headers, body=b""):
        h = "".join("%s:%s\n" % kv for kv in headers.items())
        self.s.sendall(("%s\n%s\n" % (cmd, h)).encode() + body + b"\0")

    def frame(self):
        while b"\n\n" not in self.buf.lstrip(b"\n"):
            self._fill()
        self.buf = self.buf.lstrip(b"\n")
        head, rest = self.buf.split(b"\n\n", 1)
        lines = head.decode().split("\n")
        hs = dict(l.split(":", 1) for l in lines[1:])
        n = int(hs.get("content-length", "-1"))
        if n >= 0:
            while len(rest) < n + 1:
                self._fill()
                rest = self.buf.split(b"\n\n", 1)[1]
            body, self.buf = rest[:n], rest[n + 1:]
        else:
            while b"\0" not in rest:
                self._fill()
                rest = self.buf.split(b"\n\n", 1)[1]
            body, self.buf = rest.split(b"\0", 1)
        return lines[0], hs, body

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError
        self.buf += d

    def close(self):
        self.s.close()


def test_stomp_message_never_exceeds_frame_limit(tmp_path):
    """A record stored through the binary protocol that is larger than
    stomp-max-frame is not sent as a MESSAGE: a /queue subscriber's group
    dead-letters it (reason text says why) and delivers the next one."""
    b = Broker(str(tmp_path / "data"), args=["--stomp-max-frame", "1m"])
    b.start()
    try:
        with sw.Client(b.binary_addr) as c:
            c.create_topic("big", 1)
            assert c.produce("big", 0, [b"B" * (2 << 20)],
                             acks=sw.ACKS_DURABLE)["error"] == 0
            assert c.produce("big", 0, [b"after"],
                             acks=sw.ACKS_DURABLE)["error"] == 0
            s = MiniStomp(b.stomp_addr)
            s.send("CONNECT", {"accept-version": "1.2", "host": "x"})
            assert s.frame()[0] == "CONNECTED"
            s.send("SUBSCRIBE", {"id": "1", "destination": "/queue/big",
                                 "ack": "auto"})
            cmd, hs, body = s.frame()
            assert cmd == "MESSAGE" and body == b"after", (cmd, hs,
                                                           body[:40])
            assert hs["message-id"] == "big/0/1"
            s.close()
            dl = c.fetch_records("big.DLQ", 0, 0, upto=1)
            hs = dict((k.decode(), v) for k, v in dl[0]["headers"])
            assert len(dl[0]["value"]) == 2 << 20
            assert hs["dlq.reason-text"] == b"larger than stomp-max-frame"
        assert "would exceed stomp-max-frame" in b.log()
    finally:
        if b.running():
            b.stop()
        b.cleanup()


# ---- finding 10: missing state is refused, --recover accepts the loss -----

def start_fails(b, want):
    import subprocess
    p = b.spawn()
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()  # it started (and printed its ready line): the bug
        p.communicate()
        raise AssertionError("sluiced started on missing state; log:\n" +
                             b.log()[-2000:])
    assert p.returncode != 0, "sluiced started: %r" % out
    assert b"sluiced ready" not in out
    log = b.log()
    assert want in log, log[-3000:]


def populated(tmp_path):
    b = Broker(str(tmp_path / "data"))
    b.start()
    with sw.Client(b.binary_addr) as c:
        c.create_topic("keep", 2, {"retention-ms": "123456789"})
        for p in (0, 1):
            for i in range(3):
                c.produce("keep", p, [b"p%d-%d" % (p, i)],
                          acks=sw.ACKS_DURABLE)
        got = queue_drain(c, "g", "keep", 6)
        assert len(got) == 6
    b.stop()
    return b


def rm_db(b, name):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(os.path.join(b.data_dir, name + suffix))
        except FileNotFoundError:
            pass


def test_groups_db_deleted_refused_then_recovered(tmp_path):
    b = populated(tmp_path)
    try:
        rm_db(b, "groups.db")
        start_fails(b, "groups.db is missing but")
        b.start(["--recover"])
        assert "--recover: " in b.log()
        with sw.Client(b.binary_addr) as c:
            # the loss the operator accepted: the group starts over
            assert len(queue_drain(c, "g", "keep", 6)) == 6
    finally:
        if b.running():
            b.stop()
        b.cleanup()


def test_meta_db_deleted_refused_then_recovered(tmp_path):
    b = populated(tmp_path)
    try:
        rm_db(b, "meta.db")
        start_fails(b, "meta.db is missing but")
        b.start(["--recover"])
        assert "re-registered topic keep (2 partitions)" in b.log()
        with sw.Client(b.binary_addr) as c:
            for p in (0, 1):
                recs = c.fetch_records("keep", p, 0)
                assert [x["value"] for x in recs] == [
                    b"p%d-%d" % (p, i) for i in range(3)]
        b.stop()
        b.start()  # recovered for good: no flag needed any more
        b.stop()
    finally:
        if b.running():
            b.stop()
        b.cleanup()


def test_partition_dir_deleted_refused_then_recovered(tmp_path):
    import shutil
    b = populated(tmp_path)
    try:
        shutil.rmtree(os.path.join(b.data_dir, "topics", "keep", "1"))
        start_fails(b, "topics/keep/1 is missing (topic keep has 2 "
                       "partitions in meta.db)")
        b.start(["--recover"])
        with sw.Client(b.binary_addr) as c:
            assert [x["value"] for x in c.fetch_records("keep", 0, 0)] == [
                b"p0-%d" % i for i in range(3)]
            assert c.list_offset("keep", 1, sw.OFFSET_LATEST) == (0, 0)
    finally:
        if b.running():
            b.stop()
        b.cleanup()


# ---- finding 13: an ack whose commit fails says what happened --------------

def test_ack_not_durable_is_reported_honestly(tmp_path):
    """A queue ack whose groups.db commit fails (here: another process holds
    the database's write lock past the busy timeout, as a full disk fails
    it) is answered with an error that says the ack is applied but not yet
    durable; it is written by the next commit that succeeds, so it is never
    redelivered, also after a restart."""
    import sqlite3
    b = Broker(str(tmp_path / "data"))
    b.start()
    try:
        with sw.Client(b.binary_addr) as c:
            c.create_topic("acks", 1)
            c.produce("acks", 0, [b"a", b"b", b"c"], acks=sw.ACKS_DURABLE)
            q = swg.Queue(c, "g", "acks", "c1")
            recs = q.acquire(3, max_wait_ms=5000, lock_ms=600000)
            assert [x["offset"] for x in recs] == [0, 1, 2]
            db = sqlite3.connect(os.path.join(b.data_dir, "groups.db"),
                                 timeout=30, isolation_level=None)
            db.execute("BEGIN IMMEDIATE")  # hold the write lock
            try:
                q.ack([(0, 0)])
                raise AssertionError("ack answered as durable")
            except sw.ProtocolError as e:
                assert e.code == 25, e  # SL_ERR_STORAGE
                assert "applied but not yet durable" in e.msg, e.msg
                assert "written by the next commit that succeeds" in e.msg
            finally:
                db.execute("ROLLBACK")
                db.close()
            # applied: not handed out again; the next commit writes it
            assert q.ack([(0, 1)]) == [(0, 1, 1, 0)]
            q2 = swg.Queue(c, "g", "acks", "c2")
            assert q2.acquire(10, max_wait_ms=0) == []
        b.stop()
        b.start()
        with sw.Client(b.binary_addr) as c:
            q = swg.Queue(c, "g", "acks", "c3")
            assert [x["offset"] for x in
                    q.acquire(10, max_wait_ms=5000)] == [2]
    finally:
        if b.running():
            b.stop()
        b.cleanup()
