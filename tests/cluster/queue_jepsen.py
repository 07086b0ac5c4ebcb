"""Queue consumers and a history checker for the Jepsen-style queue tests
(tests/cluster/test_cluster_jepsen_queue.py, docs/cluster.md section 8).

Every consumer appends what it saw to one History, stamped with
time.monotonic() (the clock every process on the machine shares):

  deliver  (who, p, o, value, attempts, t_lo, t_hi): record (p, o) was
           handed to consumer `who` no earlier than t_lo and no later
           than t_hi;
  ack      (who, p, o, t): the broker answered that consumer's ack of
           (p, o) as done no later than t;
  unknown  (who, p, o): an ack was sent and its answer never came or was
           an error: it may or may not have been applied.

BinConsumer is the `sluice` CLI (libsluice's queue consumer) run again and
again: `queue consume --count N --format json` prints each record it
acquires and exits 0 only when every ack it sent was answered (flush), so
a run's records are acked at its exit when its status is 0, unknown
otherwise; a run's records were delivered after it started (t_lo).

StompConsumer is one long STOMP 1.2 session (client-individual acks, each
ACK with a receipt; it holds up to two messages unacked while more arrive,
so that a fault finds some in its hands), to a node of its own while that
node is up (any other one while not): a node that does not coordinate the queue relays
the subscription to the one that does (docs/cluster.md 5.1). A MESSAGE's
t_lo and t_hi are both the time it was read, which is an upper bound of
when it was sent: a delivery read after an answered ack of the same
record may have been sent before that answer, but only to a consumer
holding it while the ack was answered, i.e. the answered ack settled
nothing; either way the answer was wrong.
"""
import json
import select
import subprocess
import threading
import time

import cluster_harness
from stomp_raw import Raw

STATE = "__sluice_group_state"


fnv1a32 = cluster_harness.fnv1a32


class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.deliveries = []  # (who, p, o, value, attempts, t_lo, t_hi)
        self.acks = []  # (who, p, o, t)
        self.unknown = []  # (who, p, o)
        self.errors = []  # (who, text): what a consumer's application saw
        self.events = []  # (t, text): faults, sessions, for the report

    def event(self, text):
        with self.lock:
            self.events.append((_now(), text))

    def story(self, p, o, around=2.0):
        """Every delivery and ack of (p, o) and the events around them,
        in time order: what a violation's report shows."""
        with self.lock:
            lines = [(d[6], "deliver %s attempts %d (read by %.3f, sent "
                      "after %.3f)" % (d[0], d[4], d[6], d[5]))
                     for d in self.deliveries if d[1:3] == (p, o)]
            lines += [(a[3], "ack answered to %s" % a[0])
                      for a in self.acks if a[1:3] == (p, o)]
            lines += [(0, "ack unknown (%s)" % u[0])
                      for u in self.unknown if u[1:3] == (p, o)]
            if lines:
                lo = min(t for t, _ in lines if t) - around
                hi = max(t for t, _ in lines) + around
                lines += [e for e in self.events if lo <= e[0] <= hi]
        return "\n".join("  %.3f %s" % x for x in sorted(lines))

    def deliver(self, *d):
        with self.lock:
            self.deliveries.append(d)

    def ack(self, *a):
        with self.lock:
            self.acks.append(a)

    def unk(self, *u):
        with self.lock:
            self.unknown.append(u)

    def error(self, who, text):
        with self.lock:
            self.errors.append((who, text))

    def n_acks(self):
        with self.lock:
            return len(self.acks)

    def acked_set(self):
        with self.lock:
            return set((p, o) for _, p, o, _ in self.acks)

    def verdict(self, sent, produced):
        """Violations of the queue's guarantees (a list of strings) and
        the counts for the report (stats["attempts_back"]: the records
        whose attempts went back, kept apart). sent: every value a producer tried;
        produced: {(p, o): value} of every acknowledged produce."""
        with self.lock:
            dels = list(self.deliveries)
            acks = list(self.acks)
            unk = list(self.unknown)
        bad = []
        first_ack = {}  # (p, o) -> earliest answered ack time
        for who, p, o, t in acks:
            if (p, o) not in first_ack or t < first_ack[(p, o)][0]:
                first_ack[(p, o)] = (t, who)
        value_of = {}
        per_rec = {}
        for d in dels:
            who, p, o, v, att, lo, hi = d
            # nothing that was never sent; one value per offset
            if v not in sent:
                bad.append("never sent: %s/%d %r delivered to %s" % (
                    p, o, v, who))
            if value_of.setdefault((p, o), v) != v:
                bad.append("%d/%d delivered as %r and as %r" % (
                    p, o, value_of[(p, o)], v))
            if (p, o) in produced and produced[(p, o)] != v:
                bad.append("%d/%d acknowledged to its producer as %r, "
                           "delivered as %r" % (p, o, produced[(p, o)], v))
            # an answered ack is never followed by a delivery
            fa = first_ack.get((p, o))
            if fa and lo > fa[0]:
                bad.append("%d/%d %r delivered to %s (attempts %d) %.3fs "
                           "after %s's ack of it was answered:\n%s" % (
                               p, o, v, who, att, lo - fa[0], fa[1],
                               self.story(p, o)))
            per_rec.setdefault((p, o), []).append(d)
        # attempts never go backwards between deliveries one after the
        # other (reported apart: the rolling restart still has it)
        back = []
        for (p, o), ds in per_rec.items():
            for a in ds:
                for b in ds:
                    if b[5] > a[6] and b[4] < a[4]:
                        back.append("%d/%d attempts went back from %d (%s) "
                                    "to %d (%s)" % (p, o, a[4], a[0], b[4],
                                                    b[0]))
        # every acknowledged produce delivered, and acked (or its ack is
        # unknown: the final state of the group then decides, see below)
        unk_set = set((p, o) for _, p, o in unk)
        never = sorted(k for k in produced if k not in per_rec)
        if never:
            bad.append("%d acknowledged produce(s) never delivered: %r" % (
                len(never), never[:10]))
        not_acked = sorted(k for k in produced if k not in first_ack and
                           k not in unk_set)
        if not_acked:
            bad.append("%d acknowledged produce(s) never acked by a "
                       "consumer: %r" % (len(not_acked), not_acked[:10]))
        stats = {
            "records": len(produced),
            "deliveries": len(dels),
            "redeliveries": len(dels) - len(per_rec),
            "acks": len(acks),
            "unknown_acks": len(unk_set - set(first_ack)),
            "attempts_back": back,
        }
        return bad, stats


