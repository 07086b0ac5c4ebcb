"""The high-water mark checkpoint (issue 14; docs/cluster.md 3.2,
broker/replica_hwm.c, Kafka's replication-offset-checkpoint).

Each node writes the high-water mark of its partitions to
DATA/replication-offset-checkpoint (every replica-hwm-checkpoint-ms when
one moved, and at a clean stop). After a restart, the check of its log
against the partition's leader starts at min(that mark, log end) instead
of the active segment's base, and the leader still decides what is cut.

  - test_restarted_node_checks_from_the_checkpointed_mark: a leader
    holds 5 committed records (its checkpoint says 5), takes 2 more with
    acks=written while it is cut off from the others (network namespaces,
    tests/cluster/netns_harness.py: needs root and `ip`), and is killed
    -9; the new leader takes 3 others at offsets 5-7. Restarted, the old leader
    logs a check of [5, 7) (not [0, 7)), cuts its tail at 5 and ends
    holding exactly the new leader's records.
  - test_deleted_topic_leaves_the_checkpoint_at_once: deleting a topic
    writes every node's file at once, without the topic's marks.
  - test_damaged_checkpoint_is_ignored: a clean stop writes the mark; a
    file cut short, then one whose CRC does not match (it claims a mark
    of 999), are each ignored with a WARN naming the file, and the node
    checks its log from its active segment's base ([0, 5)).

Every wait is for an observable condition (a log line, a file's
contents, a describe answer)."""
import os
import re
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
import netns_harness  # noqa: E402
import sluice_wire as sw  # noqa: E402
from test_cluster_durable import leader_of  # noqa: E402
from test_cluster_failover import wait_all_up  # noqa: E402

ALL3 = [1, 2, 3]
CKPT = "replication-offset-checkpoint"


def ckpt_path(c, nid):
    return os.path.join(c.nodes[nid].data_dir, CKPT)


def ckpt_marks(c, nid):
    """{(topic, partition): mark} of node nid's checkpoint ({} if none)."""
    try:
        with open(ckpt_path(c, nid), "rb") as f:
            data = f.read()
    except OSError:
        return {}
    lines = data.decode().splitlines()
    if len(lines) < 3 or lines[0] != "sluice-hwm 1":
        return {}
    # the last line is the CRC-32C of every byte before it
    body = data[:data.rindex(b"\n", 0, len(data) - 1) + 1]
    assert lines[-1] == "crc %08x" % sw.crc32c(body), data
    assert int(lines[1]) == len(lines) - 3, data
    out = {}
    for ln in lines[2:-1]:
        t, p, h = ln.split()
        out[(t, int(p))] = int(h)
    return out


def produce(c, nid, topic, values, acks):
    """One batch of `values` straight to node nid: (error, base offset)."""
    with sw.Client(c.nodes[nid].binary_addr, timeout=30) as w:
        w.handshake()
        r = sw.decode_produce(w.call(sw.API_PRODUCE, sw.produce_body(
            acks, {topic: {0: sw.encode_batch(values)}},
            timeout_ms=20000)))[(topic, 0)]
    return r["error"], r["base_offset"]


def replica_values(c, nid, topic):
    return [v for _, v in cluster_harness.replica_records(
        c.nodes[nid].data_dir, topic)]


def create(c, topic):
    wait_all_up(c, ALL3)
    c.cli(1, "topic", "create", topic, "--partitions", "1",
          "--replication-factor", "3")
    return c.wait(lambda: leader_of(c, topic, ALL3), "a leader of " + topic)


@pytest.fixture
def netcluster(tmp_path):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (network namespaces)")
    c = netns_harness.NetCluster(tmp_path, n=3)
    c.start()
    yield c
    c.heal()
    c.stop_all()


