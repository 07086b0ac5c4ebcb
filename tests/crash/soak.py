"""soak.py - kill -9 rounds under mixed load against one sluiced.

One broker and one data directory for the whole run. Each round restarts
the broker and runs, interleaved on four connections: a binary producer
(durable acks, pipelined), a STOMP producer (persistent SENDs with
receipts, some marked for the dead-letter queue), a binary queue consumer
that acks what it gets and rejects what is marked (DLQ traffic), and kills
the broker with SIGKILL at a random step, with requests in flight. The
invariants (docs/operations.md):

  - every produce answered OK and every SEND receipted is in the topic,
    once per send (nothing lost, nothing invented);
  - no record whose ack was answered OK is delivered again (checked at
    every delivery);
  - every record whose reject was answered OK is in soak.DLQ;
  - at the end, after draining: every record of the topic was delivered
    and acked, or dead-lettered (nothing unacknowledged lost).

    python3 tests/crash/soak.py --rounds N [--seed S]
prints a verdict line: `soak: PASS ...` or `soak: FAIL ...`.
Used by scripts/soak.sh and, a few rounds, by tests/crash/test_soak.py.
"""
import argparse
import os
import random
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "harness"))

import sluice_wire as sw  # noqa: E402
import sluice_wire_groups as swg  # noqa: E402
from sluice_harness import Broker  # noqa: E402

TOPIC = "soak"
GROUP = "soak"  # the STOMP /queue/soak group, shared with binary consumers
PARTS = 2
DLQ = TOPIC + ".DLQ"


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Stomp:
    """The smallest STOMP 1.2 producer: SEND with receipt, wait for it."""

    def __init__(self, addr):
        self.sock = socket.create_connection(addr, timeout=30)
        self.buf = b""
        self._send("CONNECT", {"accept-version": "1.2", "host": "/"})
        check(self._frame()[0] == "CONNECTED", "STOMP CONNECT refused")
        self.n = 0

    def _send(self, cmd, headers, body=b""):
        h = "".join("%s:%s\n" % kv for kv in headers.items())
        self.sock.sendall(("%s\n%s\n" % (cmd, h)).encode() + body + b"\0")

    def _frame(self):
        while b"\0" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("STOMP connection closed")
            self.buf += d
        f, self.buf = self.buf.split(b"\0", 1)
        f = f.lstrip(b"\r\n")
        head = f.split(b"\n\n", 1)[0].decode()
        lines = head.split("\n")
        return lines[0], dict(x.split(":", 1) for x in lines[1:] if ":" in x)

    def send(self, body):
        self.n += 1
        self._send("SEND", {"destination": "/queue/" + TOPIC,
                            "persistent": "true", "receipt": str(self.n),
                            "content-type": "text/plain"}, body)
        cmd, h = self._frame()
        check(cmd == "RECEIPT" and h.get("receipt-id") == str(self.n),
              "STOMP: expected RECEIPT %d, got %s %r" % (self.n, cmd, h))

    def close(self):
        self.sock.close()


