"""The idempotent producer over the binary wire (docs/cluster.md 4,
docs/protocol.md 4.5 and 4.33): a resent batch is stored once, also when
the broker was killed with -9 between the two sends; out-of-order and
fenced batches are refused; producer ids are unique across restarts."""
import os
import struct
import subprocess

import sluice_wire as sw


def batch(pid, epoch, seq, tag, n=3):
    return sw.encode_batch([("%s-%d" % (tag, i)).encode() for i in range(n)],
                           producer=(pid, epoch, seq))


def values(c, topic, end):
    return [r["value"] for r in c.fetch_records(topic, 0, 0, upto=end)]


def test_resend_after_kill9_is_stored_once(broker):
    c = broker.client()
    assert c.create_topic("idem", 1) == (0, None)
    pid, epoch = c.init_producer_id()
    assert pid >= 0 and epoch == 0
    b0, b1 = batch(pid, epoch, 0, "a"), batch(pid, epoch, 3, "b")
    r0 = c.produce_batch("idem", 0, b0)
    r1 = c.produce_batch("idem", 0, b1)
    assert (r0["error"], r0["base_offset"], r0["last_offset"]) == (0, 0, 2)
    assert (r1["error"], r1["base_offset"]) == (0, 3)
    c.close()
    # the producer never saw the answer to b1 and resends it to the broker
    # that comes back after a kill -9
    broker.kill9()
    broker.start()
    c = broker.client()
    r = c.produce_batch("idem", 0, b1)
    assert (r["error"], r["base_offset"], r["last_offset"]) == (0, 3, 5)
    assert r["log_end_offset"] == 6
    r = c.produce_batch("idem", 0, b0)
    assert (r["error"], r["base_offset"]) == (0, 0)
    # the next batch goes on from there
    r = c.produce_batch("idem", 0, batch(pid, epoch, 6, "c"))
    assert (r["error"], r["base_offset"]) == (0, 6)
    assert values(c, "idem", 9) == [b"a-0", b"a-1", b"a-2", b"b-0", b"b-1",
                                    b"b-2", b"c-0", b"c-1", b"c-2"]
    assert c.list_offset("idem", 0, sw.OFFSET_LATEST) == (0, 9)


def test_out_of_order_fenced_and_old_duplicates(broker):
    c = broker.client()
    assert c.create_topic("idem2", 1) == (0, None)
    pid, epoch = c.init_producer_id()
    n = 64 + 3  # the broker remembers 64 batches per producer
    sent = [batch(pid, epoch, 3 * i, "x%d" % i) for i in range(n)]
    for i, b in enumerate(sent):
        assert c.produce_batch("idem2", 0, b, acks=sw.ACKS_WRITTEN)[
            "base_offset"] == 3 * i
    # a gap
    r = c.produce_batch("idem2", 0, batch(pid, epoch, 3 * n + 9, "gap"))
    assert (r["error"], r["base_offset"]) == (sw.ERR_OUT_OF_ORDER_SEQUENCE, -1)
    # the last 64: answered with their offsets
    r = c.produce_batch("idem2", 0, sent[3])
    assert (r["error"], r["base_offset"]) == (0, 9)
    # older than the last 64 batches: stored, offset no longer known
    r = c.produce_batch("idem2", 0, sent[0])
    assert (r["error"], r["base_offset"]) == (sw.ERR_DUPLICATE_SEQUENCE, -1)
    # a new epoch of the same id starts at 0 and fences the old one
    pid2, epoch2 = c.init_producer_id(pid, epoch)
    assert (pid2, epoch2) == (pid, epoch + 1)
    r = c.produce_batch("idem2", 0, batch(pid, epoch2, 0, "new"))
    assert (r["error"], r["base_offset"]) == (0, 3 * n)
    r = c.produce_batch("idem2", 0, batch(pid, epoch, 3 * n, "old"))
    assert r["error"] == sw.ERR_PRODUCER_FENCED
    # negative epoch or sequence with a producer id: malformed
    r = c.produce_batch("idem2", 0, batch(pid, -1, 0, "bad"))
    assert r["error"] == sw.ERR_MALFORMED
    assert c.list_offset("idem2", 0, sw.OFFSET_LATEST) == (0, 3 * n + 3)
    # producer id -1: no deduplication
    plain = sw.encode_batch([b"p"])
    assert c.produce_batch("idem2", 0, plain)["base_offset"] == 3 * n + 3
    assert c.produce_batch("idem2", 0, plain)["base_offset"] == 3 * n + 4


