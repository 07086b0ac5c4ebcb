"""Read-your-writes across the nodes of a cluster (docs/cluster.md 2.7,
issue 13): a change answered through one node is seen by the next request
through any other node, at once.

Each node applies the metadata log on its own, a heartbeat or so after the
leader. Before, a follower answered from its copy as it was: `acl grant u`
through node B right after `user add u` through node A was refused with
"no user 'u'", a login as u through B failed, `topic describe` through B
showed the topic as it was before `topic alter`.

To make the old behaviour show every time, not now and then, every node
started here delays its apply of the log by DELAY_MS while it is a
follower (the test hook SLUICE_TEST_FOLLOWER_APPLY_DELAY_MS, read by
broker/cluster.c): the follower's copy then lags the leader's by that much.
Changes go through the metadata leader (answered as soon as it applied
them) or through a follower, and are used at once through a follower."""
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import base64

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
import cluster_harness  # noqa: E402
from stomp_raw import Raw  # noqa: E402
from test_cluster_security import ADMIN_PW, secret_file  # noqa: E402
from test_cluster_stomp import ready  # noqa: E402

DELAY_MS = 150
ROUNDS = 8


@pytest.fixture
def lagging(tmp_path, monkeypatch):
    """3 nodes with users (a cluster secret, --bootstrap-admin) whose
    followers apply the metadata log DELAY_MS late; the CLI runs as the
    administrator."""
    monkeypatch.setenv("SLUICE_ADMIN_PASSWORD", ADMIN_PW)
    monkeypatch.setenv("SLUICE_USER", "admin")
    monkeypatch.setenv("SLUICE_PASSWORD", ADMIN_PW)
    monkeypatch.setenv("SLUICE_TEST_FOLLOWER_APPLY_DELAY_MS", str(DELAY_MS))
    yield from cluster_harness.running(tmp_path, 3, extra=[
        "--cluster-secret-file", secret_file(tmp_path),
        "--bootstrap-admin", "admin"])


def run(c, nid, *args, user="admin", pw=ADMIN_PW, input=None):
    env = dict(os.environ, SLUICE_USER=user, SLUICE_PASSWORD=pw)
    addr = "%s:%d" % c.nodes[nid].binary_addr
    return subprocess.run([cluster_harness.cli_path(), "-b", addr] +
                          list(args), capture_output=True, text=True,
                          timeout=60, input=input, env=env)


def ok(c, nid, *args, **kw):
    p = run(c, nid, *args, **kw)
    assert p.returncode == 0, "sluice %s through node %d: %s%s" % (
        " ".join(args), nid, p.stdout, p.stderr)
    return p.stdout


def stomp_login(c, nid, user, pw):
    r = Raw(c.nodes[nid].stomp_addr[1], timeout=30)
    try:
        return r.connect(headers={"login": user, "passcode": pw}).command
    finally:
        r.close()


def http_status(c, nid, user, pw, path="/api/topics"):
    host, port = c.nodes[nid].http_addr
    req = urllib.request.Request("http://%s:%d%s" % (host, port, path))
    tok = base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
    req.add_header("Authorization", "Basic " + tok)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def roles(c):
    """(metadata leader, [followers]) once every node agrees."""
    ldr = ready(c)
    c.wait(lambda: c.agreed_leader([1, 2, 3]) == ldr, "agreement")
    return ldr, [n for n in (1, 2, 3) if n != ldr]


