"""powerloss.py - power-loss rounds against a real sluiced.

Each round starts sluiced with SLUICE_POWERLOSS=at=N,seed=S (the fault
layer of storage/powerloss.h and broker/pl_vfs.c): at its Nth write, truncate
or sync (partition logs, groups.db, meta.db) the broker drops everything no
fsync covered and exits 86. Meanwhile the round runs load: durable produces
(pipelined) to 2 partitions, a queue consumer acquiring and acking, a stream
group committing offsets. Then a clean broker starts on what survived and
the invariants are checked:

  - no acked record lost: every produce answered OK is present, at its
    offset, with its bytes; nothing present was never sent; offsets are
    contiguous from 0;
  - no acked consumption redone: a queue ack answered OK is never delivered
    again; a stream commit answered OK is not rolled back;
  - group state never ahead of the log: each queue partition's start offset
    and each stream commit is <= the partition's log end;
  - nothing unacknowledged lost from the queue: every offset below the log
    end is either delivered again now, or had an ack sent for it.

Used by tests/crash/test_powerloss.py (a few dozen rounds in the suite) and
scripts/powerloss.sh --rounds N (the long mode). Run as a script:
    python3 tests/crash/powerloss.py --rounds 1000 [--seed S] [--nmax N]
prints one line per failure and a verdict line.
"""
import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "harness"))

import sluice_wire as sw  # noqa: E402
import sluice_wire_groups as swg  # noqa: E402
from sluice_harness import Broker, BrokerError  # noqa: E402

TOPIC = "pl"
PARTS = 2
QGROUP = "q"
SGROUP = "s"
PL_EXIT = 86
WINDOW = 8


class Failure(AssertionError):
    pass


class BadReply(Failure):
    """A reply the test client could not decode (its bytes are saved)."""


# where undecodable replies are saved (set by run(): the round's work dir)
DUMP_DIR = None


def decoded(what, fn, body):
    """fn(body), or BadReply naming the request and where the raw reply
    was saved (hex dump: the bytes and the position of the failure)."""
    try:
        return fn(body)
    except Exception as e:  # struct.error, ValueError, AssertionError
        path = None
        if DUMP_DIR:
            path = os.path.join(DUMP_DIR, "bad-reply-%d.bin" % os.getpid())
            with open(path, "wb") as f:
                f.write(body)
        raise BadReply("%s reply of %d bytes undecodable (%s: %s); raw "
                       "body in %s" % (what, len(body), type(e).__name__, e,
                                       path))


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Model:
    """What the clients were told, across the rounds of one data dir."""

    def __init__(self):
        self.acked = {}        # (p, offset) -> value: produce answered OK
        self.sent = set()      # every value ever sent
        self.qacked = set()    # (p, offset): queue ack answered OK
        self.qack_sent = set()  # (p, offset): queue ack sent
        self.committed = {}    # p -> last stream commit answered OK


# sluiced arguments of every start (a test may extend it)
BROKER_ARGS = ["--log-level", "warn"]


def start(data, env=None):
    """Start sluiced; returns (broker, None) or (None, exit status) when it
    died in start-up (a cut during recovery)."""
    b = Broker(data, args=list(BROKER_ARGS))
    old = os.environ.get("SLUICE_POWERLOSS")
    if env:
        os.environ["SLUICE_POWERLOSS"] = env
    try:
        b.start()
    except BrokerError as e:
        msg = str(e)
        if "exited with %d" % PL_EXIT in msg:
            return None, PL_EXIT
        raise
    finally:
        if old is None:
            os.environ.pop("SLUICE_POWERLOSS", None)
        else:
            os.environ["SLUICE_POWERLOSS"] = old
    return b, None


def setup(data):
    b, _ = start(data)
    c = b.client()
    check(c.create_topic(TOPIC, PARTS, {"segment-bytes": "16k"}) == (0, None),
          "create topic")
    swg.queue_config(c, QGROUP, TOPIC, {"max_deliveries": "65535"})
    c.close()
    check(b.stop() == 0, "clean stop after setup")


