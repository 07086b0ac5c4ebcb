"""The coordinator lease (issue 14, docs/cluster.md "Coordinator lease"):
a queue group's coordinator that is paused (SIGSTOP) or cut off from the
two other nodes stops serving the group once its lease has run out, while
the majority elects a new coordinator that serves it.

Without the lease, the old coordinator went on handing out records from
its frozen state to a consumer still connected to it: records that the
new coordinator had already delivered to another consumer, and whose
acks it had answered (found by the queue Jepsen test,
JEPSEN_QUEUE_MINORITY=1 ./scripts/jepsen-cluster.sh --queue).

Both tests: 40 records on a RF 3 topic; consumer A, connected to the
coordinator X only, acquires 10 and acks 5 of them (answered). Then X is
paused or cut off. The majority fences X and elects a new coordinator Y
(that takes at least one session timeout; X's lease is shorter by
design). Consumer B on Y gets every record not acked, the 5 A still
held included, and acks them all (answered). Then A asks X for records
and acks its held ones: X must hand out nothing and answer the acks with
NOT_COORDINATOR. At the end, nothing is delivered again anywhere.

Raw binary requests (tests/harness/sluice_wire_groups.py), so that A
talks to X and to no other node. Every wait is for an observable
condition with a deadline."""
import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
import netns_harness  # noqa: E402
import sluice_wire as sw  # noqa: E402
import sluice_wire_groups as swg  # noqa: E402

STATE = "__sluice_group_state"
TOPIC = "lt"
GROUP = "gl"
N = 40
NOT_COORDINATOR = 40
LOCK_MS = 120000  # A's locks never expire during a test


fnv1a32 = cluster_harness.fnv1a32


def leaders(c, nid, topic):
    """[leader] per partition as node nid's describe says, or None."""
    p = c.cli(nid, "topic", "describe", topic, check=False)
    if p.returncode != 0:
        return None
    out = []
    for ln in p.stdout.splitlines():
        f = ln.split()
        if f and f[0] == "partition" and "leader" in f:
            out.append(int(f[f.index("leader") + 1]))
    return out or None


def coordinator(c, nid):
    """GROUP's coordinator as node nid's metadata names it, or None."""
    ld = leaders(c, nid, STATE)
    if not ld:
        return None
    x = ld[fnv1a32(GROUP) % len(ld)]
    return x if x > 0 else None


def agreed_coordinator(c, nodes):
    seen = {coordinator(c, n) for n in nodes}
    return seen.pop() if len(seen) == 1 and None not in seen else None


def client(c, nid):
    w = sw.Client(c.nodes[nid].binary_addr, timeout=30)
    w.handshake()
    return w


def try_acquire(c, nid, cid, n, max_wait_ms=500):
    """Records node nid hands to consumer cid (on a connection of its own,
    closed after: what it got is available again), or the error code."""
    try:
        with client(c, nid) as w:
            return swg.Queue(w, GROUP, TOPIC, cid).acquire(
                n, max_wait_ms=max_wait_ms, lock_ms=LOCK_MS)
    except sw.ProtocolError as e:
        return e.code
    except OSError:
        return None


def start(c, all3):
    """X (the coordinator), A (a connection to X only) and the records A
    holds: offsets 0-9, of which it acked 0-4 (answered)."""
    want = {n: "up" for n in all3}
    c.wait(lambda: c.agreed_leader(all3) and all(
        (c.status(n) or {}).get("nodes") == want for n in all3),
        "a cluster with every node up")
    c.cli(1, "topic", "create", TOPIC, "--partitions", "1",
          "--replication-factor", "3")
    c.wait(lambda: all(leaders(c, n, TOPIC) for n in all3), TOPIC)
    # the first queue request creates the state topic (the topic is
    # still empty: the probe gets nothing)
    c.wait(lambda: try_acquire(c, 1, "probe", 1, max_wait_ms=0) is not None
           and agreed_coordinator(c, all3), "the group's coordinator")
    x = agreed_coordinator(c, all3)
    c.cli(1, "produce", TOPIC, "--acks", "durable",
          input="".join("rec-%02d\n" % i for i in range(N)))
    a = client(c, x)  # a consumer belongs to its connection: keep it
    q = swg.Queue(a, GROUP, TOPIC, "a")

    def a_got_ten():
        try:
            return q.acquire(10, max_wait_ms=500, lock_ms=LOCK_MS) or None
        except sw.ProtocolError as e:  # X still rebuilding its state
            assert e.code == NOT_COORDINATOR, e
            return None
    held = c.wait(a_got_ten, "A's first records from the coordinator")
    assert [r["offset"] for r in held] == list(range(10))
    res = q.ack([(0, o) for o in range(5)])
    assert all(e == 0 for _, _, _, e in res), res
    return x, a, q


def majority_serves(c, rest, x):
    """Wait until the majority names a new coordinator y and y serves;
    B gets every record not acked and acks them all (answered). Returns
    (y, the offsets B got)."""
    y = c.wait(lambda: (lambda v: v if v and v != x else None)(
        agreed_coordinator(c, rest)), "a new coordinator on the majority")
    got = []
    end = time.monotonic() + 60
    with client(c, y) as w:
        q = swg.Queue(w, GROUP, TOPIC, "b")
        while len(got) < N - 5:
            assert time.monotonic() < end, "B got %r" % got
            try:
                recs = q.acquire(N, max_wait_ms=500, lock_ms=LOCK_MS)
            except sw.ProtocolError as e:
                assert e.code == NOT_COORDINATOR, e  # y still rebuilding
                continue
            if recs:
                res = q.ack([(0, r["offset"]) for r in recs])
                assert all(e == 0 for _, _, _, e in res), res
                got += [r["offset"] for r in recs]
    return y, got


