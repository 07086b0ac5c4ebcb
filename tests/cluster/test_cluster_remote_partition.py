"""A queue group whose coordinator holds no replica of some partitions of
its topic (replication factor below the number of nodes) delivers every
partition (issue 14, docs/cluster.md 5.1 "A coordinator without a
replica"): the coordinator copies those partitions from their leaders as
a non-voting observer (broker/observer.c) and delivers them from the copy,
below the leader's high-water mark, following leader changes.

Before, such a coordinator never delivered those partitions and reported
their log end as 0: the consumers below got only the records of the
coordinator's own partition."""
import json
import os
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
import cluster_harness  # noqa: E402
import sluice_wire as sw  # noqa: E402
from test_cluster_failover import parse, same_everywhere  # noqa: E402
from test_cluster_stomp import (STATE, coordinator, create,  # noqa: E402
                                read_messages, ready, state_view, stomp)

N = 20


def produce(c, nid, topic, p, values):
    c.cli(nid, "produce", topic, "--partition", str(p), "--acks", "durable",
          input="".join(v + "\n" for v in values))


def qconsume(c, nid, topic, group, count, wait_ms=10000):
    """[(partition, offset, value)] a `sluice queue consume` through node
    nid acquired and acked (it stops after count records, or when nothing
    came for wait_ms)."""
    out = c.cli(nid, "queue", "consume", topic, "--group", group,
                "--count", str(count), "--format", "json",
                "--wait-ms", str(wait_ms)).stdout
    recs = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    return [(r["partition"], r["offset"], r["value"]) for r in recs]


def describe_group(c, nid, group):
    """{partition: (start, end)} of the group's partitions as `sluice
    group describe` through node nid shows them."""
    out = c.cli(nid, "group", "describe", group).stdout
    parts = {}
    for ln in out.splitlines():
        f = ln.split()  # partition T/P start S end E lag L in-flight F
        if len(f) >= 6 and f[0] == "partition" and f[2] == "start":
            parts[int(f[1].rsplit("/", 1)[1])] = (int(f[3]), int(f[5]))
    return parts


def sent_records(parts, names):
    return sorted((p, i, names[p][i]) for p in parts
                  for i in range(len(names[p])))


def test_coordinator_without_a_replica_delivers_every_partition(cluster):
    """RF 1 on three nodes: one partition on each node, the group's
    coordinator holds one of the three. A binary queue consumer gets every
    record of every partition exactly once and acks it; the group's
    describe (asked of any node) shows each partition's true end and
    nothing left; acked records never come again, new ones do."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    t = "rp"
    view = create(c, ldr, t, 3, rf=1)
    assert sorted(v[0] for v in view) == all3, view
    g = "rp-g"
    coord = coordinator(state_view(c, all3), g)
    own = [p for p, v in enumerate(view) if coord in v[2]]
    assert len(own) == 1, (coord, view)
    names = {p: ["a%d-%02d" % (p, i) for i in range(N)] for p in range(3)}
    for p in range(3):
        produce(c, ldr, t, p, names[p])
    got = qconsume(c, coord, t, g, 3 * N)
    assert sorted(got) == sent_records(range(3), names), got
    for n in all3:  # every node answers with the coordinator's view
        d = describe_group(c, n, g)
        assert d == {p: (N, N) for p in range(3)}, (n, d)
    # acked records are not delivered again; new ones are, once
    more = {p: ["b%d-%02d" % (p, i) for i in range(5)] for p in range(3)}
    for p in range(3):
        produce(c, view[p][0], t, p, more[p])
    got = qconsume(c, coord, t, g, 100, wait_ms=3000)
    assert sorted((p, v) for p, _, v in got) == sorted(
        (p, v) for p in range(3) for v in more[p]), got
    assert all(o >= N for _, o, _ in got), got


def test_stomp_queue_on_a_coordinator_without_a_replica(cluster):
    """The same through STOMP: /queue/Q (queue group Q over topic Q, RF 1,
    one partition per node), one consumer on the coordinator and one on
    another node (relayed to the coordinator), client-individual acks
    with receipts: every message of every partition delivered to exactly
    one of them."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    q = "rq"
    view = create(c, ldr, q, 3, rf=1)
    coord = coordinator(state_view(c, all3), q)
    other = next(n for n in all3 if n != coord)
    names = {p: ["s%d-%02d" % (p, i) for i in range(N)] for p in range(3)}
    for p in range(3):
        produce(c, ldr, q, p, names[p])
    cons = {}
    for n in (coord, other):
        r = stomp(c, n)
        r.call("SUBSCRIBE", {"destination": "/queue/" + q, "id": "s%d" % n,
                             "ack": "client-individual",
                             "prefetch-count": "5", "receipt": "sub"})
        cons[n] = r
    got, receipts = [], [0]

    def on_frame(n, f):
        if f.command == "RECEIPT":
            receipts[0] += 1
            return
        assert f.command == "MESSAGE", (n, f)
        got.append((f.headers["message-id"], f.body.decode()))
        cons[n].send("ACK", {"id": f.headers["ack"],
                             "receipt": "a%d" % len(got)})
    read_messages(cons, lambda: len(got) >= 3 * N and receipts[0] == len(got),
                  "every message delivered and acknowledged", on_frame)
    bodies = sorted(b for _, b in got)
    assert bodies == sorted(v for p in range(3) for v in names[p]), bodies
    # each partition's records carry its message-id topic/partition/offset
    for mid, body in got:
        _, p, off = mid.rsplit("/", 2)
        assert names[int(p)][int(off)] == body, (mid, body)
    for r in cons.values():
        r.close()


