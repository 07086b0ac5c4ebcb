"""A node restarted on new client ports registers its new addresses
through the metadata leader (broker/cluster_fwd.c). When that leader is
paused (SIGSTOP) with the registration in hand, the node sends it again,
after two election timeouts, to whoever leads then; before that fix the
registration stayed "in flight" until the old leader resumed, and the
image kept the node's old addresses (the cluster_jepsen flake of session
11: the other follower fetched from a dead address and left the ISR).

Each node runs in its own network namespace (netns_harness) with two
addresses: Raft on the first, the binary and STOMP listeners on a second
one, so that a blackhole route can stop the node's registrations to the
leader's binary port without stopping Raft. The steps, each one waited
for, none timed:

  1. node X (a follower) is killed (kill -9) and restarted on new client
     ports, with a route in its namespace that drops everything it sends
     to the leader L's binary address: X follows L (Raft) but every
     registration it tries fails at connect;
  2. L is cut off from X (a route in L's namespace): X hears nothing more
     from L but still names it leader until its election timer runs out
     (3 s or more). A topic is created through L and committed with the
     third node F, so F's Raft log is ahead of X's: F, not X, becomes the
     next leader (a node votes only for a log at least as long as its
     own), and a follower is the case under test (a leader registers
     itself, cluster/node.c);
  3. L is paused and X's route to L's binary address is opened (from
     X's client address: L's route to X's Raft address stays cut, or L's
     kernel would retransmit the Raft messages L had sent X, the topic
     among them), and X's next registration (every half second) goes to
     L: the debug line "registration: sent to L" after that moment shows
     the registration is in the paused leader's hands (its kernel
     accepted the connection and the bytes);
  4. F is elected. While L is still paused, F's image must come to hold
     X's new binary and STOMP addresses.

Without the resend X never registers again while L is paused and step 4
times out ("node X's new addresses in node F's image")."""
import os
import re
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import netns_harness  # noqa: E402

ELECTION_MS = 3000  # X names the paused leader at least this long


class TwoAddrCluster(netns_harness.NetCluster):
    """NetCluster whose nodes listen for clients on a second address
    (10.A.B.100+N), Raft on the first (10.A.B.N), with debug logging and
    the given timings (also used by test_cluster_isr_join.py)."""

    def __init__(self, tmpdir, n=3, extra=(), timings=None):
        super().__init__(tmpdir, n=n, extra=extra)
        if timings:
            self.timings = dict(timings)

    def client_addr(self, nid):
        return self.net + str(100 + nid)

    def _net_up(self):
        super()._net_up()
        for nid in range(1, self.n + 1):
            netns_harness.ip("-n", self.ns(nid), "addr", "add",
                             self.client_addr(nid) + "/24", "dev", "eth0")

    def _make(self, nid):
        d = os.path.join(self.tmpdir, "n%d" % nid)
        os.makedirs(d, exist_ok=True)
        args = ["--node-id", str(nid),
                "--cluster-listen", "%s:%d" % (self.addr(nid),
                                               netns_harness.RAFT_PORT),
                "--cluster-peers", self.peers]
        for k, v in self.timings.items():
            args += ["--" + k, v]
        args += ["--log-level", "debug"] + self.extra
        return netns_harness.NsBroker(self.ns(nid), self.client_addr(nid),
                                      data_dir=d, args=args)

    def block(self, in_ns_of, to_addr):
        netns_harness.ip("-n", self.ns(in_ns_of), "route", "replace",
                         "blackhole", to_addr + "/32")

    def unblock(self, in_ns_of, to_addr):
        netns_harness.ip("-n", self.ns(in_ns_of), "route", "del",
                         "blackhole", to_addr + "/32")

    def via_client_addr(self, nid, to_addr):
        """Node nid's connections to to_addr leave from its client address
        (replacing a blackhole route to it)."""
        netns_harness.ip("-n", self.ns(nid), "route", "replace",
                         to_addr + "/32", "dev", "eth0", "src",
                         self.client_addr(nid))


