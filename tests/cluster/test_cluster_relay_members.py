"""Relayed STOMP queue subscribers at the group's coordinator (issue 14,
docs/cluster.md 5.1): a relay session is one member of the queue group
there, holding what it was delivered. It must go when the client it
serves goes or when its node is cut off, so that what it held is
delivered again, as when a consumer connected to the coordinator
disconnects (RabbitMQ and ActiveMQ requeue a consumer's unacked
messages when its connection dies).

Found by the queue Jepsen long mode (scripts/jepsen-cluster.sh --queue
with JEPSEN_QUEUE_FAULTS=partition-leader): after repeated cuts the
coordinator listed 18-22 STOMP members for 2 STOMP consumers, and the
records they held were never delivered again. Two causes, one test each:

  - a client that went (EOF or DISCONNECT) while the receipt of a relayed
    ACK was owed: its node stopped reading the relay session at the
    close, so the coordinator's RECEIPT was never read, the connection
    waited for it forever, and with it the relay session and its member;
  - a relay session whose node was cut off: the coordinator asked it for
    no heart-beats, so it kept the member (and what it held) until TCP
    gave up, about 15 minutes later.

Every wait is for an observable condition with a deadline."""
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import netns_harness  # noqa: E402
from stomp_raw import Raw  # noqa: E402
from test_cluster_jepsen_queue import (ALL3, TOPIC, coordinator,  # noqa: E402
                                       create_queue, group_settled)


def members(c, nid):
    """The member lines of the group as `sluice group describe` on node
    nid lists them, or None."""
    p = c.cli(nid, "group", "describe", TOPIC, check=False)
    if p.returncode != 0:
        return None
    return [ln for ln in p.stdout.splitlines() if ln.startswith("member ")]


def wait_members(c, nid, n, what):
    """Wait until node nid lists n members; return their lines."""
    def count():
        m = members(c, nid)
        return (m,) if m is not None and len(m) == n else None
    return c.wait(count, what, timeout=60)[0]


def subscribe(c, nid, prefetch, timeout=30):
    b = c.nodes[nid]
    r = Raw(b.stomp_addr[1], timeout=timeout, host=b.stomp_addr[0])
    assert r.connect().command == "CONNECTED"
    r.call("SUBSCRIBE", {"destination": "/queue/" + TOPIC, "id": "s",
                         "ack": "client-individual",
                         "prefetch-count": str(prefetch), "receipt": "sub"})
    return r


def frame(cmd, headers):
    return ("%s\n%s\n\n" % (cmd, "".join("%s:%s\n" % kv for kv in
                                         headers.items()))).encode() + b"\0"


def test_a_client_gone_with_a_receipt_owed_leaves_the_group(cluster):
    """A consumer on a node that does not coordinate the group holds four
    messages, ACKs the first with a receipt and DISCONNECTs (with a
    receipt) in the same write: its node must still read the
    coordinator's RECEIPT, answer both receipts and close, and the
    coordinator then releases the three others to the next consumer.
    Before: no RECEIPT ever came (the node stopped reading the relay
    session when the client started closing), the relayed member stayed
    at the coordinator with three messages, never delivered again."""
    c = cluster
    create_queue(c)
    c.cli(1, "produce", TOPIC, input="".join("m%d\n" % i for i in range(4)))
    coord = c.wait(lambda: coordinator(c, ALL3), "the coordinator")
    x, y = [n for n in ALL3 if n != coord]
    a = subscribe(c, x, 4, timeout=20)
    try:
        held = [a.expect("MESSAGE") for _ in range(4)]
        assert sorted(f.body for f in held) == [b"m0", b"m1", b"m2", b"m3"]
        wait_members(c, coord, 1, "the relayed member at node %d" % coord)
        # one write: the DISCONNECT is read before the ACK's answer can
        # come back from the coordinator
        a.send_raw(frame("ACK", {"id": held[0].headers["ack"],
                                 "receipt": "a0"}) +
                   frame("DISCONNECT", {"receipt": "bye"}))
        got = a.expect_closed()
    except OSError as e:  # socket.timeout: no answer
        pytest.fail("node %d did not answer the ACK and DISCONNECT of a "
                    "relayed subscriber: %r" % (x, e))
    finally:
        a.close()
    assert [(f.command, f.headers.get("receipt-id")) for f in got] == \
        [("RECEIPT", "a0"), ("RECEIPT", "bye")], got
    # the relayed member left with its session: nobody holds anything
    wait_members(c, coord, 0, "no member left at node %d" % coord)
    b = subscribe(c, y, 10)
    try:
        again = [b.expect("MESSAGE") for _ in range(3)]
        assert sorted(f.body for f in again) == \
            sorted(f.body for f in held[1:])
        for f in again:
            b.call("ACK", {"id": f.headers["ack"],
                           "receipt": "b-" + f.body.decode()})
        # the first was acked by a0: everything settled, nothing in flight
        assert c.wait(lambda: group_settled(c, coord),
                      "the group's state") == (4, 4, 0, 0)
        assert len(wait_members(c, coord, 1, "one member: b")) == 1
    finally:
        b.close()