def test_observed_partition_follows_a_leader_kill(cluster):
    """RF 2 on three nodes (min-insync-replicas 1): the coordinator holds
    two partitions of three. The leader of the third is killed with -9
    after part of the queue was consumed: its other replica leads it, the
    coordinator copies it from there, and every record produced before
    and after the kill is delivered exactly once."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    t = "rk"
    c.cli(ldr, "topic", "create", t, "--partitions", "3",
          "--replication-factor", "2", "--config", "min-insync-replicas=1")
    view = parse(c.wait(lambda: (lambda v: v if v and all(
        len(x[3]) == 2 for x in parse(v)) else None)(
            c.describe(ldr, t) if all(
                c.describe(n, t) == c.describe(ldr, t) for n in all3)
            else None), "topic %s on every node, ISR full" % t))
    g = "rk-g"
    coord = coordinator(state_view(c, all3), g)
    remote = [p for p, v in enumerate(view) if coord not in v[2]]
    assert len(remote) == 1, (coord, view)
    rp = remote[0]
    victim = view[rp][0]
    survivor = next(n for n in view[rp][2] if n != victim)
    names = {p: ["k%d-%02d" % (p, i) for i in range(N)] for p in range(3)}
    for p in range(3):
        produce(c, ldr, t, p, names[p])
    first = qconsume(c, coord, t, g, N)
    assert len(first) == N, first

    c.kill9(victim)
    live = [n for n in all3 if n != victim]

    def moved():
        views = [c.describe(n, t) for n in live]
        if any(v is None for v in views) or views[0] != views[1]:
            return None
        v = parse(views[0])
        return v if all(x[0] in live for x in v) else None
    after = c.wait(moved, "every partition led by a live node")
    assert after[rp][0] == survivor, after
    later = {p: ["l%d-%02d" % (p, i) for i in range(N)] for p in range(3)}
    for p in range(3):
        produce(c, survivor, t, p, later[p])
        names[p] += later[p]
    rest = qconsume(c, coord, t, g, 5 * N)
    got = first + rest
    assert sorted(got) == sent_records(range(3), names), sorted(got)


def test_durable_subscription_on_an_observer_starts_at_the_leaders_end(
        cluster):
    """A durable topic subscription (a queue group that starts at the log
    end) made at a coordinator that holds no replica of two of the three
    partitions (RF 1, a backlog of 1 MB each): it gets what is sent after
    it subscribed, on every partition, and nothing sent before. Its start
    on those partitions is the leader's answer to LIST_OFFSETS for 1 s
    before the group's creation (broker/observer.c); it is not the end of
    the copy when the group was created (every old record of those
    partitions would come), nor the leader's end at the first FETCH
    answer (what was sent in between would be missed). The copy starts
    there: the coordinator fetches a few KB, not the backlog (session 14;
    before, the copy began at the leader's log start and the start was
    found in it once it had reached the leader's end: 2 MB fetched)."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    t = "rl"
    view = create(c, ldr, t, 3, rf=1)
    group = "sub-rl"
    coord = coordinator(state_view(c, all3), group)
    # sent "long ago": record timestamps of 2023 (sluice_wire's default),
    # far below the group's creation less the observer's slack of 1 s
    blob = b"o" * 1000
    for p in range(3):
        with sw.Client(c.nodes[view[p][0]].binary_addr) as cl:
            for b in range(10):
                r = cl.produce_batch(t, p, sw.encode_batch(
                    [b"old%d-%d-%d-" % (p, b, i) + blob
                     for i in range(100)]))
                assert r["error"] == 0, r
    fetched0 = metric(c, coord, "sluice_replica_fetched_bytes_total")
    r = stomp(c, coord)
    r.call("SUBSCRIBE", {"destination": "/topic/" + t, "id": group,
                         "durable": "true", "auto-delete": "false",
                         "ack": "client-individual", "receipt": "sub"})
    new = ["new%d" % p for p in range(3)]
    for p in range(3):
        produce(c, ldr, t, p, [new[p]])
    got = []

    def on_frame(_, f):
        assert f.command == "MESSAGE", f
        got.append(f.body.decode())
        r.send("ACK", {"id": f.headers["ack"]})
    read_messages({0: r}, lambda: set(new) <= set(got),
                  "the messages sent after the subscription", on_frame)
    # each partition's old records come before its new one in offset
    # order: had the group started below them, they would be here
    assert sorted(got) == sorted(new), got
    r.close()
    fetched = metric(c, coord, "sluice_replica_fetched_bytes_total") - \
        fetched0
    assert fetched < 200000, fetched  # the backlog: 2 x 1 MB


def test_new_coordinator_without_a_replica_resumes_the_group(cluster):
    """RF 2 on three nodes (min-insync-replicas 1): the group's coordinator
    is killed with -9 after a third of the records were delivered and
    acked. The new coordinator holds no replica of one partition (the one
    placed on the dead node and the third node): it starts copying it
    when it loads the group, and delivers every record not acked before,
    once, and none that was (its copy starts empty; the group state says
    where the group stands)."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    t = "rn"
    c.cli(ldr, "topic", "create", t, "--partitions", "3",
          "--replication-factor", "2", "--config", "min-insync-replicas=1")
    c.wait(lambda: (lambda v: v if v and all(
        len(x[3]) == 2 for x in parse(v)) else None)(
            c.describe(ldr, t) if all(
                c.describe(n, t) == c.describe(ldr, t) for n in all3)
            else None), "topic %s on every node, ISR full" % t)
    g = "rn-g"
    old = coordinator(state_view(c, all3), g)
    names = {p: ["n%d-%02d" % (p, i) for i in range(N)] for p in range(3)}
    for p in range(3):
        produce(c, ldr, t, p, names[p])
    first = qconsume(c, old, t, g, N)
    assert len(first) == N, first

    c.kill9(old)
    live = [n for n in all3 if n != old]
    new = coordinator(state_view(c, live), g)
    view = parse(c.wait(lambda: (lambda v: v if v and all(
        x[0] in live for x in parse(v)) else None)(
            c.describe(new, t)), "every partition of %s led by a live "
        "node" % t))
    assert [p for p, v in enumerate(view) if new not in v[2]], view
    rest = qconsume(c, new, t, g, 2 * N)
    got = first + rest
    assert sorted(got) == sent_records(range(3), names), sorted(got)


# ---- the copy starts at what the groups need, and is kept (session 13) --


@pytest.fixture
def cluster_state_rf1(tmp_path):
    """Three nodes whose group state partitions have one replica each
    (cluster-replication-factor 1): a killed coordinator is coordinator
    again when it restarts (no other node holds its groups' state), and a
    moved state partition moves the coordinator. High-water marks are
    checkpointed every 200 ms, so a restarted node's check of its copy
    starts near its end. Reassignments copy at most 64 KiB/s, so that a
    move of a few hundred KB stays in progress for seconds."""
    yield from cluster_harness.running(
        tmp_path, 3, extra=["--cluster-replication-factor", "1",
                            "--replica-hwm-checkpoint-ms", "200",
                            "--reassign-throttle-bytes", "64k"])


def copy_span(c, nid, topic, p=0):
    """(start, end) of node nid's own log of topic/p (on a node that holds
    no replica of it: its observer's copy) as `topic describe` through
    nid shows it."""
    out = c.cli(nid, "topic", "describe", topic).stdout
    for ln in out.splitlines():
        f = ln.split()  # partition P start S end E leader ...
        if len(f) >= 6 and f[0] == "partition" and int(f[1]) == p:
            return int(f[3]), int(f[5])
    raise AssertionError("no partition %d in %r" % (p, out))


def metric(c, nid, name):
    """An unlabelled counter of node nid's /metrics."""
    url = "http://%s:%d/metrics" % c.nodes[nid].http_addr
    with urllib.request.urlopen(url, timeout=30) as r:
        for ln in r.read().decode().splitlines():
            if ln.startswith(name + " "):
                return int(ln.split()[1])
    raise AssertionError("%s not in node %d's /metrics" % (name, nid))


def group_named(view, prefix, ok):
    """The first group name PREFIX-i whose state partition's
    (leader, epoch, replicas, isr) satisfies ok."""
    for i in range(10000):
        g = "%s-%d" % (prefix, i)
        if ok(view[cluster_harness.fnv1a32(g) % len(view)]):
            return g
    raise AssertionError("no group name for %s" % prefix)


def test_a_new_coordinator_copies_from_the_groups_start(cluster):
    """RF 1 topic on node L; the group's coordinator C (not L) acks the
    first 1500 records of 1800, then is killed with -9. The next
    coordinator N holds no replica either: its copy starts at the group's
    start (1500), not at the leader's log start (before, it copied all
    1800 records before it could deliver). N delivers exactly the 300
    records not acked, once. A new group at N that starts at the earliest
    record still gets all 1800: its copy starts again at the leader's log
    start. C, restarted, coordinates nothing (N kept the state partition)
    and deletes its copy."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    t = "ra"
    tl = create(c, ldr, t, 1, rf=1)[0][0]
    sv = parse(state_view(c, all3))

    def moves_off_the_leader(v):
        nxt = [r for r in v[2] if r != v[0] and r in v[3]]
        return v[0] != tl and nxt and nxt[0] != tl
    g = group_named(sv, "ra-g", moves_off_the_leader)
    old = coordinator(state_view(c, all3), g)
    acked, more = 1500, 300
    names = ["a%05d" % i for i in range(acked + more)]
    produce(c, tl, t, 0, names[:acked])  # a batch boundary at 1500
    produce(c, tl, t, 0, names[acked:])
    first = qconsume(c, old, t, g, acked)
    assert [(o, v) for _, o, v in first] == list(enumerate(names[:acked]))
    assert copy_span(c, old, t) == (0, acked + more)

    c.kill9(old)
    live = [n for n in all3 if n != old]
    new = coordinator(state_view(c, live), g)
    assert new not in (old, tl), (old, new, tl)
    rest = qconsume(c, new, t, g, more)
    assert sorted((o, v) for _, o, v in rest) == \
        [(i, names[i]) for i in range(acked, acked + more)], rest
    assert copy_span(c, new, t) == (acked, acked + more)
    assert "%s/0: copy starts at %d" % (t, acked) in c.nodes[new].log()
    assert qconsume(c, new, t, g, 1, wait_ms=500) == []

    # a new group there reads from the leader's log start
    sv2 = parse(state_view(c, live))
    g2 = group_named(sv2, "ra-new", lambda v: v[0] == new)
    got = qconsume(c, new, t, g2, acked + more)
    assert sorted((o, v) for _, o, v in got) == list(enumerate(names))
    assert copy_span(c, new, t) == (0, acked + more)

    # the old coordinator, restarted, serves nothing: its copy goes
    c.restart(old)
    c.wait(lambda: copy_span(c, old, t) == (0, 0),
           "node %d's copy of %s deleted" % (old, t))


def test_a_restarted_coordinator_keeps_its_copy(cluster_state_rf1):
    """The group's state partition has one replica, on the coordinator C
    (cluster-replication-factor 1), which holds no replica of the RF 1
    topic. The copy is trimmed as the group acks (small segments). C is
    killed with -9 after 1000 of 2000 records were acked; 500 more are
    produced while it is down. Restarted, C coordinates the group again
    and goes on from its copy's end: it fetches about the 500 new
    records, not the 2500 (before, its copy was deleted at start and
    copied again from offset 0), and delivers the 1500 records not acked,
    once. Then the state partition moves to the third node: C deletes its
    copy, and the third node's copy starts at the group's start."""
    c = cluster_state_rf1
    all3 = [1, 2, 3]
    ldr = ready(c)
    t = "rr"
    c.cli(ldr, "topic", "create", t, "--partitions", "1",
          "--replication-factor", "1", "--config", "segment-bytes=65536")
    tl = parse(c.wait(lambda: same_everywhere(c, t, all3, 1), t))[0][0]
    sv = parse(state_view(c, all3))
    g = group_named(sv, "rr-g", lambda v: v[0] != tl)
    coord = coordinator(state_view(c, all3), g)
    third = next(n for n in all3 if n not in (coord, tl))
    blob = "x" * 1000
    names = ["r%05d-%s" % (i, blob) for i in range(2500)]
    produce(c, tl, t, 0, names[:2000])
    first = qconsume(c, coord, t, g, 1000)
    assert [o for _, o, _ in first] == list(range(1000))
    # trimmed below the group's start: segments of 64 KiB (~60 records)
    span = c.wait(lambda: (lambda s: s if 0 < s[0] <= 1000 and
                           s[1] == 2000 else None)(copy_span(c, coord, t)),
                  "the copy at node %d trimmed below offset 1000" % coord)
    assert span[0] >= 500, span  # (a segment holds whole batches)

    c.kill9(coord)
    produce(c, tl, t, 0, names[2000:])
    c.restart(coord)
    rest = qconsume(c, coord, t, g, 1500)
    assert sorted((o, v) for _, o, v in rest) == \
        [(i, names[i]) for i in range(1000, 2500)]
    fetched = metric(c, coord, "sluice_replica_fetched_bytes_total")
    assert 0 < fetched < 800 * len(blob), fetched  # ~500 records
    # (trimmed again as the group acked: it starts at span[0] or later)
    now = copy_span(c, coord, t)
    assert now[1] == 2500 and now[0] >= span[0], (now, span)
    assert "%s/0: copy starts at" % t not in c.nodes[coord].log()
    assert "%s/0: the copy here holds [%d, 2000): kept" % (t, span[0]) in \
        c.nodes[coord].log()

    # the coordinator moves away: the copy goes
    p = cluster_harness.fnv1a32(g) % len(sv)
    c.cli(ldr, "partition", "reassign", "%s/%d" % (STATE, p),
          "--replicas", str(third))
    c.wait(lambda: copy_span(c, coord, t) == (0, 0),
           "node %d's copy of %s deleted" % (coord, t))
    produce(c, tl, t, 0, ["after"])
    got = qconsume(c, third, t, g, 1)
    assert [(o, v) for _, o, v in got] == [(2500, "after")]
    assert copy_span(c, third, t) == (2500, 2501)


def reassigned(c, nodes):
    """No reassignment in progress in any node's view."""
    return all("no reassignment in progress" in c.cli(
        n, "partition", "reassign", "--status").stdout for n in nodes)


def test_a_group_loaded_below_the_copys_start_gets_every_record(
        cluster_state_rf1):
    """Coordinator C's copy is trimmed for group A, which acked 1000 of
    2000 records. Group B, coordinated by the third node, acked only 200;
    its state partition is moved to C. C's copy starts again at B's start
    before B reads it: B gets records 200 to 1999, once. (Read first, the
    records below the copy's start would count as deleted by retention:
    skipped, never delivered.)"""
    c = cluster_state_rf1
    all3 = [1, 2, 3]
    ldr = ready(c)
    t = "rb"
    c.cli(ldr, "topic", "create", t, "--partitions", "1",
          "--replication-factor", "1", "--config", "segment-bytes=65536")
    tl = parse(c.wait(lambda: same_everywhere(c, t, all3, 1), t))[0][0]
    sv = parse(state_view(c, all3))
    ga = group_named(sv, "rb-a", lambda v: v[0] != tl)
    coord = coordinator(state_view(c, all3), ga)
    third = next(n for n in all3 if n not in (coord, tl))
    gb = group_named(sv, "rb-b", lambda v: v[0] == third)
    blob = "x" * 1000
    names = ["b%05d-%s" % (i, blob) for i in range(2000)]
    produce(c, tl, t, 0, names)
    assert len(qconsume(c, coord, t, ga, 1000)) == 1000
    assert len(qconsume(c, third, t, gb, 200)) == 200
    c.wait(lambda: copy_span(c, coord, t)[0] > 200,
           "node %d's copy trimmed above offset 200" % coord)

    p = cluster_harness.fnv1a32(gb) % len(sv)
    c.cli(ldr, "partition", "reassign", "%s/%d" % (STATE, p),
          "--replicas", str(coord))
    c.wait(lambda: reassigned(c, all3), "the reassignment done")
    got = qconsume(c, coord, t, gb, 1800)
    assert sorted((o, v) for _, o, v in got) == \
        [(i, names[i]) for i in range(200, 2000)]
    assert "%s/0: copy starts at 200 (a queue group coordinated here needs " \
        "records below the copy's start)" % t in c.nodes[coord].log()


# ---- one partition moved: the others keep their rule (session 14) -------


def test_moving_one_partition_keeps_the_others_durable(cluster_state_rf1):
    """An RF 1 topic of three partitions; partition 0 (300 KB) is moved to
    another node, throttled, so the move lasts seconds. Durable produces
    to every partition succeed while it is in progress and after it
    completed, and every record is there once. Before, the replica being
    added made the whole topic count as RF 2 (cluster/meta_apply.c
    topic_rf): min-insync-replicas rose to 2 on the other partitions,
    which refused durable appends (NOT_ENOUGH_REPLICAS) during the move,
    and their acks kept waiting for a follower after it."""
    c = cluster_state_rf1
    all3 = [1, 2, 3]
    ldr = ready(c)
    t = "rm"
    view = create(c, ldr, t, 3, rf=1)
    src = view[0][0]
    dst = next(n for n in all3 if n != src)
    blob = "y" * 1000
    with sw.Client(c.nodes[src].binary_addr) as cl:
        for i in range(3):
            r = cl.produce(t, 0, [("%d-%03d-%s" % (i, k, blob)).encode()
                                  for k in range(100)], acks=sw.ACKS_DURABLE)
            assert r["error"] == 0, r
    c.cli(ldr, "partition", "reassign", "%s/0" % t, "--replicas", str(dst))
    c.wait(lambda: "%s/0 " % t in c.cli(
        ldr, "partition", "reassign", "--status").stdout,
        "the move of %s/0 in progress" % t)

    def durable_to_each(tag, leaders):
        for p in range(3):
            with sw.Client(c.nodes[leaders[p][0]].binary_addr) as cl:
                r = cl.produce(t, p, [("%s%d" % (tag, p)).encode()],
                               acks=sw.ACKS_DURABLE)
            assert r["error"] == 0, (tag, p, r)
    durable_to_each("during", view)
    # (the produces above were answered while the move was copying)
    assert not reassigned(c, [ldr]), "the move ended before the produces"
    c.wait(lambda: reassigned(c, all3), "the move of %s/0 done" % t)
    moved = parse(c.wait(lambda: (lambda v: v if v and parse(v)[0][2] ==
                                  [dst] else None)(
        same_everywhere(c, t, all3, 3)), "%s/0 on node %d only" % (t, dst)))
    assert [v[2] for v in moved[1:]] == [v[2] for v in view[1:]], moved
    durable_to_each("after", moved)
    for p in range(3):
        with sw.Client(c.nodes[moved[p][0]].binary_addr) as cl:
            vals = [x["value"] for x in cl.fetch_records(t, p, 0)]
        tail = [v.decode() for v in vals if not v.endswith(blob.encode())]
        assert tail == ["during%d" % p, "after%d" % p], (p, tail)
        assert len(vals) == (302 if p == 0 else 2), (p, len(vals))