@pytest.fixture
def cluster(tmp_path):
    c = TwoAddrCluster(tmp_path, n=3, timings={
        "cluster-session-timeout-ms": str(4 * ELECTION_MS),
        "cluster-election-timeout-ms": str(ELECTION_MS),
        "cluster-heartbeat-ms": "50"})
    c.start()
    yield c
    c.stop_all()  # resumes a paused node first


def view(c, nid):
    """(leader, {node: (binary, stomp)}) as node nid's image says."""
    p = c.cli(nid, "cluster", "status", check=False)
    if p.returncode != 0:
        return None
    leader, addrs = 0, {}
    for line in p.stdout.splitlines():
        m = re.match(r"node (\d+) metadata-leader (\d+) ", line)
        if m:
            leader = int(m.group(2))
        m = re.match(r"node (\d+) \w+ raft \S+ binary (\S+) stomp (\S+)",
                     line)
        if m:
            addrs[int(m.group(1))] = (m.group(2), m.group(3))
    return leader, addrs


def addr_str(a):
    return "%s:%d" % a


def test_registration_resent_past_a_paused_leader(cluster):
    c = cluster
    all3 = [1, 2, 3]
    ldr = c.wait(lambda: c.agreed_leader(all3), "a metadata leader")
    x, f = [n for n in all3 if n != ldr]
    old = (addr_str(c.nodes[x].binary_addr), addr_str(c.nodes[x].stomp_addr))
    c.wait(lambda: (view(c, f) or (0, {}))[1].get(x) == old,
           "node %d's addresses in node %d's image" % (x, f))
    l_client = c.client_addr(ldr)

    # 1. X restarted on new ports, its registrations to L dropped
    c.kill9(x)
    c.block(x, l_client)
    for _ in range(3):  # port 0 can give the old port back (rarely)
        c.restart(x)
        new = (addr_str(c.nodes[x].binary_addr),
               addr_str(c.nodes[x].stomp_addr))
        if new[0] != old[0]:
            break
        c.kill9(x)
    assert new[0] != old[0], "restarted on the same binary port 3 times"
    c.wait(lambda: (view(c, x) or (0, {}))[0] == ldr,
           "node %d following the leader %d" % (x, ldr))
    assert (view(c, f) or (0, {}))[1].get(x) == old

    # 2. L cut off from X; a topic committed by L and F only
    c.block(ldr, c.addr(x))
    c.cli(ldr, "topic", "create", "ahead", "--partitions", "1",
          "--replication-factor", "1")
    c.wait(lambda: c.describe(f, "ahead"), "topic 'ahead' on node %d" % f)

    # 3. L paused; X's next registration goes to it. L's kernel still
    # holds the Raft messages L sent X (the topic among them) and would
    # retransmit them, so the route from L to X's Raft address stays; X's
    # registration leaves from X's client address, which L's kernel can
    # answer (the connection and its bytes are accepted while L is paused)
    c.nodes[ldr].proc.send_signal(signal.SIGSTOP)
    mark = len(c.nodes[x].log())
    c.via_client_addr(x, l_client)
    sent = c.nodes[x].wait_log(
        lambda t: re.search(r"registration: sent to (\S+)", t[mark:]),
        "node %d's registration after the pause" % x)
    assert sent.group(1).startswith(l_client + ":"), (
        "node %d registered with %s, not with the paused leader %d (%s): "
        "its election timer ran out first\n%s" % (
            x, sent.group(1), ldr, l_client, c.log_tails()))

    # 4. F leads; its image gets X's new addresses while L is paused
    c.wait(lambda: c.agreed_leader([x, f]), "a leader of nodes %d and %d"
           % (x, f))
    assert c.agreed_leader([x, f]) == f, "node %d leads, not %d" % (
        c.agreed_leader([x, f]), f)
    c.wait(lambda: (view(c, f) or (0, {}))[1].get(x) == new,
           "node %d's new addresses %s in node %d's image (old %s)" % (
               x, new, f, old), timeout=6 * ELECTION_MS / 1000.0)
    assert c.nodes[ldr].running()
    with open("/proc/%d/stat" % c.nodes[ldr].pid) as st:
        assert st.read().split(")")[-1].split()[0] == "T", \
            "node %d is still paused" % ldr