def netns_ok():
    return os.geteuid() == 0 and shutil.which("ip") is not None


@pytest.fixture
def ncluster(tmp_path):
    if not netns_ok():
        pytest.skip("needs root and ip(8): nodes in network namespaces")
    c = netns_harness.NetCluster(tmp_path, n=3)
    c.start()
    yield c
    c.heal()
    c.stop_all()


def test_a_cut_off_relaying_node_loses_its_members(ncluster):
    """A consumer on node x (not the coordinator) holds four messages; x
    is cut off from the other nodes (blackhole routes; the client still
    reaches it). The coordinator must close the silent relay session
    (the relay sends heart-beats now, and asks to be watched) and
    deliver the four to a consumer connected to it; after the heal, x's
    subscription comes back as one member, not two. Before: the four
    stayed with the cut-off member."""
    c = ncluster
    create_queue(c)
    c.cli(1, "produce", TOPIC, input="".join("m%d\n" % i for i in range(4)))
    coord = c.wait(lambda: coordinator(c, ALL3), "the coordinator")
    x = next(n for n in ALL3 if n != coord)
    a = subscribe(c, x, 4)
    b = None
    try:
        held = [a.expect("MESSAGE") for _ in range(4)]
        assert sorted(f.body for f in held) == [b"m0", b"m1", b"m2", b"m3"]
        b = subscribe(c, coord, 10)
        wait_members(c, coord, 2, "a's relay and b at node %d" % coord)
        c.partition(x)
        try:
            again = [b.expect("MESSAGE") for _ in range(4)]
        except OSError as e:
            pytest.fail("what node %d's cut-off member held was not "
                        "delivered again: %r; members %r" % (
                            x, e, members(c, coord)))
        assert sorted(f.body for f in again) == [b"m0", b"m1", b"m2", b"m3"]
        assert all(f.headers.get("redelivered") == "true" for f in again), \
            again
        wait_members(c, coord, 1, "only b at node %d during the cut" % coord)
        for f in again:
            b.call("ACK", {"id": f.headers["ack"],
                           "receipt": "b-" + f.body.decode()})
        c.heal()
        # x opens a's subscription again: one member for it, the old one
        # gone for good
        wait_members(c, coord, 2, "a's relay back at node %d" % coord)
        assert c.wait(lambda: group_settled(c, coord),
                      "the group's state") == (4, 4, 0, 0)
        assert len(members(c, coord)) == 2, members(c, coord)
    finally:
        a.close()
        if b:
            b.close()


def ns_run(c, nid, *cmd):
    p = subprocess.run(
        ["ip", "netns", "exec", c.ns(nid)] + list(cmd), capture_output=True,
        text=True, timeout=30)
    assert p.returncode == 0, (cmd, p.stderr)
    return p.stdout