def load(b, m, rnd, rid, max_steps):
    """Run load until the broker dies (True) or max_steps (False)."""
    prod = b.client(timeout=60)
    cons = b.client(timeout=60)
    q = swg.Queue(cons, QGROUP, TOPIC, "c%d" % rid)
    inflight = {}
    seq = 0
    try:
        for step in range(max_steps):
            while len(inflight) < WINDOW:
                p = rnd.randrange(PARTS)
                vals = [("r%d-s%d-%d|" % (rid, seq, i)).encode() +
                        bytes(rnd.getrandbits(8)
                              for _ in range(rnd.randrange(0, 300)))
                        for i in range(rnd.randrange(1, 4))]
                m.sent.update(vals)
                body = sw.produce_body(sw.ACKS_DURABLE,
                                       {TOPIC: {p: sw.encode_batch(vals)}})
                inflight[prod.send(sw.API_PRODUCE, body)] = (p, vals)
                seq += 1
            corr, resp = prod.recv()
            p, vals = inflight.pop(corr)
            r = sw.decode_produce(resp)[(TOPIC, p)]
            check(r["error"] == 0, "produce failed: %r" % (r,))
            for i, v in enumerate(vals):
                m.acked[(p, r["base_offset"] + i)] = v
            if step % 3 == 0:
                recs = decoded("QUEUE_ACQUIRE (load)", swg.decode_acquire,
                               cons.call(swg.API_QUEUE_ACQUIRE,
                                         swg.acquire_body(
                                             QGROUP, TOPIC, q.cid,
                                             rnd.randrange(1, 12))))
                keys = [(x["partition"], x["offset"]) for x in recs]
                for k in keys:
                    check(k not in m.qacked, "acked %r delivered again" % (k,))
                if keys:
                    m.qack_sent.update(keys)
                    for (pp, first, last, err) in q.ack(keys):
                        if err == 0:
                            m.qacked.update((pp, o)
                                            for o in range(first, last + 1))
            if step % 7 == 0:
                # commit what is consumed: the offset after the highest
                # acked record (monotonic, so an unanswered commit can
                # only have moved it further)
                p = rnd.randrange(PARTS)
                done = [o for (pp, o) in m.acked if pp == p]
                if done and max(done) + 1 > m.committed.get(p, 0):
                    off = max(done) + 1
                    res = swg.commit(cons, SGROUP, {(TOPIC, p): off})
                    if res.get((TOPIC, p)) == 0:
                        m.committed[p] = off
        return False
    except (ConnectionError, OSError):
        return True
    finally:
        prod.close()
        cons.close()


def verify(data, m):
    b, _ = start(data)
    try:
        c = b.client(timeout=60)
        ends, starts = {}, {}
        for p in range(PARTS):
            err, end = c.list_offset(TOPIC, p, sw.OFFSET_LATEST)
            check(err == 0, "list_offset %d: %d" % (p, err))
            err, lstart = c.list_offset(TOPIC, p, sw.OFFSET_EARLIEST)
            check(err == 0, "list_offset %d: %d" % (p, err))
            ends[p], starts[p] = end, lstart
            # segments the queue group consumed entirely may be deleted
            # (consumption-based retention): the log starts later
            recs = c.fetch_records(TOPIC, p, lstart, upto=end) \
                if end > lstart else []
            check([x["offset"] for x in recs] == list(range(lstart, end)),
                  "partition %d: offsets not contiguous in [%d, %d)" %
                  (p, lstart, end))
            present = {x["offset"]: x["value"] for x in recs}
            for v in present.values():
                check(v in m.sent, "record never sent: %r" % v[:40])
            for (ap, off), v in m.acked.items():
                if ap == p and off >= lstart:
                    check(off in present, "acked record %d/%d lost (log end "
                          "%d)" % (p, off, end))
                    check(present[off] == v, "acked record %d/%d changed"
                          % (p, off))
                elif ap == p:
                    check((p, off) in m.qack_sent, "acked record %d/%d "
                          "deleted (log start %d) but never consumed" %
                          (p, off, lstart))
            check(all(off < end for (ap, off) in m.acked if ap == p),
                  "acked records beyond the log end %d of partition %d" %
                  (end, p))
        d = swg.describe(c, QGROUP)
        for part in d["partitions"]:
            p = part["partition"]
            check(part["committed"] <= ends[p],
                  "queue group start %d ahead of log end %d on partition %d"
                  % (part["committed"], ends[p], p))
            check(part["committed"] >= starts[p],
                  "log start %d passed the queue group start %d on "
                  "partition %d (unconsumed records deleted)" %
                  (starts[p], part["committed"], p))
        got = swg.committed(c, SGROUP)
        for p, off in m.committed.items():
            now = got.get((TOPIC, p), -1)
            if isinstance(now, tuple):
                now = now[0]
            check(now >= off, "stream commit of partition %d: acked %d, "
                  "found %d (rolled back)" % (p, off, now))
            m.committed[p] = now
            check(now <= ends[p], "stream commit %d ahead of log end %d"
                  % (now, ends[p]))
        q = swg.Queue(c, QGROUP, TOPIC, "verify")
        again = set()
        while True:
            recs = q.acquire(1000)
            if not recs:
                break
            for x in recs:
                k = (x["partition"], x["offset"])
                check(k not in m.qacked, "acked consumption of %r redone"
                      % (k,))
                again.add(k)
        for p in range(PARTS):
            for o in range(starts[p], ends[p]):
                k = (p, o)
                check(k in again or k in m.qack_sent,
                      "queue record %r neither delivered again nor acked" %
                      (k,))
        c.close()
    finally:
        rc = b.stop()
    check(rc == 0, "clean stop after verify: %r" % rc)


