"""STOMP against a 3-node cluster (docs/cluster.md 5.1): a STOMP client
connected to any node can SEND to every destination. A SEND whose
partition another node leads is forwarded to that leader (a PRODUCE on
the node's own connection to it), and the RECEIPT of a persistent SEND
comes only after the leader's durable ack, i.e. once every in-sync replica
has it fsynced. A /queue subscription on any node is served by the node
that coordinates its queue group (relayed there), so consumers of one
queue on different nodes compete for its messages."""
import json
import os
import select
import signal
import socket
import sys
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
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


def create(c, ldr, topic, parts, rf=3):
    """Create topic on node ldr and wait until every node's metadata has
    its parts partitions with leaders; return the parsed view
    [(leader, epoch, replicas, isr), ...] by partition."""
    c.cli(ldr, "topic", "create", topic, "--partitions", str(parts),
          "--replication-factor", str(rf))
    return parse(c.wait(lambda: same_everywhere(c, topic, [1, 2, 3], parts),
                        topic))


def read_all(c, nid, topic, p, n):
    return c.cli(nid, "consume", topic, "--partition", str(p),
                 "--from-beginning", "--count", str(n)).stdout.split()


def test_send_to_any_node_reaches_every_partition_leader(cluster):
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    view = create(c, ldr, "s", 3)
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
    lead = create(c, ldr, "one", 1)[0][0]
    f, g = [n for n in all3 if n != lead]
    r = stomp(c, f)
    r.call("SEND", {"destination": "/topic/one", "persistent": "true",
                    "receipt": "r0"}, "first")
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
    lead = create(c, ldr, "k", 1)[0][0]
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
    r.call("SEND", {"destination": "/topic/k", "persistent": "true",
                    "receipt": "y"}, "after")
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
    create(c, ldr, "b", 3)
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
    lead = create(c, ldr, "tx", 1)[0][0]
    f = next(n for n in all3 if n != lead)
    r = stomp(c, f)
    r.send("BEGIN", {"transaction": "t1"})
    for i in range(5):
        r.send("SEND", {"destination": "/queue/tx", "transaction": "t1",
                        "persistent": "true"}, "t-%d" % i)
    r.call("COMMIT", {"transaction": "t1", "receipt": "c1"})
    r.close()
    for n in all3:
        assert c.ends(n, "tx") == [5]
    assert read_all(c, lead, "tx", 0, 5) == ["t-%d" % i for i in range(5)]


# ---- /queue subscriptions relayed to the group's coordinator ------------

fnv1a32 = cluster_harness.fnv1a32


STATE = "__sluice_group_state"


def state_view(c, nodes):
    """The group state topic as every node in `nodes` sees it (the first
    queue group use creates it: a consumer of a throw-away group here)."""
    if not c.describe(nodes[0], STATE):
        c.cli(nodes[0], "queue", "consume", "warm-up", "--group", "w",
              "--wait-ms", "1", check=False)
    return c.wait(lambda: (lambda v: v if v and all(
        x[0] in nodes for x in parse(v)) else None)(
            same_everywhere(c, STATE, nodes, 16)),
        "the group state topic led by live nodes")


def coordinator(view, group):
    """The node that serves queue group `group`: the leader of partition
    fnv1a32(group) mod partitions of the group state topic (view:
    state_view, docs/cluster.md 6)."""
    return parse(view)[fnv1a32(group) % len(view)][0]


def local_groups(c, nid):
    """The names of the groups node nid holds itself (GET /api/groups)."""
    url = "http://%s:%d/api/groups?scope=node" % c.nodes[nid].http_addr
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return [g["name"] for g in json.loads(r.read())["groups"]]
    except OSError:
        return []


def serving_node(c, nodes, queue):
    """The node that serves /queue/<queue>, found by what it does: a
    subscription (on any node) declares the queue group on the node that
    dispatches it, and only there (relayed from the others)."""
    r = stomp(c, nodes[0])
    r.call("SUBSCRIBE", {"destination": "/queue/" + queue, "id": "probe",
                         "receipt": "p"})

    def where():
        # each node's own groups: the HTTP API's (`sluice group list`
        # answers for the whole cluster on any node)
        has = [n for n in nodes if queue in local_groups(c, n)]
        return has[0] if len(has) == 1 else None
    # kept open until then: a relayed subscription reaches the coordinator
    # once one is known (the first group of a cluster waits for the group
    # state topic, docs/cluster.md 6)
    node = c.wait(where, "the node that declared queue group " + queue)
    r.close()
    return node


