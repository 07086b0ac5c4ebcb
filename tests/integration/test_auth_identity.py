"""Who a connection is (issue 16): TLS client certificates as users
(tls-cert-login, binary implicit and SASL EXTERNAL, STOMP), audit lines of
logins (successes, and failures bounded), and listings filtered to what
the user may describe. A real sluiced; certificates made by the test with
the openssl CLI (tests/harness/sluice_tls.py)."""
import os
import re
import socket
import ssl
import struct
import subprocess
import time
import urllib.error
import urllib.request
import base64
import json

import pytest

import sluice_wire as sw
from sluice_harness import Broker
from sluice_tls import Pki
from stomp_raw import read_frame, stomp_frame

WAIT = 30  # seconds an expected event may take at most (never slept)
ADMIN_PW = "root-secret"
API_SASL_HANDSHAKE = 31
API_SASL_AUTHENTICATE = 32
AUTHENTICATION_FAILED = 17


def sluice_bin():
    d = os.environ.get("SLUICE_BIN_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bin")
    return os.path.join(d, "sluice")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(str(tmp_path_factory.mktemp("pki")))
    p.srv = p.server("server")
    p.alice = p.client("alice")
    p.nobody = p.client("nobody")
    p.carol = p.client_san("carol", "Carol Example",
                           "email:carol@example.com")
    other = Pki(str(tmp_path_factory.mktemp("other")), "Some Other CA")
    p.mallory = other.client("alice")  # CN=alice, but not of our CA
    return p


