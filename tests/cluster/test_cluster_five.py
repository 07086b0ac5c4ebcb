"""Five nodes, replication factor 3 (docs/cluster.md 3.6, 8): nothing
acknowledged with acks=durable is lost while two nodes are killed with -9
one after the other, and a node whose data directory was wiped copies its
partitions' records again (checked record by record), so that it alone
still holds every acknowledged record once the other replicas of its
partitions have been killed one at a time.

Producers write continuously, one thread per partition, each record as its
own batch to the leader the metadata names; a send that fails is not
resent (so nothing may appear twice), and only sends answered without
error count as acknowledged. Every wait is for an observable condition."""
import os
import shutil
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
import sluice_wire as sw  # noqa: E402
from test_cluster_failover import parse, same_everywhere, wait_all_up  # noqa

ALL = [1, 2, 3, 4, 5]
PARTS = 5


def placement(c, among):
    """[(leader, epoch, replicas, isr)] per partition, once every node in
    `among` names the same."""
    v = same_everywhere(c, "five", among, PARTS)
    return parse(v) if v else None


class Writer(threading.Thread):
    """Sends "p<P>-<seq>" records to partition P's leader, one per batch,
    acks=durable, until stopped."""

    def __init__(self, c, part, down):
        super().__init__(daemon=True)
        self.c, self.part, self.down = c, part, down
        self.stop = threading.Event()
        self.acked = []
        self.lock = threading.Lock()

    def leader(self):
        for n in ALL:
            if n in self.down or not self.c.nodes[n].running():
                continue
            try:
                v = self.c.describe(n, "five")
            except subprocess.TimeoutExpired:
                continue
            if v and len(v) == PARTS:
                ldr = parse(v)[self.part][0]
                if ldr > 0 and ldr not in self.down:
                    return ldr
        return None

    def run(self):
        seq = 0
        cl, at = None, None
        while not self.stop.is_set():
            if cl is None:
                at = self.leader()
                if not at:
                    continue
                try:
                    cl = sw.Client(self.c.nodes[at].binary_addr, timeout=10)
                except OSError:
                    cl = None
                    continue
            rec = b"p%d-%06d" % (self.part, seq)
            seq += 1
            try:
                r = cl.produce_batch("five", self.part,
                                     sw.encode_batch([rec]))
                ok = r["error"] == 0
            except (OSError, ConnectionError, sw.ProtocolError):
                ok = False
            if ok:
                with self.lock:
                    self.acked.append(rec)
            else:
                cl.close()
                cl = None
        if cl:
            cl.close()

    def count(self):
        with self.lock:
            return len(self.acked)


def read_all(c, nid, part, upto):
    with sw.Client(c.nodes[nid].binary_addr) as cl:
        return [x["value"] for x in
                cl.fetch_records("five", part, 0, upto=upto)]


def test_five_nodes_two_kills_and_a_wiped_replica(cluster5):
    c = cluster5
    wait_all_up(c, ALL)
    c.cli(1, "topic", "create", "five", "--partitions", str(PARTS),
          "--replication-factor", "3")
    pl = c.wait(lambda: placement(c, ALL), "five everywhere")
    assert all(len(rep) == 3 and sorted(isr) == sorted(rep)
               for _, _, rep, isr in pl)
    down = set()
    writers = [Writer(c, p, down) for p in range(PARTS)]
    for w in writers:
        w.start()

    def progress(what, parts, n=5):
        before = [w.count() for w in writers]
        c.wait(lambda: all(writers[p].count() >= before[p] + n
                           for p in parts),
               what, timeout=90)
        return before

    try:
        progress("acks on every partition", range(PARTS))
        # two nodes killed one after the other: first the leader of
        # partition 0, then, once every partition has a live leader and
        # the dead node left every ISR, the leader of another partition
        victims = []
        for round_ in range(2):
            cur = placement(c, [n for n in ALL if n not in down])
            v = next(ldr for ldr, _, _, _ in cur if ldr not in down)
            victims.append(v)
            down.add(v)
            c.kill9(v)
            alive = [n for n in ALL if n not in down]

            def moved():
                p = placement(c, alive)
                return p and all(ldr in alive and not (set(isr) & down)
                                 for ldr, _, _, isr in p) and p
            now = c.wait(moved, "kill %d: leaders and ISRs without node %d"
                         % (round_ + 1, v), timeout=90)
            # a partition that lost two of its three replicas has an ISR
            # below min-insync-replicas (2): it must acknowledge nothing
            # (the ISR cannot grow back while both are dead); the others
            # keep taking writes
            served = [p for p in range(PARTS) if len(now[p][3]) >= 2]
            starved = [p for p in range(PARTS) if len(now[p][3]) < 2]
            assert served
            before = progress("kill %d: acks where the ISR is big enough" %
                              (round_ + 1), served)
            for p in starved:
                # one request per writer is in flight: the one sent before
                # the ISR was seen shrinking may have been answered before
                assert writers[p].count() <= before[p] + 1, \
                    "p%d acknowledged writes with ISR %r" % (p, now[p][3])
    finally:
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(60)
    acked = {w.part: list(w.acked) for w in writers}
    assert all(len(a) >= 10 for a in acked.values()), \
        {p: len(a) for p, a in acked.items()}

    # the first victim comes back with an empty data directory, the second
    # as it was; both copy what they hold again
    wiped, other = victims
    shutil.rmtree(c.nodes[wiped].data_dir)
    c.restart(wiped)
    c.restart(other)
    down.clear()
    wait_all_up(c, ALL)

    def full():
        p = placement(c, ALL)
        return p and all(sorted(isr) == sorted(rep) for _, _, rep, isr in p) \
            and p
    pl = c.wait(full, "every replica back in its ISR", timeout=120)
    ends = {}
    for part, (ldr, _, rep, _) in enumerate(pl):
        ends[part] = c.ends(ldr, "five")[part]
    mine = [part for part, (_, _, rep, _) in enumerate(pl) if wiped in rep]
    assert mine, "the wiped node holds no partition"
    for part in mine:
        c.wait(lambda: c.ends(wiped, "five")[part] == ends[part],
               "partition %d copied to the wiped node" % part)

    def check(nid, part, final):
        got = read_all(c, nid, part, final)
        assert len(got) == len(set(got)), "p%d: a record twice" % part
        assert all(r.startswith(b"p%d-" % part) for r in got)
        missing = [r for r in acked[part] if r not in set(got)]
        assert not missing, "p%d on node %d lost acknowledged records %r" % (
            part, nid, missing[:5])
        pos = {r: i for i, r in enumerate(got)}
        idx = [pos[r] for r in acked[part]]
        assert idx == sorted(idx), "p%d: acknowledged out of order" % part
        return got

    # every acknowledged record is on every leader, once, in order; the
    # wiped node's copy, record by record, equals its leader's
    for part in range(PARTS):
        got = check(pl[part][0], part, ends[part])
        if part in mine:
            assert check(wiped, part, ends[part]) == got
    # then the other replicas of one of its partitions die one at a time:
    # the wiped node ends up leading it alone and still has everything
    part = mine[0]
    others = [n for n in pl[part][2] if n != wiped]
    for k, n in enumerate(others):
        c.kill9(n)
        down.add(n)
        alive = [x for x in ALL if x not in down]

        def led():
            p = placement(c, alive)
            if not p or p[part][0] not in alive or (set(p[part][3]) & down):
                return None
            return p[part][0]
        ldr = c.wait(led, "kill %d of partition %d's replicas" % (k + 1,
                                                                  part),
                     timeout=90)
    assert ldr == wiped
    check(wiped, part, ends[part])