def test_users_and_rules_read_your_writes(lagging):
    c = lagging
    ldr, (f1, f2) = roles(c)
    c.wait(lambda: run(c, f1, "user", "list").returncode == 0 and
           run(c, f2, "user", "list").returncode == 0, "admin everywhere")
    failures = []
    for i in range(ROUNDS):
        # changed through the leader or through the other follower, used
        # at once through a follower
        via = ldr if i % 2 == 0 else f2
        u, pw = "u%d" % i, "pw-%d-one" % i
        ok(c, via, "user", "add", u, "--password-stdin", input=pw + "\n")
        p = run(c, f1, "acl", "grant", u, "--topic", "t%d" % i, "--ops",
                "produce")
        if p.returncode != 0:
            failures.append("round %d: acl grant through node %d after "
                            "user add through node %d: %s" %
                            (i, f1, via, p.stderr.strip()))
        rules = ok(c, f2, "acl", "list", u)
        if "t%d" % i not in rules:
            failures.append("round %d: acl list through node %d after the "
                            "grant through node %d: %r" % (i, f2, f1, rules))
        # logins through a follower right after the change
        ok(c, via, "user", "add", u + "x", "--password-stdin",
           input=pw + "\n")
        if run(c, f1, "topic", "list", user=u + "x", pw=pw).returncode:
            failures.append("round %d: SASL login through node %d after "
                            "user add through node %d" % (i, f1, via))
        ok(c, via, "user", "add", u + "s", "--password-stdin",
           input=pw + "\n")
        if stomp_login(c, f1, u + "s", pw) != "CONNECTED":
            failures.append("round %d: STOMP login through node %d after "
                            "user add through node %d" % (i, f1, via))
        ok(c, via, "user", "add", u + "h", "--password-stdin",
           input=pw + "\n")
        st = http_status(c, f1, u + "h", pw)
        if st != 200:
            failures.append("round %d: HTTP Basic through node %d after "
                            "user add through node %d: %d" % (i, f1, via, st))
        # a new password, then the old one, right after passwd
        pw2 = "pw-%d-two" % i
        ok(c, via, "user", "passwd", u + "x", "--password-stdin",
           input=pw2 + "\n")
        if run(c, f1, "topic", "list", user=u + "x", pw=pw2).returncode:
            failures.append("round %d: login with the new password through "
                            "node %d after passwd through node %d" %
                            (i, f1, via))
        # revoke, then the rule is gone through another node
        ok(c, via, "acl", "grant", u, "--topic", "t%d" % i, "--ops",
           "produce")
        ok(c, via, "acl", "revoke", u, "--topic", "t%d" % i)
        rules = ok(c, f1, "acl", "list", u)
        if "t%d" % i in rules:
            failures.append("round %d: acl list through node %d still shows "
                            "the rule revoked through node %d" % (i, f1, via))
        # deleted: gone from the list, refused, and its name free again
        ok(c, via, "user", "delete", u + "s")
        if stomp_login(c, f1, u + "s", pw) != "ERROR":
            failures.append("round %d: STOMP login through node %d of a "
                            "user deleted through node %d" % (i, f1, via))
        ok(c, via, "user", "delete", u)
        if u in ok(c, f1, "user", "list").split():
            failures.append("round %d: user list through node %d shows a "
                            "user deleted through node %d" % (i, f1, via))
        p = run(c, f1, "user", "add", u, "--password-stdin", input="pw-again\n")
        if p.returncode != 0:
            failures.append("round %d: user add through node %d of a name "
                            "deleted through node %d: %s" %
                            (i, f1, via, p.stderr.strip()))
    assert not failures, "%d failure(s):\n%s" % (len(failures),
                                                 "\n".join(failures))


def partitions_and_configs(out):
    head = [ln for ln in out.splitlines() if ln.startswith("topic ")]
    cfg = [ln[len("config "):] for ln in out.splitlines()
           if ln.startswith("config ")]
    return int(head[0].split()[3]), cfg


def test_topic_changes_read_your_writes(lagging):
    c = lagging
    ldr, (f1, f2) = roles(c)
    failures = []
    for i in range(ROUNDS):
        via = ldr if i % 2 == 0 else f2
        t = "orders%d" % i
        ok(c, via, "topic", "create", t, "--partitions", "1",
           "--replication-factor", "2")
        p = run(c, f1, "topic", "alter", t, "--config", "retention-ms=%d"
                % (3600000 + i))
        if p.returncode != 0:
            failures.append("round %d: topic alter through node %d after "
                            "topic create through node %d: %s" %
                            (i, f1, via, p.stderr.strip()))
            continue
        n, cfg = partitions_and_configs(ok(c, f2, "topic", "describe", t))
        if "retention-ms=%d" % (3600000 + i) not in cfg:
            failures.append("round %d: describe through node %d after alter "
                            "through node %d: %r" % (i, f2, f1, cfg))
        ok(c, via, "topic", "add-partitions", t, "--count", "3")
        n, cfg = partitions_and_configs(ok(c, f1, "topic", "describe", t))
        if n != 3:
            failures.append("round %d: describe through node %d after "
                            "add-partitions through node %d: %d partition(s)"
                            % (i, f1, via, n))
        # produce to the new partition through a follower, at once
        p = run(c, f1, "produce", t, "--partition", "2", input="m%d\n" % i)
        if p.returncode != 0:
            failures.append("round %d: produce to partition 2 through node "
                            "%d after add-partitions through node %d: %s" %
                            (i, f1, via, p.stderr.strip()))
        # created through a follower (forwarded): known through the other
        # follower at once, and through the node asked
        ok(c, f1, "topic", "create", t + "b", "--partitions", "2")
        for n in (f2, f1):
            p = run(c, n, "topic", "describe", t + "b")
            if p.returncode != 0 or "partitions 2" not in p.stdout:
                failures.append("round %d: describe through node %d after "
                                "create through node %d: %s%s" %
                                (i, n, f1, p.stdout, p.stderr.strip()))
        # an alter that reads the count: a further add through a follower
        p = run(c, f2, "topic", "add-partitions", t, "--count", "4")
        if p.returncode != 0:
            failures.append("round %d: add-partitions to 4 through node %d: "
                            "%s" % (i, f2, p.stderr.strip()))
    assert not failures, "%d failure(s):\n%s" % (len(failures),
                                                 "\n".join(failures))