def send_acquire(a):
    """A's acquire to X, sent now, answered whenever X can."""
    return a.send(swg.API_QUEUE_ACQUIRE, swg.acquire_body(
        GROUP, TOPIC, "a", N, lock_ms=LOCK_MS, max_wait_ms=0))


def check_old_coordinator_refuses(a, q, corr):
    """A's acquire (corr, sent earlier) and an ack of A's held records 5-9
    on X: no record, and NOT_COORDINATOR."""
    rc, body = a.recv()
    assert rc == corr
    try:
        recs = swg.decode_acquire(body)
    except sw.ProtocolError as e:
        assert e.code == NOT_COORDINATOR, e
        recs = []
    assert recs == [], (
        "the old coordinator handed out %r, records the new coordinator "
        "had delivered and acked" % [r["offset"] for r in recs])
    try:
        codes = {e for _, _, _, e in q.ack([(0, o) for o in range(5, 10)])}
    except sw.ProtocolError as e:
        codes = {e.code}
    assert codes == {NOT_COORDINATOR}, codes


def nothing_left(c, nodes):
    for n in nodes:
        r = try_acquire(c, n, "late", N, max_wait_ms=300)
        if isinstance(r, list):
            assert r == [], "delivered again: %r" % [x["offset"] for x in r]


def test_paused_coordinator_serves_nothing_after_its_lease(cluster):
    c = cluster
    all3 = [1, 2, 3]
    x, a, q = start(c, all3)
    rest = [n for n in all3 if n != x]
    c.nodes[x].proc.send_signal(signal.SIGSTOP)
    try:
        y, got = majority_serves(c, rest, x)
        assert sorted(got) == list(range(5, N))
        corr = send_acquire(a)  # X reads it first thing when it resumes
    finally:
        c.nodes[x].proc.send_signal(signal.SIGCONT)
    check_old_coordinator_refuses(a, q, corr)
    a.close()
    c.wait(lambda: coordinator(c, x) == y, "node %d following" % x)
    nothing_left(c, all3)


@pytest.fixture
def netcluster(tmp_path):
    c = netns_harness.NetCluster(tmp_path, n=3)
    c.start()
    yield c
    c.stop_all()


def test_cut_off_coordinator_serves_nothing_after_its_lease(netcluster):
    c = netcluster
    all3 = [1, 2, 3]
    x, a, q = start(c, all3)
    rest = [n for n in all3 if n != x]
    c.partition(x)  # the client still reaches X
    try:
        y, got = majority_serves(c, rest, x)
        assert sorted(got) == list(range(5, N))
        assert coordinator(c, x) == x  # X's metadata is frozen
        check_old_coordinator_refuses(a, q, send_acquire(a))
    finally:
        c.heal()
    a.close()
    c.wait(lambda: coordinator(c, x) == y, "node %d following" % x)
    nothing_left(c, all3)


@pytest.fixture
def slow_fence(tmp_path):
    """Three nodes whose controller fences a silent node only after 20 s,
    so a lapse of X's lease stays shorter than a session timeout for as
    long as the test needs."""
    yield from cluster_harness.running(
        tmp_path, timings={"cluster-session-timeout-ms": "20000"})


def test_an_ack_sent_while_the_lease_lapsed_waits_for_it(slow_fence):
    """X's lease runs out when it cannot hear a majority (here: both other
    nodes paused; in practice a controller's death, which lapses every
    follower's lease for about an election timeout). An ack sent to X
    then is taken and waits; it is answered once the lease is back,
    instead of NOT_COORDINATOR, and applied: those records never come
    again. Before, every consumer saw an ack error at each controller
    change."""
    c = slow_fence
    all3 = [1, 2, 3]
    x, a, q = start(c, all3)  # A acked 0-4 and holds 5-9
    others = [n for n in all3 if n != x]
    for n in others:
        c.nodes[n].proc.send_signal(signal.SIGSTOP)
    try:
        c.nodes[x].wait_log(lambda t: "coordinator lease lapsed" in t,
                            "node %d's lease lapsing" % x)
        corr = a.send(swg.API_QUEUE_ACK, swg.settle_body(
            swg.API_QUEUE_ACK, GROUP, TOPIC, "a",
            [(0, o) for o in range(5, 10)]))
    finally:
        for n in others:
            c.nodes[n].proc.send_signal(signal.SIGCONT)
    rc, body = a.recv()
    assert rc == corr
    try:
        res = swg.decode_settle(body)
    except sw.ProtocolError as e:
        raise AssertionError("the ack sent during the lapse was refused: "
                             "%d %s" % (e.code, e))
    assert [(p, f, la, e) for p, f, la, e in res] == [
        (0, o, o, 0) for o in range(5, 10)], res
    # applied: B, at the coordinator, gets exactly 10-39 (A still holds
    # nothing: its held records were all acked)
    y = c.wait(lambda: agreed_coordinator(c, all3), "an agreed coordinator")
    got = []
    end = time.monotonic() + 60
    with client(c, y) as w:
        qb = swg.Queue(w, GROUP, TOPIC, "b")
        while len(got) < N - 10:
            assert time.monotonic() < end, "B got %r" % got
            try:
                recs = qb.acquire(N, max_wait_ms=500, lock_ms=LOCK_MS)
            except sw.ProtocolError as e:
                assert e.code == NOT_COORDINATOR, e
                continue
            got += [r["offset"] for r in recs]
    assert sorted(got) == list(range(10, N)), got
    a.close()
