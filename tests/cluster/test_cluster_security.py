"""Security in a 3-node cluster (docs/security.md, Clusters; issue 16).

Users and rules go through the metadata quorum: a user added on one node
logs in (binary SASL and STOMP) on every node, a rule allows or denies on
every node, a deleted user is refused everywhere, and all of it survives a
node restart and a metadata leader kill. Connections between brokers log
in with the cluster secret: a plain client's replica fetch is refused, a
cluster with a secret replicates and fails over, and a node with a wrong
secret cannot fetch (the leader's log line says why)."""
import json
import os
import struct
import subprocess
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
import cluster_harness  # noqa: E402
import sluice_wire  # noqa: E402
from sluice_tls import Pki  # noqa: E402
from stomp_raw import Raw  # noqa: E402
from test_cluster_failover import parse, same_everywhere  # noqa: E402
from test_cluster_stomp import ready  # noqa: E402

ADMIN_PW = "admin-secret-pw"
API_CLUSTER_FORWARD = 30


def secret_file(tmp_path, name="secret", value="0123456789abcdef-cluster"):
    p = os.path.join(str(tmp_path), name)
    with open(p, "w") as f:
        f.write(value + "\n")
    os.chmod(p, 0o600)
    return p


@pytest.fixture
def secure(tmp_path, monkeypatch):
    """3 nodes with a cluster secret and --bootstrap-admin on each; the
    CLI runs as that administrator unless told otherwise."""
    monkeypatch.setenv("SLUICE_ADMIN_PASSWORD", ADMIN_PW)
    monkeypatch.setenv("SLUICE_USER", "admin")
    monkeypatch.setenv("SLUICE_PASSWORD", ADMIN_PW)
    c = cluster_harness.Cluster(tmp_path, n=3, extra=[
        "--cluster-secret-file", secret_file(tmp_path),
        "--bootstrap-admin", "admin"])
    c.start()
    yield c
    c.stop_all()


def as_user(c, nid, user, pw, *args, input=None):
    env = dict(os.environ, SLUICE_USER=user, SLUICE_PASSWORD=pw)
    addr = "%s:%d" % c.nodes[nid].binary_addr
    return subprocess.run([cluster_harness.cli_path(), "-b", addr] +
                          list(args), capture_output=True, text=True,
                          timeout=60, input=input, env=env)


def binary_login_ok(c, nid, user, pw):
    return as_user(c, nid, user, pw, "topic", "list").returncode == 0


def stomp_login(c, nid, user, pw):
    r = Raw(c.nodes[nid].stomp_addr[1], timeout=30)
    try:
        return r.connect(headers={"login": user, "passcode": pw}).command
    finally:
        r.close()


def logs_in_everywhere(c, nodes, user, pw):
    return all(binary_login_ok(c, n, user, pw) and
               stomp_login(c, n, user, pw) == "CONNECTED" for n in nodes)


def refused_everywhere(c, nodes, user, pw):
    for n in nodes:
        p = as_user(c, n, user, pw, "topic", "list")
        if p.returncode == 0 or "AUTHENTICATION_FAILED" not in p.stderr:
            return False
        if stomp_login(c, n, user, pw) != "ERROR":
            return False
    return True


def add_user(c, nid, name, pw):
    c.cli(nid, "user", "add", name, "--password-stdin", input=pw + "\n")


def produce_result(c, nid, user, pw, topic, partition):
    return as_user(c, nid, user, pw, "produce", topic, "--partition",
                   str(partition), input="m\n")


