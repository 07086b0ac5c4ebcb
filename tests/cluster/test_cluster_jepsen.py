"""A short Jepsen-style check of a 3-node cluster (docs/cluster.md 3.6):
two producers send unique records with acks=durable, each to the node the
metadata names as the partition's leader, while a nemesis kill -9s or
pauses (SIGSTOP) the leader, round after round, and brings it back. Then a
full read from the final leader, and the verdict:

  - every acknowledged record is present;
  - no record appears that was never sent, and none appears twice (each
    record is sent once: a failed attempt is not retried, so there is
    nothing for an idempotent producer to deduplicate);
  - each producer's acknowledged records are in the order it sent them;
  - every replica ends with the same log.

JEPSEN_ROUNDS (default 3) sets the nemesis rounds; scripts/jepsen-cluster.sh
runs the long mode. Every wait is for an observable condition."""
import os
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
from test_cluster_failover import parse, same_everywhere, wait_all_up  # noqa

ROUNDS = int(os.environ.get("JEPSEN_ROUNDS", "3"))


class Producer(threading.Thread):
    def __init__(self, c, name, down):
        super().__init__(daemon=True)
        self.c, self.name, self.down = c, name, down
        self.stop = threading.Event()
        self.acked, self.sent = [], []
        self.last_error = None  # (node, the CLI's stderr) of the last failure
        self.lock = threading.Lock()

    def leader(self):
        for n in (1, 2, 3):
            if n in self.down or not self.c.nodes[n].running():
                continue
            try:
                p = self.c.cli(n, "topic", "describe", "j", check=False)
            except subprocess.TimeoutExpired:
                continue
            for ln in p.stdout.splitlines():
                f = ln.split()
                if ln.startswith("partition 0 ") and "leader" in f:
                    ldr = int(f[f.index("leader") + 1])
                    if ldr > 0 and ldr not in self.down:
                        return ldr
        return None

    def run(self):
        seq = 0
        while not self.stop.is_set():
            ldr = self.leader()
            if not ldr:
                continue
            rec = "%s-%05d" % (self.name, seq)
            seq += 1
            with self.lock:
                self.sent.append(rec)
            b = self.c.nodes[ldr]
            try:
                p = subprocess.run(
                    [cluster_harness.cli_path(), "-b",
                     "%s:%d" % b.binary_addr, "-X",
                     "request.timeout.ms=3000", "-X",
                     "connect.timeout.ms=1000", "-X",
                     "delivery.timeout.ms=0", "produce", "j",
                     "--partition", "0", "--acks", "durable"],
                    input=rec + "\n", capture_output=True, text=True,
                    timeout=20)
                ok = p.returncode == 0
                if not ok:
                    self.last_error = (ldr, p.stderr.strip()[-300:])
            except (subprocess.TimeoutExpired, TypeError):
                ok = False
            if ok:
                with self.lock:
                    self.acked.append(rec)

    def n_acked(self):
        with self.lock:
            return len(self.acked)


def test_acknowledged_records_survive_kills_and_pauses(cluster):
    c = cluster
    all3 = [1, 2, 3]
    ldr = wait_all_up(c, all3)
    c.cli(ldr, "topic", "create", "j", "--partitions", "1",
          "--replication-factor", "3")
    c.wait(lambda: same_everywhere(c, "j", all3, 1), "j")
    down = set()
    prods = [Producer(c, "p%d" % i, down) for i in range(2)]
    for p in prods:
        p.start()
    try:
        for r in range(ROUNDS):
            def full_isr():
                v = same_everywhere(c, "j", all3, 1)
                return v and sorted(parse(v)[0][3]) == all3 and \
                    parse(v)[0][0]
            pl = c.wait(full_isr, "round %d: a leader with a full ISR" % r,
                        timeout=60)
            before = sum(p.n_acked() for p in prods)
            c.wait(lambda: sum(p.n_acked() for p in prods) >= before + 5,
                   "round %d: acks before the fault" % r, timeout=60)
            rest = [n for n in all3 if n != pl]
            pause = r % 2 == 1
            down.add(pl)
            if pause:
                c.nodes[pl].proc.send_signal(signal.SIGSTOP)
            else:
                c.kill9(pl)

            def moved():
                v = same_everywhere(c, "j", rest, 1)
                return v and parse(v)[0][0] in rest
            c.wait(moved, "round %d: a new leader" % r, timeout=60)
            mid = sum(p.n_acked() for p in prods)
            try:
                c.wait(lambda: sum(p.n_acked() for p in prods) >= mid + 5,
                       "round %d: acks on the new leader" % r, timeout=60)
            except AssertionError as e:
                raise AssertionError("%s\nthe producers' last errors: %r" % (
                    e, [p.last_error for p in prods]))
            if pause:
                c.nodes[pl].proc.send_signal(signal.SIGCONT)
            else:
                c.restart(pl)
            down.discard(pl)
            wait_all_up(c, all3)
    finally:
        for p in prods:
            p.stop.set()
        for p in prods:
            p.join(60)
        for b in c.nodes.values():
            if b.running():
                b.proc.send_signal(signal.SIGCONT)

    def settled():
        v = same_everywhere(c, "j", all3, 1)
        if not v or sorted(parse(v)[0][3]) != all3:
            return None
        ends = [c.ends(n, "j") for n in all3]
        return ends[0] if all(e == ends[0] for e in ends) else None
    end = c.wait(settled, "every replica at the same end", timeout=60)[0]
    logs = {}
    for n in all3:
        logs[n] = c.cli(n, "consume", "j", "--partition", "0",
                        "--from-beginning", "--count",
                        str(end)).stdout.split()
    final = logs[all3[0]]
    assert all(logs[n] == final for n in all3), "replicas differ"
    sent = set(r for p in prods for r in p.sent)
    acked = [r for p in prods for r in p.acked]
    assert len(acked) >= ROUNDS * 10
    assert len(final) == len(set(final)), "a record appears twice"
    assert set(final) <= sent, "a record that was never sent"
    missing = [r for r in acked if r not in set(final)]
    assert not missing, "acknowledged records lost: %r" % missing[:10]
    pos = {r: i for i, r in enumerate(final)}
    for p in prods:
        idx = [pos[r] for r in p.acked]
        assert idx == sorted(idx), "%s: acknowledged out of order" % p.name