class Soak:
    def __init__(self, data, seed):
        self.rnd = random.Random(seed)
        self.b = Broker(data, args=["--log-level", "warn"])
        self.acked = set()     # values: produce answered OK / SEND receipted
        self.sent = set()      # every value sent
        self.qacked = {}       # (p, offset) -> value: ack answered OK
        self.rejected = set()  # (p, offset): reject answered OK
        self.delivered = {}    # (p, offset) -> value
        self.ack_sent = set()  # (p, offset): ack sent (answered or not)
        self.kills = 0
        self.stats = {"binary": 0, "stomp": 0}

    def setup(self):
        self.b.start()
        with self.b.client() as c:
            check(c.create_topic(TOPIC, PARTS) == (0, None), "create topic")
            swg.queue_config(c, GROUP, TOPIC, {"max_deliveries": "3"})

    def value(self, rid, kind, seq):
        v = "%s-r%d-%d" % (kind, rid, seq)
        if self.rnd.randrange(10) == 0:
            v += "|dlq"  # the consumer rejects it: dead-letter traffic
        self.sent.add(v.encode())
        return v.encode()

    def deliver(self, q, recs):
        """Ack, or reject the marked ones; record what was answered."""
        acks, rejs = [], []
        for x in recs:
            k = (x["partition"], x["offset"])
            check(k not in self.qacked, "acked record %r (%r) delivered again"
                  % (k, self.qacked.get(k)))
            self.delivered[k] = x["value"]
            (rejs if x["value"].endswith(b"|dlq") else acks).append(k)
        self.ack_sent.update(acks)
        if acks:
            for (p, first, last, err) in q.ack(acks):
                if err == 0:
                    for o in range(first, last + 1):
                        self.qacked[(p, o)] = self.delivered[(p, o)]
        if rejs:
            for (p, first, last, err) in q.reject(rejs, reason="soak"):
                if err == 0:
                    self.rejected.update((p, o)
                                         for o in range(first, last + 1))

    def round(self, rid):
        if not self.b.running():
            self.b.start()
        kill_at = self.rnd.randrange(10, 80)
        prod = self.b.client()
        cons = self.b.client()
        st = Stomp(self.b.stomp_addr)
        q = swg.Queue(cons, GROUP, TOPIC, "c%d" % rid)
        inflight = {}
        seq = 0
        try:
            for step in range(kill_at + 1):
                while len(inflight) < 4:
                    p = self.rnd.randrange(PARTS)
                    vals = [self.value(rid, "b", seq * 10 + i)
                            for i in range(self.rnd.randrange(1, 4))]
                    body = sw.produce_body(sw.ACKS_DURABLE,
                                           {TOPIC: {p: sw.encode_batch(vals)}})
                    inflight[prod.send(sw.API_PRODUCE, body)] = (p, vals)
                    seq += 1
                if step == kill_at:
                    self.b.kill9()  # produces in flight, acks answered
                    self.kills += 1
                    break
                corr, resp = prod.recv()
                p, vals = inflight.pop(corr)
                r = sw.decode_produce(resp)[(TOPIC, p)]
                check(r["error"] == 0, "produce: %r" % (r,))
                self.acked.update(vals)
                self.stats["binary"] += len(vals)
                v = self.value(rid, "s", step)
                st.send(v)
                self.acked.add(v)
                self.stats["stomp"] += 1
                self.deliver(q, q.acquire(self.rnd.randrange(1, 10)))
        except (ConnectionError, OSError):
            check(self.kills > 0 and not self.b.running(),
                  "connection lost while the broker ran")
        finally:
            prod.close()
            cons.close()
            st.close()

    def drain_and_verify(self):
        if not self.b.running():
            self.b.start()
        c = self.b.client(timeout=60)
        q = swg.Queue(c, GROUP, TOPIC, "drain")
        deadline = time.monotonic() + 300
        while True:
            check(time.monotonic() < deadline, "drain did not finish")
            d = swg.describe(c, GROUP)
            if all(x["committed"] >= x["log_end"] for x in d["partitions"]):
                break
            self.deliver(q, q.acquire(500, max_wait_ms=200))
        present = {}
        for p in range(PARTS):
            err, end = c.list_offset(TOPIC, p, sw.OFFSET_LATEST)
            check(err == 0, "list_offset")
            for x in (c.fetch_records(TOPIC, p, 0, upto=end) if end else []):
                present[(p, x["offset"])] = x["value"]
        values = {}
        for k, v in present.items():
            check(v in self.sent, "record never sent at %r: %r" % (k, v[:40]))
            values[v] = values.get(v, 0) + 1
        lost = [v for v in self.acked if v not in values]
        check(not lost, "%d acked records lost, e.g. %r" % (len(lost),
                                                           lost[:5]))
        dup = [v for v, n in values.items() if n > 1]
        # a send retried by nobody appears once; the producers never retry
        check(not dup, "records stored twice: %r" % dup[:5])
        dlq = set()
        err, end = c.list_offset(DLQ, 0, sw.OFFSET_LATEST)
        if err == 0 and end:
            for x in c.fetch_records(DLQ, 0, 0, upto=end):
                h = dict(x["headers"])
                dlq.add((int(h[b"dlq.partition"]), int(h[b"dlq.offset"])))
        missing = [k for k in self.rejected if k not in dlq]
        check(not missing, "rejected but not dead-lettered: %r" % missing[:5])
        # an ack sent just before a kill may have committed unanswered
        undone = [k for k in present if k not in self.qacked and
                  k not in dlq and k not in self.ack_sent]
        check(not undone, "%d records neither acked nor dead-lettered, e.g. "
              "%r" % (len(undone), undone[:5]))
        c.close()
        check(self.b.stop() == 0, "clean stop")
        return len(present), len(dlq)


def run(rounds, seed, data, out=sys.stdout, every=100):
    s = Soak(data, seed)
    t0 = time.monotonic()
    try:
        s.setup()
        for rid in range(rounds):
            try:
                s.round(rid)
            except Failure as e:
                raise Failure("round %d: %s" % (rid, e))
            if every and (rid + 1) % every == 0:
                print("soak: %d rounds, %d acked, %d qacked, %.0fs" % (
                    rid + 1, len(s.acked), len(s.qacked),
                    time.monotonic() - t0), file=out, flush=True)
        n, ndlq = s.drain_and_verify()
    finally:
        if s.b.running():
            s.b.kill9()
    return {"rounds": rounds, "kills": s.kills, "records": n,
            "binary": s.stats["binary"], "stomp": s.stats["stomp"],
            "qacked": len(s.qacked), "dlq": ndlq,
            "seconds": round(time.monotonic() - t0, 1)}


def main():
    import shutil
    import tempfile
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="sluice-soak-")
    data = os.path.join(base, "data")
    try:
        r = run(a.rounds, a.seed, data)
    except Failure as e:
        print("soak: FAIL (seed %d, data kept in %s): %s" % (a.seed, base, e))
        return 1
    print("soak: PASS seed %d: %d kill -9 rounds in %ss; %d binary records "
          "and %d STOMP messages acked, %d queue acks, %d dead-lettered, "
          "%d records in the log: none lost, none invented, no acked "
          "record redelivered" % (a.seed, r["kills"], r["seconds"],
                                  r["binary"], r["stomp"], r["qacked"],
                                  r["dlq"], r["records"]))
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