def test_users_and_rules_go_through_the_quorum(secure):
    c = secure
    all3 = [1, 2, 3]
    ldr = ready(c)
    # the bootstrap administrator is the cluster's, on every node
    c.wait(lambda: logs_in_everywhere(c, all3, "admin", ADMIN_PW), "admin")
    f = [n for n in all3 if n != ldr]
    # a user added through a node that is not the metadata leader
    add_user(c, f[0], "alice", "alice-pw-1")
    c.wait(lambda: logs_in_everywhere(c, all3, "alice", "alice-pw-1"),
           "alice logs in on every node")
    assert refused_everywhere(c, all3, "alice", "wrong")
    for n in all3:
        names = c.cli(n, "user", "list").stdout.split()
        assert "alice" in names and "admin" in names, names
    # a rule denies, then allows, on every node (each produces to the
    # partition it leads)
    c.cli(ldr, "topic", "create", "orders", "--partitions", "3",
          "--replication-factor", "3")
    view = parse(c.wait(lambda: same_everywhere(c, "orders", all3, 3),
                        "orders everywhere"))
    led = {v[0]: p for p, v in enumerate(view)}
    assert sorted(led) == all3, view
    for n in all3:
        p = produce_result(c, n, "alice", "alice-pw-1", "orders", led[n])
        assert p.returncode != 0 and "AUTHORIZATION_FAILED" in p.stderr, \
            (n, p.stderr)
        assert "alice" in p.stderr and "orders" in p.stderr, p.stderr
    c.cli(f[1], "acl", "grant", "alice", "--topic", "orders", "--ops",
          "produce")
    c.wait(lambda: all(produce_result(c, n, "alice", "alice-pw-1", "orders",
                                      led[n]).returncode == 0
                       for n in all3), "the grant on every node")
    for n in all3:
        rules = c.cli(n, "acl", "list", "alice").stdout
        assert "orders" in rules and "produce" in rules, rules
    c.cli(f[0], "acl", "revoke", "alice", "--topic", "orders")
    c.wait(lambda: all(produce_result(c, n, "alice", "alice-pw-1", "orders",
                                      led[n]).returncode != 0
                       for n in all3), "the revoke on every node")
    # refusals name the problem, from any node
    p = c.cli(f[0], "user", "add", "alice", "--password-stdin",
              input="x-pw-123\n", check=False)
    assert p.returncode != 0 and "exists already" in p.stderr, p.stderr
    # a deleted user is refused everywhere
    c.cli(f[1], "user", "delete", "alice")
    c.wait(lambda: refused_everywhere(c, all3, "alice", "alice-pw-1"),
           "alice refused on every node")

    # a node down while users change gets the changes when it comes back
    down = f[1]
    add_user(c, ldr, "dave", "dave-pw-1")
    c.wait(lambda: logs_in_everywhere(c, all3, "dave", "dave-pw-1"), "dave")
    c.kill9(down)
    up = [n for n in all3 if n != down]
    add_user(c, up[0], "bob", "bob-pw-1")
    c.cli(up[1], "user", "delete", "dave")
    c.wait(lambda: logs_in_everywhere(c, up, "bob", "bob-pw-1"), "bob")
    c.restart(down)
    c.wait(lambda: logs_in_everywhere(c, [down], "bob", "bob-pw-1"),
           "bob on the restarted node")
    c.wait(lambda: refused_everywhere(c, [down], "dave", "dave-pw-1"),
           "dave, deleted while it was down, refused on the restarted node")
    assert refused_everywhere(c, [down], "alice", "alice-pw-1")

    # the metadata leader killed: the survivors elect another and take
    # user changes; the old leader learns them when it is back
    ldr = ready(c)
    c.kill9(ldr)
    rest = [n for n in all3 if n != ldr]
    c.wait(lambda: c.agreed_leader(rest), "a new metadata leader")
    c.wait(lambda: c.cli(rest[0], "user", "add", "carol", "--password-stdin",
                         input="carol-pw-1\n", check=False).returncode == 0,
           "carol added after the election")
    c.wait(lambda: logs_in_everywhere(c, rest, "carol", "carol-pw-1"),
           "carol on the survivors")
    c.restart(ldr)
    c.wait(lambda: logs_in_everywhere(c, all3, "carol", "carol-pw-1"),
           "carol on every node")
    assert logs_in_everywhere(c, all3, "bob", "bob-pw-1")


