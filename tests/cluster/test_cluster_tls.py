"""libsluice over TLS is routed to partition leaders (docs/cluster.md 5):
a 3-node cluster whose nodes also listen for the binary protocol over TLS
(--tls-listen); the CLI, given every node's TLS address as its bootstrap
list, sends each partition's records to that partition's leader over TLS
and reads them back from it. The delivery timeout is short, so a client
that kept everything on its bootstrap connection (and got NOT_LEADER for
the partitions other nodes lead) would fail."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
from sluice_tls import Pki  # noqa: E402
from test_cluster_failover import parse, same_everywhere, wait_all_up  # noqa


@pytest.fixture
def tls_cluster(tmp_path):
    pki = Pki(str(tmp_path / "pki"))
    cert, key = pki.server("server")
    c = cluster_harness.Cluster(tmp_path, n=3, extra=[
        "--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key])
    c.start()
    c.ca = pki.ca
    yield c
    c.stop_all()


def tls_cli(c, boot, *args, stdin=None):
    addrs = ",".join("%s:%d" % c.nodes[n].tls_addr for n in boot)
    return subprocess.run(
        [cluster_harness.cli_path(), "-b", addrs, "--tls-ca", c.ca,
         "-X", "delivery.timeout.ms=8000", "-X", "request.timeout.ms=3000"]
        + list(args), input=stdin, capture_output=True, text=True,
        timeout=60)


def test_tls_clients_are_routed_to_the_leaders(tls_cluster):
    c = tls_cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "tls", "--partitions", "3",
          "--replication-factor", "3")
    pl = parse(c.wait(lambda: same_everywhere(c, "tls", all3, 3),
                      "tls everywhere"))
    leaders = [ldr for ldr, _, _, _ in pl]
    assert len(set(leaders)) > 1, pl  # partitions led by several nodes
    # bootstrap on the node leading partition 0 first: the others' records
    # must go to other nodes
    boot = [leaders[0]] + [n for n in all3 if n != leaders[0]]
    for p in range(3):
        r = tls_cli(c, boot, "produce", "tls", "--partition", str(p),
                    "--acks", "durable",
                    stdin="".join("p%d-r%d\n" % (p, i) for i in range(5)))
        assert r.returncode == 0, (p, leaders, r.stderr)
    for p in range(3):
        want = ["p%d-r%d" % (p, i) for i in range(5)]
        # stored on the leader (and copied to every replica)
        c.wait(lambda: c.ends(leaders[p], "tls")[p] == 5,
               "partition %d on its leader" % p)
        r = tls_cli(c, boot, "consume", "tls", "--partition", str(p),
                    "--from-beginning", "--count", "5")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == want


def test_tls_queue_consumer_stays_on_tls(tls_cluster):
    """A queue consumer over TLS does not try its group's coordinator at
    the registered plaintext address (a TLS handshake there is refused and
    logged); it finds the coordinator's TLS address in its bootstrap list
    (every node's, docs/cluster.md 5 and 6), whichever entry it tries
    first."""
    c = tls_cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "tq", "--partitions", "3",
          "--replication-factor", "3")
    c.wait(lambda: same_everywhere(c, "tq", all3, 3), "tq everywhere")
    for p in range(3):
        c.cli(1, "produce", "tq", "--partition", str(p), "--acks",
              "durable", input="q%d\n" % p)
    got = []
    for boot in all3:  # the coordinator is another node for two of these
        order = [boot] + [n for n in all3 if n != boot]
        r = tls_cli(c, order, "queue", "consume", "tq", "--group",
                    "g%d" % boot, "--count", "3")
        assert r.returncode == 0, r.stderr
        got.append(sorted(r.stdout.split()))
    assert got == [["q0", "q1", "q2"]] * 3
    for n in all3:
        assert "tls-on-plain" not in c.nodes[n].log() and \
            "TLS handshake on the plaintext" not in c.nodes[n].log()
