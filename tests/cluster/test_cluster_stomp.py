"""STOMP against a 3-node cluster (docs/cluster.md 5.1): a STOMP client
connected to any node can SEND to every destination. A SEND whose
partition another node leads is forwarded to that leader (a PRODUCE on
the node's own connection to it), and the RECEIPT of a persistent SEND
comes only after the leader's durable ack, i.e. once every in-sync replica
has it fsynced."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
from stomp_raw import Raw  # noqa: E402
from test_cluster_failover import parse, same_everywhere, wait_all_up  # noqa


def ready(c):
    """wait_all_up, and every node's own metadata holds every node's client
    address: a node forwards a SEND to the address its own copy names
    (before a node registered, forwarding to it fails with NOT_LEADER)."""
    all3 = [1, 2, 3]
    ldr = wait_all_up(c, all3)

    def registered():
        for n in all3:
            p = c.cli(n, "cluster", "status", check=False)
            lines = [ln for ln in p.stdout.splitlines()
                     if ln.startswith("node ") and " raft " in ln]
            if len(lines) != 3 or not all(" binary 127.0.0.1:" in ln
                                          for ln in lines):
                return False
        return True
    c.wait(registered, "every node's address in every node's metadata")
    return ldr


def stomp(c, nid):
    r = Raw(c.nodes[nid].stomp_addr[1], timeout=60)
    assert r.connect().command == "CONNECTED"
    return r


def read_all(c, nid, topic, p, n):
    return c.cli(nid, "consume", topic, "--partition", str(p),
                 "--from-beginning", "--count", str(n)).stdout.split()


def test_send_to_any_node_reaches_every_partition_leader(cluster):
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    c.cli(ldr, "topic", "create", "s", "--partitions", "3",
          "--replication-factor", "3")
    view = parse(c.wait(lambda: same_everywhere(c, "s", all3, 3), "s"))
    leaders = [v[0] for v in view]
    # every node leads one partition (placement spreads leaders), so from
    # any node two of three partitions are led elsewhere
    assert sorted(leaders) == all3
    sent = {}
    for nid in all3:
        r = stomp(c, nid)
        for i in range(30):
            body = "n%d-%02d" % (nid, i)
            r.send("SEND", {"destination": "/queue/s", "persistent": "true",
                            "receipt": body}, body)
            sent.setdefault(nid, []).append(body)
        # every SEND gets its receipt, in order, and no ERROR
        got = [r.expect("RECEIPT").headers["receipt-id"] for _ in range(30)]
        assert got == sent[nid]
        r.send("DISCONNECT", {"receipt": "bye"})
        r.expect("RECEIPT")
        r.close()
    ends = c.wait(lambda: (lambda e: e if e and sum(e) == 90 else None)(
        c.ends(ldr, "s")), "90 records on the leaders")
    stored = []
    for p in range(3):
        recs = read_all(c, leaders[p], "s", p, ends[p])
        stored.append(recs)
        # each node's SENDs keep their order within a partition
        for nid in all3:
            mine = [x for x in recs if x.startswith("n%d-" % nid)]
            assert mine == sorted(mine), (p, mine)
    flat = [x for recs in stored for x in recs]
    assert sorted(flat) == sorted(x for v in sent.values() for x in v)
    # round-robin put records of every node on partitions led elsewhere
    for nid in all3:
        elsewhere = [x for p in range(3) if leaders[p] != nid
                     for x in stored[p] if x.startswith("n%d-" % nid)]
        assert elsewhere, "node %d forwarded nothing" % nid


def test_receipt_of_a_forwarded_send_waits_for_the_isr(cluster):
    """One partition led by L; the client is on follower F; the other
    follower G is paused (SIGSTOP). The leader cannot answer the forwarded
    durable produce while G is in the ISR (G has not fsynced it); L and F
    are a majority, so the controller fences G after the session timeout,
    the ISR shrinks to {L, F}, and only then comes the durable ack and
    with it the receipt. When the receipt is there, G is out of the ISR
    and F has the record."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    c.cli(ldr, "topic", "create", "one", "--partitions", "1",
          "--replication-factor", "3")
    lead = parse(c.wait(lambda: same_everywhere(c, "one", all3, 1),
                        "one"))[0][0]
    f, g = [n for n in all3 if n != lead]
    r = stomp(c, f)
    r.send("SEND", {"destination": "/topic/one", "persistent": "true",
                    "receipt": "r0"}, "first")
    assert r.expect("RECEIPT").headers["receipt-id"] == "r0"
    assert c.ends(f, "one") == [1] and c.ends(g, "one") == [1]
    c.nodes[g].proc.send_signal(signal.SIGSTOP)
    try:
        r.send("SEND", {"destination": "/topic/one", "persistent": "true",
                        "receipt": "r1"}, "second")
        fr = r.expect("RECEIPT")
        assert fr.headers["receipt-id"] == "r1"
        # the receipt came from the leader's durable ack: by then the ISR
        # no longer holds G (fenced: it could not have fsynced it) and F,
        # which is in it, has the record
        isr = parse(c.describe(lead, "one"))[0][3]
        assert g not in isr and f in isr, isr
        assert c.ends(f, "one") == [2]
        assert read_all(c, f, "one", 0, 2) == ["first", "second"]
    finally:
        c.nodes[g].proc.send_signal(signal.SIGCONT)
    r.close()


