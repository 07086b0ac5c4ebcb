"""The HTTP API's groups and queues on a 3-node cluster (issue 14,
docs/cluster.md 6.4, docs/http-api.md): every node answers for every
group of the cluster, whichever node coordinates it, with the
coordinator's numbers (lag, in flight, ready), as `sluice group list`
does. The lists are gathered from every node; a request about one group
(describe, peek, purge) is sent on to the group's coordinator. Before,
each node showed only the groups it coordinates itself: a group
coordinated elsewhere was missing from the list and `GET
/api/groups/G` answered 404.

The records held in flight are held by STOMP consumers connected to a
node that does not coordinate the group (their subscription is relayed to
the coordinator, docs/cluster.md 5.1)."""
import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
from test_cluster_security import ADMIN_PW, add_user, secret_file  # noqa
from test_cluster_stomp import (coordinator, create, ready,  # noqa: E402
                                read_messages, state_view, stomp)

N = 20
T = "VirtualTopic.hw"


def api(c, nid, path, method="GET", user=None):
    """(status, JSON document) of an HTTP API call to node nid, as
    user=(name, password) when given."""
    url = "http://%s:%d%s" % (c.nodes[nid].http_addr + (path,))
    req = urllib.request.Request(url, method=method,
                                 data=b"" if method == "POST" else None)
    if user:
        req.add_header("Authorization", "Basic " + base64.b64encode(
            ("%s:%s" % user).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def by(rows, key):
    return {r[key]: r for r in rows}


def test_groups_and_queues_answer_for_the_whole_cluster(cluster):
    c = cluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    create(c, ldr, T, 1)
    view = state_view(c, all3)
    # one queue group coordinated by each node
    groups = {}
    i = 0
    while len(groups) < 3:
        g = "hq%d" % i
        groups.setdefault(coordinator(view, g), g)
        i += 1
    coord = {g: n for n, g in groups.items()}
    c.cli(ldr, "produce", T, "--acks", "durable",
          input="".join("w-%02d\n" % i for i in range(N)))
    # group g acks k records, then a STOMP consumer holds h in flight
    # (an ActiveMQ virtual-topic queue: queue group g over topic T)
    acked, held, holders = {}, {}, {}
    for k, g in enumerate(sorted(coord), start=1):
        acked[g], held[g] = k, k + 1
        c.cli(all3[k % 3], "queue", "consume", T, "--group", g,
              "--count", str(k))
        other = next(n for n in all3 if n != coord[g])
        r = stomp(c, other)
        r.call("SUBSCRIBE", {"destination": "/queue/Consumer.%s.%s" % (g, T),
                             "id": g, "ack": "client-individual",
                             "prefetch-count": str(held[g]),
                             "receipt": "sub-" + g})
        holders[g] = r
    got = {g: [] for g in coord}
    read_messages(holders, lambda: all(len(got[g]) >= held[g]
                                       for g in coord),
                  "each group's records held in flight",
                  lambda g, f: got[g].append(f))

    # the coordinator's own view of its group (scope=node: no routing)
    own = {}
    for g in coord:
        st, doc = api(c, coord[g], "/api/groups/%s?scope=node" % g)
        assert st == 200, doc
        own[g] = doc
        assert doc["kind"] == "queue" and doc["in_flight"] == held[g], doc
        assert doc["lag"] == N - acked[g], doc
    for n in all3:
        st, doc = api(c, n, "/api/groups")
        assert st == 200 and "left_out" not in doc, doc
        listed = by(doc["groups"], "name")
        for g in coord:
            assert g in listed, (n, g, listed)
            for k in ("kind", "lag", "in_flight", "members"):
                assert listed[g][k] == own[g][k], (n, g, listed[g], own[g])
        # names once each, sorted
        names = [x["name"] for x in doc["groups"]]
        assert names == sorted(set(names)), names
        st, doc = api(c, n, "/api/queues")
        assert st == 200, doc
        rows = {(r["topic"], r["group"]): r for r in doc["queues"]}
        for g in coord:
            row = rows[(T, g)]
            assert row["in_flight"] == held[g], (n, row)
            assert row["ready"] == N - acked[g] - held[g], (n, row)
            assert row["consumers"] == 1, (n, row)
        for g in coord:
            st, doc = api(c, n, "/api/groups/" + g)
            assert st == 200 and doc == own[g], (n, g, doc, own[g])
            st, doc = api(c, n, "/api/queues/%s/%s/peek?count=2" % (T, g))
            assert st == 200 and doc["count"] == 2, (n, doc)
    # scope=node: a node lists only what it coordinates, and refuses to
    # describe a group it does not
    for g, n in coord.items():
        other = next(x for x in all3 if x != n)
        st, doc = api(c, other, "/api/groups?scope=node")
        assert g not in by(doc["groups"], "name"), doc
        st, doc = api(c, other, "/api/groups/%s?scope=node" % g)
        assert st == 503 and doc["error"] == "NOT_COORDINATOR", doc
    # scope=cluster is the default, said out loud (it must not be sent on
    # again by the nodes asked); anything else is refused
    st, doc = api(c, 3, "/api/queues?scope=cluster")
    assert st == 200 and {(T, g) for g in coord} <= {
        (r["topic"], r["group"]) for r in doc["queues"]}, doc
    st, doc = api(c, 3, "/api/groups?scope=everywhere")
    assert st == 400 and doc["error"] == "INVALID_ARG", doc
    st, doc = api(c, 2, "/api/groups/nosuch")
    assert st == 404 and doc["error"] == "UNKNOWN_GROUP", doc
    # a record rejected (STOMP NACK requeue:false) goes to the group's DLQ:
    # every node lists the DLQ rows of every group, shows the record, and
    # a purge of the DLQ asked of any node marks it handled everywhere
    # (the DLQ verbs run at the coordinator of its redrive group)
    g = sorted(coord)[1]
    r = holders[g]
    r.send("NACK", {"id": got[g][0].headers["ack"], "requeue": "false",
                    "receipt": "nack"})
    while r.read_frame().command != "RECEIPT":
        pass  # the freed prefetch slot may bring a MESSAGE first
    dlq = T + ".DLQ"
    for n in all3:
        st, doc = api(c, n, "/api/dlqs")
        assert st == 200, doc
        assert {(T, x, dlq) for x in coord} <= {
            (d["source_topic"], d["group"], d["dlq_topic"])
            for d in doc["dlqs"]}, (n, doc)
        # the move to the DLQ is appended after the NACK's receipt
        c.wait(lambda n=n: [x["value"] for x in api(
            c, n, "/api/dlqs/" + dlq)[1].get("records", [])] == [
                got[g][0].body.decode()], "the record in %s on node %d" % (
                    dlq, n))

    def dlq_counts(n):
        """{group: (pending, total)} of the DLQ in node n's queues and
        dlq.list rows, and dlq.show's own."""
        q = {(r["group"], r["dlq_pending"], r["dlq_total"])
             for r in api(c, n, "/api/queues")[1]["queues"]
             if r["topic"] == T}
        d = {(r["group"], r["pending"], r["total"])
             for r in api(c, n, "/api/dlqs")[1]["dlqs"]
             if r["source_topic"] == T}
        s = api(c, n, "/api/dlqs/" + dlq)[1]
        return q, d, (s["pending"], s["total"])
    # the counts are the redrive group's coordinator's, whichever node
    # coordinates the queue group of a row
    want = {(x, 1, 1) for x in coord}
    for n in all3:
        assert dlq_counts(n) == (want, want, (1, 1)), n
    other = next(x for x in all3 if x != coordinator(view, dlq + ".redrive"))
    st, doc = api(c, other, "/api/dlqs/%s/purge" % dlq, "POST")
    assert st == 200 and doc["purged"] == 1, doc
    want = {(x, 0, 1) for x in coord}
    for n in all3:
        st, doc = api(c, n, "/api/dlqs/" + dlq)
        assert st == 200 and doc["count"] == 0, (n, doc)
        assert dlq_counts(n) == (want, want, (0, 1)), n
    # a purge asked of a node that does not coordinate the group is done
    # by its coordinator: every node then shows nothing ready
    g = sorted(coord)[0]
    other = next(x for x in all3 if x != coord[g])
    st, doc = api(c, other, "/api/queues/%s/%s/purge" % (T, g), "POST")
    assert st == 200 and doc["purged"] == N - acked[g], doc
    for n in all3:
        rows = {(r["topic"], r["group"]): r
                for r in api(c, n, "/api/queues")[1]["queues"]}
        assert rows[(T, g)]["ready"] == 0, (n, rows)
    for r in holders.values():
        r.close()


@pytest.fixture
def secure(tmp_path, monkeypatch):
    """3 nodes with a cluster secret and an administrator (the CLI runs
    as it), as test_cluster_security's."""
    monkeypatch.setenv("SLUICE_ADMIN_PASSWORD", ADMIN_PW)
    monkeypatch.setenv("SLUICE_USER", "admin")
    monkeypatch.setenv("SLUICE_PASSWORD", ADMIN_PW)
    c = cluster_harness.Cluster(tmp_path, n=3, extra=[
        "--cluster-secret-file", secret_file(tmp_path),
        "--bootstrap-admin", "admin"])
    c.start()
    yield c
    c.stop_all()


def test_the_lists_show_what_the_user_may_see_on_every_node(secure):
    """With users, the nodes gather the lists logged in to each other as
    brokers (which see everything), so the node asked filters the union
    by the caller's rules: a user allowed one group sees it, and only it,
    from every node, including nodes that do not coordinate it."""
    c = secure
    all3 = [1, 2, 3]
    ldr = ready(c)
    create(c, ldr, "sec", 1)
    view = state_view(c, all3)
    groups = {}
    i = 0
    while len(groups) < 3:
        g = "sg%d" % i
        groups.setdefault(coordinator(view, g), g)
        i += 1
    c.cli(ldr, "produce", "sec", "--acks", "durable",
          input="".join("s-%d\n" % i for i in range(10)))
    for g in groups.values():
        c.cli(ldr, "queue", "consume", "sec", "--group", g, "--count", "2")
    mine = groups[1]
    add_user(c, ldr, "dave", "dave-pw-01")
    c.cli(ldr, "acl", "grant", "dave", "--group", mine, "--ops", "consume")
    dave = ("dave", "dave-pw-01")
    admin = ("admin", ADMIN_PW)

    def seen(n, path, key, field, who):
        st, doc = api(c, n, path, user=who)
        return sorted(x[field] for x in doc[key]) if st == 200 else st
    for n in all3:
        c.wait(lambda n=n: seen(n, "/api/groups", "groups", "name",
                                dave) == [mine],
               "dave's rule on node %d" % n)
        assert seen(n, "/api/queues", "queues", "group", dave) == [mine]
        want = sorted(groups.values())
        assert [g for g in seen(n, "/api/groups", "groups", "name", admin)
                if g in want] == want
        st, doc = api(c, n, "/api/groups/" + mine, user=dave)
        assert st == 200 and doc["lag"] == 8, doc
        st, doc = api(c, n, "/api/groups/" + groups[2], user=dave)
        assert st == 403, doc
        st, doc = api(c, n, "/api/groups")
        assert st == 401, doc


def test_a_node_that_does_not_answer_is_left_out_and_named(tmp_path):
    """A node that does not answer (paused; a session timeout of 8 s
    keeps the controller from fencing it meanwhile) is left out of a list
    after 5 s and named in "left_out"; the other nodes' groups are
    listed, and `sluice queues` says on stderr which node is missing.
    (Not longer: the coordinator lease's margin grows with the session
    timeout, cluster/lease.c, and would leave no lease at 20 s.)"""
    c = cluster_harness.Cluster(tmp_path, n=3)
    c.timings["cluster-session-timeout-ms"] = "8000"
    c.start()
    try:
        all3 = [1, 2, 3]
        ldr = ready(c)
        create(c, ldr, T, 1)
        view = state_view(c, all3)
        coord = {}
        i = 0
        while len(set(coord.values())) < 3:
            coord["lq%d" % i] = coordinator(view, "lq%d" % i)
            i += 1
        c.cli(ldr, "produce", T, "--acks", "durable", input="x\n")
        for g in coord:
            c.cli(ldr, "queue", "consume", T, "--group", g, "--count", "1")
        gone = next(n for n in all3 if n != ldr)
        asked = next(n for n in all3 if n not in (gone,))
        c.nodes[gone].proc.send_signal(signal.SIGSTOP)
        try:  # both at once: each waits 5 s for the paused node
            cli = subprocess.Popen(
                [cluster_harness.cli_path(), "-b", "%s:%d" %
                 c.nodes[asked].binary_addr, "queues"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            st, doc = api(c, asked, "/api/queues")
            _, err = cli.communicate(timeout=60)
        finally:
            c.nodes[gone].proc.send_signal(signal.SIGCONT)
        assert st == 200 and doc.get("left_out") == [gone], doc
        listed = {r["group"] for r in doc["queues"] if r["topic"] == T}
        assert listed == {g for g in coord if coord[g] != gone}, doc
        assert cli.returncode == 0 and "node %d did not answer" % gone in \
            err, err
    finally:
        c.stop_all()
