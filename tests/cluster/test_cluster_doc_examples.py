"""docs/cluster.md's examples run, in order, on a real cluster; so do
docs/security.md's blocks marked ``<!-- doc-test: cluster -->`` (a cluster
with a secret and users).

The fenced ``sh`` blocks of docs/cluster.md (without a
``<!-- doc-test: skip (why) -->`` mark) are run command by command, in the
order of the doc, as one operator would type them:

- ``sluiced --node-id N ...`` starts node N with the doc's flags: its
  client listeners on port 0, ``--cluster-listen`` and the addresses of
  ``--cluster-peers`` on ports the test reserved for nodes 1-5, ``--data dN``
  in the test's directory, and the harness's short Raft timings. "The same
  on nodes 2 and 3" (the top of the doc) is done: a bootstrap start also
  starts the peers it names that never ran, with their own id and
  addresses.
- ``export`` lines stay for the commands after them; other commands
  (``openssl rand ...``) run in the test's directory and must exit 0.
- ``kill -TERM "$(pgrep -f 'sluiced --node-id N ')"`` stops that node by
  its pid (never by pgrep: other clusters run on this machine).
- ``sluice -b 10.0.0.N:7410 ...`` runs the CLI against node N's real
  address and must exit 0. Before each one the test waits, as the doc
  tells the operator to, until every running member is ``up`` in
  ``cluster status`` and the nodes agree on the metadata leader, and, after
  a restart, until every partition of orders has isr = replicas.
- A situation the doc states but no command makes is made by the test
  (HOOKS: "node 3 is gone for good" kills node 3 with -9).

The parse rules and marks are those of
bindings/python/tests/test_doc_examples.py (whose parse test checks the
marks of this doc too).
"""
import os
import re
import shlex
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
import sluice_harness  # noqa: E402