def test_http_and_admin_reads_see_the_change(lagging):
    """The HTTP API (admin verbs) through a follower after a change through
    the leader: the topic's config and the user list."""
    c = lagging
    ldr, (f1, _) = roles(c)
    host, port = c.nodes[f1].http_addr
    tok = base64.b64encode(("admin:%s" % ADMIN_PW).encode()).decode()
    failures = []
    for i in range(ROUNDS):
        t = "h%d" % i
        ok(c, ldr, "topic", "create", t, "--partitions", "1")
        ok(c, ldr, "topic", "alter", t, "--config", "retention-ms=%d"
           % (7200000 + i))
        req = urllib.request.Request("http://%s:%d/api/topics/%s" %
                                     (host, port, t))
        req.add_header("Authorization", "Basic " + tok)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            failures.append("round %d: GET /api/topics/%s through node %d: "
                            "%d %s" % (i, t, f1, e.code, e.read()[:200]))
            continue
        if str(7200000 + i) not in json.dumps(body):
            failures.append("round %d: GET /api/topics/%s through node %d "
                            "lacks the altered config: %s" %
                            (i, t, f1, json.dumps(body)[:300]))
    assert not failures, "%d failure(s):\n%s" % (len(failures),
                                                 "\n".join(failures))


def test_users_right_after_the_start(lagging):
    """Right after the start each node proposes its own users (here the
    --bootstrap-admin) to the log, and its store follows the log only once
    that is done. A change made in that window was answered before the
    node asked had it (`user list` without the user, `acl grant` refused
    with "no user"); docs/security.md told to wait for the log line. Now
    the answer and the reads wait for it. Only the election is waited for
    (a change needs a metadata leader; it is asked again while the answer
    says "retry")."""
    c = lagging
    c.wait(lambda: all(c.status(n) and c.status(n)["leader"]
                       for n in (1, 2, 3)), "a metadata leader")

    def add():  # "retry" until the leader's address is known
        p = run(c, 2, "user", "add", "alice", "--password-stdin",
                input="alice-pw\n")
        assert p.returncode == 0 or "retry" in p.stderr, p.stderr
        return p.returncode == 0
    c.wait(add, "user add through node 2")
    ok(c, 3, "acl", "grant", "alice", "--topic", "orders", "--ops",
       "produce")
    for n in (1, 2, 3):
        assert "alice" in ok(c, n, "user", "list").split(), n
        rules = ok(c, n, "acl", "list", "alice")
        assert "orders" in rules and "produce" in rules, (n, rules)
        assert run(c, n, "topic", "list", user="alice",
                   pw="alice-pw").returncode == 0, n


def test_reads_right_after_the_metadata_leader_died(lagging):
    """A change the metadata leader answered, then the leader killed at
    once: a read through each other node sees the change. Before, for
    about a heartbeat after a leader change a read could miss it: the
    follower asked the dead leader, got a refused connection and answered
    from its copy (lagging here), and a new leader answered from its copy
    before an entry of its own term had committed, i.e. before it knew
    the old leader's last entries were committed (Raft thesis 6.4). Now a
    new leader answers only once the barrier of its term applied, and the
    asker asks again, of whoever leads then."""
    c = lagging
    failures = []
    for i, what in enumerate(("user", "topic")):
        ldr, (f1, f2) = roles(c)
        name = "gone%d" % i
        if what == "user":
            ok(c, ldr, "user", "add", name, "--password-stdin",
               input="pw-gone\n")
        else:
            ok(c, ldr, "topic", "create", name, "--partitions", "2")
        c.kill9(ldr)
        for n in (f1, f2):
            if what == "user":
                p = run(c, n, "user", "list")
                seen = p.returncode == 0 and name in p.stdout.split()
            else:
                p = run(c, n, "topic", "describe", name)
                seen = p.returncode == 0 and "partitions 2" in p.stdout
            if not seen:
                failures.append("%s %s created through node %d, then node %d "
                                "killed: not seen through node %d: %s%s" %
                                (what, name, ldr, ldr, n, p.stdout,
                                 p.stderr.strip()))
        c.restart(ldr)
    assert not failures, "%d failure(s):\n%s" % (len(failures),
                                                 "\n".join(failures))