def test_a_reopened_relay_session_replaces_the_old_one_at_once(ncluster):
    """Node x relays a consumer holding four messages. x's end of the relay
    session breaks while the coordinator's end stays open (the socket is
    destroyed with `ss -K` in x's namespace, and every packet of its port
    leaving x is dropped, so the coordinator hears neither the reset nor
    the heart-beats): x opens a new session at once. The new session names
    the same client subscription, so the coordinator must close the old
    one when it arrives: one member right after x says it is relayed
    again, and the four redelivered to the client through the new
    session. Before: both sessions were members until the old one's
    heart-beats timed out (up to 3 s), the four held by the dead one."""
    c = ncluster
    create_queue(c)
    c.cli(1, "produce", TOPIC, input="".join("m%d\n" % i for i in range(4)))
    coord = c.wait(lambda: coordinator(c, ALL3), "the coordinator")
    x = next(n for n in ALL3 if n != coord)
    caddr, cport = c.nodes[coord].stomp_addr
    a = subscribe(c, x, 4)
    rule = None
    try:
        held = [a.expect("MESSAGE") for _ in range(4)]
        assert sorted(f.body for f in held) == [b"m0", b"m1", b"m2", b"m3"]
        wait_members(c, coord, 1, "a's relay at node %d" % coord)
        sel = ["state", "established", "dst", caddr, "dport", "=",
               ":%d" % cport]
        socks = ns_run(c, x, "ss", "-Htn", *sel).splitlines()
        # the relay session alone: x's address and port in it
        assert len(socks) == 1, socks
        lport = next(w for w in socks[0].split()
                     if w.startswith(c.addr(x) + ":")).rsplit(":", 1)[1]
        log = c.nodes[x].log()
        again_line = "): relayed to node %d at" % coord
        before = log.count(again_line)
        rule = ["-n", c.ns(x), "rule", "add", "ipproto", "tcp", "sport",
                lport, "blackhole"]
        netns_harness.ip(*rule)
        ns_run(c, x, "ss", "-K", "-tn", *sel)
        c.nodes[x].wait_log(lambda t: t.count(again_line) > before,
                            "node %d relaying a's subscription again" % x)
        # at once: the old session is not waited out
        now = members(c, coord)
        assert now is not None and len(now) == 1, (
            "the old relay session is still a member at node %d: %r"
            % (coord, now))
        again = [a.expect("MESSAGE") for _ in range(4)]
        assert sorted(f.body for f in again) == [b"m0", b"m1", b"m2", b"m3"]
        assert all(f.headers.get("redelivered") == "true" for f in again), \
            again
        for f in again:
            a.call("ACK", {"id": f.headers["ack"],
                           "receipt": "a-" + f.body.decode()})
        assert c.wait(lambda: group_settled(c, coord),
                      "the group's state") == (4, 4, 0, 0)
        assert "is replaced by session" in c.nodes[coord].log()
    finally:
        a.close()
        if rule:
            rule[3] = "del"
            netns_harness.ip(*rule, check=False)


def relay_session(c, nid, node, epoch, key, seq):
    """A STOMP session to node nid that says it relays for node `node`
    (the test cluster has no secret: the headers are taken as they come),
    with the identity a relaying node's CONNECT carries; (Raw, the answer
    to CONNECT)."""
    b = c.nodes[nid]
    r = Raw(b.stomp_addr[1], timeout=20, host=b.stomp_addr[0])
    f = r.connect(headers={"host": "/", "sluice-relay": str(node),
                           "sluice-relay-epoch": str(epoch),
                           "sluice-relay-session": key,
                           "sluice-relay-seq": str(seq)})
    return r, f