def cli(b, *args, user=None, password=None, cert=None, ca=None, stdin=None):
    env = dict(os.environ)
    env.pop("SLUICE_USER", None)
    env.pop("SLUICE_PASSWORD", None)
    if user:
        env["SLUICE_USER"] = user
    if password:
        env["SLUICE_PASSWORD"] = password
    if cert:
        addr = ["-b", "localhost:%d" % b.tls_addr[1], "--tls-ca", ca,
                "--tls-cert", cert[0], "--tls-key", cert[1]]
    else:
        addr = ["-b", "%s:%d" % b.binary_addr]
    p = subprocess.run([sluice_bin()] + addr + list(args), input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def admin(b, *args, stdin=None):
    rc, out, err = cli(b, *args, user="root", password=ADMIN_PW, stdin=stdin)
    assert rc == 0, "sluice %s -> %d: %s" % (" ".join(args), rc, err)
    return out


def start(tmp_path, pki, extra=(), name="data"):
    os.environ["SLUICE_ADMIN_PASSWORD"] = ADMIN_PW
    try:
        b = Broker(str(tmp_path / name), args=[
            "--bootstrap-admin", "root",
            "--tls-listen", "127.0.0.1:0", "--stomp-tls-listen",
            "127.0.0.1:0", "--tls-cert", pki.srv[0], "--tls-key",
            pki.srv[1], "--tls-ca", pki.ca, "--tls-client-auth",
            "request"] + list(extra)).start()
    finally:
        del os.environ["SLUICE_ADMIN_PASSWORD"]
    return b


@pytest.fixture
def brokers():
    made = []
    yield made
    for b in made:
        try:
            if b.running():
                rc = b.stop()
                assert rc == 0, "sluiced exited with %r; log:\n%s" % (
                    rc, b.log())
        finally:
            b.cleanup()


def ctx(pki, cert=None):
    c = ssl.create_default_context(cafile=pki.ca)
    if cert:
        c.load_cert_chain(*cert)
    return c


def tls_wire(addr, pki, cert=None):
    """A sluice_wire.Client over TLS."""
    c = sw.Client.__new__(sw.Client)
    s = socket.create_connection(addr, timeout=WAIT)
    c.sock = ctx(pki, cert).wrap_socket(s, server_hostname="localhost")
    c.corr = 0
    c.buf = bytearray()
    return c


def status(body):
    err, msg, r = sw.status(body)
    return err, msg, r


def sasl(c, mech, data):
    """SASL_HANDSHAKE mech, then one SASL_AUTHENTICATE data: (err, msg)
    of the first that failed, or (0, mechanisms)."""
    err, msg, r = status(c.call(API_SASL_HANDSHAKE, sw.str16(mech)))
    if err:
        return err, msg
    mechs = [r.str16() for _ in range(r.u32())]
    err, msg, r = status(c.call(API_SASL_AUTHENTICATE,
                                struct.pack("<I", len(data)) + data))
    if err:
        return err, msg
    return 0, mechs


def stomp_tls(b, pki, cert, headers=()):
    s = socket.create_connection(b.stomp_tls_addr, timeout=WAIT)
    s = ctx(pki, cert).wrap_socket(s, server_hostname="localhost")
    s.sendall(stomp_frame("CONNECT", [("accept-version", "1.2"),
                                      ("host", "/")] + list(headers)))
    return s, read_frame(s)


def audit(b, text):
    return [ln for ln in b.log().splitlines() if " audit " in ln and
            text in ln]


def wait_audit(b, text, count=1):
    b.wait_log(lambda log: len(audit(b, text)) >= count,
               "audit line %r" % text, WAIT)
    return audit(b, text)


# ---- TLS client certificates as users ---------------------------------------

def test_certificate_logs_in_on_binary_without_password(tmp_path, pki,
                                                         brokers):
    """tls-cert-login cn: the CLI with alice's certificate and no password
    is alice (produce allowed by her rule, create refused by the lack of
    one); an audit line names user, peer, mechanism and certificate.
    Without tls-cert-login the same call is refused: log in first."""
    b = start(tmp_path, pki, ["--tls-cert-login", "cn"])
    brokers.append(b)
    admin(b, "user", "add", "alice", "--password-stdin", stdin=b"alice-pw\n")
    admin(b, "topic", "create", "a.t")
    admin(b, "acl", "grant", "alice", "--topic", "a.t", "--ops", "produce")
    rc, out, err = cli(b, "produce", "a.t", cert=pki.alice, ca=pki.ca,
                       stdin=b"by certificate\n")
    assert rc == 0, err
    lines = wait_audit(b, "authentication succeeded: user 'alice'")
    assert re.search(r"authentication succeeded: user 'alice' from "
                     r"127\.0\.0\.1:\d+ over binary \(certificate\), TLS "
                     r"client certificate CN=alice,O=Sluice", lines[0]), lines
    rc, out, err = cli(b, "topic", "create", "a.u", cert=pki.alice,
                       ca=pki.ca)
    assert rc == 1 and "user 'alice' may not create on topic 'a.u'" in err
    # a certificate of another CA with the same CN: no TLS at all
    rc, out, err = cli(b, "produce", "a.t", cert=pki.mallory, ca=pki.ca,
                       stdin=b"forged\n")
    assert rc != 0
    # the same on plaintext, without a login: refused
    rc, out, err = cli(b, "produce", "a.t", stdin=b"x\n")
    assert rc == 1 and "log in first" in err
    # a certificate naming no user: refused, and the reason says so
    rc, out, err = cli(b, "produce", "a.t", cert=pki.nobody, ca=pki.ca,
                       stdin=b"x\n")
    assert rc == 1 and "names user 'nobody', who does not exist" in err, err
    wait_audit(b, "names user 'nobody' [no such user]")

    b2 = start(tmp_path, pki, name="data2")  # tls-cert-login none
    brokers.append(b2)
    admin(b2, "user", "add", "alice", "--password-stdin", stdin=b"pw\n")
    admin(b2, "topic", "create", "a.t")
    admin(b2, "acl", "grant", "alice", "--topic", "a.t", "--ops", "produce")
    rc, out, err = cli(b2, "produce", "a.t", cert=pki.alice, ca=pki.ca,
                       stdin=b"x\n")
    assert rc == 1 and "log in first" in err, err


def test_sasl_external(tmp_path, pki, brokers):
    b = start(tmp_path, pki, ["--tls-cert-login", "cn"])
    brokers.append(b)
    admin(b, "user", "add", "alice", "--password-stdin", stdin=b"alice-pw\n")
    admin(b, "user", "add", "bob", "--password-stdin", stdin=b"bob-pw\n")
    # EXTERNAL asking for another user: refused, connection closed
    c = tls_wire(b.tls_addr, pki, pki.alice)
    err, msg = sasl(c, "EXTERNAL", b"bob")
    assert err == AUTHENTICATION_FAILED
    assert "certificate names user 'alice', not 'bob'" in msg, msg
    c.close()
    # empty authzid, or the certificate's user: logged in as alice
    for authz in (b"", b"alice"):
        c = tls_wire(b.tls_addr, pki, pki.alice)
        err, mechs = sasl(c, "EXTERNAL", authz)
        assert err == 0 and "EXTERNAL" in mechs, (err, mechs)
        r = c.call(sw.API_CREATE_TOPICS, sw.create_topics_body(
            [("x.t", 1, {})]))
        err, msg, _ = status(r)
        assert "user 'alice' may not create" in (msg or ""), msg
        c.close()
    # without a certificate, and on plaintext: EXTERNAL is not offered
    for c in (tls_wire(b.tls_addr, pki), sw.Client(b.binary_addr)):
        err, msg = sasl(c, "EXTERNAL", b"")
        assert err == AUTHENTICATION_FAILED and "EXTERNAL only with" in msg
        c.close()
    # a SASL login on a connection the certificate logged in: starts over
    c = tls_wire(b.tls_addr, pki, pki.alice)
    err, msg = sasl(c, "PLAIN", b"\0bob\0bob-pw")
    assert err == 0, msg
    r = c.call(sw.API_CREATE_TOPICS, sw.create_topics_body([("x.t", 1, {})]))
    assert "user 'bob' may not create" in (status(r)[1] or "")
    c.close()


def test_certificate_san_names_the_user(tmp_path, pki, brokers):
    b = start(tmp_path, pki, ["--tls-cert-login", "san"])
    brokers.append(b)
    admin(b, "user", "add", "carol@example.com", "--password-stdin",
          stdin=b"pw\n")
    admin(b, "topic", "create", "c.t")
    admin(b, "acl", "grant", "carol@example.com", "--topic", "c.t", "--ops",
          "produce")
    rc, out, err = cli(b, "produce", "c.t", cert=pki.carol, ca=pki.ca,
                       stdin=b"x\n")
    assert rc == 0, err
    wait_audit(b, "authentication succeeded: user 'carol@example.com'")
    # alice's certificate has no subjectAltName: names nobody under san
    rc, out, err = cli(b, "produce", "c.t", cert=pki.alice, ca=pki.ca,
                       stdin=b"x\n")
    assert rc == 1 and "log in first" in err, err


def test_stomp_certificate_login(tmp_path, pki, brokers):
    """STOMP over TLS: a CONNECT without login and passcode is the user
    the certificate names (RabbitMQ's ssl_cert_login); asking for another
    login without a passcode is a password check that fails."""
    b = start(tmp_path, pki, ["--tls-cert-login", "cn"])
    brokers.append(b)
    admin(b, "user", "add", "alice", "--password-stdin", stdin=b"alice-pw\n")
    admin(b, "topic", "create", "s.t")
    admin(b, "acl", "grant", "alice", "--topic", "s.t", "--ops", "produce")
    s, f = stomp_tls(b, pki, pki.alice)
    assert f.startswith(b"CONNECTED\n"), f
    s.sendall(stomp_frame("SEND", [("destination", "/topic/s.t"),
                                   ("receipt", "r1")], b"hi"))
    assert read_frame(s).startswith(b"RECEIPT\n")
    s.sendall(stomp_frame("SEND", [("destination", "/topic/other"),
                                   ("receipt", "r2")], b"hi"))
    f = read_frame(s)
    assert f.startswith(b"ERROR\n") and b"access refused" in f, f
    s.close()
    wait_audit(b, "authentication succeeded: user 'alice' from 127.0.0.1")
    assert audit(b, "over stomp (certificate), TLS client certificate "
                 "CN=alice,O=Sluice")
    s, f = stomp_tls(b, pki, pki.alice, [("login", "alice")])
    assert f.startswith(b"CONNECTED\n"), f
    s.close()
    s, f = stomp_tls(b, pki, pki.alice, [("login", "root")])
    assert f.startswith(b"ERROR\n") and b"access refused" in f, f
    s.close()
    s, f = stomp_tls(b, pki, None)  # no certificate, no login
    assert f.startswith(b"ERROR\n") and b"access refused" in f, f
    s.close()

    b2 = start(tmp_path, pki, name="data2")  # tls-cert-login none
    brokers.append(b2)
    admin(b2, "user", "add", "alice", "--password-stdin", stdin=b"pw\n")
    s, f = stomp_tls(b2, pki, pki.alice)
    assert f.startswith(b"ERROR\n") and b"access refused" in f, f
    s.close()


def https_get(b, pki, path, cert=None):
    """(status, JSON or text) of an HTTPS GET without Authorization."""
    req = urllib.request.Request("https://localhost:%d%s" % (
        b.http_tls_addr[1], path))
    try:
        with urllib.request.urlopen(req, timeout=WAIT,
                                    context=ctx(pki, cert)) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_https_certificate_login(tmp_path, pki, brokers):
    """The HTTP API over TLS: a request without credentials from a
    connection whose client certificate names a user runs as that user
    (the same tls-cert-login rules as binary and STOMP)."""
    b = start(tmp_path, pki, ["--tls-cert-login", "cn",
                              "--http-tls-listen", "127.0.0.1:0"])
    brokers.append(b)
    admin(b, "user", "add", "alice", "--password-stdin", stdin=b"alice-pw\n")
    admin(b, "topic", "create", "h.mine")
    admin(b, "topic", "create", "h.other")
    admin(b, "acl", "grant", "alice", "--topic", "h.mine", "--ops",
          "describe")
    st, body = https_get(b, pki, "/api/topics", pki.alice)
    assert st == 200, (st, body)
    assert [t["name"] for t in body["topics"]] == ["h.mine"], body
    st, body = https_get(b, pki, "/api/overview", pki.alice)
    assert st == 403 and "alice" in body, (st, body)
    wait_audit(b, "over http (certificate), TLS client certificate "
               "CN=alice,O=Sluice")
    st, body = https_get(b, pki, "/api/topics")  # no certificate
    assert st == 401 and "log in first" in body, (st, body)
    st, body = https_get(b, pki, "/api/topics", pki.nobody)  # no such user
    assert st == 401, (st, body)
    wait_audit(b, "names user 'nobody' [no such user]")

    b2 = start(tmp_path, pki, ["--http-tls-listen", "127.0.0.1:0"],
               name="data2")  # tls-cert-login none: certificates name nobody
    brokers.append(b2)
    admin(b2, "user", "add", "alice", "--password-stdin", stdin=b"pw\n")
    st, body = https_get(b2, pki, "/api/topics", pki.alice)
    assert st == 401, (st, body)


# ---- audit lines of logins ----------------------------------------------------

def http_get(b, path, user, pw):
    req = urllib.request.Request("http://%s:%d%s" % (b.http_addr + (path,)))
    req.add_header("Authorization", "Basic " + base64.b64encode(
        ("%s:%s" % (user, pw)).encode()).decode())
    with urllib.request.urlopen(req, timeout=WAIT) as r:
        return json.loads(r.read())


def test_successful_logins_are_audited(tmp_path, pki, brokers):
    b = start(tmp_path, pki)
    brokers.append(b)
    admin(b, "user", "add", "bob", "--password-stdin", stdin=b"bob-pw\n")
    admin(b, "acl", "grant", "bob", "--cluster", "--ops", "describe")
    rc, out, err = cli(b, "topic", "list", user="bob", password="bob-pw")
    assert rc == 0, err
    lines = wait_audit(b, "authentication succeeded: user 'bob'")
    assert re.search(r"INFO audit authentication succeeded: user 'bob' from "
                     r"127\.0\.0\.1:\d+ over binary \(SCRAM-SHA-256\)$",
                     lines[0]), lines
    s = socket.create_connection(b.stomp_addr, timeout=WAIT)
    s.sendall(stomp_frame("CONNECT", [("accept-version", "1.2"),
                                      ("host", "/"), ("login", "bob"),
                                      ("passcode", "bob-pw")]))
    assert read_frame(s).startswith(b"CONNECTED\n")
    s.close()
    wait_audit(b, "user 'bob' from 127.0.0.1", 2)
    assert re.search(r"authentication succeeded: user 'bob' from "
                     r"127\.0\.0\.1:\d+ over stomp \(password\)",
                     b.log()), b.log()
    # HTTP Basic logs in at every request: one line, not one per request
    for _ in range(5):
        http_get(b, "/api/topics", "bob", "bob-pw")
    lines = wait_audit(b, "over http (password)")
    assert len(lines) == 1, lines


def stomp_fail(b, user):
    s = socket.create_connection(b.stomp_addr, timeout=WAIT)
    s.sendall(stomp_frame("CONNECT", [("accept-version", "1.2"),
                                      ("host", "/"), ("login", user),
                                      ("passcode", "wrong")]))
    f = read_frame(s)
    s.close()
    assert f.startswith(b"ERROR\n") and b"access refused" in f, f


def test_failed_login_lines_are_bounded(tmp_path, pki, brokers):
    """A guesser cannot fill the log: 40 failures of one user from one
    address log 10 lines; 300 failures of as many user names are cut by
    the rate limit, and what it dropped is counted in a summary line
    (written at the latest when the broker stops): lines + dropped = 300.
    Before: one line per failure."""
    b = start(tmp_path, pki, ["--login-failure-delay-ms", "0"])
    brokers.append(b)
    admin(b, "user", "add", "bob", "--password-stdin", stdin=b"bob-pw\n")
    for _ in range(40):
        stomp_fail(b, "bob")
    wait_audit(b, "authentication failed: user 'bob'", 10)
    assert len(audit(b, "authentication failed: user 'bob'")) == 10
    t0 = time.monotonic()
    for i in range(300):
        stomp_fail(b, "guess%d" % i)
    took = time.monotonic() - t0
    assert b.stop() == 0
    logged = len(audit(b, "authentication failed: user 'guess"))
    dropped = sum(int(m) for m in re.findall(
        r"successful and (\d+) failed login\(s\) not logged", b.log()))
    assert dropped > 0, b.log()[-2000:]
    assert logged + dropped == 300, (logged, dropped)
    # the bucket: 200 at once, then 2 a second (whatever else came first)
    assert logged <= 200 + 2 * (took + 5), (logged, took)


# ---- listings filtered to what the user may describe ---------------------------

def login_plain(b, pki, user, pw):
    c = tls_wire(b.tls_addr, pki)
    err, msg = sasl(c, "PLAIN", b"\0" + user.encode() + b"\0" + pw.encode())
    assert err == 0, msg
    return c


def test_listings_show_what_the_user_may_describe(tmp_path, pki, brokers):
    """As Kafka filters ListTopics, Metadata and ListGroups: every
    logged-in user may list, and sees the topics, groups, queues and
    connections it may describe (describe on the cluster: all; admin:
    all, connections too). Binary and HTTP (the console reads the HTTP
    API). Before: the lists needed describe on the cluster, so dave got
    AUTHORIZATION_FAILED and a cluster describer saw everything."""
    import sluice_wire_groups as swg
    b = start(tmp_path, pki)
    brokers.append(b)
    for u in ("dave", "mon"):
        admin(b, "user", "add", u, "--password-stdin", stdin=b"pw\n")
    root = login_plain(b, pki, "root", ADMIN_PW)
    for t in ("a.1", "a.2", "b.1"):
        assert root.create_topic(t) == (0, None)
    swg.queue_config(root, "ga", "a.1")
    swg.queue_config(root, "gb", "b.1")
    admin(b, "acl", "grant", "dave", "--topic", "a.", "--prefix", "--ops",
          "consume")
    admin(b, "acl", "grant", "dave", "--group", "ga", "--ops", "consume")
    admin(b, "acl", "grant", "mon", "--cluster", "--ops", "describe")
    dave = login_plain(b, pki, "dave", "pw")
    assert sorted(dave.list_topics()) == ["a.1", "a.2"]
    assert sorted(dave.metadata()) == ["a.1", "a.2"]
    assert [g["group"] for g in swg.group_list(dave)] == ["ga"]
    # a topic named in the request is refused by name, as before
    with pytest.raises(sw.ProtocolError) as e:
        dave.metadata(["b.1"])
    assert "may not describe on topic 'b.1'" in str(e.value)
    mon = login_plain(b, pki, "mon", "pw")
    assert sorted(mon.list_topics()) == ["a.1", "a.2", "b.1"]
    assert sorted(g["group"] for g in swg.group_list(mon)) == ["ga", "gb"]
    assert sorted(root.list_topics()) == ["a.1", "a.2", "b.1"]

    def names(path, user, key, field):
        return sorted(x[field] for x in http_get(b, path, user, "pw")[key])
    assert names("/api/topics", "dave", "topics", "name") == ["a.1", "a.2"]
    assert names("/api/groups", "dave", "groups", "name") == ["ga"]
    assert names("/api/queues", "dave", "queues", "group") == ["ga"]
    assert names("/api/topics", "mon", "topics", "name") == [
        "a.1", "a.2", "b.1"]
    # connections: dave sees dave's own (not root's, not mon's); mon all
    conns = http_get(b, "/api/connections", "dave", "pw")["connections"]
    assert conns and {c["user"] for c in conns} == {"dave"}, conns
    users = {c["user"] for c in http_get(b, "/api/connections", "mon",
                                         "pw")["connections"]}
    assert {"root", "dave", "mon"} <= users, users
    for c in (root, dave, mon):
        c.close()