def load_during_cut(b, m, rnd, rid, max_steps):
    """Load that keeps the event loop free when power is cut, and a
    consumer that keeps reading the newest records: one durable produce in
    flight (it waits for the flusher, so the loop is not blocked in an
    append when the cut comes from the flusher thread); a consumer that
    acquires with a 50 ms lock and acks (on a third connection, without
    waiting: an ack's answer waits for groups.db) all but the newest
    records of each partition, which it gets again every 50 ms. With
    hold=MS the cut keeps the process MS ms before it exits: whatever
    answers in that time answers from files the cut rewrote. Every acquire
    reply must decode (BadReply otherwise). True when the broker died."""
    keep = 8
    prod = b.client(timeout=60)
    cons = b.client(timeout=60)
    acker = b.client(timeout=60)
    q = swg.Queue(cons, QGROUP, TOPIC, "h%d" % rid)
    bad = []
    done = threading.Event()

    def consume():
        newest = {}
        try:
            while not done.is_set():
                recs = decoded("QUEUE_ACQUIRE (during the cut)",
                               swg.decode_acquire,
                               cons.call(swg.API_QUEUE_ACQUIRE,
                                         swg.acquire_body(
                                             QGROUP, TOPIC, q.cid, 64,
                                             lock_ms=50, max_wait_ms=50)))
                for x in recs:
                    p = x["partition"]
                    newest[p] = max(newest.get(p, -1), x["offset"])
                keys = [(x["partition"], x["offset"]) for x in recs
                        if x["offset"] <= newest[x["partition"]] - keep]
                if keys:
                    m.qack_sent.update(keys)
                    acker.send(swg.API_QUEUE_ACK, swg.settle_body(
                        swg.API_QUEUE_ACK, QGROUP, TOPIC, q.cid, keys))
        except BadReply as e:
            bad.append(e)
        except (ConnectionError, OSError, sw.ProtocolError):
            pass

    th = threading.Thread(target=consume)
    th.start()
    died = True
    try:
        for step in range(max_steps):
            p = rnd.randrange(PARTS)
            vals = [("r%d-h%d-%d|" % (rid, step, i)).encode() +
                    bytes(rnd.getrandbits(8)
                          for _ in range(rnd.randrange(0, 300)))
                    for i in range(rnd.randrange(1, 4))]
            m.sent.update(vals)
            r = sw.decode_produce(prod.call(sw.API_PRODUCE, sw.produce_body(
                sw.ACKS_DURABLE, {TOPIC: {p: sw.encode_batch(vals)}})))
            r = r[(TOPIC, p)]
            check(r["error"] == 0, "produce failed: %r" % (r,))
            for i, v in enumerate(vals):
                m.acked[(p, r["base_offset"] + i)] = v
        died = False
    except (ConnectionError, OSError):
        pass
    finally:
        done.set()
        if not died:
            b.kill9()
        th.join()
        prod.close()
        cons.close()
        acker.close()
    if bad:
        raise bad[0]
    return died


def check_cut_log(b):
    """The layer stopped every other thread before it rewrote the files
    (it gives up after 5 s and says so; answers from a running thread
    would be the test's artefact, not the broker's)."""
    check("SOME THREADS DID NOT STOP" not in b.log(),
          "the power-loss layer cut with threads still running")