ROOT = os.environ.get("SLUICE_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))
import test_doc_examples as docx  # noqa: E402

DOC = "docs/cluster.md"
NODE_ADDR = re.compile(r"\b10\.0\.0\.(\d+):(\d+)\b")
KILL = re.compile(r"^kill -(\w+) .*sluiced --node-id (\d+) ")


class DocCluster:
    def __init__(self, tmp):
        self.tmp = tmp
        self.c = cluster_harness.Cluster(tmp, n=5)
        self.raft = dict(zip(range(1, 6), cluster_harness.reserve_ports(5)))
        self.started = set()
        self.members = set()  # bootstrap peers, then add-node/remove-node
        self.restarted = False
        self.env = dict(os.environ)
        self.env["PATH"] = sluice_harness.bin_dir() + os.pathsep + \
            self.env.get("PATH", "")

    # -- the doc's addresses --------------------------------------------
    def addr(self, nid, port):
        if port == 7420:
            return "127.0.0.1:%d" % self.raft[nid]
        b = self.c.nodes.get(nid)
        assert b is not None and b.running(), \
            "the doc names node %d's address %d, but node %d is not " \
            "running" % (nid, port, nid)
        a = {7410: b.binary_addr, 61613: b.stomp_addr,
             7480: b.http_addr}[port]
        return "%s:%d" % a

    def subst(self, text):
        return NODE_ADDR.sub(lambda m: self.addr(int(m.group(1)),
                                                 int(m.group(2))), text)

    # -- commands ---------------------------------------------------------
    def start(self, text, template=None):
        env, flags = docx.parse_sluiced(text)
        fl = dict(flags)
        nid = int(fl["--node-id"])
        if template is not None:  # "the same on node N"
            nid, fl = template, dict(fl, **{"--node-id": str(template),
                                            "--data": "d%d" % template})
        args = []
        for f, v in fl.items():
            if f in docx.LISTEN_FLAGS:
                v = "127.0.0.1:0"
            elif f == "--data":
                continue
            elif f in ("--cluster-listen", "--cluster-peers"):
                v = re.sub(r"\b10\.0\.0\.(\d+):7420\b",
                           lambda m: "127.0.0.1:%d" % self.raft[
                               int(m.group(1))], v)
                if f == "--cluster-listen" and template is not None:
                    v = "127.0.0.1:%d" % self.raft[nid]
            args += [f] + ([v] if v is not None else [])
        for f in ("--listen", "--stomp-listen", "--http-listen"):
            if f not in fl:
                args += [f, "127.0.0.1:0"]
        for k, v in self.c.timings.items():
            args += ["--" + k, v]
        data = os.path.join(self.tmp, fl["--data"])
        os.makedirs(data, exist_ok=True)
        benv = dict(self.env)
        benv.update(env)
        b = docx.DocBroker(self.tmp, benv, data_dir=data, args=args)
        b.log_path = os.path.join(self.tmp, "node%d.log" % nid)
        b.start()
        if nid in self.started:
            self.restarted = True
        self.started.add(nid)
        self.c.nodes[nid] = b
        if template is None and "--cluster-join" not in fl:
            peers = [int(p.split("@")[0])
                     for p in fl["--cluster-peers"].split(",")]
            if not self.members:
                self.members = set(peers)
            for pid in peers:
                if pid not in self.started:
                    self.start(text, template=pid)

    def kill(self, sig, nid):
        b = self.c.nodes[nid]
        rc = b.stop(getattr(signal, "SIG" + sig))
        assert rc == 0, "node %d exited %r after SIG%s:\n%s" % (
            nid, rc, sig, b.log()[-4000:])

    def sluice(self, nid, *args):
        b = self.c.nodes[nid]
        return subprocess.run(
            [cluster_harness.cli_path(), "-b", "%s:%d" % b.binary_addr] +
            list(args), env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)

    def status(self, nid):
        """{'leader': id, 'nodes': {id: 'up'|'down'}} as node nid says."""
        p = self.sluice(nid, "cluster", "status")
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

    def describe(self, nid, topic):
        """Per-partition 'leader N epoch E replicas A,B isr A,B' lines."""
        p = self.sluice(nid, "topic", "describe", topic)
        if p.returncode != 0:
            return None
        return [line[line.index(" leader "):].strip()
                for line in p.stdout.splitlines()
                if line.startswith("partition ") and " leader " in line]

    def running(self):
        return [n for n, b in self.c.nodes.items() if b.running()]

    def settled(self):
        """Every running member up (as every running member sees it), one
        metadata leader for all, and after a restart isr = replicas on every
        partition of orders."""
        run = [n for n in self.running() if n in self.members]
        st = {n: self.status(n) for n in run}
        if any(s is None or not s["leader"] for s in st.values()):
            return False
        if len(set(s["leader"] for s in st.values())) != 1:
            return False
        for s in st.values():
            if any(s["nodes"].get(n) != "up" for n in run):
                return False
            # a member that is not running is fenced ("down") by then, as
            # 10.6 describes a dead node
            if any(s["nodes"].get(n) == "up" for n in self.members
                   if n not in run):
                return False
        if self.restarted:
            d = self.describe(run[0], "orders")
            if d is None:
                return False
            for line in d:
                f = line.split()
                if f[f.index("replicas") + 1] != f[f.index("isr") + 1]:
                    return False
        return True

    def cli(self, cmd, check=True):
        self.c.wait(self.settled, "the cluster to settle before %r" % cmd,
                    timeout=60)
        self.restarted = False
        text = self.subst(cmd)
        w = shlex.split(cmd.split("|")[-1])
        if w[3:5] == ["cluster", "add-node"]:
            self.members.add(int(w[5]))
        elif w[3:5] == ["cluster", "remove-node"]:
            self.members.discard(int(w[5]))
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", text],
                           cwd=self.tmp, env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=180,
                           universal_newlines=True)
        assert p.returncode == 0 or not check, "%s exited %d:\n%s\n%s" % (
            cmd, p.returncode, p.stdout, self.c.log_tails())
        return p.stdout


