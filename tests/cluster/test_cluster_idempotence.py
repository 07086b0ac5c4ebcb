"""The idempotent producer across a failover (docs/cluster.md 4): a batch
acknowledged by a leader that is then killed with -9, sent again to the
new leader, is stored once. The followers built the same producer state
from the replicated batches, so the new leader recognises the resend and
answers it with the original offsets."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import sluice_wire as sw  # noqa: E402
from test_cluster_durable import leader_of  # noqa: E402
from test_cluster_failover import parse, same_everywhere, wait_all_up  # noqa


def batch(pid, epoch, seq, tag):
    return sw.encode_batch([("%s-%d" % (tag, i)).encode() for i in range(3)],
                           producer=(pid, epoch, seq))


def test_resend_to_the_new_leader_is_stored_once(cluster):
    c = cluster
    all3 = [1, 2, 3]
    ldr = wait_all_up(c, all3)
    c.cli(ldr, "topic", "create", "idem", "--partitions", "1",
          "--replication-factor", "3")
    pl = parse(c.wait(lambda: same_everywhere(c, "idem", all3, 1),
                      "idem"))[0][0]
    fol = [n for n in all3 if n != pl]
    with sw.Client(c.nodes[pl].binary_addr) as cl:
        pid, epoch = cl.init_producer_id()
        assert pid >= 0 and pid >> 42 == pl  # node id in the high bits
        b0, b1 = batch(pid, epoch, 0, "a"), batch(pid, epoch, 3, "b")
        assert cl.produce_batch("idem", 0, b0)["base_offset"] == 0
        r = cl.produce_batch("idem", 0, b1)  # acks=durable: on every ISR
        assert (r["error"], r["base_offset"]) == (0, 3)
    # the leader dies after its ack; the producer did not see the ack and
    # sends b1 again, to the new leader
    c.kill9(pl)
    newl = c.wait(lambda: leader_of(c, "idem", fol), "a new leader for idem")
    with sw.Client(c.nodes[newl].binary_addr) as cl:
        r = cl.produce_batch("idem", 0, b1)
        assert (r["error"], r["base_offset"], r["last_offset"]) == (0, 3, 5)
        assert r["log_end_offset"] == 6
        # a producer id from the new leader is another one
        assert cl.init_producer_id()[0] != pid
        r = cl.produce_batch("idem", 0, batch(pid, epoch, 6, "c"))
        assert (r["error"], r["base_offset"]) == (0, 6)
        # a gap is refused on the new leader too
        r = cl.produce_batch("idem", 0, batch(pid, epoch, 20, "gap"))
        assert r["error"] == sw.ERR_OUT_OF_ORDER_SEQUENCE
        want = [b"a-0", b"a-1", b"a-2", b"b-0", b"b-1", b"b-2", b"c-0",
                b"c-1", b"c-2"]
        got = [x["value"] for x in cl.fetch_records("idem", 0, 0, upto=9)]
        assert got == want
    other = next(n for n in fol if n != newl)
    c.wait(lambda: c.ends(other, "idem") == [9], "the follower caught up")
    with sw.Client(c.nodes[other].binary_addr) as cl:
        got = [x["value"] for x in cl.fetch_records("idem", 0, 0, upto=9)]
        assert got == want


def test_pipelined_batches_to_an_auto_created_topic_keep_order(cluster):
    """Batches pipelined to a topic that does not exist yet wait together
    for the quorum to create it and then run in the order they came: each
    is stored, with its sequence accepted, and the log holds them in
    order (they once ran last-first: OUT_OF_ORDER_SEQUENCE)."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = wait_all_up(c, all3)
    f = next(n for n in all3 if n != ldr)
    c.wait(lambda: (c.status(f) or {}).get("nodes") ==
           {n: "up" for n in all3}, "node %d sees every node up" % f)
    n = 6
    with sw.Client(c.nodes[f].binary_addr) as cl:
        pid, epoch = cl.init_producer_id()
        corrs = [cl.send(sw.API_PRODUCE, sw.produce_body(
            sw.ACKS_DURABLE, {"piped": {0: batch(pid, epoch, 3 * i,
                                                 "p%d" % i)}}))
            for i in range(n)]
        got = []
        for corr in corrs:
            rc, body = cl.recv()
            assert rc == corr
            r = sw.decode_produce(body)[("piped", 0)]
            got.append((r["error"], r["base_offset"]))
        assert got == [(0, 3 * i) for i in range(n)]
        vals = [x["value"] for x in cl.fetch_records("piped", 0, 0,
                                                     upto=3 * n)]
        assert vals == [("p%d-%d" % (i, k)).encode() for i in range(n)
                        for k in range(3)]