def replica_fetch(addr, topic):
    """FETCH version 2 (a follower's fetch, replica id 2) from a plain
    client connection: (error, message)."""
    body = sluice_wire.fetch_body({topic: [(0, 0, 1 << 20)]})
    body += struct.pack("<i", 2) + struct.pack("<q", 0)
    with sluice_wire.Client(addr) as cl:
        err, msg, _ = sluice_wire.status(
            cl.call(sluice_wire.API_FETCH, body, version=2))
    return err, msg


def broker_login(addr, node, secret):
    """SASL SLUICE-BROKER (docs/protocol.md 4.32) as node `node` with
    `secret`: (error, message) of SASL_AUTHENTICATE."""
    import hashlib
    import hmac
    import time
    nonce = os.urandom(16).hex()
    body = "n=%d,t=%d,r=%s" % (node, int(time.time() * 1000), nonce)
    proof = hmac.new(secret, ("SLUICE-BROKER," + body).encode(),
                     hashlib.sha256).hexdigest()
    msg = ("%s,p=%s" % (body, proof)).encode()
    with sluice_wire.Client(addr) as cl:
        err, m, _ = sluice_wire.status(cl.call(31, sluice_wire.str16(
            "SLUICE-BROKER")))
        if err:
            return err, m
        err, m, _ = sluice_wire.status(cl.call(
            32, struct.pack("<I", len(msg)) + msg))
    return err, m


def test_inter_broker_login(tmp_path):
    good = secret_file(tmp_path, "good", "the-right-cluster-secret")
    bad = secret_file(tmp_path, "bad", "a-wrong-cluster-secret!!")
    c = cluster_harness.Cluster(tmp_path, n=3,
                                extra=["--cluster-secret-file", good])
    c.start()
    try:
        all3 = [1, 2, 3]
        ldr = ready(c)
        c.cli(ldr, "topic", "create", "r", "--partitions", "1",
              "--replication-factor", "3")
        view = parse(c.wait(lambda: same_everywhere(c, "r", all3, 1), "r"))
        lead = view[0][0]
        c.cli(lead, "produce", "r", "--partition", "0", "--acks", "durable",
              input="a\nb\n")
        # replicated to every node (the fetchers logged in with the secret)
        c.wait(lambda: all(c.ends(n, "r") == [2] for n in all3),
               "replicated")
        # a plain client may not fetch as a replica, nor forward commands
        err, msg = replica_fetch(c.nodes[lead].binary_addr, "r")
        assert err == 34 and "brokers of the cluster" in msg, (err, msg)
        with sluice_wire.Client(c.nodes[ldr].binary_addr) as cl:
            err, msg, _ = sluice_wire.status(
                cl.call(API_CLUSTER_FORWARD, b"\x00\x00\x00\x00"))
        assert err == 34 and "CLUSTER_FORWARD" in msg, (err, msg)
        # fail over: the partition leader killed, another takes over and
        # the records are there
        c.kill9(lead)
        rest = [n for n in all3 if n != lead]

        def new_leader():
            v = c.describe(rest[0], "r")
            return v and parse(v)[0][0] in rest and parse(v)[0][0]
        nl = c.wait(new_leader, "a new partition leader")
        c.cli(nl, "produce", "r", "--partition", "0", "--acks", "durable",
              input="c\n")
        got = c.cli(nl, "consume", "r", "--partition", "0",
                    "--from-beginning", "--count", "3").stdout.split()
        assert got == ["a", "b", "c"], got
        c.restart(lead)
        c.wait(lambda: all(c.ends(n, "r") == [3] for n in all3),
               "the old leader caught up")

        # a broker login with a wrong secret (what a node with another
        # cluster-secret-file sends before its fetches) is refused, and
        # the node says why
        err, msg = broker_login(c.nodes[nl].binary_addr, 3,
                                b"a-wrong-cluster-secret!!")
        assert err == 17 and "cluster-secret-file differs" in msg, (err, msg)
        err, msg = broker_login(c.nodes[nl].binary_addr, 3,
                                b"the-right-cluster-secret")
        assert err == 0, (err, msg)
        with open(c.nodes[nl].log_path, errors="replace") as fh:
            text = fh.read()
        assert "broker login from 127.0.0.1" in text and \
            "wrong proof of the cluster secret" in text

        # a node restarted with a wrong secret joins neither the data
        # plane nor the metadata quorum: its Raft connections are refused
        # (the others see it down) and it copies nothing
        wrong = next(n for n in all3 if n != nl)
        c.nodes[wrong].stop()
        node = c.nodes[wrong]
        node.args = [a if a != good else bad for a in node.args]
        node.start()
        c.cli(nl, "produce", "r", "--partition", "0", "--acks", "written",
              input="d\n")
        c.wait(lambda: (c.status(nl) or {"nodes": {}})["nodes"].get(wrong) ==
               "down", "the node with the wrong secret seen down")

        def raft_refused():
            with open(c.nodes[nl].log_path, errors="replace") as fh:
                text = fh.read()
            return ("raft connection from node %d" % wrong in text and
                    "wrong proof of the cluster secret" in text)
        c.wait(raft_refused, "the Raft refusal line")
        assert c.ends(wrong, "r") in (None, [3]), c.ends(wrong, "r")
    finally:
        c.stop_all()