def test_a_restarted_relaying_node_replaces_its_old_sessions(cluster):
    """Relay sessions that ask for no heart-beats, as an older relaying
    node's did: only their identity can end them. One of node x's process
    started at 1000 holds four messages. A session of an older process, or
    an older session of the same subscription, is refused and changes
    nothing; a session of x's newer process (x restarted while the
    coordinator kept the old connection) closes the old one at once, and
    the four are delivered again, to it. Before: the old session stayed a
    member, holding the four, for as long as its TCP connection lived."""
    c = cluster
    create_queue(c)
    c.cli(1, "produce", TOPIC, input="".join("m%d\n" % i for i in range(4)))
    coord = c.wait(lambda: coordinator(c, ALL3), "the coordinator")
    x = next(n for n in ALL3 if n != coord)
    sub = {"destination": "/queue/" + TOPIC, "id": "s",
           "ack": "client-individual", "prefetch-count": "4",
           "receipt": "sub"}
    old, f = relay_session(c, coord, x, 1000, "%d.5/-1/s" % x, 7)
    others = []
    try:
        assert f.command == "CONNECTED", f
        old.call("SUBSCRIBE", sub)
        held = [old.expect("MESSAGE") for _ in range(4)]
        assert sorted(f.body for f in held) == [b"m0", b"m1", b"m2", b"m3"]
        wait_members(c, coord, 1, "the old session at node %d" % coord)
        for epoch, key, seq in ((999, "%d.9/-1/s" % x, 1),
                                (1000, "%d.5/-1/s" % x, 6)):
            r, f = relay_session(c, coord, x, epoch, key, seq)
            others.append(r)
            assert f.command == "ERROR", f
            assert "newer relay session" in f.body.decode(), f
            assert r.expect_closed() == []
        assert len(members(c, coord)) == 1
        new, f = relay_session(c, coord, x, 2000, "%d.1/-1/s" % x, 1)
        others.append(new)
        assert f.command == "CONNECTED", f
        assert old.expect_closed() == []
        new.call("SUBSCRIBE", sub)
        again = [new.expect("MESSAGE") for _ in range(4)]
        assert sorted(f.body for f in again) == [b"m0", b"m1", b"m2", b"m3"]
        assert all(f.headers.get("redelivered") == "true" for f in again), \
            again
        assert len(wait_members(c, coord, 1, "the new session alone")) == 1
        assert "a previous process of it" in c.nodes[coord].log()
    except OSError as e:  # socket.timeout: the old session stayed
        pytest.fail("the old relay session of node %d was not replaced: "
                    "%r; members %r" % (x, e, members(c, coord)))
    finally:
        old.close()
        for r in others:
            r.close()


def test_a_restart_with_the_clock_back_replaces_old_sessions(cluster,
                                                            monkeypatch):
    """Node x's previous process (its epoch as x wrote it) still has a
    session open at the coordinator, holding four messages, that asks for
    no heart-beats. x restarts with its clock an hour back (a test hook
    fakes the clock its relay epoch reads). A consumer on x must get the
    four again: x's new sessions carry an epoch above the old process's,
    so the coordinator closes the old session at once. Before: the epoch
    was the clock, the new process's sessions were refused as older than
    the open one ("node x already has a newer relay session here") until
    the old one's heart-beats timed out (3 s; never for this one)."""
    c = cluster
    create_queue(c)
    c.cli(1, "produce", TOPIC, input="".join("m%d\n" % i for i in range(4)))
    coord = c.wait(lambda: coordinator(c, ALL3), "the coordinator")
    x = next(n for n in ALL3 if n != coord)
    path = os.path.join(c.nodes[x].data_dir, "relay-epoch")
    with open(path) as f:
        epoch = int(f.read())
    sub = {"destination": "/queue/" + TOPIC, "id": "s",
           "ack": "client-individual", "prefetch-count": "4",
           "receipt": "sub"}
    old, f = relay_session(c, coord, x, epoch, "%d.5/-1/s" % x, 3)
    a = None
    try:
        assert f.command == "CONNECTED", f
        old.call("SUBSCRIBE", sub)
        held = [old.expect("MESSAGE") for _ in range(4)]
        assert sorted(f.body for f in held) == [b"m0", b"m1", b"m2", b"m3"]
        c.nodes[x].stop()
        monkeypatch.setenv("SLUICE_TEST_RELAY_EPOCH_CLOCK_MS",
                           str(epoch - 3600 * 1000))
        c.restart(x)
        monkeypatch.delenv("SLUICE_TEST_RELAY_EPOCH_CLOCK_MS")
        with open(path) as f:
            assert int(f.read()) > epoch
        a = subscribe(c, x, 4, timeout=15)
        try:
            again = [a.expect("MESSAGE") for _ in range(4)]
        except OSError as e:  # socket.timeout
            pytest.fail("node %d's new process was not relayed: %r; "
                        "members %r" % (x, e, members(c, coord)))
        assert sorted(f.body for f in again) == [b"m0", b"m1", b"m2", b"m3"]
        assert all(f.headers.get("redelivered") == "true" for f in again), \
            again
        assert old.expect_closed() == []
        assert "a previous process of it" in c.nodes[coord].log()
        assert len(wait_members(c, coord, 1, "x's new session alone")) == 1
    finally:
        old.close()
        if a:
            a.close()
