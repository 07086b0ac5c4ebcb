"""Produce offsets after a cut (issue 14): the offset a producer is told
for an acknowledged record is the offset the record has in the log, on
every replica.

The bug this guards against: a leader cut off from the others keeps
appending what the producers already sent it, until their requests time
out; the producers then resend the same bytes (idempotence keeps them
byte for byte) to the new leader, which stores them in another order.
Both logs can end with the same batch at the same offset. A returning
old leader that compared only its last batch with the new leader's kept
its own order: the replicas differed, and the offsets the new leader had
acknowledged held other records wherever the old one's copy was read
(docs/cluster.md 3.2, broker/replica_apply.c).

Each node runs in its own network namespace (tests/cluster/netns_harness.py;
needs root and `ip`). The logs are read from each node's segment files,
not through a client: a client's fetch goes to the partition's leader, so
it would read one replica three times.

  - test_same_batches_in_another_order_are_cut: deterministic. Three
    idempotent batches A, B, C go to the cut-off leader (acks=written, so
    it answers at once), B, A, C to the new leader; after the heal every
    replica must hold B, A, C at the offsets the new leader acknowledged.
  - test_acked_offsets_are_the_stored_offsets_after_cuts: two
    sluice-failover-client producers (acks=durable) through all three
    nodes while the leader is cut off and healed, round after round; at
    the end every acknowledged (producer, sequence) -> offset pair must
    name that record in every replica's log. PRODUCE_OFFSETS_ROUNDS
    (default 2), PRODUCE_OFFSETS_RATE (records/s per producer, default
    40), PRODUCE_OFFSETS_CUT_ACKS (acks each producer must get from the
    new leader before the heal, default 40) and PRODUCE_OFFSETS_FAULTS
    (default "cut"; "cut,kill" alternates with kill -9 and a restart of
    the leader) set the long mode.

Every wait is for an observable condition."""
import os
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
import netns_harness  # noqa: E402
import sluice_wire as sw  # noqa: E402
from test_cluster_failover import parse, wait_all_up  # noqa: E402

ROUNDS = int(os.environ.get("PRODUCE_OFFSETS_ROUNDS", "2"))
RATE = int(os.environ.get("PRODUCE_OFFSETS_RATE", "40"))
CUT_ACKS = int(os.environ.get("PRODUCE_OFFSETS_CUT_ACKS", "40"))
# the faults, in turn: cut (the leader cut off, then healed), kill (the
# leader kill -9ed, then started again on its addresses)
FAULTS = os.environ.get("PRODUCE_OFFSETS_FAULTS", "cut").split(",")
TOPIC = "po"
ALL3 = [1, 2, 3]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 (network namespaces)")


@pytest.fixture
def cluster(tmp_path):
    c = netns_harness.NetCluster(tmp_path, n=3)
    c.start()
    yield c
    c.heal()
    c.stop_all()


# ---- the cluster's state ---------------------------------------------------

def view(c, nid):
    try:
        v = c.describe(nid, TOPIC)
    except subprocess.TimeoutExpired:
        return None
    return parse(v) if v else None


def agreed(c, nodes):
    vs = [view(c, n) for n in nodes]
    if any(v is None for v in vs) or any(v != vs[0] for v in vs):
        return None
    return vs[0][0]


def leader(c, nodes):
    v = agreed(c, nodes)
    return v[0] if v and v[0] in nodes else None


def in_sync(c):
    v = agreed(c, ALL3)
    return v and v[0] in ALL3 and sorted(v[3]) == ALL3


def create(c):
    wait_all_up(c, ALL3)
    c.cli(1, "topic", "create", TOPIC, "--partitions", "1",
          "--replication-factor", "3")
    c.wait(lambda: in_sync(c), "the topic in sync on every node", timeout=60)


def replica_log(c, nid):
    """[(offset, value)] of node nid's own copy of partition 0."""
    return cluster_harness.replica_records(c.nodes[nid].data_dir, TOPIC)