def read_messages(conns, until, what, on_frame, timeout=60.0):
    """Read frames from every connection in conns ({key: Raw}) and hand
    each to on_frame(key, frame) until until() holds; fails after timeout
    (a deadline on a condition, not a sleep)."""
    deadline = time.monotonic() + timeout
    while not until():
        left = deadline - time.monotonic()
        assert left > 0, "timed out waiting for %s" % what
        ready = [k for k, r in conns.items() if b"\0" in r.buf]
        if not ready:
            socks = {r.sock: k for k, r in conns.items()}
            rd, _, _ = select.select(list(socks), [], [], min(left, 0.5))
            ready = [socks[x] for x in rd]
        for k in ready:
            on_frame(k, conns[k].read_frame())


def send_receipted(r, dest, bodies):
    for b in bodies:
        r.send("SEND", {"destination": dest, "persistent": "true",
                        "receipt": b}, b)
    got = [r.expect("RECEIPT").headers["receipt-id"] for _ in bodies]
    assert got == list(bodies)


def queue_consumer(c, nid, dest, prefetch):
    r = stomp(c, nid)
    r.call("SUBSCRIBE", {"destination": dest, "id": "s%d" % nid,
                         "ack": "client-individual",
                         "prefetch-count": str(prefetch),
                         "receipt": "sub"})
    return r


def test_queue_consumers_on_every_node_compete(cluster):
    """Three consumers of one queue, one per node, client-individual acks:
    every message goes to exactly one of them (the coordinator dispatches
    the group; the two other nodes relay their consumers to it), and a
    message acknowledged (receipt received) is never delivered again."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    create(c, ldr, "work", 3)
    coord = coordinator(state_view(c, all3), "work")
    sent = ["w-%02d" % i for i in range(30)]
    w = stomp(c, next(n for n in all3 if n != coord))
    send_receipted(w, "/queue/work", sent)
    cons = {n: queue_consumer(c, n, "/queue/work", 5) for n in all3}
    got = {n: [] for n in all3}

    def take(n, f):
        assert f.command == "MESSAGE", (n, f)
        assert f.headers["subscription"] == "s%d" % n
        assert f.headers["destination"] == "/queue/work"
        got[n].append(f)
    # nobody acks yet: each consumer gets exactly its prefetch (5), and
    # no message goes to two of them
    read_messages(cons, lambda: all(len(got[n]) >= 5 for n in all3),
                  "5 messages on each consumer", take)
    held = [f.body.decode() for n in all3 for f in got[n]]
    assert len(held) == 15 and len(set(held)) == 15, held
    assert set(held) <= set(sent)
    # now each acks what it gets (with a receipt: committed at the
    # coordinator) until all 30 were delivered
    acked = []
    receipts = {n: 0 for n in all3}

    def ack_all(n, f):
        if f.command == "RECEIPT":
            receipts[n] += 1
            return
        take(n, f)
        ack_one(n, f)

    def ack_one(n, f):
        cons[n].send("ACK", {"id": f.headers["ack"],
                             "receipt": "a-" + f.body.decode()})
        acked.append(f.body.decode())
    for n in all3:
        for f in got[n]:
            ack_one(n, f)
    read_messages(cons, lambda: (sum(len(v) for v in got.values()) >= 30
                                 and sum(receipts.values()) == len(acked)),
                  "30 messages delivered and acknowledged", ack_all)
    bodies = [f.body.decode() for n in all3 for f in got[n]]
    # exactly once: 30 deliveries, 30 different messages, all sent ones
    assert sorted(bodies) == sorted(sent), bodies
    assert all(got[n] for n in all3)
    # per consumer, the messages of one partition arrive in offset order
    for n in all3:
        ids = [f.headers["message-id"].rsplit("/", 2) for f in got[n]]
        for p in {i[1] for i in ids}:
            offs = [int(i[2]) for i in ids if i[1] == p]
            assert offs == sorted(offs), (n, p, offs)
    # acknowledged ones are never delivered again: new messages (two per
    # partition at least) arrive, and nothing else does
    markers = ["m-%d" % i for i in range(6)]
    send_receipted(w, "/queue/work", markers)
    after = []

    def mark(n, f):
        if f.command == "RECEIPT":
            receipts[n] += 1
            return
        take(n, f)
        after.append(f.body.decode())
        ack_one(n, f)
    read_messages(cons, lambda: len(after) >= len(markers), "the markers",
                  mark)
    assert sorted(after) == markers, after
    for r in list(cons.values()) + [w]:
        r.close()


@pytest.mark.parametrize("how", ["kill9", "pause"])
def test_queue_coordinator_killed_holding_relayed_messages(cluster, how):
    """Consumers on the two nodes that do not coordinate the queue's group
    hold unacknowledged messages when the coordinator is killed with -9
    (or paused with SIGSTOP until it is fenced): their subscriptions move
    to the new coordinator, which delivers those messages again; nothing
    sent is lost (before or after the failover)."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    create(c, ldr, "jobs", 3)
    coord = coordinator(state_view(c, all3), "jobs")
    a, b = [n for n in all3 if n != coord]
    sent = ["j-%02d" % i for i in range(20)]
    w = stomp(c, a)
    send_receipted(w, "/queue/jobs", sent)
    w.close()
    cons = {n: queue_consumer(c, n, "/queue/jobs", 4) for n in (a, b)}
    got = {n: [] for n in (a, b)}

    def take(n, f):
        assert f.command == "MESSAGE", (n, f)
        got[n].append(f.body.decode())
    read_messages(cons, lambda: all(len(got[n]) >= 4 for n in (a, b)),
                  "4 unacknowledged messages on each consumer", take)
    held = got[a] + got[b]
    assert len(set(held)) == 8, held
    if how == "kill9":
        c.kill9(coord)
    else:
        # no EOF reaches the relaying nodes: the subscriptions move when
        # the controller fences the paused node and the image names
        # another leader
        c.nodes[coord].proc.send_signal(signal.SIGSTOP)
    # a new coordinator: every partition led by a live node
    rest = [a, b]
    c.wait(lambda: (lambda v: v if v and all(x[0] in rest for x in parse(v))
                    else None)(same_everywhere(c, "jobs", rest, 3)),
           "new leaders for jobs")
    assert coordinator(state_view(c, rest), "jobs") in rest
    after = {n: [] for n in (a, b)}

    def take_ack(n, f):
        assert f.command == "MESSAGE", (n, f)
        after[n].append(f.body.decode())
        cons[n].send("ACK", {"id": f.headers["ack"]})
    seen = lambda: set(after[a]) | set(after[b])  # noqa: E731
    # the held ones come again, and so does everything else not acked
    read_messages(cons, lambda: seen() >= set(sent),
                  "every message delivered again after the failover",
                  take_ack)
    # sends after the failover arrive too
    w = stomp(c, a)
    more = ["k-%d" % i for i in range(5)]
    send_receipted(w, "/queue/jobs", more)
    read_messages(cons, lambda: seen() >= set(sent) | set(more),
                  "the messages sent after the failover", take_ack)
    assert seen() == set(sent) | set(more), seen()
    for r in list(cons.values()) + [w]:
        r.close()