def test_brokers_talk_tls_with_cluster_tls(tmp_path):
    """cluster-tls: nodes register their TLS listeners and reach each
    other over TLS (mutual: each shows its certificate), with the secret;
    a durable produce needs the followers' fetches, so it proves
    replication over those links."""
    pki = Pki(os.path.join(str(tmp_path), "pki"))
    crt, key = pki._issue(
        "node", "/O=Sluice/CN=localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth,clientAuth\n", 30)
    c = cluster_harness.Cluster(tmp_path, n=3, extra=[
        "--cluster-secret-file", secret_file(tmp_path),
        "--tls-listen", "127.0.0.1:0", "--stomp-tls-listen", "127.0.0.1:0",
        "--tls-cert", crt, "--tls-key", key, "--tls-ca", pki.ca,
        "--tls-client-auth", "request", "--cluster-tls", "yes"])
    c.start()
    try:
        all3 = [1, 2, 3]
        ldr = ready(c)
        status = c.cli(ldr, "cluster", "status").stdout
        for n in all3:  # the registered addresses are the TLS listeners
            assert "binary 127.0.0.1:%d" % c.nodes[n].tls_addr[1] in status, \
                status
        c.cli(ldr, "topic", "create", "t", "--partitions", "1",
              "--replication-factor", "3")
        view = parse(c.wait(lambda: same_everywhere(c, "t", all3, 1), "t"))
        lead = view[0][0]
        # a TLS client bootstrapped with every node's TLS address routes
        # to the partition leader among them (docs/cluster.md 5)
        addr = ",".join("localhost:%d" % c.nodes[n].tls_addr[1]
                        for n in all3)
        p = subprocess.run([cluster_harness.cli_path(), "-b", addr,
                            "--tls-ca", pki.ca, "produce", "t",
                            "--partition", "0", "--acks", "durable"],
                           input="x\ny\n", capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        c.wait(lambda: all(c.ends(n, "t") == [2] for n in all3),
               "replicated over TLS")
        # the followers' fetchers at the leader: TLS, the node certificate
        url = "http://%s:%d/api/connections" % c.nodes[lead].http_addr
        with urllib.request.urlopen(url, timeout=30) as r:
            conns = json.loads(r.read())["connections"]
        peers = [x for x in conns if (x.get("user") or "").startswith(
            "(node ")]
        assert len(peers) >= 2, conns
        assert all(x["tls"] and x["tls_subject"] and
                   "CN=localhost" in x["tls_subject"] for x in peers), peers
    finally:
        c.stop_all()