def check_replicas(c, acks, end):
    """Violations (strings): a replica that holds other records than node
    1, or fewer than `end`; an acknowledged (value, offset) that a
    replica holds elsewhere."""
    logs = {n: replica_log(c, n) for n in ALL3}
    bad = []
    for n in ALL3:
        if len(logs[n]) < end:
            bad.append("node %d holds %d records, not %d" % (
                n, len(logs[n]), end))
        if [o for o, _ in logs[n]] != list(range(len(logs[n]))):
            bad.append("node %d: offsets not consecutive" % n)
    for n in (2, 3):
        i = next((i for i, (a, b) in enumerate(zip(logs[1], logs[n]))
                  if a != b), None)
        if i is not None:
            bad.append("replicas 1 and %d differ from offset %d: %r / %r" % (
                n, i, logs[1][i:i + 3], logs[n][i:i + 3]))
    for n in ALL3:
        at = dict(logs[n])
        where = {}
        for o, v in logs[n]:
            where.setdefault(v, []).append(o)
        bad += ["node %d stores %s at %r" % (n, v, o)
                for v, o in where.items() if len(o) > 1]
        wrong = [(v, o, at.get(o), where.get(v)) for v, o in acks
                 if at.get(o) != v]
        if wrong:
            bad.append("node %d: %d acknowledged offsets hold another "
                       "record, the first: %s"
                       % (n, len(wrong), "; ".join(
                           "%s acked at %d, which holds %s (it is at %r)"
                           % w for w in wrong[:5])))
    return bad


def wait_replicas_at(c, end):
    c.wait(lambda: all(len(replica_log(c, n)) >= end for n in ALL3),
           "every replica at offset %d" % end, timeout=60)


# ---- the deterministic case ------------------------------------------------

def produce_raw(c, nid, batch, acks):
    """One PRODUCE of `batch` (encoded) straight to node nid: (error, base
    offset)."""
    with sw.Client(c.nodes[nid].binary_addr, timeout=30) as w:
        w.handshake()
        r = sw.decode_produce(w.call(sw.API_PRODUCE, sw.produce_body(
            acks, {TOPIC: {0: batch}}, timeout_ms=20000)))[(TOPIC, 0)]
    return r["error"], r["base_offset"]


def test_same_batches_in_another_order_are_cut(cluster):
    c = cluster
    create(c)
    old = c.wait(lambda: leader(c, ALL3), "the leader")
    rest = [n for n in ALL3 if n != old]
    head = ["h-%d" % i for i in range(5)]
    c.cli(old, "produce", TOPIC, "--partition", "0", "--acks", "durable",
          input="\n".join(head) + "\n")
    wait_replicas_at(c, 5)
    # three idempotent producers' first batches, the same bytes each time
    a, b, d = (sw.encode_batch([v.encode()], producer=(pid, 0, 0))
               for v, pid in (("A", 7001), ("B", 7002), ("C", 7003)))
    c.partition(old)
    # the cut-off leader still believes it leads: it takes A, B, C
    assert [produce_raw(c, old, x, sw.ACKS_WRITTEN) for x in (a, b, d)] == \
        [(0, 5), (0, 6), (0, 7)]
    new = c.wait(lambda: leader(c, rest), "a leader on the rest", timeout=60)
    # the producers' resends reach the new leader in another order
    acked = [produce_raw(c, new, x, sw.ACKS_WRITTEN) for x in (b, a, d)]
    assert acked == [(0, 5), (0, 6), (0, 7)], acked
    c.heal()
    wait_all_up(c, ALL3)
    c.wait(lambda: in_sync(c), "the old leader back in sync", timeout=60)
    wait_replicas_at(c, 8)
    bad = check_replicas(c, [("B", 5), ("A", 6), ("C", 7)], 8)
    assert not bad, "\n".join(bad)
    assert [v for _, v in replica_log(c, old)] == head + ["B", "A", "C"]


# ---- producers through repeated cuts --------------------------------------

class Producer(cluster_harness.FailoverClient):
    """sluice-failover-client in the background: one line per report."""

    def __init__(self, c, name, rate):
        super().__init__(c, TOPIC, ALL3, rate, name=name, stop_timeout=120)
        self.name = name

    def acks(self):
        """[(value, offset)] of every acknowledged record (partition 0)."""
        with self.lock:
            return [("%s-%08d" % (self.name, int(f[1])), int(f[3]))
                    for f in self.lines if f[0] == "ack" and f[2] == "0"]


def progress(c, prods, what, more):
    for p in prods:
        base = p.acked()
        c.wait(lambda: p.acked() >= base + more,
               "%s: acks of %s" % (what, p.name), timeout=60)