def test_relayed_queue_subscription_keeps_selector_nack_and_client_acks(
        cluster):
    """A relayed subscription carries its SUBSCRIBE's selector and ack mode
    to the coordinator: a consumer on another node gets only what its
    selector matches; a NACK with requeue:false dead-letters the message
    at the coordinator; ack:client acknowledges every earlier delivery
    with the one it names. A consumer on the coordinator then gets only
    what is left."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    create(c, ldr, "sel", 1)
    coord = coordinator(state_view(c, all3), "sel")
    other = next(n for n in all3 if n != coord)
    w = stomp(c, coord)
    for i in range(6):
        w.send("SEND", {"destination": "/queue/sel", "persistent": "true",
                        "color": "red" if i % 2 else "blue",
                        "receipt": "r%d" % i}, "m%d" % i)
    for i in range(6):
        w.expect("RECEIPT")
    r = stomp(c, other)
    r.call("SUBSCRIBE", {"destination": "/queue/sel", "id": "red",
                         "ack": "client", "selector": "color = 'red'",
                         "receipt": "sub"})
    reds = [r.expect("MESSAGE") for _ in range(3)]
    assert [f.body.decode() for f in reds] == ["m1", "m3", "m5"]
    assert all(f.headers["color"] == "red" and
               f.headers["subscription"] == "red" for f in reds)
    # NACK requeue:false of the first red one: dead-lettered by the
    # coordinator (its DLQ names the queue), then ack:client the last one:
    # acknowledges m3 too
    r.call("NACK", {"id": reds[0].headers["ack"], "requeue": "false",
                    "receipt": "n"})
    r.call("ACK", {"id": reds[2].headers["ack"], "receipt": "a"})
    r.call("UNSUBSCRIBE", {"id": "red", "receipt": "u"})
    r.close()
    # on the coordinator itself (where the group's state is): the blue
    # ones are still there, and no red one comes again
    r = stomp(c, coord)
    r.call("SUBSCRIBE", {"destination": "/queue/sel", "id": "all",
                         "ack": "client-individual", "receipt": "sub2"})
    rest = [r.expect("MESSAGE") for _ in range(3)]
    assert [f.body.decode() for f in rest] == ["m0", "m2", "m4"]
    # ... and nothing after them: a marker is the next message
    w.send("SEND", {"destination": "/queue/sel", "persistent": "true",
                    "receipt": "mk"}, "marker")
    w.expect("RECEIPT")
    assert r.expect("MESSAGE").body == b"marker"
    r.close()
    w.close()


def test_topic_subscriber_gets_partitions_held_elsewhere(cluster):
    """RF 1 on 3 nodes: each node holds one partition of the topic. A
    /topic subscriber on any node still gets every partition: the ones
    its node holds no replica of are relayed from their leaders (the
    SUBSCRIBE's receipt comes once they are), with its selector and ack
    mode."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    view = create(c, ldr, "rt", 3, rf=1)
    assert sorted(v[0] for v in view) == all3 and \
        all(len(v[2]) == 1 for v in view), view
    subs = {}
    for nid in all3:
        r = stomp(c, nid)
        r.call("SUBSCRIBE", {"destination": "/topic/rt", "id": "t%d" % nid,
                             "ack": "client-individual",
                             "selector": "keep = 'yes'",
                             "receipt": "sub"})
        subs[nid] = r
    w = stomp(c, 1)
    want = []
    for i in range(30):
        keep = "no" if i % 5 == 4 else "yes"
        body = "t-%02d" % i
        w.send("SEND", {"destination": "/topic/rt", "persistent": "true",
                        "keep": keep, "receipt": body}, body)
        if keep == "yes":
            want.append(body)
    for _ in range(30):
        w.expect("RECEIPT")
    got = {n: [] for n in all3}

    def take(n, f):
        if f.command == "RECEIPT":
            return
        assert f.command == "MESSAGE", (n, f)
        assert f.headers["subscription"] == "t%d" % n
        assert f.headers["destination"] == "/topic/rt"
        got[n].append(f)
        subs[n].send("ACK", {"id": f.headers["ack"], "receipt": "a"})
    read_messages(subs, lambda: all(len(got[n]) >= len(want)
                                    for n in all3),
                  "every kept message on every subscriber", take)
    for n in all3:
        bodies = [f.body.decode() for f in got[n]]
        assert sorted(bodies) == want, (n, bodies)
        parts = {f.headers["message-id"].rsplit("/", 2)[1] for f in got[n]}
        assert parts == {"0", "1", "2"}, (n, parts)
    for r in list(subs.values()) + [w]:
        r.close()


@pytest.mark.parametrize("pattern", ["wt.*", "wt.>"])
def test_wildcard_subscriber_gets_partitions_held_elsewhere(cluster,
                                                            pattern):
    """RF 1 on 3 nodes: a wildcard /topic subscriber (RabbitMQ's `*`,
    ActiveMQ's `>`) on any node gets every partition of every matching
    topic, the ones its node holds no replica of relayed from their
    leaders: a topic with a partition on each node, a topic whose one
    partition is on one node, and a matching topic created after the
    subscription (from its start, as on a single node). Each MESSAGE
    names its actual topic; a topic the pattern does not match is not
    delivered."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    view = create(c, ldr, "wt.a", 3, rf=1)
    assert sorted(v[0] for v in view) == all3, view
    create(c, ldr, "wt.b", 1, rf=1)
    create(c, ldr, "wx", 1, rf=1)
    subs = {}
    for nid in all3:
        r = stomp(c, nid)
        r.call("SUBSCRIBE", {"destination": "/topic/" + pattern,
                             "id": "w%d" % nid, "ack": "client-individual",
                             "receipt": "sub"})
        subs[nid] = r
    w = stomp(c, 1)
    want = []
    for i in range(30):
        want.append(("/topic/wt.a", "a-%02d" % i))
    for i in range(10):
        want.append(("/topic/wt.b", "b-%02d" % i))
    for dest, body in want + [("/topic/wx", "x-00")]:
        w.send("SEND", {"destination": dest, "persistent": "true",
                        "receipt": body}, body)
        assert w.expect("RECEIPT").headers["receipt-id"] == body
    # a matching topic created now, on whichever node
    create(c, ldr, "wt.c", 1, rf=1)
    for i in range(5):
        body = "c-%02d" % i
        w.send("SEND", {"destination": "/topic/wt.c", "persistent": "true",
                        "receipt": body}, body)
        assert w.expect("RECEIPT").headers["receipt-id"] == body
        want.append(("/topic/wt.c", body))
    got = {n: [] for n in all3}

    def take(n, f):
        assert f.command == "MESSAGE", (n, f)
        assert f.headers["subscription"] == "w%d" % n
        got[n].append(f)
        subs[n].send("ACK", {"id": f.headers["ack"]})
    read_messages(subs, lambda: all(len(got[n]) >= len(want)
                                    for n in all3),
                  "every matching message on every subscriber", take)
    for n in all3:
        pairs = [(f.headers["destination"], f.body.decode())
                 for f in got[n]]
        assert sorted(pairs) == sorted(want), (n, pairs)
        parts = {f.headers["message-id"].rsplit("/", 2)[1] for f in got[n]
                 if f.headers["destination"] == "/topic/wt.a"}
        assert parts == {"0", "1", "2"}, (n, parts)
    # nothing more: the next message on each is a marker sent now
    w.send("SEND", {"destination": "/topic/wt.b", "persistent": "true",
                    "receipt": "mk"}, "marker")
    w.expect("RECEIPT")
    for n in all3:
        assert subs[n].expect("MESSAGE").body == b"marker", n
    for r in list(subs.values()) + [w]:
        r.close()


def test_relayed_queue_subscription_of_a_stomp10_client(cluster):
    """A STOMP 1.0 client (no ack ids: ACK names the message-id) on a node
    that does not coordinate the queue: its relayed MESSAGEs carry the
    coordinator's message-id, its ACK by message-id reaches the
    coordinator (a consumer there gets only what was not acknowledged),
    and header values survive the re-encoding in its version."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    create(c, ldr, "old", 1)
    coord = coordinator(state_view(c, all3), "old")
    other = next(n for n in all3 if n != coord)
    w = stomp(c, coord)
    for i in range(3):
        w.send("SEND", {"destination": "/queue/old", "persistent": "true",
                        "note": "a:b c%d" % i, "receipt": "r%d" % i},
               "o%d" % i)
    for i in range(3):
        w.expect("RECEIPT")
    r = Raw(c.nodes[other].stomp_addr[1], timeout=60)
    assert r.connect(version="1.0").command == "CONNECTED"
    r.call("SUBSCRIBE", {"destination": "/queue/old", "ack": "client",
                         "receipt": "sub"})
    got = [r.expect("MESSAGE") for _ in range(3)]
    assert [f.body for f in got] == [b"o0", b"o1", b"o2"]
    assert [f.headers["note"] for f in got] == ["a:b c%d" % i
                                                for i in range(3)]
    assert all("ack" not in f.headers for f in got)
    # ack:client: the second one acknowledges the first too
    r.call("ACK", {"message-id": got[1].headers["message-id"],
                   "receipt": "a"})
    r.close()
    q = stomp(c, coord)
    q.call("SUBSCRIBE", {"destination": "/queue/old", "id": "x",
                         "ack": "client-individual", "receipt": "s"})
    assert q.expect("MESSAGE").body == b"o2"
    w.send("SEND", {"destination": "/queue/old", "persistent": "true",
                    "receipt": "mk"}, "marker")
    w.expect("RECEIPT")
    assert q.expect("MESSAGE").body == b"marker"
    q.close()
    w.close()


@pytest.mark.parametrize("sub_id", ["plain-1", "odd:id\\x"])
def test_relayed_messages_of_a_stomp12_client(cluster, sub_id):
    """A STOMP 1.2 client on a node that does not coordinate the queue
    gets the coordinator's MESSAGE frames as they came (the relay's fast
    path, broker/relay_frame.c) or re-encoded when its subscription id
    needs escaping (the parsed path): either way with its own
    subscription id, destination and ack id, header values with escapes
    and a body with NULs intact, every message once and in order; its
    ACKs by ack id reach the coordinator (a consumer there then gets
    only the one not acknowledged)."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    q = "fast" if sub_id.startswith("plain") else "slow"
    c.cli(ldr, "topic", "create", q, "--partitions", "1",
          "--replication-factor", "3")
    c.wait(lambda: same_everywhere(c, q, all3, 1), q)
    coord = coordinator(state_view(c, all3), q)
    other = next(n for n in all3 if n != coord)
    w = stomp(c, coord)
    n = 200
    note = "a:b\\c\nd"
    for i in range(n):
        body = b"x\0y%03d" % i
        w.send("SEND", {"destination": "/queue/" + q, "persistent": "true",
                        "note": note, "content-length": str(len(body)),
                        "receipt": "r%d" % i}, body)
    for i in range(n):
        w.expect("RECEIPT")
    r = stomp(c, other)
    r.send("SUBSCRIBE", {"destination": "/queue/" + q, "id": sub_id,
                         "ack": "client-individual", "receipt": "sub"})
    assert r.expect("RECEIPT").headers["receipt-id"] == "sub"
    got = [r.expect("MESSAGE") for _ in range(n)]
    assert [f.body for f in got] == [b"x\0y%03d" % i for i in range(n)]
    for f in got:
        assert f.headers["subscription"] == sub_id
        assert f.headers["destination"] == "/queue/" + q
        assert f.headers["ack"] == f.headers["message-id"] + "#" + sub_id
        assert f.headers["note"] == note
        assert f.headers["redelivered"] == "false"
    # acknowledge all but the last (receipts: the coordinator has them)
    for i, f in enumerate(got[:-1]):
        r.send("ACK", {"id": f.headers["ack"], "receipt": "a%d" % i})
    for i in range(n - 1):
        assert r.expect("RECEIPT").headers["receipt-id"] == "a%d" % i
    r.close()
    left_at_coordinator(c, coord, w, q, [b"x\0y%03d" % (n - 1)])
    w.close()


def left_at_coordinator(c, coord, w, q, bodies):
    """A consumer on the coordinator gets `bodies` from /queue/q, then
    nothing else: the next message is a marker sent on w."""
    k = stomp(c, coord)
    k.call("SUBSCRIBE", {"destination": "/queue/" + q, "id": "k",
                         "ack": "client-individual", "receipt": "s"})
    assert [k.expect("MESSAGE").body for _ in bodies] == bodies
    w.send("SEND", {"destination": "/queue/" + q, "persistent": "true",
                    "receipt": "mk"}, "marker")
    w.expect("RECEIPT")
    assert k.expect("MESSAGE").body == b"marker"
    k.close()


def stomp_frames_in(c, nid, command):
    """How many `command` frames node nid's STOMP listener handled."""
    from test_cluster_failover import metrics
    return metrics(c.nodes[nid])[("sluice_stomp_frames_total",
                                  (("command", command),
                                   ("direction", "in")))]


def test_relayed_acks_go_up_cumulatively(cluster):
    """A relayed client-individual consumer acks each message. The
    relaying node sends a burst of them up as one cumulative ACK when they
    cover every delivery before the oldest one the client still holds,
    and one by one otherwise (broker/relay.c, rl_acks_flush): the
    coordinator handles far fewer ACK frames than the client sent, every
    receipt still comes in order, and nothing the client holds is
    acknowledged with the others (an ACK or NACK that reached the
    coordinator for a message a cumulative ACK had taken would be an
    "unknown message" ERROR there, and fail its receipt here)."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    q = "cumul"
    create(c, ldr, q, 1)
    coord = coordinator(state_view(c, all3), q)
    other = next(n for n in all3 if n != coord)
    w = stomp(c, coord)
    n = 100
    send_receipted(w, "/queue/" + q, ["m%03d" % i for i in range(n)])
    r = stomp(c, other)
    r.call("SUBSCRIBE", {"destination": "/queue/" + q, "id": "s",
                         "ack": "client-individual",
                         "prefetch-count": str(n), "receipt": "sub"})
    got = [r.expect("MESSAGE") for _ in range(n)]
    assert [f.body for f in got] == [b"m%03d" % i for i in range(n)]
    before = stomp_frames_in(c, coord, "ACK")

    def burst(frames):
        """frames [(command, index)] in one write, each with a receipt;
        their RECEIPTs, in order"""
        data = b""
        for cmd, i in frames:
            data += ("%s\nid:%s\nreceipt:%s%d\n%s\n\0" % (
                cmd, got[i].headers["ack"], cmd, i,
                "requeue:false\n" if cmd == "NACK" else "")).encode()
        r.send_raw(data)
        want = ["%s%d" % (cmd, i) for cmd, i in frames]
        assert [r.expect("RECEIPT").headers["receipt-id"]
                for _ in frames] == want
    # 20 held: 0-9 and 11-19 go up as one cumulative ACK (after the NACK
    # of 10, which dead-letters it), 21-49 one by one
    burst([("ACK", i) for i in range(10)] + [("NACK", 10)] +
          [("ACK", i) for i in range(11, 50) if i != 20])
    # 20 alone (an ACK of its own: the cumulative one did not take it)
    burst([("ACK", 20)])
    # 90-99 held: 50-89 as one
    burst([("ACK", i) for i in range(50, 90)])
    up = stomp_frames_in(c, coord, "ACK") - before
    # one by one it would be 89 ACKs; the bursts came in one read each,
    # so about 32 (1 + 29, 1, 1)
    assert up <= 44, up
    r.close()
    # the held ones, and only those, come again (at the coordinator)
    left_at_coordinator(c, coord, w, q,
                        [b"m%03d" % i for i in range(90, 100)])
    w.close()


def test_durable_topic_subscription_follows_its_coordinator(cluster):
    """A durable topic subscription (RabbitMQ's durable:true, the id names
    it) is a queue group; its state is kept by the group's coordinator
    whatever node the subscriber uses: messages sent while it was away
    are delivered when it comes back through another node, and
    UNSUBSCRIBE with durable:true removes it there."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    create(c, ldr, "news", 1)
    group = "sub-news"
    coord = coordinator(state_view(c, all3), group)
    a, b = [n for n in all3 if n != coord]
    hdrs = {"destination": "/topic/news", "id": group, "durable": "true",
            "auto-delete": "false", "ack": "client-individual"}
    w = stomp(c, coord)

    def send(body):
        w.call("SEND", {"destination": "/topic/news", "persistent": "true",
                        "receipt": body}, body)

    def subscribe(nid):
        r = stomp(c, nid)
        r.send("SUBSCRIBE", dict(hdrs, receipt="sub"))
        assert r.expect("RECEIPT").headers["receipt-id"] == "sub"
        return r

    def take(r, body):
        """The next MESSAGE is body: ACK it, its receipt comes (the next
        MESSAGE may come before it)."""
        early = getattr(r, "early", [])
        f = early.pop(0) if early else r.expect("MESSAGE")
        assert f.body.decode() == body and f.headers["subscription"] == group
        r.send("ACK", {"id": f.headers["ack"], "receipt": "a-" + body})
        while True:
            f = r.read_frame()
            if f.command == "MESSAGE":
                r.early = early + [f]
                early = r.early
                continue
            assert f.command == "RECEIPT", f
            assert f.headers["receipt-id"] == "a-" + body
            break
    r = subscribe(a)
    send("one")
    take(r, "one")
    r.close()  # away: the subscription stays
    send("two")
    send("three")
    r = subscribe(b)  # back, through another node
    take(r, "two")
    take(r, "three")
    r.call("UNSUBSCRIBE", {"id": group, "durable": "true", "receipt": "u"})
    r.close()
    # removed at the coordinator: a new one starts from now on (when the
    # removal has reached the coordinator: its describe no longer shows
    # the group)
    c.wait(lambda: group not in c.cli(coord, "group", "list",
                                       check=False).stdout,
           "the durable subscription removed at the coordinator")
    send("gone")
    r = subscribe(a)
    send("new")
    take(r, "new")
    r.close()
    w.close()


def test_activemq_durable_subscription_across_nodes(cluster):
    """ActiveMQ's durable subscription (client-id + subscriptionName) made
    through one node and resumed through another gets what was sent
    meanwhile; its removal while inactive (UNSUBSCRIBE naming it, no
    subscription on the connection) removes it on every node."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    create(c, ldr, "amq", 1)
    group = "app1.feed"
    coord = coordinator(state_view(c, all3), group)
    a, b = [n for n in all3 if n != coord]

    def conn(nid):
        r = Raw(c.nodes[nid].stomp_addr[1], timeout=60)
        assert r.connect(headers={"client-id": "app1"}).command == \
            "CONNECTED"
        return r

    def subscribe(nid):
        r = conn(nid)
        r.call("SUBSCRIBE", {"destination": "/topic/amq", "id": "x",
                             "activemq.subscriptionName": "feed",
                             "receipt": "sub"})
        return r
    w = stomp(c, coord)

    def send(body):
        w.call("SEND", {"destination": "/topic/amq", "persistent": "true",
                        "receipt": body}, body)
    r = subscribe(a)
    send("p1")
    assert r.expect("MESSAGE").body == b"p1"
    r.close()
    send("p2")
    r = subscribe(b)
    assert r.expect("MESSAGE").body == b"p2"
    r.close()

    def listed():
        return [n for n in all3
                if group in c.cli(n, "group", "list", check=False).stdout]
    c.wait(lambda: coord in listed(), "the subscription at the coordinator")
    r = conn(a)
    r.call("UNSUBSCRIBE", {"activemq.subscriptionName": "feed",
                           "receipt": "u"})
    r.close()
    c.wait(lambda: not listed(), "the subscription removed everywhere")
    w.close()


def test_relay_logs_in_with_the_cluster_secret(tmp_path, monkeypatch):
    """With users configured (every client logs in) and a cluster secret,
    a relay session proves the secret in its CONNECT instead of a
    passcode it does not have: consumers of one queue on the two nodes
    that do not coordinate it compete at the coordinator."""
    pw = "admin-secret-pw"
    secret = os.path.join(str(tmp_path), "secret")
    with open(secret, "w") as fh:
        fh.write("0123456789abcdef-relay-secret\n")
    os.chmod(secret, 0o600)
    monkeypatch.setenv("SLUICE_ADMIN_PASSWORD", pw)
    monkeypatch.setenv("SLUICE_USER", "admin")
    monkeypatch.setenv("SLUICE_PASSWORD", pw)
    c = cluster_harness.Cluster(tmp_path, n=3, extra=[
        "--cluster-secret-file", secret, "--bootstrap-admin", "admin"])
    c.start()
    try:
        all3 = [1, 2, 3]
        ldr = ready(c)
        create(c, ldr, "sq", 1)
        coord = coordinator(state_view(c, all3), "sq")
        a, b = [n for n in all3 if n != coord]

        def login(nid):
            r = Raw(c.nodes[nid].stomp_addr[1], timeout=60)
            f = r.connect(headers={"login": "admin", "passcode": pw})
            assert f.command == "CONNECTED", f
            return r
        w = login(coord)
        for i in range(4):
            w.send("SEND", {"destination": "/queue/sq", "persistent": "true",
                            "receipt": "r%d" % i}, "s%d" % i)
        for i in range(4):
            w.expect("RECEIPT")
        cons = {}
        for n in (a, b):
            r = login(n)
            r.call("SUBSCRIBE", {"destination": "/queue/sq", "id": "q",
                                 "ack": "client-individual",
                                 "prefetch-count": "2", "receipt": "sub"})
            cons[n] = r
        got = {n: [r.expect("MESSAGE").body.decode() for _ in range(2)]
               for n, r in cons.items()}
        assert sorted(got[a] + got[b]) == ["s0", "s1", "s2", "s3"], got
        for r in list(cons.values()) + [w]:
            r.close()
    finally:
        c.stop_all()


def test_relay_back_pressure_slow_consumer(tmp_path):
    """A consumer on a relaying node that does not read while its queue
    fills (output-high-water 64 KiB): the relaying node stops reading its
    session to the coordinator and starts again as the client drains;
    every message arrives once, in order (one partition), ack:auto."""
    c = cluster_harness.Cluster(tmp_path, n=3,
                                extra=["--output-high-water", "65536",
                                       "--log-level", "debug"])
    c.start()
    try:
        all3 = [1, 2, 3]
        ldr = ready(c)
        create(c, ldr, "bp", 1)
        coord = serving_node(c, all3, "bp")
        other = next(n for n in all3 if n != coord)
        # a small receive buffer, set before connecting (loopback windows
        # grow to MBs): what the client does not read stays in the
        # relaying node's output
        r = Raw.__new__(Raw)
        r.sock = socket.socket()
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        r.sock.settimeout(60)
        r.sock.connect(("127.0.0.1", c.nodes[other].stomp_addr[1]))
        r.buf, r.version, r.eols = b"", "1.0", 0
        assert r.connect().command == "CONNECTED"
        r.call("SUBSCRIBE", {"destination": "/queue/bp", "id": "s",
                             "receipt": "sub"})
        w = stomp(c, coord)
        pad = "x" * 8000
        # 8 MB: more than the relaying node's socket buffer towards the
        # client can take (up to 4 MB), many times the high-water mark
        n = 1000
        for i in range(n):
            w.send("SEND", {"destination": "/queue/bp"}, "%04d%s" % (i, pad))
        w.call("SEND", {"destination": "/queue/bp", "receipt": "end"}, "end")
        # the client reads nothing until the relaying node stopped reading
        # its session to the coordinator (its output to the client full)
        c.nodes[other].wait_log(lambda t: "is full; not reading node" in t,
                                "the relay stopped reading")
        got = [r.expect("MESSAGE").body[:4].decode() for _ in range(n)]
        assert got == ["%04d" % i for i in range(n)]
        assert r.expect("MESSAGE").body == b"end"
        r.close()
        w.close()
    finally:
        c.stop_all()


def test_reply_to_a_temp_queue_of_another_node(cluster):
    """Request/reply across nodes: the requester on one node sends with
    reply-to:/temp-queue/r (its node's temp queue); the replier, on
    another node, sends the reply to the reply-to it got; the reply is
    sent to the requester's node and arrives, with its receipt."""
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    create(c, ldr, "req", 1)
    a, b = 1, 2
    replier = stomp(c, b)
    replier.call("SUBSCRIBE", {"destination": "/queue/req", "id": "rq",
                               "ack": "client-individual", "receipt": "s"})
    req = stomp(c, a)
    for i in range(3):
        req.call("SEND", {"destination": "/queue/req",
                          "reply-to": "/temp-queue/r",
                          "correlation-id": "c%d" % i, "persistent": "true",
                          "receipt": "q%d" % i}, "ask-%d" % i)
    asks = [replier.expect("MESSAGE") for _ in range(3)]
    for i, f in enumerate(asks):
        rt = f.headers["reply-to"]
        assert rt.startswith("/queue/stomp-tmp-"), rt
        replier.send("SEND", {"destination": rt,
                              "correlation-id": f.headers["correlation-id"],
                              "receipt": "a%d" % i},
                     "answer-" + f.body.decode())
        assert replier.expect("RECEIPT").headers["receipt-id"] == "a%d" % i
        replier.send("ACK", {"id": f.headers["ack"]})
    got = [req.expect("MESSAGE") for _ in range(3)]
    assert [f.body.decode() for f in got] == \
        ["answer-ask-%d" % i for i in range(3)]
    assert [f.headers["correlation-id"] for f in got] == \
        ["c%d" % i for i in range(3)]
    assert all(f.headers["subscription"] == "/temp-queue/r" for f in got)
    req.close()
    replier.close()
