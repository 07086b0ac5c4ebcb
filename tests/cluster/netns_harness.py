"""A cluster of real sluiced processes, each in its own network namespace,
for network-partition tests (tests/cluster/test_cluster_netpart.py).

Layout (all created by NetCluster.start() and removed by stop_all(); needs
root and iproute2's `ip`):

    root namespace                 hub namespace           node namespaces
    sjTAGc 10.A.B.254 --veth-- sjTAGhc                      (one per node)
                                  |  br0 (a bridge)
                                  +-- sjTAGa1 --veth-- eth0 10.A.B.1  (ns ...-n1)
                                  +-- sjTAGa2 --veth-- eth0 10.A.B.2  (ns ...-n2)
                                  +-- sjTAGa3 --veth-- eth0 10.A.B.3  (ns ...-n3)

The test process and the `sluice` CLI stay in the root namespace and reach
every node through the bridge. Each node listens on its own address, so the
Raft port can be the same fixed port on every node (no reservation race as
on loopback: each namespace has its own port space).

A partition is made with blackhole routes, which need no kernel module
beyond the routing every kernel has (tc actions, iptables and nftables may
be missing, as on the machine these tests were written on):
partition(1) adds, in node 1's namespace, a blackhole route to every other
node and, in every other node's namespace, one to node 1. Node 1 and the
others then cannot exchange a single packet (new connections fail, packets
of established ones are dropped), while the client at 10.A.B.254 still
reaches every node, so a test can try to write to the isolated side: the
dangerous case of a split brain. heal() removes the routes.

impair() slows every node's link down and loses packets on it: `tc netem`
delay, jitter and loss on the egress of each node's eth0 (so both
directions between two nodes). The netem qdisc is a kernel module
(sch_netem) that a container's kernel may lack, as on the machine these
tests were written on; then impair() uses the token bucket qdisc (tbf,
usually built in) instead: a link of `rate` whose queue holds at most
delay_ms of traffic, so bursts (fetch answers, Raft catch-up) queue up to
that long and what does not fit is dropped, which TCP sees as loss. It
returns which of the two it installed, and the test says so.

Names carry the creating process id, so a run that was killed before its
clean-up leaves namespaces that the next run removes (_sweep)."""
import os
import random
import signal
import subprocess

import cluster_harness
import sluice_harness

PREFIX = "sluice-np-"
RAFT_PORT = 7420


def ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), capture_output=True, text=True,
                       timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), p.stderr.strip()))
    return p