def _now():
    return time.monotonic()


class Left(Exception):
    """A STOMP consumer left a node the test took out."""


class BinConsumer(threading.Thread):
    """The sluice CLI's queue consumer, run again and again (module
    docstring). nodes() gives the bootstrap list for the next run."""

    def __init__(self, name, topic, group, hist, nodes, count=10):
        super().__init__(daemon=True)
        self.name, self.topic, self.group = name, topic, group
        self.hist, self.nodes, self.count = hist, nodes, count
        self.stop = threading.Event()
        self.runs = self.failed_runs = 0

    def run_once(self):
        boot = ",".join("%s:%d" % a for a in self.nodes())
        if not boot:
            self.stop.wait(0.1)  # no node to ask: poll again
            return
        cmd = [cluster_harness.cli_path(), "-b", boot,
               "-X", "request.timeout.ms=3000",
               "-X", "connect.timeout.ms=1000",
               "-X", "delivery.timeout.ms=10000",
               "queue", "consume", self.topic, "--group", self.group,
               "--count", str(self.count), "--wait-ms", "300",
               "--format", "json"]
        t0 = _now()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=60)
            out, rc, err = p.stdout, p.returncode, p.stderr
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else \
                (e.stdout or "")
            rc, err = -1, "timed out"
        t1 = _now()
        self.runs += 1
        if rc != 0:
            self.failed_runs += 1
            self.hist.error(self.name, "rc %d: %s" % (rc, err.strip()[-300:]))
        for ln in out.splitlines():
            try:
                m = json.loads(ln)
            except ValueError:
                continue  # a line cut by a kill
            p_, o = m["partition"], m["offset"]
            self.hist.deliver(self.name, p_, o, m["value"], m["attempts"],
                              t0, t1)
            if rc == 0:
                self.hist.ack(self.name, p_, o, t1)
            else:
                self.hist.unk(self.name, p_, o)

    def run(self):
        while not self.stop.is_set():
            self.run_once()


