"""STOMP virtual hosts (issue 19): --vhosts a,b against a real sluiced.

CONNECT's host chooses the vhost: "/" (or none) the default one, a
configured name its own namespace, anything else ERROR Bad CONNECT. The
same destination in two vhosts is two queues: messages never cross (each
test checks the order of what arrives, so a stray message would show).
"""
import os
import subprocess

import pytest

from conftest import Broker, Raw, bin_dir


@pytest.fixture(scope="module")
def vb():
    b = Broker(args=["--vhosts", "a, b"]).start()
    yield b
    b.cleanup()


def conn(b, host):
    r = Raw(b.stomp_port)
    h = {"accept-version": "1.2"}
    if host is not None:
        h["host"] = host
    r.send("CONNECT", h)
    f = r.read_frame()
    assert f.command == "CONNECTED", f
    r.version = "1.2"
    return r


def send(r, dest, body):
    r.send("SEND", {"destination": dest, "receipt": "s-" + body}, body)
    f = r.read_frame()
    assert f.command == "RECEIPT", f


def next_message(r):
    f = r.read_frame()
    assert f.command == "MESSAGE", f
    return f


def test_same_queue_name_in_two_vhosts(vb):
    d, a, b = conn(vb, "/"), conn(vb, "a"), conn(vb, "b")
    send(d, "/queue/jobs", "in-default")
    send(a, "/queue/jobs", "in-a")
    send(b, "/queue/jobs", "in-b")
    for r, want in ((a, "in-a"), (b, "in-b"), (d, "in-default")):
        r.send("SUBSCRIBE", {"destination": "/queue/jobs", "id": "1"})
        m = next_message(r)
        assert m.body.decode() == want
        assert m.headers["destination"] == "/queue/jobs"
    # what each sends next is the next thing it gets: nothing crossed
    for r, tag in ((a, "a2"), (b, "b2"), (d, "d2")):
        send(r, "/queue/jobs", tag)
    for r, tag in ((a, "a2"), (b, "b2"), (d, "d2")):
        assert next_message(r).body.decode() == tag
    for r in (d, a, b):
        r.close()
    # the binary protocol sees them under their full names
    p = subprocess.run([os.path.join(bin_dir(), "sluice"), "-b",
                        "127.0.0.1:%d" % vb.binary_port, "topic", "list"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    names = p.stdout.decode()
    for t in ("vhost.a.jobs", "vhost.b.jobs"):
        assert t in names, names


def test_no_host_is_the_default_vhost(vb):
    d = conn(vb, None)
    slash = conn(vb, "/")
    send(d, "/queue/nohost", "x1")
    slash.send("SUBSCRIBE", {"destination": "/queue/nohost", "id": "1"})
    assert next_message(slash).body == b"x1"
    d.close()
    slash.close()


def test_unknown_vhost_refused(vb):
    for host in ("c", "whatever.example", "a.b"):
        r = Raw(vb.stomp_port)
        r.send("CONNECT", {"accept-version": "1.2", "host": host})
        f = r.read_frame()
        assert f.command == "ERROR", f
        assert f.headers["message"] == "Bad CONNECT"
        assert "Virtual host '%s' access denied" % host in f.body.decode()
        assert r.expect_closed() == []
        r.close()


def test_default_vhost_cannot_reach_into_a_vhost(vb):
    r = conn(vb, "/")
    r.send("SEND", {"destination": "/queue/vhost.a.jobs", "receipt": "x"},
           b"sneak")
    f = r.read_frame()
    assert f.command == "ERROR", f
    assert f.headers["message"] == "Invalid destination"
    assert "names starting with 'vhost.' are the virtual hosts'" in \
        f.body.decode()
    r.close()


def test_wildcards_stay_in_their_vhost(vb):
    d, a = conn(vb, "/"), conn(vb, "a")
    d.send("SUBSCRIBE", {"destination": "/topic/ev.#", "id": "w",
                         "receipt": "r"})
    assert d.read_frame().command == "RECEIPT"
    a.send("SUBSCRIBE", {"destination": "/topic/ev.#", "id": "w",
                         "receipt": "r"})
    assert a.read_frame().command == "RECEIPT"
    send(a, "/topic/ev.x", "from-a")
    send(d, "/topic/ev.x", "from-default")
    # each sees its own first (its send's receipt came before the other's)
    m = next_message(a)
    assert m.body == b"from-a"
    assert m.headers["destination"] == "/topic/ev.x"
    m = next_message(d)
    assert m.body == b"from-default"
    assert m.headers["destination"] == "/topic/ev.x"
    # and then only its own
    send(a, "/topic/ev.y", "a-again")
    send(d, "/topic/ev.y", "d-again")
    assert next_message(a).body == b"a-again"
    assert next_message(d).body == b"d-again"
    a.close()
    d.close()


def test_durable_names_per_vhost(vb):
    """A durable topic subscription's name (its queue group) is the
    vhost's too: the same id in two vhosts is two subscriptions."""
    a, b = conn(vb, "a"), conn(vb, "b")
    for r in (a, b):
        r.send("SUBSCRIBE", {"destination": "/topic/news", "id": "keep",
                             "durable": "true", "auto-delete": "false",
                             "receipt": "r"})
        assert r.read_frame().command == "RECEIPT"
    send(a, "/topic/news", "a-news")
    send(b, "/topic/news", "b-news")
    assert next_message(a).body == b"a-news"
    assert next_message(b).body == b"b-news"
    send(a, "/topic/news", "a-news2")
    assert next_message(a).body == b"a-news2"
    a.close()
    b.close()


def groups(b):
    p = subprocess.run([os.path.join(bin_dir(), "sluice"), "-b",
                        "127.0.0.1:%d" % b.binary_port, "group", "list"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode()


def test_activemq_durable_subscription_per_vhost(vb):
    """ActiveMQ's client-id + activemq.subscriptionName: one per vhost;
    removing the inactive one in vhost a leaves b's."""
    for host in ("a", "b"):
        r = Raw(vb.stomp_port)
        r.send("CONNECT", {"accept-version": "1.2", "host": host,
                           "client-id": "app"})
        assert r.read_frame().command == "CONNECTED"
        r.version = "1.2"
        r.send("SUBSCRIBE", {"destination": "/topic/amq", "id": "1",
                             "activemq.subscriptionName": "s",
                             "receipt": "r"})
        assert r.read_frame().command == "RECEIPT"
        r.close()
    g = groups(vb)
    assert "vhost.a.app.s" in g and "vhost.b.app.s" in g, g
    r = Raw(vb.stomp_port)
    r.send("CONNECT", {"accept-version": "1.2", "host": "a",
                       "client-id": "app"})
    assert r.read_frame().command == "CONNECTED"
    r.version = "1.2"
    r.send("UNSUBSCRIBE", {"id": "gone", "activemq.subscriptionName": "s",
                           "receipt": "u"})
    assert r.read_frame().command == "RECEIPT"
    r.close()
    g = groups(vb)
    assert "vhost.a.app.s" not in g and "vhost.b.app.s" in g, g


def test_without_vhosts_host_is_ignored():
    b = Broker().start()
    try:
        r = conn(b, "anything.example")
        send(r, "/queue/plain", "p")
        r.send("SUBSCRIBE", {"destination": "/queue/plain", "id": "1"})
        assert next_message(r).body == b"p"
        r.close()
        # no vhosts: vhost.* names are ordinary names
        r = conn(b, "/")
        send(r, "/queue/vhost.a.x", "ok")
        r.close()
    finally:
        b.cleanup()


def test_bad_vhosts_setting_refuses_start():
    b = Broker(args=["--vhosts", "a,b.c"])
    with pytest.raises(RuntimeError) as e:
        b.start()
    assert "vhosts: 'b.c' is not a virtual host name" in str(e.value)
    b.cleanup()


def sluice_as(b, user, pw, *args, stdin=None):
    env = dict(os.environ, SLUICE_USER=user, SLUICE_PASSWORD=pw)
    p = subprocess.run([os.path.join(bin_dir(), "sluice"), "-b",
                        "127.0.0.1:%d" % b.binary_port] + list(args),
                       input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=60)
    assert p.returncode == 0, (args, p.stderr)


def login(b, host, user, pw):
    r = Raw(b.stomp_port)
    r.send("CONNECT", {"accept-version": "1.2", "host": host,
                       "login": user, "passcode": pw})
    f = r.read_frame()
    assert f.command == "CONNECTED", f
    r.version = "1.2"
    return r


def test_user_kept_to_a_vhost_by_prefix_rules():
    """docs/stomp.md, Users and vhosts: rules on the prefix vhost.a.
    let alice use vhost a and nothing else."""
    os.environ["SLUICE_ADMIN_PASSWORD"] = "root-pw"
    try:
        b = Broker(args=["--vhosts", "a,b", "--bootstrap-admin",
                         "root"]).start()
    finally:
        del os.environ["SLUICE_ADMIN_PASSWORD"]
    try:
        sluice_as(b, "root", "root-pw", "user", "add", "alice",
                  "--password-stdin", stdin=b"alice-pw\n")
        for kind in ("--topic", "--group"):
            sluice_as(b, "root", "root-pw", "acl", "grant", "alice", kind,
                      "vhost.a.", "--prefix", "--ops", "all")
        r = login(b, "a", "alice", "alice-pw")
        send(r, "/queue/jobs", "mine")
        r.send("SUBSCRIBE", {"destination": "/queue/jobs", "id": "1"})
        assert next_message(r).body == b"mine"
        r.close()
        for host in ("b", "/"):
            r = login(b, host, "alice", "alice-pw")
            r.send("SEND", {"destination": "/queue/jobs", "receipt": "x"},
                   b"not here")
            f = r.read_frame()
            assert f.command == "ERROR", (host, f)
            assert f.headers["message"] == "access refused"
            r.close()
    finally:
        b.cleanup()