def commands(text):
    """The logical lines of a sh block, continuations joined, comments and
    blank lines dropped."""
    out = []
    for line in text.replace("\\\n", " ").split("\n"):
        if line.strip() and not line.strip().startswith("#"):
            out.append(line.strip())
    return out


HOOKS = {
    # 10.6: the doc's situation, made by the test
    "node 3 is gone for good": lambda dc: dc.c.nodes[3].kill9(),
}


def run_block(dc, b):
    """Run one block of a doc on dc's nodes; its output."""
    for key, hook in HOOKS.items():
        if key in b.text:
            hook(dc)
    out = ""
    if b.lang == "console":  # sluice commands that may fail
        for cmd, expect in docx.console_commands(b, b.text):
            got = dc.cli(cmd, check=False)
            docx.check_output("%s: %s" % (b, cmd), expect, got)
            out += got
        return out
    assert b.lang == "sh", "%s: only sh and console blocks run here" % b
    for cmd in commands(b.text):
        m = KILL.match(cmd)
        words = [w for w in shlex.split(cmd)
                 if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)]
        if words[0] == "sluiced":
            dc.start(cmd)
        elif m:
            dc.kill(m.group(1), int(m.group(2)))
        elif cmd.startswith("export "):
            for kv in shlex.split(cmd)[1:]:
                k, v = kv.split("=", 1)
                dc.env[k] = v
        elif re.search(r"(^|\| *)sluice ", cmd):
            out += dc.cli(cmd)
        else:  # a command of the operator's shell (openssl, a variable)
            p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", cmd],
                               cwd=dc.tmp, env=dc.env,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=60)
            assert p.returncode == 0, "%s: %r exited %d:\n%s" % (
                b, cmd, p.returncode, p.stdout)
            out += p.stdout
    if b.expect:
        docx.check_output(str(b), b.expect, out)
    return out


def test_cluster_doc_examples_run_in_order(tmp_path):
    dc = DocCluster(str(tmp_path))
    ran = []
    try:
        for b in docx.blocks_of(DOC):
            if b.mark is not None or b.lang not in docx.RUN_LANGS:
                continue
            run_block(dc, b)
            ran.append(str(b))
        # what the doc's steps leave, as its text says: nodes 1 and 3 gone,
        # 2, 4 and 5 up; orders with 8 partitions, its retention changed,
        # orders/0 on nodes 2, 4 and 5 once the last move is done
        assert len(ran) >= 8, ran
        st = dc.status(2)
        assert st["nodes"] == {2: "up", 4: "up", 5: "up"}, st
        dc.restarted = True  # wait for isr = replicas
        dc.c.wait(lambda: dc.settled() and sorted(
            dc.describe(2, "orders")[0].split()[5].split(",")) ==
            ["2", "4", "5"], "orders/0 on nodes 2, 4 and 5")
        out = dc.cli("sluice -b 10.0.0.2:7410 topic describe orders")
        assert "topic orders partitions 8" in out, out
        assert "config retention-ms=3600000" in out, out
    finally:
        dc.c.stop_all()


def test_security_doc_cluster_examples_run_in_order(tmp_path):
    """docs/security.md's blocks marked `<!-- doc-test: cluster -->` (a
    cluster with a secret and users), in order, on three nodes."""
    dc = DocCluster(str(tmp_path))
    blocks = [b for b in docx.blocks_of("docs/security.md")
              if b.mark == "cluster"]
    assert blocks
    try:
        for b in blocks:
            run_block(dc, b)
        # the doc: users and rules are on every node
        for nid in (1, 2, 3):
            dc.c.wait(lambda: "alice\tuser" in dc.sluice(
                nid, "user", "list").stdout, "alice on node %d" % nid)
            dc.c.wait(lambda: re.search(r"alice\s.*orders.*produce", dc.sluice(
                nid, "acl", "list", "alice").stdout),
                "alice's rule on node %d" % nid)
        # the nodes use the secret (without it each warns at start)
        for nid in (1, 2, 3):
            assert "no cluster-secret-file" not in dc.c.nodes[nid].log()
    finally:
        dc.c.stop_all()
