"""Leader epochs in follower fetches (docs/cluster.md 3.1, KIP-320).

A follower's FETCH (version 3) names, per partition, the leader epoch its
own metadata holds. The leader refuses an older one with
FENCED_LEADER_EPOCH (the follower has not yet learnt of a leader change,
so its log may hold a tail it has to check first) and a newer one with
UNKNOWN_LEADER_EPOCH (its own metadata lags), and reads nothing for that
partition; the epoch it holds is served as before."""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
import sluice_wire as sw  # noqa: E402
from test_cluster_durable import leader_of  # noqa: E402
from test_cluster_failover import parse, same_everywhere, wait_all_up  # noqa


def follower_fetch(cl, replica_id, topic, parts):
    """FETCH version 3: parts = [(partition, offset, durable, epoch)]."""
    body = sw.fetch_body({topic: [(p, off, 1 << 20) for p, off, _, _ in
                                  parts]})
    body += struct.pack("<i", replica_id)
    body += b"".join(struct.pack("<q", d) for _, _, d, _ in parts)
    body += b"".join(struct.pack("<i", e) for _, _, _, e in parts)
    return sw.decode_fetch(cl.call(sw.API_FETCH, body, version=3))


def test_follower_fetch_with_a_stale_epoch_is_refused(cluster):
    c = cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "ep", "--partitions", "1",
          "--replication-factor", "3")
    first = parse(c.wait(lambda: same_everywhere(c, "ep", all3, 1),
                         "ep everywhere"))[0]
    with sw.Client(c.nodes[first[0]].binary_addr) as cl:
        for i in range(3):
            r = cl.produce_batch("ep", 0, sw.encode_batch([b"r%d" % i]))
            assert (r["error"], r["base_offset"]) == (0, i)
    # a failover moves the partition to epoch E > the first one
    c.kill9(first[0])
    rest = [n for n in all3 if n != first[0]]
    ldr = c.wait(lambda: leader_of(c, "ep", rest), "a new leader")
    epoch = parse(c.describe(ldr, "ep"))[0][1]
    assert epoch > first[1]
    fol = next(n for n in rest if n != ldr)
    with sw.Client(c.nodes[ldr].binary_addr) as cl:
        stale = follower_fetch(cl, fol, "ep", [(0, 0, 0, epoch - 1)])
        r = stale[("ep", 0)]
        assert r["error"] == sw.ERR_FENCED_LEADER_EPOCH, r
        assert r["records"] == b""
        ahead = follower_fetch(cl, fol, "ep", [(0, 0, 0, epoch + 1)])
        r = ahead[("ep", 0)]
        assert r["error"] == sw.ERR_UNKNOWN_LEADER_EPOCH, r
        assert r["records"] == b""
        ok = follower_fetch(cl, fol, "ep", [(0, 0, 0, epoch)])
        r = ok[("ep", 0)]
        assert r["error"] == 0, r
        got = [x["value"] for x in sw.decode_batches(r["records"])]
        assert got == [b"r0", b"r1", b"r2"]
    # the returning node follows in the new epoch with its own fetcher
    # (version 3 too) and copies what the new leader takes meanwhile
    with sw.Client(c.nodes[ldr].binary_addr) as cl:
        r = cl.produce_batch("ep", 0, sw.encode_batch([b"r3"]))
        assert (r["error"], r["base_offset"]) == (0, 3)
    c.restart(first[0])
    c.wait(lambda: c.ends(first[0], "ep") == [4], "the old leader caught up")
    with sw.Client(c.nodes[first[0]].binary_addr) as cl:
        got = [x["value"] for x in cl.fetch_records("ep", 0, 0, upto=4)]
    assert got == [b"r0", b"r1", b"r2", b"r3"]
