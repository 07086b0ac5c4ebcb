"""A Jepsen-style check of a 3-node cluster under network partitions
(docs/cluster.md 3.6, 8): each sluiced runs in its own network namespace
(tests/cluster/netns_harness.py); each round the partition's leader is cut
off from the two other nodes (blackhole routes both ways, the client still
reaches every node), the majority elects a new leader, writes go on there,
and the partition heals. Meanwhile:

  - two producers send unique records with acks=durable to the leader the
    majority's metadata names;
  - a third producer sends acks=durable records to the ISOLATED old leader
    for as long as the partition lasts: that node still believes it leads
    (it cannot learn otherwise), so this is the split-brain case. None of
    those may be acknowledged: no follower fetches from it, so no durable
    ack can be answered;
  - every metadata view any node answered is recorded as (epoch -> leader):
    no epoch may name two leaders.

After the last heal, a full read on every replica and the verdict: every
acknowledged record present exactly once, each producer's acknowledged
records in the order it sent them, nothing that was never sent, every
replica identical, nothing acknowledged by an isolated leader. Producers
do not retry a failed send, so no duplicate is allowed at all.

The same check runs once more on a slow, lossy network: every node's link
delays and drops packets (`tc netem`, or tbf where the kernel lacks netem:
netns_harness.impair) for the whole run, cuts included.

NETPART_ROUNDS (default 3) and NETEM_ROUNDS (default 1) set the rounds;
scripts/jepsen-cluster.sh --netpart and --netem run the long modes. Every
wait is for an observable condition."""
import os
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
import netns_harness  # noqa: E402
from test_cluster_failover import parse, wait_all_up  # noqa: E402

ROUNDS = int(os.environ.get("NETPART_ROUNDS", "3"))
NETEM_ROUNDS = int(os.environ.get("NETEM_ROUNDS", "1"))
TOPIC = "np"


@pytest.fixture
def cluster(tmp_path):
    c = netns_harness.NetCluster(tmp_path, n=3)
    c.start()
    yield c
    c.stop_all()


class Views:
    """Every (epoch, leader) any node's metadata named for partition 0."""

    def __init__(self, c):
        self.c = c
        self.lock = threading.Lock()
        self.seen = {}  # epoch -> {leader: first node that said so}

    def of(self, nid):
        try:
            v = self.c.describe(nid, TOPIC)
        except subprocess.TimeoutExpired:
            return None
        if not v:
            return None
        ldr, epoch, rep, isr = parse(v)[:1][0]
        with self.lock:
            self.seen.setdefault(epoch, {}).setdefault(ldr, nid)
        return ldr, epoch, rep, isr

    def same(self, nodes):
        vs = [self.of(n) for n in nodes]
        if any(v is None for v in vs) or any(v != vs[0] for v in vs):
            return None
        return vs[0]


def produce(c, nid, rec, timeout_ms=3000):
    b = c.nodes[nid]
    try:
        p = subprocess.run(
            [cluster_harness.cli_path(), "-b", "%s:%d" % b.binary_addr,
             "-X", "request.timeout.ms=%d" % timeout_ms,
             "-X", "connect.timeout.ms=1000",
             "-X", "delivery.timeout.ms=0", "produce", TOPIC,
             "--partition", "0", "--acks", "durable"],
            input=rec + "\n", capture_output=True, text=True, timeout=30)
        return p.returncode == 0
    except subprocess.TimeoutExpired:
        return False


def produce_raw(c, nid, rec, timeout_ms=3000):
    """One acks=durable PRODUCE straight to node nid. The split-brain
    producer must write to that very node: libsluice (the CLI) would send
    the record to the leader that node names (docs/cluster.md section 5),
    which after a cut can be the real leader on the majority side."""
    import sluice_wire
    try:
        with sluice_wire.Client(c.nodes[nid].binary_addr, timeout=20) as w:
            w.handshake()
            body = sluice_wire.produce_body(
                sluice_wire.ACKS_DURABLE,
                {TOPIC: {0: sluice_wire.encode_batch([rec.encode()])}},
                timeout_ms=timeout_ms)
            r = sluice_wire.decode_produce(
                w.call(sluice_wire.API_PRODUCE, body))[(TOPIC, 0)]
            return r["error"] == 0
    except Exception:
        return False


class Producer(threading.Thread):
    """Sends to the leader the majority names (target() is None), or, for
    the split-brain producer, to whatever target() returns."""

    def __init__(self, c, views, name, isolated, target=None):
        super().__init__(daemon=True)
        self.c, self.views, self.name = c, views, name
        self.isolated, self.target = isolated, target
        self.stop = threading.Event()
        self.acked, self.sent, self.tries = [], [], 0
        self.lock = threading.Lock()

    def leader(self):
        for n in (1, 2, 3):
            if n in self.isolated:
                continue
            v = self.views.of(n)
            if v and v[0] > 0 and v[0] not in self.isolated:
                return v[0]
        return None

    def run(self):
        seq = 0
        while not self.stop.is_set():
            to = self.target() if self.target else self.leader()
            if not to:
                self.stop.wait(0.05)  # nothing to send to yet; poll again
                continue
            rec = "%s-%05d" % (self.name, seq)
            seq += 1
            with self.lock:
                self.sent.append(rec)
                self.tries += 1
            if (produce_raw if self.target else produce)(self.c, to, rec):
                with self.lock:
                    self.acked.append(rec)

    def n_acked(self):
        with self.lock:
            return len(self.acked)

    def n_tries(self):
        with self.lock:
            return self.tries