def test_restarted_node_checks_from_the_checkpointed_mark(netcluster):
    c = netcluster
    old = create(c, "hw")
    rest = [n for n in ALL3 if n != old]
    for i in range(5):
        assert produce(c, old, "hw", [b"c%d" % i], sw.ACKS_DURABLE) == (0, i)
    # the leader writes its mark down (replica-hwm-checkpoint-ms, 5 s)
    c.wait(lambda: ckpt_marks(c, old).get(("hw", 0)) == 5,
           "node %d's checkpoint at 5" % old, timeout=30)
    # cut off from the others, it still believes it leads and takes
    # acks=written appends: a tail nobody else has (a cut, not a pause,
    # so that no fetch answer in flight carries it to a follower)
    c.partition(old)
    assert produce(c, old, "hw", [b"x5", b"x6"], sw.ACKS_WRITTEN) == (0, 5)
    new = c.wait(lambda: leader_of(c, "hw", rest), "a new leader", timeout=60)
    for i in range(5, 8):
        assert produce(c, new, "hw", [b"n%d" % i], sw.ACKS_WRITTEN) == (0, i)
    c.kill9(old)
    c.heal()
    b = c.nodes[old]
    b.start(extra=["--listen", "%s:%d" % b.binary_addr])
    want = ["c%d" % i for i in range(5)] + ["n5", "n6", "n7"]
    c.wait(lambda: replica_values(c, old, "hw") == want,
           "node %d holding the new leader's records" % old, timeout=60)
    log = c.nodes[old].log()
    checks = re.findall(r"hw/0: checking log \[(\d+), (\d+)\) against "
                        r"leader (\d+) \(epoch \d+\) from ([a-z' -]+)", log)
    # (once per leader epoch this node follows in; the same range each)
    assert checks and all(x == ("5", "7", str(new),
                                "the checkpointed high-water mark")
                          for x in checks), log
    assert re.search(r"hw/0: log end 7 diverged from leader %d \(epoch \d+\):"
                     r" truncated to 5" % new, log), log
    assert re.search(r"hw/0: log \[5, 7\) checked against leader %d "
                     r"\(epoch \d+\): \d+ bytes compared in \d+ ms, cut at 5"
                     % new, log), log
    # the other follower copies n5-n7 on its own time (acks=written did
    # not wait for it): the same check, once it has
    for n in rest:
        c.wait(lambda: replica_values(c, n, "hw") == want,
               "node %d holding the new leader's records" % n, timeout=60)


@pytest.fixture
def slow_ckpt(tmp_path):
    """Marks written only at a clean stop (an hour between writes)."""
    yield from cluster_harness.running(
        tmp_path, extra=["--replica-hwm-checkpoint-ms", "1h"])


def test_damaged_checkpoint_is_ignored(slow_ckpt):
    c = slow_ckpt
    ldr = create(c, "hd")
    for i in range(5):
        assert produce(c, ldr, "hd", [b"d%d" % i], sw.ACKS_DURABLE) == (0, i)
    assert ckpt_marks(c, ldr) == {}
    # a clean stop writes the mark the leader computed (all 5 acked)
    assert c.nodes[ldr].stop() == 0
    assert ckpt_marks(c, ldr) == {("hd", 0): 5}
    path = ckpt_path(c, ldr)
    with open(path, "rb") as f:
        good = f.read()
    damaged = [
        (good[:len(good) // 2], "does not end with a whole line"),
        (b"sluice-hwm 1\n1\nhd 0 999\ncrc 00000000\n", "crc mismatch"),
    ]
    for i, (data, why) in enumerate(damaged):
        with open(path, "wb") as f:
            f.write(data)
        c.restart(ldr)
        b = c.nodes[ldr]
        b.wait_log(lambda t: ("high-water mark checkpoint %s ignored" % path)
                   in t and why in t, "the WARN naming " + path)
        assert re.search(r"WARN.*high-water mark checkpoint %s ignored"
                         % re.escape(path), b.log())
        # the node checks its whole active segment, as without a file
        b.wait_log(lambda t: re.search(
            r"hd/0: log \[0, %d\) checked against leader \d+ \(epoch \d+\):"
            r" \d+ bytes compared in \d+ ms, no difference" % (5 + i), t),
            "the check of [0, %d)" % (5 + i))
        nl = c.wait(lambda: leader_of(c, "hd", ALL3), "a leader of hd")
        assert produce(c, nl, "hd", [b"e%d" % i], sw.ACKS_DURABLE) == \
            (0, 5 + i)
        c.wait(lambda: len(replica_values(c, ldr, "hd")) == 6 + i,
               "node %d caught up" % ldr)
        assert c.nodes[ldr].stop() == 0
    assert replica_values(c, ldr, "hd") == \
        ["d%d" % i for i in range(5)] + ["e0", "e1"]


def test_deleted_topic_leaves_the_checkpoint_at_once(slow_ckpt):
    c = slow_ckpt
    keep = create(c, "keep")
    for i in range(3):
        assert produce(c, keep, "keep", [b"k%d" % i], sw.ACKS_DURABLE) == \
            (0, i)
    c.cli(1, "topic", "create", "gone", "--partitions", "1",
          "--replication-factor", "3")
    gone = c.wait(lambda: leader_of(c, "gone", ALL3), "a leader of gone")
    for i in range(3):
        assert produce(c, gone, "gone", [b"g%d" % i], sw.ACKS_DURABLE) == \
            (0, i)
    # no periodic write within the test (an hour apart): none yet
    assert all(ckpt_marks(c, n) == {} for n in ALL3)
    c.cli(1, "topic", "delete", "gone")
    # every node writes its file when it deletes the topic, without it
    for n in ALL3:
        c.wait(lambda: os.path.exists(ckpt_path(c, n)),
               "node %d's checkpoint written at the deletion" % n)
        marks = ckpt_marks(c, n)
        assert not [k for k in marks if k[0] == "gone"], marks
        assert set(marks) <= {("keep", 0)}, marks
        assert all(0 < v <= 3 for v in marks.values()), marks
