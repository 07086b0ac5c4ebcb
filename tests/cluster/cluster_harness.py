"""A cluster of real sluiced processes on loopback, for tests/cluster.

Client ports use port 0 and the ready line, as every other suite. The Raft
(--cluster-listen) ports cannot: every node must know every peer's address
before any of them starts (they are the bootstrap configuration, entry 1 of
the metadata log). So the harness reserves them: it binds free ports below
the kernel's ephemeral range (so no outgoing connection takes one while its
node is down for a restart), and closes the sockets just before starting
the nodes. If a node still fails to bind in that window (another process
took the port), it exits with status 4 and Cluster.start() starts the whole
cluster again on new ports (docs/cluster.md, Tests).

Waiting is always "poll a status command until a condition holds or a
deadline passes", never a fixed sleep.
"""
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
import sluice_harness  # noqa: E402


def cli_path():
    return os.path.join(sluice_harness.bin_dir(), "sluice")


reserve_ports = sluice_harness.reserve_ports


class Cluster:
    def __init__(self, tmpdir, n=3, extra=()):
        self.tmpdir = str(tmpdir)
        self.n = n
        self.extra = list(extra)
        self.nodes = {}  # id -> sluice_harness.Broker
        self.peers = None
        # faster than sluiced's defaults, so failovers in tests are quick;
        # {} runs the defaults (bench/cluster_failover.py --defaults)
        self.timings = {"cluster-session-timeout-ms": "1500",
                        "cluster-election-timeout-ms": "500",
                        "cluster-heartbeat-ms": "50"}

    def _make(self, nid):
        d = os.path.join(self.tmpdir, "n%d" % nid)
        os.makedirs(d, exist_ok=True)
        port = self.ports[nid - 1]
        args = ["--node-id", str(nid),
                "--cluster-listen", "127.0.0.1:%d" % port,
                "--cluster-peers", self.peers]
        for k, v in self.timings.items():
            args += ["--" + k, v]
        return sluice_harness.Broker(data_dir=d, args=args + self.extra)

    def start(self, attempts=5):
        for _ in range(attempts):
            self.ports = reserve_ports(self.n)
            self.peers = ",".join("%d@127.0.0.1:%d" % (i + 1, p)
                                  for i, p in enumerate(self.ports))
            try:
                for nid in range(1, self.n + 1):
                    b = self._make(nid)
                    self.nodes[nid] = b
                    b.start()
                return self
            except sluice_harness.BrokerError as e:
                self.stop_all()
                if "cannot" not in str(e):
                    raise
        raise sluice_harness.BrokerError("could not start the cluster")

    def stop_all(self):
        for b in self.nodes.values():
            try:
                if b.running():
                    b.stop()
            except Exception:
                b.kill9()
        self.nodes = {}

    def kill9(self, nid):
        self.nodes[nid].kill9()

    def restart(self, nid):
        self.nodes[nid].start()

    def cli(self, nid, *args, check=True, input=None):
        b = self.nodes[nid]
        addr = "%s:%d" % b.binary_addr
        p = subprocess.run([cli_path(), "-b", addr] + list(args),
                           capture_output=True, text=True, timeout=60,
                           input=input)
        if check and p.returncode != 0:
            raise AssertionError("sluice %s on node %d: %d %s%s" % (
                " ".join(args), nid, p.returncode, p.stdout, p.stderr))
        return p

    def status(self, nid):
        """{'leader': id, 'nodes': {id: 'up'|'down'}} as node nid says."""
        p = self.cli(nid, "cluster", "status", check=False)
        if p.returncode != 0:
            return None
        out = {"leader": 0, "nodes": {}}
        for line in p.stdout.splitlines():
            f = line.split()
            if len(f) >= 4 and f[0] == "node" and f[2] == "metadata-leader":
                out["leader"] = int(f[3])
            elif len(f) >= 3 and f[0] == "node" and f[2] in ("up", "down"):
                out["nodes"][int(f[1])] = f[2]
        return out

    def wait(self, cond, what, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = cond()
            if last:
                return last
            time.sleep(0.05)  # polling interval, not synchronisation
        raise AssertionError("timed out after %.0fs waiting for %s (last: "
                             "%r)\n%s" % (timeout, what, last,
                                          self.log_tails()))

    def log_tails(self, lines=40):
        """The last lines of every node's log, for a failure's message."""
        out = []
        for nid in sorted(self.nodes):
            tail = self.nodes[nid].log().splitlines()[-lines:]
            out.append("--- node %d log (last %d lines) ---" % (nid, len(tail)))
            out += tail
        return "\n".join(out)

    def agreed_leader(self, among):
        """The metadata leader every node in `among` names, once they agree
        and it is one of them."""
        seen = set()
        for nid in among:
            st = self.status(nid)
            if not st or not st["leader"]:
                return None
            seen.add(st["leader"])
        if len(seen) == 1 and next(iter(seen)) in among:
            return next(iter(seen))
        return None

    def ends(self, nid, topic):
        """[log end offset] per partition as node nid's describe says."""
        p = self.cli(nid, "topic", "describe", topic, check=False)
        if p.returncode != 0:
            return None
        return [int(ln.split()[5]) for ln in p.stdout.splitlines()
                if ln.startswith("partition ")]

    def describe(self, nid, topic):
        """Per-partition 'leader N epoch E replicas A,B isr A,B' lines."""
        p = self.cli(nid, "topic", "describe", topic, check=False)
        if p.returncode != 0:
            return None
        return [line[line.index(" leader "):].strip()
                for line in p.stdout.splitlines()
                if line.startswith("partition ") and " leader " in line]


def fnv1a32(s):
    """The hash that picks a group's state partition (fnv1a32 mod the
    partition count), as the broker and libsluice compute it."""
    h = 0x811C9DC5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def running(tmp_path, n=3, extra=(), timings=None):
    """For a fixture (`yield from`): a started Cluster of n nodes with
    sluiced's `extra` flags and the test timings updated by `timings`;
    at the end every node left paused (SIGSTOP) is resumed, then all are
    stopped by pid."""
    c = Cluster(tmp_path, n=n, extra=extra)
    c.timings.update(timings or {})
    c.start()
    try:
        yield c
    finally:
        for b in c.nodes.values():
            if b.running():
                b.proc.send_signal(signal.SIGCONT)
        c.stop_all()


def replica_records(data_dir, topic, partition=0):
    """[(offset, value)] of the records in one node's own copy of
    topic/partition, read from the segment files under its data directory
    (CRCs checked; values decoded as UTF-8). A client cannot read a given
    replica: its fetches go to the partition's leader whatever node it is
    given, so comparing replicas through `sluice consume` compares the
    leader with itself."""
    import glob
    import struct
    import sluice_wire
    out = []
    d = os.path.join(data_dir, "topics", topic, str(partition))
    for path in sorted(glob.glob(os.path.join(d, "*.log"))):
        with open(path, "rb") as f:
            data = f.read()
        off = 0
        while off + 12 <= len(data):  # preallocated zeros end a file
            length = struct.unpack_from("<I", data, off + 8)[0]
            if length == 0 or off + 12 + length > len(data):
                break
            out += [(r["offset"], r["value"].decode())
                    for r in sluice_wire.decode_batches(
                        data[off:off + 12 + length])]
            off += 12 + length
    return out


class FailoverClient:
    """sluice-failover-client in the background: it produces `rate`
    records a second to `topic` through the nodes `nodes` (values
    NAME-%08d with `name`), and reports one line per ack ("ack SEQ
    PARTITION OFFSET") or error, collected by a thread. stop() asks it to
    finish and returns its exit code."""

    def __init__(self, c, topic, nodes, rate, name=None, stop_timeout=180):
        boot = ",".join("%s:%d" % c.nodes[n].binary_addr for n in nodes)
        exe = os.path.join(sluice_harness.bin_dir(), "sluice-failover-client")
        args = [exe, "-b", boot, "-t", topic, "-r", str(rate)]
        if name:
            args += ["-n", name]
        # request.timeout.ms: a paused leader holds its requests this long
        # (plus a second) before the client gives up on the connection
        args += ["-X", "request.timeout.ms=2000",
                 "-X", "connect.timeout.ms=1000"]
        self.stop_timeout = stop_timeout
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for ln in self.p.stdout:
            with self.lock:
                self.lines.append(ln.split())

    def acked(self):
        with self.lock:
            return sum(1 for f in self.lines if f[0] == "ack")

    def errors(self):
        with self.lock:
            return [f for f in self.lines if f[0] != "ack"]

    def stop(self):
        self.p.stdin.write("stop\n")
        self.p.stdin.flush()
        rc = self.p.wait(self.stop_timeout)
        self.t.join(30)
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