def test_concurrent_add_partitions_name_the_count(lagging):
    """Two `topic add-partitions` at once through the two followers (to 3
    and to 4 partitions): each places its new partitions for the count its
    copy shows, so the one applied second was placed for a count that
    changed. It was refused as "malformed input" (or "invalid argument");
    now the error names the topic, its count and the count asked for, as
    Kafka's INVALID_PARTITIONS does."""
    c = lagging
    ldr, (f1, f2) = roles(c)
    failures, conflicts = [], 0
    env = dict(os.environ, SLUICE_USER="admin", SLUICE_PASSWORD=ADMIN_PW)
    for i in range(4):
        t = "race%d" % i
        ok(c, ldr, "topic", "create", t, "--partitions", "1")
        procs = [(want, subprocess.Popen(
            [cluster_harness.cli_path(), "-b",
             "%s:%d" % c.nodes[n].binary_addr, "topic", "add-partitions", t,
             "--count", str(want)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env))
            for n, want in ((f1, 3), (f2, 4))]
        res = []
        for want, p in procs:
            out, err = p.communicate(timeout=60)
            res.append((want, p.returncode, err.strip()))
        done = [want for want, rc, _ in res if rc == 0]
        n, _ = partitions_and_configs(ok(c, f1, "topic", "describe", t))
        if not done or n != max(done):
            failures.append("round %d: %d partitions after %s" % (i, n, res))
        for want, rc, err in res:
            if rc == 0:
                continue
            conflicts += 1
            # placed before the other applied, or asked after it (the
            # node's copy had it: the check before the proposal)
            if ("topic %s already has %d partition(s) (changed "
                    "concurrently); asked for %d" % (t, n, want) not in err
                    and "topic %s has %d partition(s) already" % (t, n)
                    not in err):
                failures.append("round %d: %s" % (i, err))
    assert not failures, "%d failure(s):\n%s" % (len(failures),
                                                 "\n".join(failures))
    assert conflicts, "no round raced (each add saw the other's change)"


def test_a_deleted_users_connections_close_on_every_node(lagging):
    """RabbitMQ closes a deleted user's connections. A STOMP session
    logged in before `user delete` kept working until it closed, on every
    node (docs/security.md said so); a lagging node even took new requests
    from it a heartbeat longer. Now each node closes them when its copy of
    the users applies the deletion (an audit line says so); another user's
    sessions stay open."""
    c = lagging
    ldr, (f1, f2) = roles(c)
    for u in ("leaver", "stayer"):
        ok(c, ldr, "user", "add", u, "--password-stdin", input="pw-" + u +
           "\n")
    sessions = {}
    for n in (1, 2, 3):
        for u in ("leaver", "stayer"):
            r = Raw(c.nodes[n].stomp_addr[1], timeout=10)
            f = r.connect(headers={"login": u, "passcode": "pw-" + u})
            assert f.command == "CONNECTED", (n, u, f)
            sessions[(n, u)] = r
    try:
        ok(c, f2, "user", "delete", "leaver")
        for n in (1, 2, 3):
            # EOF within the socket timeout (10 s); before, it timed out
            frames = sessions[(n, "leaver")].expect_closed()
            assert all(f.command in ("ERROR",) for f in frames), (n, frames)
            c.nodes[n].wait_log(
                lambda t: "user 'leaver' was deleted" in t,
                "node %d's audit line" % n, timeout=10)
            r = sessions[(n, "stayer")]
            r.send("DISCONNECT", {"receipt": "bye"})
            assert r.expect("RECEIPT").headers["receipt-id"] == "bye", n
    finally:
        for r in sessions.values():
            r.close()