def test_acked_offsets_are_the_stored_offsets_after_cuts(cluster):
    c = cluster
    create(c)
    prods = [Producer(c, "p%d" % i, RATE) for i in range(2)]
    try:
        for r in range(ROUNDS):
            c.wait(lambda: in_sync(c), "round %d: in sync" % r, timeout=90)
            progress(c, prods, "round %d" % r, 5)
            victim = c.wait(lambda: leader(c, ALL3), "round %d: leader" % r)
            rest = [n for n in ALL3 if n != victim]
            fault = FAULTS[r % len(FAULTS)]
            print("round %d: %s node %d" % (r, fault, victim))
            if fault == "kill":
                c.kill9(victim)
            else:
                c.partition(victim)
            c.wait(lambda: leader(c, rest), "round %d: a leader on the "
                   "rest" % r, timeout=60)
            # long enough for the producers' requests to the cut-off
            # leader to time out and be resent to the new one
            progress(c, prods, "round %d, during the %s" % (r, fault),
                     CUT_ACKS)
            if fault == "kill":
                b = c.nodes[victim]
                b.start(extra=["--listen", "%s:%d" % b.binary_addr])
            else:
                c.heal()
            wait_all_up(c, ALL3)
        c.wait(lambda: in_sync(c), "in sync at the end", timeout=90)
        rcs = [p.stop() for p in prods]
    finally:
        for p in prods:
            p.kill()
    acks = [a for p in prods for a in p.acks()]
    wait_replicas_at(c, len(acks))
    c.wait(lambda: in_sync(c), "in sync at the end", timeout=90)
    bad = check_replicas(c, acks, len(acks))
    print("produce-offsets: rounds=%d records=%d violations=%d" % (
        ROUNDS, len(acks), len(bad)))
    assert not bad, "%d violations:\n%s" % (len(bad), "\n".join(bad[:30]))
    assert rcs == [0, 0]
    assert sum(p.acked() for p in prods) == len(acks)


# ---- a follower behind a compaction gap ------------------------------------

@pytest.fixture
def fast_maint(tmp_path):
    c = netns_harness.NetCluster(tmp_path, n=3,
                                 extra=["--maintenance-interval-ms", "100"])
    c.start()
    yield c
    c.heal()
    c.stop_all()


def test_follower_copies_past_records_compacted_on_the_leader(fast_maint):
    """A follower cut off while its leader writes a compacted topic comes
    back to a log whose closed segments lost those records (the group
    state topics are compacted: seen in the queue Jepsen run, a state
    partition stalled with 'logs diverged' and its ISR fell below
    min-insync-replicas). It must go on from the leader's next record."""
    c = fast_maint
    wait_all_up(c, ALL3)
    c.cli(1, "topic", "create", "gc", "--partitions", "1",
          "--replication-factor", "3", "--config", "cleanup-policy=compact",
          "--config", "segment-bytes=4096")

    def gc_view(nodes):
        vs = [c.describe(n, "gc") for n in nodes]
        if any(not v for v in vs) or any(v != vs[0] for v in vs):
            return None
        return parse(vs[0])[0]
    c.wait(lambda: (gc_view(ALL3) or (0, 0, 0, []))[3] and
           sorted(gc_view(ALL3)[3]) == ALL3, "gc in sync", timeout=60)
    ldr = gc_view(ALL3)[0]
    fol = next(n for n in ALL3 if n != ldr)
    c.partition(fol)
    # one key: compaction empties the closed segments, and retention
    # deletes them, so the leader's log starts past the follower's end
    vals = [b"v-%03d-" % i + b"x" * 200 for i in range(60)]
    keys = [b"k"] * 60
    now = int(time.time() * 1000)  # not old enough for time retention
    with sw.Client(c.nodes[ldr].binary_addr, timeout=30) as w:
        w.handshake()
        for k, v in zip(keys, vals):  # a batch each: 4 KiB segments
            r = sw.decode_produce(w.call(sw.API_PRODUCE, sw.produce_body(
                sw.ACKS_WRITTEN, {"gc": {0: sw.encode_batch(
                    [v], keys=[k], ts=now)}})))[("gc", 0)]
            assert r["error"] == 0, r
    c.nodes[ldr].wait_log(lambda t: "gc/0: compacted segment" in t,
                          "the leader compacted a segment of gc")
    c.heal()
    last = vals[-1].decode()

    def caught_up():
        recs = cluster_harness.replica_records(c.nodes[fol].data_dir, "gc")
        return recs and recs[-1] == (59, last)
    c.wait(caught_up, "node %d copied the leader's last record" % fol,
           timeout=60)
    assert "logs diverged" not in c.nodes[fol].log()
