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


def test_one_tls_bootstrap_address_reaches_every_leader(tls_cluster):
    """Brokers register their TLS address too, and METADATA version 3
    hands it to clients (as Kafka's advertised listeners): a TLS client
    given ONE node's TLS address sends each partition to its leader over
    TLS, the other nodes reached at the TLS addresses the metadata names
    (with a delivery timeout too short for NOT_LEADER retries through the
    bootstrap node), and never at their plaintext address."""
    c = tls_cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)

    def registered():
        # every node registered in every node's image (its REGISTER_NODE
        # carries its TLS address with its binary one)
        for n in all3:
            out = c.cli(n, "cluster", "status", check=False).stdout
            lines = [ln for ln in out.splitlines()
                     if ln.startswith("node ") and " binary 127.0.0.1:" in ln]
            if len(lines) != 3:
                return False
        return True
    c.wait(registered, "every node registered everywhere")
    c.cli(1, "topic", "create", "one", "--partitions", "3",
          "--replication-factor", "3")
    pl = parse(c.wait(lambda: same_everywhere(c, "one", all3, 3),
                      "one everywhere"))
    leaders = [ldr for ldr, _, _, _ in pl]
    assert len(set(leaders)) > 1, pl
    boot = [leaders[0]]  # the others' partitions are led elsewhere
    for p in range(3):
        r = tls_cli(c, boot, "produce", "one", "--partition", str(p),
                    "--acks", "durable",
                    stdin="".join("p%d-r%d\n" % (p, i) for i in range(5)))
        assert r.returncode == 0, (p, leaders, r.stderr)
    for p in range(3):
        c.wait(lambda: c.ends(leaders[p], "one")[p] == 5,
               "partition %d on its leader" % p)
        r = tls_cli(c, boot, "consume", "one", "--partition", str(p),
                    "--from-beginning", "--count", "5")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["p%d-r%d" % (p, i) for i in range(5)]
    for n in all3:
        assert "TLS handshake on the plaintext" not in c.nodes[n].log()


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


def test_tls_queue_consumer_with_one_bootstrap_address(tls_cluster):
    """A queue consumer over TLS given one node's TLS address reaches its
    group's coordinator on another node at the TLS address that node
    registered (METADATA version 3), whichever node it bootstraps from."""
    c = tls_cluster
    all3 = [1, 2, 3]
    wait_all_up(c, all3)
    c.cli(1, "topic", "create", "tq1", "--partitions", "3",
          "--replication-factor", "3")
    c.wait(lambda: same_everywhere(c, "tq1", all3, 3), "tq1 everywhere")
    for p in range(3):
        c.cli(1, "produce", "tq1", "--partition", str(p), "--acks",
              "durable", input="q%d\n" % p)
    got = []
    for g in range(6):  # groups whose coordinators are several nodes
        r = tls_cli(c, [1], "queue", "consume", "tq1", "--group",
                    "one%d" % g, "--count", "3")
        assert r.returncode == 0, r.stderr
        got.append(sorted(r.stdout.split()))
    assert got == [["q0", "q1", "q2"]] * 6
    for n in all3:
        assert "TLS handshake on the plaintext" not in c.nodes[n].log()
