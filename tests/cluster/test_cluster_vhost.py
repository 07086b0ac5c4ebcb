"""STOMP virtual hosts in a 3-node cluster (issue 19, docs/stomp.md): a
/queue subscription on a node that does not coordinate the queue group is
relayed to the node that does (broker/relay.c), and the relay session
carries the client's vhost, so it subscribes the vhost's queue there,
not the default vhost's queue of the same name."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402
from stomp_raw import Raw  # noqa: E402
from test_cluster_failover import parse, same_everywhere  # noqa: E402
from test_cluster_stomp import coordinator, ready, send_receipted  # noqa
from test_cluster_stomp import state_view  # noqa: E402


@pytest.fixture
def vcluster(tmp_path):
    c = cluster_harness.Cluster(tmp_path, n=3, extra=["--vhosts", "a"])
    c.start()
    yield c
    c.stop_all()


def stomp(c, nid, host):
    r = Raw(c.nodes[nid].stomp_addr[1], timeout=60)
    f = r.connect(headers={"host": host})
    assert f.command == "CONNECTED", f
    return r


def test_relayed_queue_subscription_stays_in_its_vhost(vcluster):
    c = vcluster
    all3 = [1, 2, 3]
    ldr = ready(c)
    # the vhost's queue "work" is topic and group vhost.a.work
    for t in ("work", "vhost.a.work"):
        c.cli(ldr, "topic", "create", t, "--partitions", "3",
              "--replication-factor", "3")
    c.wait(lambda: same_everywhere(c, "vhost.a.work", all3, 3),
           "vhost.a.work")
    c.wait(lambda: same_everywhere(c, "work", all3, 3), "work")
    coord = coordinator(state_view(c, all3), "vhost.a.work")
    other = next(n for n in all3 if n != coord)
    d = stomp(c, other, "/")
    send_receipted(d, "/queue/work", ["d-%d" % i for i in range(6)])
    a = stomp(c, other, "a")
    send_receipted(a, "/queue/work", ["a-%d" % i for i in range(6)])
    # a consumer of the vhost's queue on a node that relays it
    r = stomp(c, other, "a")
    r.call("SUBSCRIBE", {"destination": "/queue/work", "id": "1",
                         "ack": "client-individual", "receipt": "sub"})
    got = []
    while len(got) < 6:
        f = r.expect("MESSAGE")
        assert f.headers["destination"] == "/queue/work"
        got.append(f.body.decode())
        r.send("ACK", {"id": f.headers["ack"]})
    assert sorted(got) == ["a-%d" % i for i in range(6)], got
    # nothing of the default vhost's queue follows: the next message is
    # the vhost's next one
    send_receipted(a, "/queue/work", ["a-last"])
    f = r.expect("MESSAGE")
    assert f.body == b"a-last", f
    for x in (d, a, r):
        x.close()