def test_producer_ids_unique_across_restarts(broker):
    c = broker.client()
    ids = {c.init_producer_id()[0] for _ in range(5)}
    c.close()
    broker.kill9()
    broker.start()
    c = broker.client()
    ids |= {c.init_producer_id()[0] for _ in range(5)}
    c.close()
    broker.restart()
    c = broker.client()
    ids |= {c.init_producer_id()[0] for _ in range(5)}
    assert len(ids) == 15 and min(ids) >= 0
    # a malformed request is refused, the connection stays usable
    err, msg, _ = sw.status(c.call(sw.API_INIT_PRODUCER_ID, b"\x01"))
    assert err == sw.ERR_MALFORMED and "INIT_PRODUCER_ID" in msg
    assert c.init_producer_id()[0] not in ids


def batch_headers(c, topic, partition=0):
    """(base_offset, records, producer_id, epoch, base_sequence) of every
    stored batch, from a raw FETCH."""
    data = c.fetch(topic, partition, 0)["records"]
    out, off = [], 0
    while off + 57 <= len(data):
        base, length = struct.unpack_from("<qI", data, off)
        pid, epoch, seq, n = struct.unpack_from("<qhiI", data, off + 39)
        out.append((base, n, pid, epoch, seq))
        off += 12 + length
    return out


