"""An idempotent producer whose state the new leader lacks keeps going
(issue 13, docs/cluster.md section 4, Kafka's KIP-360), with 3 real
sluiced (tests/cluster's cluster_harness) and this package's Producer.

The producer's only batch on the partition is acknowledged with
acks=written by the leader while both followers are down (killed with
-9), so no follower has it; the leader is then killed with -9 and the
followers restarted. The new leader has no state of the producer, so it
answers the producer's next batch (sequence 10) with UNKNOWN_PRODUCER_ID
instead of taking it as some new producer's first. libsluice then takes
the next epoch of its id and resends the batch renumbered from 0: the
application sees no error, and the partition holds every record
acknowledged after the failover exactly once, in order, stored in epoch 1
from sequence 0. (The batch acknowledged before the kill with
acks=written is lost: that is what acks=written promises, docs/cluster.md
3.3.)"""
import os
import struct
import sys

import pytest

import sluice

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("SLUICE_SOURCE_DIR") or os.path.normpath(
    os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))

import cluster_harness  # noqa: E402
import sluice_wire as sw  # noqa: E402


@pytest.fixture
def cluster(bin_dir, tmp_path):
    os.environ["SLUICE_BIN_DIR"] = bin_dir
    c = cluster_harness.Cluster(tmp_path, n=3)
    c.start()
    yield c
    c.stop_all()


def leaders(c, nid, topic):
    """Each partition's leader as node nid says (None until all have)."""
    d = c.describe(nid, topic)
    if not d:
        return None
    out = []
    for ln in d:
        f = ln.split()
        try:
            out.append(int(f[f.index("leader") + 1]))
        except ValueError:
            return None
    return out if all(x > 0 for x in out) else None


def leader_of(c, nid, topic):
    """The partition 0 leader of topic as node nid says (None if none)."""
    return (leaders(c, nid, topic) or [None])[0]


def all_up(c, nodes):
    want = {n: "up" for n in nodes}
    ldr = c.agreed_leader(nodes)
    return ldr if ldr and all(
        (c.status(n) or {}).get("nodes") == want for n in nodes) else None


def stored_batches(addr, topic):
    """(producer_epoch, base_sequence, [values]) per batch of partition 0,
    from a raw fetch (the records' producer fields as stored)."""
    with sw.Client(addr) as cl:
        data = cl.fetch(topic, 0, 0)["records"]
    out, off = [], 0
    while off + 12 <= len(data):
        length = struct.unpack_from("<I", data, off + 8)[0]
        epoch, seq = struct.unpack_from("<hi", data, off + 16 + 31)
        vals = [r["value"] for r in sw.decode_batches(
            data[off:off + 12 + length])]
        out.append((epoch, seq, vals))
        off += 12 + length
    return out


def test_new_leader_without_the_producer_state(cluster):
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "unk", "--partitions", "1",
          "--replication-factor", "3")
    c.cli(1, "topic", "create", "warm", "--partitions", "3",
          "--replication-factor", "3")  # one led by each node
    c.wait(lambda: all(leader_of(c, n, "unk") and leaders(c, n, "warm")
                       for n in all3), "unk and warm on every node")
    ldr = leader_of(c, 1, "unk")
    fol = [n for n in all3 if n != ldr]
    bs = ",".join("%s:%d" % c.nodes[n].binary_addr for n in all3)
    p = sluice.Producer(bs, acks="written", linger_ms=0)
    # the producer id, the metadata and a connection to every node first,
    # while every node answers
    for i in range(3):
        p.send("warm", b"w", partition=i).result(timeout=30)
    assert p.partitions_for("unk") == 1

    # both followers die; the leader alone takes the producer's first
    # batch (acks=written); then it dies and the followers come back
    addrs = {n: "%s:%d" % c.nodes[n].binary_addr for n in fol}
    for n in fol:
        c.kill9(n)
    lost = [p.send("unk", b"b%d" % i) for i in range(10)]
    for f in lost:
        assert f.result(timeout=30).offset >= 0  # the leader alone has it
    c.kill9(ldr)
    for n in fol:
        c.nodes[n].start(extra=["--listen", addrs[n]])
    c.wait(lambda: all(leader_of(c, n, "unk") in fol for n in fol),
           "a new leader of unk")

    # sequence 10 to a leader that never saw the producer: no error
    after = [b"c%d" % i for i in range(10)] + [b"d%d" % i for i in range(5)]
    futs = [p.send("unk", v) for v in after[:10]]
    for f in futs:
        f.result(timeout=60)
    futs = [p.send("unk", v) for v in after[10:]]
    for f in futs:
        f.result(timeout=60)
    p.flush(30)
    p.close()

    newl = leader_of(c, fol[0], "unk")
    # acks=written: readable once the followers have it too
    got = c.wait(lambda: (lambda g: g if sum(len(v) for _, _, v in g) >=
                          len(after) else None)(
        stored_batches(c.nodes[newl].binary_addr, "unk")),
        "the records acknowledged after the failover")
    assert [v for _, _, vals in got for v in vals] == after
    # stored in the producer's next epoch, renumbered from 0
    before = [sum(len(v) for _, _, v in got[:i]) for i in range(len(got))]
    assert [(e, s) for e, s, _ in got] == [(1, n) for n in before]