def test_partitioned_leader_acks_nothing_and_nothing_is_lost(cluster):
    check_rounds(cluster, ROUNDS)


def test_the_same_on_a_slow_lossy_network(cluster):
    kind = cluster.impair(delay_ms=int(os.environ.get("NETEM_DELAY_MS", 20)),
                          jitter_ms=10,
                          loss_pct=float(os.environ.get("NETEM_LOSS", 2)))
    print("network impaired with %s" % kind)
    for nid in (1, 2, 3):
        q = netns_harness.tc("-n", cluster.ns(nid), "qdisc", "show", "dev",
                             "eth0").stdout
        assert kind in q, q
    check_rounds(cluster, NETEM_ROUNDS)
    for nid in (1, 2, 3):  # what the links did, for the log
        print(netns_harness.tc("-s", "-n", cluster.ns(nid), "qdisc", "show",
                               "dev", "eth0").stdout)


def check_rounds(c, rounds):
    all3 = [1, 2, 3]
    ldr = wait_all_up(c, all3)
    c.cli(ldr, "topic", "create", TOPIC, "--partitions", "1",
          "--replication-factor", "3")
    views = Views(c)
    c.wait(lambda: views.same(all3), "the topic on every node")
    isolated = set()
    cut = {"node": None}
    prods = [Producer(c, views, "p%d" % i, isolated) for i in range(2)]
    brain = Producer(c, views, "split", isolated,
                     target=lambda: cut["node"])
    for p in prods + [brain]:
        p.start()
    try:
        for r in range(rounds):
            def full_isr():
                v = views.same(all3)
                return v and sorted(v[3]) == all3 and v[0]
            pl = c.wait(full_isr, "round %d: a leader with a full ISR" % r,
                        timeout=60)
            old_epoch = views.of(pl)[1]
            before = sum(p.n_acked() for p in prods)
            c.wait(lambda: sum(p.n_acked() for p in prods) >= before + 5,
                   "round %d: acks before the cut" % r, timeout=60)
            rest = [n for n in all3 if n != pl]
            isolated.add(pl)
            c.partition(pl)
            tries = brain.n_tries()
            cut["node"] = pl

            def moved():
                v = views.same(rest)
                return v and v[0] in rest and v[1] > old_epoch and v
            c.wait(moved, "round %d: a new leader on the majority" % r,
                   timeout=60)
            # the isolated node still names itself leader in the old epoch
            v = views.of(pl)
            assert v and v[0] == pl and v[1] == old_epoch, v
            mid = sum(p.n_acked() for p in prods)
            c.wait(lambda: sum(p.n_acked() for p in prods) >= mid + 5,
                   "round %d: acks on the new leader" % r, timeout=60)
            c.wait(lambda: brain.n_tries() >= tries + 2,
                   "round %d: writes tried on the isolated node" % r,
                   timeout=60)
            cut["node"] = None
            c.heal()
            isolated.discard(pl)
            wait_all_up(c, all3)
    finally:
        for p in prods + [brain]:
            p.stop.set()
        for p in prods + [brain]:
            p.join(60)
        c.heal()

    def settled():
        v = views.same(all3)
        if not v or sorted(v[3]) != all3:
            return None
        ends = [c.ends(n, TOPIC) for n in all3]
        return ends[0] if all(e == ends[0] for e in ends) else None
    end = c.wait(settled, "every replica at the same end", timeout=60)[0]
    logs = {}
    for n in all3:
        logs[n] = c.cli(n, "consume", TOPIC, "--partition", "0",
                        "--from-beginning", "--count",
                        str(end)).stdout.split()
    final = logs[1]
    assert all(logs[n] == final for n in all3), "replicas differ"
    sent = set(r for p in prods + [brain] for r in p.sent)
    acked = [r for p in prods for r in p.acked]
    assert len(acked) >= rounds * 10
    assert brain.n_tries() >= rounds * 2
    assert brain.acked == [], \
        "an isolated leader acknowledged durable writes: %r" % brain.acked
    assert len(final) == len(set(final)), "a record appears twice"
    assert set(final) <= sent, "a record that was never sent"
    missing = [r for r in acked if r not in set(final)]
    assert not missing, "acknowledged records lost: %r" % missing[:10]
    pos = {r: i for i, r in enumerate(final)}
    for p in prods:
        idx = [pos[r] for r in p.acked]
        assert idx == sorted(idx), "%s: acknowledged out of order" % p.name
    two = {e: ls for e, ls in views.seen.items() if len(ls) > 1}
    assert not two, "an epoch with two leaders: %r" % two