def sluice_cli(broker, *args, stdin=None):
    d = os.environ.get("SLUICE_BIN_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bin")
    p = subprocess.run([os.path.join(d, "sluice"), "-b",
                        "%s:%d" % broker.binary_addr] + list(args),
                       input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode()


def test_libsluice_stamps_ids_and_sequences(broker):
    """libsluice (here through the CLI) asks INIT_PRODUCER_ID and numbers
    each partition's batches from 0; enable.idempotence=false sends -1."""
    c = broker.client()
    assert c.create_topic("stamped", 1) == (0, None)
    lines = b"".join(b"r%d\n" % i for i in range(2000))
    sluice_cli(broker, "-X", "batch.records=300", "produce", "stamped",
               stdin=lines)
    sluice_cli(broker, "-X", "batch.records=300", "produce", "stamped",
               stdin=lines)
    sluice_cli(broker, "-X", "enable.idempotence=false", "produce", "stamped",
               stdin=b"plain\n")
    hdrs = batch_headers(c, "stamped")
    assert sum(h[1] for h in hdrs) == 4001
    runs = {}
    for base, n, pid, epoch, seq in hdrs[:-1]:
        assert pid >= 0 and epoch == 0
        runs.setdefault(pid, []).append((seq, n))
    assert len(runs) == 2  # one producer id per producer
    for seqs in runs.values():
        nxt = 0
        for seq, n in seqs:
            assert seq == nxt
            nxt += n
        assert nxt == 2000
    assert hdrs[-1][2:] == (-1, -1, -1)


class OutOfOrderBroker:
    """A one-partition fake broker for libsluice's resend rules: it keeps
    the first produce (sequence 0) unanswered until a later batch of the
    partition arrives, then refuses the first with NOT_ENOUGH_REPLICAS
    (retriable: nothing stored) and the later one with
    OUT_OF_ORDER_SEQUENCE, as a real leader does when the batch before a
    pipelined one was not stored. From then on it stores what comes in
    sequence order and refuses gaps."""

    def __init__(self):
        import socket
        import threading
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.addr = "127.0.0.1:%d" % self.srv.getsockname()[1]
        self.stored, self.answers = [], []
        self.next_seq = 0
        self.refused_first = False
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        import threading
        while True:
            try:
                s, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(s,), daemon=True).start()

    @staticmethod
    def frame(corr, body):
        return struct.pack("<II", 4 + len(body), corr) + body

    def produce_answer(self, corr, topic, part, seq, n, err):
        if err == 0:
            base = len(self.stored) - n
            body = struct.pack("<i", 0) + struct.pack("<I", 1) + \
                sw.str16(topic) + struct.pack("<IIiqqq", 1, part, 0, base,
                                              base + n - 1, len(self.stored))
        else:
            body = struct.pack("<i", 0) + struct.pack("<I", 1) + \
                sw.str16(topic) + struct.pack("<IIiqqq", 1, part, err, -1,
                                              -1, len(self.stored))
        self.answers.append((seq, err))
        return self.frame(corr, body)

    def conn(self, s):
        held = None
        buf = b""
        with s:
            while True:
                while len(buf) < 4 or len(buf) < 4 + struct.unpack_from(
                        "<I", buf)[0]:
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                n = struct.unpack_from("<I", buf)[0]
                api, ver, corr = struct.unpack_from("<HHI", buf, 4)
                body = buf[12:4 + n]
                buf = buf[4 + n:]
                if api == sw.API_HANDSHAKE:
                    apis = [(0, 1, 1), (1, 1, 2), (5, 1, 1), (33, 1, 1)]
                    out = struct.pack("<i", 0) + sw.str16("fake") + \
                        sw.str16("0") + struct.pack("<II", 1 << 20,
                                                     len(apis))
                    out += b"".join(struct.pack("<HHH", *a) for a in apis)
                    s.sendall(self.frame(corr, out))
                elif api == sw.API_METADATA:
                    r = sw.Reader(body)
                    names = [r.str16() for _ in range(r.u32())] or ["t"]
                    out = struct.pack("<iI", 0, len(names))
                    for nm in names:
                        out += sw.str16(nm) + struct.pack(
                            "<iIIqqI", 0, 1, 0, 0, len(self.stored), 0)
                    if ver >= 2:
                        out += struct.pack("<iI", 0, 0)
                        out += struct.pack("<iiII", 0, 0, 0, 0) * len(names)
                    s.sendall(self.frame(corr, out))
                elif api == sw.API_INIT_PRODUCER_ID:
                    s.sendall(self.frame(corr, struct.pack("<iqh", 0, 7, 0)))
                elif api == sw.API_PRODUCE:
                    r = sw.Reader(body)
                    r._u("<B")
                    r.u32()
                    assert r.u32() == 1
                    topic = r.str16()
                    assert r.u32() == 1
                    part = r.u32()
                    recs = r.blob32()
                    seq = struct.unpack_from("<i", recs, 16 + 1 + 2 + 4 + 8 +
                                             8 + 8 + 2)[0]
                    vals = [x["value"] for x in sw.decode_batches(recs)]
                    if seq == 0 and not self.refused_first:
                        held = (corr, topic, part, seq, len(vals))
                        continue
                    out = b""
                    if held:  # the earlier batch was not stored
                        out += self.produce_answer(*held, 33)
                        self.refused_first = True
                        held = None
                    if seq != self.next_seq:
                        out += self.produce_answer(corr, topic, part, seq,
                                                   len(vals), 35)
                    else:
                        self.stored += vals
                        self.next_seq += len(vals)
                        out += self.produce_answer(corr, topic, part, seq,
                                                   len(vals), 0)
                    s.sendall(out)
                else:
                    s.sendall(self.frame(corr, struct.pack("<ih", 5, 0)))

    def close(self):
        self.srv.close()


def test_out_of_order_behind_a_resend_is_resent(tmp_path):
    """OUT_OF_ORDER_SEQUENCE for a batch whose partition has an earlier
    batch waiting for a resend is that batch's gap: libsluice resends both,
    in order, and reports success (Kafka's producer does the same)."""
    fb = OutOfOrderBroker()
    try:
        d = os.environ.get("SLUICE_BIN_DIR") or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "build",
            "bin")
        lines = b"".join(b"r%d\n" % i for i in range(5))
        p = subprocess.run(
            [os.path.join(d, "sluice"), "-b", fb.addr, "-X", "linger.ms=0",
             "-X", "batch.records=1", "produce", "t", "--partition", "0",
             "--acks", "durable"],
            input=lines, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=60)
        assert (0, 33) in fb.answers and any(
            e == 35 for _, e in fb.answers), fb.answers
        assert p.returncode == 0, p.stderr.decode()
        assert fb.stored == [b"r%d" % i for i in range(5)]
    finally:
        fb.close()