def tc(*args, check=True):
    p = subprocess.run(["tc"] + list(args), capture_output=True, text=True,
                       timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError("tc %s: %s" % (" ".join(args), p.stderr.strip()))
    return p


def _sweep():
    """Remove namespaces left by runs whose process is gone."""
    out = ip("netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        try:
            pid = int(name[len(PREFIX):].split("-")[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
            continue  # still alive: its owner cleans up
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        ip("netns", "del", name, check=False)


def _free_subnet():
    used = ip("-4", "-o", "addr", "show").stdout + \
        ip("-4", "route", "show", "table", "all").stdout
    rng = random.Random()
    for _ in range(200):
        a, b = rng.randrange(200, 250), rng.randrange(1, 255)
        net = "10.%d.%d." % (a, b)
        if net not in used:
            return net
    raise RuntimeError("no free 10.x.y.0/24 subnet found")


class NsBroker(sluice_harness.Broker):
    """sluiced started inside a network namespace, listening on addr."""

    def __init__(self, ns, addr, **kw):
        super().__init__(**kw)
        self.ns, self.addr = ns, addr

    def spawn(self, extra=()):
        cmd = ["ip", "netns", "exec", self.ns, sluice_harness.sluiced_path(),
               "--data", self.data_dir,
               "--listen", self.addr + ":0", "--stomp-listen", self.addr + ":0",
               "--http-listen", "127.0.0.1:0",
               # not loopback: a test cluster has no users
               "--allow-anonymous"]
        cmd += self.args + list(extra)
        log = open(self.log_path, "ab")
        try:
            # `ip netns exec` execs sluiced in place: the pid is sluiced's
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL)
        finally:
            log.close()


class NetCluster(cluster_harness.Cluster):
    def __init__(self, tmpdir, n=3, extra=()):
        super().__init__(tmpdir, n=n, extra=extra)
        self.tag = "%05x" % random.randrange(16 ** 5)
        self.base = "%s%d-%s-" % (PREFIX, os.getpid(), self.tag)
        self.net = None
        self.cut = set()  # (a, b) pairs with blackhole routes a -> b
        self.made = False

    def ns(self, nid):
        return self.base + ("hub" if nid == 0 else "n%d" % nid)

    def addr(self, nid):
        return self.net + str(nid)

    def _net_up(self):
        _sweep()
        self.net = _free_subnet()
        t = "sj" + self.tag
        hub = self.ns(0)
        self.made = True
        ip("netns", "add", hub)
        ip("-n", hub, "link", "set", "lo", "up")
        ip("-n", hub, "link", "add", "br0", "type", "bridge")
        ip("-n", hub, "link", "set", "br0", "up")
        for nid in range(1, self.n + 1):
            ns = self.ns(nid)
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("link", "add", "%sa%d" % (t, nid), "type", "veth", "peer",
               "name", "%sb%d" % (t, nid))
            ip("link", "set", "%sa%d" % (t, nid), "netns", hub)
            ip("link", "set", "%sb%d" % (t, nid), "netns", ns)
            ip("-n", ns, "link", "set", "%sb%d" % (t, nid), "name", "eth0")
            ip("-n", ns, "addr", "add", self.addr(nid) + "/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", hub, "link", "set", "%sa%d" % (t, nid), "master", "br0")
            ip("-n", hub, "link", "set", "%sa%d" % (t, nid), "up")
        # the client's way in, from the root namespace
        ip("link", "add", t + "c", "type", "veth", "peer", "name", t + "hc")
        ip("link", "set", t + "hc", "netns", hub)
        ip("-n", hub, "link", "set", t + "hc", "master", "br0")
        ip("-n", hub, "link", "set", t + "hc", "up")
        ip("addr", "add", self.addr(254) + "/24", "dev", t + "c")
        ip("link", "set", t + "c", "up")

    def _net_down(self):
        if not self.made:
            return
        # deleting the hub namespace destroys the root end's veth peer too
        for nid in range(0, self.n + 1):
            ip("netns", "del", self.ns(nid), check=False)
        ip("link", "del", "sj%sc" % self.tag, check=False)
        self.made = False

    def _make(self, nid):
        d = os.path.join(self.tmpdir, "n%d" % nid)
        os.makedirs(d, exist_ok=True)
        args = ["--node-id", str(nid),
                "--cluster-listen", "%s:%d" % (self.addr(nid), RAFT_PORT),
                "--cluster-peers", self.peers,
                "--cluster-session-timeout-ms", "1500",
                "--cluster-election-timeout-ms", "500",
                "--cluster-heartbeat-ms", "50"] + self.extra
        return NsBroker(self.ns(nid), self.addr(nid), data_dir=d, args=args)

    def start(self, attempts=1):
        try:
            self._net_up()
            self.peers = ",".join("%d@%s:%d" % (i, self.addr(i), RAFT_PORT)
                                  for i in range(1, self.n + 1))
            for nid in range(1, self.n + 1):
                self.nodes[nid] = self._make(nid)
                self.nodes[nid].start()
        except BaseException:
            self.stop_all()
            raise
        return self

    def stop_all(self):
        for b in self.nodes.values():
            if b.running():
                b.proc.send_signal(signal.SIGCONT)
        super().stop_all()
        self._net_down()

    # ---- the nemesis ------------------------------------------------------
    def _route(self, verb, a, b):
        ip("-n", self.ns(a), "route", verb, "blackhole", self.addr(b) + "/32",
           check=(verb == "add"))

    def partition(self, nid):
        """Cut node nid off from every other node (both directions); the
        client still reaches all of them."""
        for o in range(1, self.n + 1):
            if o != nid:
                for a, b in ((nid, o), (o, nid)):
                    if (a, b) not in self.cut:
                        self._route("add", a, b)
                        self.cut.add((a, b))

    def heal(self):
        for a, b in sorted(self.cut):
            self._route("del", a, b)
        self.cut.clear()

    def impair(self, delay_ms=20, jitter_ms=10, loss_pct=2.0,
               rate="256kbit"):
        """Delay and lose packets on every node's link (module docstring).
        Returns "netem" or "tbf", whichever the kernel has."""
        kind = "netem"
        for nid in range(1, self.n + 1):
            ns = self.ns(nid)
            if kind == "netem":
                p = tc("-n", ns, "qdisc", "replace", "dev", "eth0", "root",
                       "netem", "delay", "%dms" % delay_ms,
                       "%dms" % jitter_ms, "loss", "%g%%" % loss_pct,
                       check=False)
                if p.returncode == 0:
                    continue
                if "unknown" not in p.stderr:
                    raise RuntimeError("tc netem: " + p.stderr.strip())
                kind = "tbf"
            tc("-n", ns, "qdisc", "replace", "dev", "eth0", "root", "tbf",
               "rate", rate, "burst", "2kb", "latency", "%dms" % delay_ms)
        return kind

    def unimpair(self):
        for nid in range(1, self.n + 1):
            tc("-n", self.ns(nid), "qdisc", "del", "dev", "eth0", "root",
               check=False)