def test_forwarded_send_to_a_dead_leader_gets_an_error(cluster):
    """The leader is killed: a SEND forwarded to it while the metadata
    still names it fails with an ERROR for its receipt (never a RECEIPT),
    and once a new leader is elected SENDs are forwarded there."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    c.cli(ldr, "topic", "create", "k", "--partitions", "1",
          "--replication-factor", "3")
    lead = parse(c.wait(lambda: same_everywhere(c, "k", all3, 1),
                        "k"))[0][0]
    f = next(n for n in all3 if n != lead)
    rest = [n for n in all3 if n != lead]
    c.kill9(lead)
    r = stomp(c, f)
    r.send("SEND", {"destination": "/topic/k", "persistent": "true",
                    "receipt": "x"}, "lost?")
    fr = r.read_frame()
    assert fr.command in ("ERROR", "RECEIPT"), fr
    if fr.command == "RECEIPT":
        # the image had already moved the leadership to a live node
        assert fr.headers["receipt-id"] == "x"
    r.close()
    new = parse(c.wait(lambda: (lambda v: v if v and parse(v)[0][0] in rest
                                else None)(same_everywhere(c, "k", rest, 1)),
                       "a new leader for k"))[0][0]
    other = next(n for n in rest if n != new)
    r = stomp(c, other)
    r.send("SEND", {"destination": "/topic/k", "persistent": "true",
                    "receipt": "y"}, "after")
    assert r.expect("RECEIPT").headers["receipt-id"] == "y"
    r.close()
    end = c.ends(new, "k")[0]
    assert read_all(c, new, "k", 0, end)[-1] == "after"


def test_topic_subscriber_on_any_node_gets_every_partition(cluster):
    """A /topic subscriber reads the node's own replica of every partition
    (followers copy the leader's batches and stop at its high-water mark),
    so it sees what is SENT through any node, led anywhere."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    c.cli(ldr, "topic", "create", "b", "--partitions", "3",
          "--replication-factor", "3")
    c.wait(lambda: same_everywhere(c, "b", all3, 3), "b")
    subs = {}
    for nid in all3:
        r = stomp(c, nid)
        r.send("SUBSCRIBE", {"destination": "/topic/b", "id": "s",
                             "receipt": "sub"})
        r.expect("RECEIPT")
        subs[nid] = r
    w = stomp(c, 1)
    want = ["m-%02d" % i for i in range(30)]
    for m in want:
        w.send("SEND", {"destination": "/topic/b", "persistent": "true",
                        "receipt": m}, m)
    for _ in want:
        w.expect("RECEIPT")
    for nid, r in subs.items():
        got = [r.expect("MESSAGE").body.decode() for _ in want]
        assert sorted(got) == want, (nid, got)
        r.close()
    w.close()


def test_transaction_commit_through_a_follower(cluster):
    """SENDs inside a transaction, on a node that does not lead the
    partition: COMMIT forwards them to the leader, and its receipt comes
    once the leader acknowledged them durably."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    c.cli(ldr, "topic", "create", "tx", "--partitions", "1",
          "--replication-factor", "3")
    lead = parse(c.wait(lambda: same_everywhere(c, "tx", all3, 1),
                        "tx"))[0][0]
    f = next(n for n in all3 if n != lead)
    r = stomp(c, f)
    r.send("BEGIN", {"transaction": "t1"})
    for i in range(5):
        r.send("SEND", {"destination": "/queue/tx", "transaction": "t1",
                        "persistent": "true"}, "t-%d" % i)
    r.send("COMMIT", {"transaction": "t1", "receipt": "c1"})
    assert r.expect("RECEIPT").headers["receipt-id"] == "c1"
    r.close()
    for n in all3:
        assert c.ends(n, "tx") == [5]
    assert read_all(c, lead, "tx", 0, 5) == ["t-%d" % i for i in range(5)]