class StompConsumer(threading.Thread):
    """One STOMP session at a time to node `home` (or, while it is down,
    the next node nodes() offers), /queue/TOPIC, client-individual, every
    MESSAGE acked with a receipt (module docstring)."""

    def __init__(self, name, topic, hist, home, nodes, prefetch=4, hold=2):
        super().__init__(daemon=True)
        self.name, self.topic, self.hist = name, topic, hist
        self.home, self.nodes, self.prefetch = home, nodes, prefetch
        self.hold = hold  # messages kept unacked while more arrive
        # False: leave a node as soon as nodes() stops offering it
        self.stay = False
        self.stop = threading.Event()
        self.sessions = 0
        self.rid = 0

    def pick(self):
        """(host, port) of the home node if offered, else the first."""
        ns = self.nodes()
        for nid, addr in ns:
            if nid == self.home:
                return addr
        return ns[0][1] if ns else None

    def run(self):
        while not self.stop.is_set():
            addr = self.pick()
            if not addr:
                self.stop.wait(0.1)  # no node up: poll again
                continue
            pending = {}
            self.hist.event("%s connects to %s:%d" % ((self.name,) + addr))
            try:
                self.session(addr, pending)
            except Left as e:  # the client's own choice, not an error
                self.hist.event("%s: %s" % (self.name, e))
            except (OSError, EOFError, ValueError, KeyError) as e:
                self.hist.error(self.name, "session: %r" % (e,))
                self.hist.event("%s session ended: %r" % (self.name, e))
                self.stop.wait(0.1)  # a retry's back-off, as a client's
            for p, o in pending.values():
                self.hist.unk(self.name, p, o)

    def offered(self, addr):
        return any(a == addr for _, a in self.nodes())

    def session(self, addr, pending):
        r = Raw(addr[1], timeout=5, host=addr[0])
        try:
            f = r.connect(heart_beat="0,500")
            if f.command != "CONNECTED":
                raise ValueError("CONNECT answered %r" % (f,))
            self.sessions += 1
            r.send("SUBSCRIBE", {"destination": "/queue/" + self.topic,
                                 "id": "s", "ack": "client-individual",
                                 "prefetch-count": str(self.prefetch)})
            last = _now()
            held = []  # (ack id, p, o): processed, not acked yet

            def ack(n):
                while len(held) > n:
                    aid, p, o = held.pop(0)
                    self.rid += 1
                    rid = "a%d" % self.rid
                    pending[rid] = (p, o)
                    r.send("ACK", {"id": aid, "receipt": rid})
            while not self.stop.is_set():
                if self.stay is False and not self.offered(addr):
                    # as a client behind a health check: the node was
                    # taken out (paused, cut off), go elsewhere
                    raise Left("left a node taken out")
                if b"\0" not in r.buf:
                    rd, _, _ = select.select([r.sock], [], [], 0.2)
                    if rd:
                        d = r.sock.recv(65536)
                        if not d:
                            raise EOFError("closed by the node")
                        r.buf += d
                        last = _now()
                    elif _now() - last > 3.0:
                        # no heart-beat for 6 intervals: a paused node
                        raise EOFError("no heart-beat from the node")
                    else:
                        ack(0)  # nothing more came: ack what is held
                    continue
                f = r.read_frame()
                if f.command == "MESSAGE":
                    t = _now()
                    _, p, o = f.headers["message-id"].rsplit("/", 2)
                    p, o = int(p), int(o)
                    self.hist.deliver(self.name, p, o, f.body.decode(),
                                      int(f.headers["sluice-attempts"]), t, t)
                    aid = f.headers["ack"]
                    # the same message again (its subscription moved): the
                    # ack id is the same, so ack it once (a second ACK of
                    # an id is an unknown message, an ERROR)
                    held[:] = [h for h in held if h[0] != aid]
                    if (p, o) not in pending.values():
                        held.append((aid, p, o))
                    ack(self.hold)
                elif f.command == "RECEIPT":
                    t = _now()
                    po = pending.pop(f.headers.get("receipt-id"), None)
                    if po:
                        self.hist.ack(self.name, po[0], po[1], t)
                elif f.command == "ERROR":
                    raise ValueError("ERROR %s" % f.headers.get("message"))
        finally:
            try:
                r.close()
            except OSError:
                pass


def wait_progress(c, what, fn, more, timeout=60):
    """Wait until fn() grew by `more`."""
    base = fn()
    return c.wait(lambda: fn() >= base + more, what, timeout=timeout)