def run_during_cut(rounds, seed, hold_ms, nmax=400, fresh_every=5,
                   max_steps=400, workdir=None, stop=1, inplace=0):
    """Rounds of load_during_cut with SLUICE_POWERLOSS=...,hold=hold_ms
    (stop=0: without the layer's stop of the other threads; inplace=1:
    files rewritten in place; both to show what they fix), each followed
    by the invariants of verify. Returns counts."""
    global DUMP_DIR
    rnd = random.Random(seed)
    base = workdir or tempfile.mkdtemp(prefix="sluice-plh-")
    os.makedirs(base, exist_ok=True)
    DUMP_DIR = base
    stats = {"rounds": 0, "cut": 0, "cut_startup": 0, "no_cut": 0,
             "acked": 0}
    data = m = None
    for rid in range(rounds):
        if rid % fresh_every == 0:
            if data:
                stats["acked"] += len(m.acked)
                shutil.rmtree(data, ignore_errors=True)
            data = os.path.join(base, "h%d" % rid)
            m = Model()
            setup(data)
        env = "at=%d,seed=%d,hold=%d,stop=%d,inplace=%d" % (
            rnd.randrange(1, nmax), rnd.randrange(1 << 30), hold_ms, stop,
            inplace)
        phase = "start"
        try:
            b, _ = start(data, env)
            if b is None:
                stats["cut_startup"] += 1
            else:
                phase = "load"
                died = load_during_cut(b, m, rnd, rid, max_steps)
                phase = "stop"
                rc = b.stop(timeout=60)
                if died:
                    check(rc == PL_EXIT, "broker exited %r, not by the "
                          "power-loss layer" % rc)
                    check_cut_log(b)
                    stats["cut"] += 1
                else:
                    stats["no_cut"] += 1
            phase = "verify"
            verify(data, m)
        except Exception as e:
            raise Failure("round %d (%s, data %s), %s phase: %s: %s" % (
                rid, env, data, phase, type(e).__name__, e))
        stats["rounds"] += 1
    stats["acked"] += len(m.acked)
    shutil.rmtree(base, ignore_errors=True)
    return stats


def run(rounds, seed=1, nmax=1000, fresh_every=10, max_steps=150,
        workdir=None, out=sys.stdout):
    """Returns a dict of counts; raises Failure on the first broken
    invariant (with the round, cut point and data dir kept)."""
    global DUMP_DIR
    rnd = random.Random(seed)
    base = workdir or tempfile.mkdtemp(prefix="sluice-pl-")
    os.makedirs(base, exist_ok=True)
    DUMP_DIR = base
    stats = {"rounds": 0, "cut": 0, "cut_startup": 0, "no_cut": 0,
             "acked": 0, "qacked": 0}
    data = None
    m = None
    t0 = time.monotonic()
    try:
        for rid in range(rounds):
            if rid % fresh_every == 0:
                if data:
                    stats["acked"] += len(m.acked)
                    stats["qacked"] += len(m.qacked)
                    shutil.rmtree(data, ignore_errors=True)
                    if os.path.exists(data + ".log"):
                        os.unlink(data + ".log")
                data = os.path.join(base, "d%d" % rid)
                m = Model()
                setup(data)
            at = rnd.randrange(1, nmax)
            env = "at=%d,seed=%d" % (at, rnd.randrange(1 << 30))
            phase = "start"
            try:
                b, rc = start(data, env)
                if b is None:
                    stats["cut_startup"] += 1
                else:
                    phase = "load"
                    died = load(b, m, rnd, rid, max_steps)
                    phase = "stop"
                    if not died:
                        b.kill9()
                        stats["no_cut"] += 1
                    else:
                        rc = b.stop(timeout=60)
                        check(rc == PL_EXIT, "broker exited %r, not by the "
                              "power-loss layer" % rc)
                        check_cut_log(b)
                        stats["cut"] += 1
                phase = "verify"
                verify(data, m)
            except Exception as e:  # struct.error and friends: a bad reply
                raise Failure("round %d (%s, data %s), %s phase: %s: %s\n%s"
                              % (rid, env, data, phase, type(e).__name__, e,
                                 traceback.format_exc()))
            stats["rounds"] += 1
        stats["acked"] += len(m.acked)
        stats["qacked"] += len(m.qacked)
        shutil.rmtree(base, ignore_errors=True)
    finally:
        stats["seconds"] = round(time.monotonic() - t0, 1)
    return stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--nmax", type=int, default=1000)
    a = ap.parse_args()
    try:
        s = run(a.rounds, a.seed, a.nmax)
    except Failure as e:
        print("powerloss: FAIL (seed %d): %s" % (a.seed, e))
        return 1
    print("powerloss: PASS seed %d: %d rounds in %ss: %d cut under load, "
          "%d cut in start-up/recovery, %d ended by kill -9 (no cut "
          "reached); %d acked records and %d acked queue consumptions "
          "checked" % (a.seed, s["rounds"], s["seconds"], s["cut"],
                       s["cut_startup"], s["no_cut"], s["acked"],
                       s["qacked"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
