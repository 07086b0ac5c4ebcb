"""Users, logins and permissions (issue 16) against a real sluiced.

Binary protocol (raw frames and the CLI), STOMP (raw frames) and the safe
defaults. Every operation is first denied, then allowed by a rule.
"""
import json
import os
import re
import socket
import struct
import subprocess
import time

import pytest

from sluice_harness import Broker

ADMIN_PW = "root-secret"


def sluice_bin():
    d = os.environ.get("SLUICE_BIN_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bin")
    return os.path.join(d, "sluice")


def cli(broker, *args, user=None, password=None, stdin=None):
    env = dict(os.environ)
    env.pop("SLUICE_USER", None)
    env.pop("SLUICE_PASSWORD", None)
    if user:
        env["SLUICE_USER"] = user
    if password:
        env["SLUICE_PASSWORD"] = password
    p = subprocess.run([sluice_bin(), "-b", "%s:%d" % broker.binary_addr] +
                       list(args), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def admin(broker, *args, stdin=None):
    rc, out, err = cli(broker, *args, user="root", password=ADMIN_PW,
                       stdin=stdin)
    assert rc == 0, "sluice %s -> %d: %s" % (" ".join(args), rc, err)
    return out


@pytest.fixture(scope="module")
def secured():
    os.environ["SLUICE_ADMIN_PASSWORD"] = ADMIN_PW
    try:
        b = Broker(args=["--bootstrap-admin", "root"]).start()
    finally:
        del os.environ["SLUICE_ADMIN_PASSWORD"]
    admin(b, "user", "add", "bob", "--password-stdin", stdin=b"bob-pw\n")
    yield b
    assert b.stop() == 0, b.log()
    b.cleanup()


# ---- raw binary frames -------------------------------------------------------

def frame(api, corr, body=b""):
    return struct.pack("<IHHI", 8 + len(body), api, 1, corr) + body


def str16(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<H", len(b)) + b


def read_resp(sock):
    hdr = b""
    while len(hdr) < 4:
        c = sock.recv(4 - len(hdr))
        if not c:
            return None
        hdr += c
    (n,) = struct.unpack("<I", hdr)
    body = b""
    while len(body) < n:
        c = sock.recv(n - len(body))
        if not c:
            return None
        body += c
    corr, err = struct.unpack("<Ii", body[:8])
    msg = None
    if err:
        (ml,) = struct.unpack("<H", body[8:10])
        msg = body[10:10 + ml].decode()
    return corr, err, msg, body[8:]


def closed(sock):
    sock.settimeout(30)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True


def test_unauthenticated_request_refused_and_closed(secured):
    s = socket.create_connection(secured.binary_addr)
    s.sendall(frame(4, 7))  # LIST_TOPICS before any login
    corr, err, msg, _ = read_resp(s)
    assert (corr, err) == (7, 17)
    assert msg.startswith("AUTHENTICATION_FAILED: LIST_TOPICS refused")
    assert closed(s)


def test_handshake_allowed_before_login(secured):
    s = socket.create_connection(secured.binary_addr)
    s.sendall(frame(0, 1, str16("raw") + struct.pack("<I", 0)))
    corr, err, _, _ = read_resp(s)
    assert (corr, err) == (1, 0)
    s.sendall(frame(31, 2, str16("SCRAM-SHA-256")))
    corr, err, _, rest = read_resp(s)
    assert (corr, err) == (2, 0)
    assert b"SCRAM-SHA-256" in rest and b"PLAIN" not in rest
    s.close()


def test_plain_refused_without_tls(secured):
    s = socket.create_connection(secured.binary_addr)
    s.sendall(frame(31, 3, str16("PLAIN")))
    corr, err, msg, _ = read_resp(s)
    assert (corr, err) == (3, 17)
    assert "PLAIN only over TLS" in msg
    assert closed(s)


def test_prelogin_frame_bounded(secured):
    """Before the login a frame may be 16 KiB: a larger one is refused at
    its header, before the broker buffers it, and the connection closed."""
    s = socket.create_connection(secured.binary_addr)
    s.sendall(struct.pack("<IHHI", 8 + 1024 * 1024, 2, 1, 9))
    corr, err, msg, _ = read_resp(s)
    assert (corr, err) == (9, 4)
    assert "limit before login" in msg
    assert closed(s)


def test_prelogin_input_bounded(secured):
    """A peer that sends without logging in gets at most the pre-login
    buffer read: the broker closes it (frame limit) and never holds
    more than tens of KiB for it."""
    s = socket.create_connection(secured.binary_addr)
    s.settimeout(30)
    sent = 0
    junk = frame(31, 1, str16("SCRAM-SHA-256")) + b"\x00" * 60000
    try:
        for _ in range(200):
            s.sendall(junk)
            sent += len(junk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed(s)
    assert sent < 200 * len(junk) or "protocol error" in secured.log()


# ---- the CLI: wrong password, unknown user ------------------------------------

def test_wrong_password_and_unknown_user_same_error(secured):
    rc1, _, e1 = cli(secured, "topic", "list", user="bob", password="nope")
    rc2, _, e2 = cli(secured, "topic", "list", user="mallory",
                     password="nope")
    assert rc1 == rc2 == 1
    norm = [re.sub(r"'(bob|mallory)'", "'U'", e) for e in (e1, e2)]
    assert norm[0] == norm[1]
    assert "AUTHENTICATION_FAILED" in e1
    assert "authentication failed for user 'bob'" in e1
    log = secured.log()
    assert "authentication failed: user 'bob'" in log
    assert "authentication failed: user 'mallory'" in log


def test_password_never_on_command_line(secured):
    rc, _, err = cli(secured, "user", "add", "eve", "--password=x",
                     user="root", password=ADMIN_PW)
    assert rc == 2 and "never goes on the command line" in err


def test_user_admin_verbs_need_admin(secured):
    rc, _, err = cli(secured, "user", "list", user="bob", password="bob-pw")
    assert rc == 1
    assert "AUTHORIZATION_FAILED: user 'bob' may not admin on the cluster" \
        in err
    out = admin(secured, "user", "list")
    assert "bob\tuser" in out and "root\tadmin" in out


# ---- every operation denied, then allowed by a rule -------------------------

def bob(broker, *args, stdin=None):
    return cli(broker, *args, user="bob", password="bob-pw", stdin=stdin)


def denied(broker, op, what, *args, stdin=None):
    rc, _, err = bob(broker, *args, stdin=stdin)
    assert rc == 1, err
    if args[0] == "produce":  # per record: the delivery report's error
        assert "%s partition 0: not authorized" % what in err, err
    else:
        assert "AUTHORIZATION_FAILED: user 'bob' may not %s on %s" % (
            op, what) in err, err


def allowed(broker, *args, stdin=None):
    rc, out, err = bob(broker, *args, stdin=stdin)
    assert rc == 0, err
    return out


def test_every_operation_denied_then_allowed(secured):
    b = secured
    admin(b, "topic", "create", "acl.t", "--partitions", "1")
    # describe
    denied(b, "describe", "topic 'acl.t'", "topic", "describe", "acl.t")
    admin(b, "acl", "grant", "bob", "--topic", "acl.t", "--ops", "describe")
    allowed(b, "topic", "describe", "acl.t")
    # produce
    denied(b, "produce", "topic 'acl.t'", "produce", "acl.t", stdin=b"a\n")
    admin(b, "acl", "grant", "bob", "--topic", "acl.t", "--ops", "produce")
    allowed(b, "produce", "acl.t", stdin=b"a\nb\n")
    # consume
    denied(b, "consume", "topic 'acl.t'", "consume", "acl.t",
           "--from-beginning", "--count", "2")
    admin(b, "acl", "grant", "bob", "--topic", "acl.", "--prefix", "--ops",
          "consume")
    assert allowed(b, "consume", "acl.t", "--from-beginning", "--count",
                   "2") == "a\nb\n"
    # queue consume: consume on the group too
    denied(b, "consume", "group 'acl.g'", "queue", "consume", "acl.t",
           "--group", "acl.g", "--count", "1")
    admin(b, "acl", "grant", "bob", "--group", "acl.g", "--ops", "consume")
    assert allowed(b, "queue", "consume", "acl.t", "--group", "acl.g",
                   "--count", "1") == "a\n"
    # create
    denied(b, "create", "topic 'acl.new'", "topic", "create", "acl.new")
    admin(b, "acl", "grant", "bob", "--topic", "acl.new", "--ops", "create")
    allowed(b, "topic", "create", "acl.new")
    # alter
    denied(b, "alter", "topic 'acl.new'", "topic", "alter", "acl.new",
           "--config", "retention-ms=60000")
    admin(b, "acl", "grant", "bob", "--topic", "acl.new", "--ops", "alter")
    allowed(b, "topic", "alter", "acl.new", "--config", "retention-ms=60000")
    # delete
    denied(b, "delete", "topic 'acl.new'", "topic", "delete", "acl.new")
    admin(b, "acl", "grant", "bob", "--topic", "acl.new", "--ops", "delete")
    allowed(b, "topic", "delete", "acl.new")
    # listings show what the user may describe (as Kafka filters them);
    # describe on the cluster shows everything
    admin(b, "topic", "create", "zz.hidden")
    out = allowed(b, "topic", "list")
    assert "acl.t" in out and "zz.hidden" not in out, out
    admin(b, "acl", "grant", "bob", "--cluster", "--ops", "describe")
    assert "zz.hidden" in allowed(b, "topic", "list")
    # the rules are listed, and revoking takes the right away again
    out = admin(b, "acl", "list", "bob")
    assert "bob\ttopic\tacl.\tprefix\tconsume" in out
    admin(b, "acl", "revoke", "bob", "--topic", "acl.t", "--ops", "produce")
    denied(b, "produce", "topic 'acl.t'", "produce", "acl.t", stdin=b"c\n")
    assert "granted produce on topic acl.t" in b.log() or \
        "granted produce on topic" in b.log()


def test_dlq_topics_need_a_literal_rule(secured):
    b = secured
    admin(b, "topic", "create", "dl.t.DLQ", "--partitions", "1")
    admin(b, "acl", "grant", "bob", "--topic", "dl.", "--prefix", "--ops",
          "produce,describe")
    denied(b, "produce", "topic 'dl.t.DLQ'", "produce", "dl.t.DLQ",
           stdin=b"forged\n")
    admin(b, "acl", "grant", "bob", "--topic", "dl.t.DLQ", "--ops", "produce")
    allowed(b, "produce", "dl.t.DLQ", stdin=b"ok\n")


def test_brute_force_slowed(secured):
    """From the third failure on, each next check from the address waits
    longer (100 ms, doubled per failure): the audit lines say so, and the
    attempts take at least that long in total."""
    t0 = time.monotonic()
    for i in range(6):
        rc, _, _ = cli(secured, "topic", "list", user="brute",
                       password="guess%d" % i)
        assert rc == 1
    took = time.monotonic() - t0
    delays = [int(d) for d in re.findall(
        r"authentication failed: user 'brute' from 127\.0\.0\.1 over binary "
        r"\(SCRAM-SHA-256\) \[no such user\]; next check from this address "
        r"delayed (\d+) ms", secured.log())]
    assert len(delays) == 6
    # earlier failures of this address (other tests) count too
    assert delays == sorted(delays) and delays[-1] >= 400
    assert all(b2 == min(2 * b1, 10000) for b1, b2 in zip(delays, delays[1:])
               if b1)
    assert took >= sum(delays[:-1]) / 1000.0


# ---- STOMP on the same rules -------------------------------------------------

def stomp_frame(cmd, headers, body=b""):
    h = "".join("%s:%s\n" % kv for kv in headers.items())
    return ("%s\n%s\n" % (cmd, h)).encode() + body + b"\x00"


class Stomp:
    def __init__(self, addr, login, passcode):
        self.s = socket.create_connection(addr)
        self.s.settimeout(30)
        self.buf = b""
        self.send("CONNECT", {"accept-version": "1.2", "host": "/",
                              "login": login, "passcode": passcode})

    def send(self, cmd, headers, body=b""):
        self.s.sendall(stomp_frame(cmd, headers, body))

    def read(self):
        while b"\x00" not in self.buf:
            c = self.s.recv(65536)
            if not c:
                return None
            self.buf += c
        raw, self.buf = self.buf.split(b"\x00", 1)
        raw = raw.lstrip(b"\n")
        head, _, body = raw.partition(b"\n\n")
        lines = head.decode().split("\n")
        return lines[0], dict(l.split(":", 1) for l in lines[1:] if l), body


def test_stomp_on_the_same_rules(secured):
    b = secured
    admin(b, "user", "add", "carol", "--password-stdin", stdin=b"carol-pw\n")
    c = Stomp(b.stomp_addr, "carol", "wrong")
    cmd, h, _ = c.read()
    assert cmd == "ERROR" and h["message"] == "access refused"
    c = Stomp(b.stomp_addr, "carol", "carol-pw")
    assert c.read()[0] == "CONNECTED"
    c.send("SEND", {"destination": "/queue/st.q", "receipt": "r1"}, b"x")
    cmd, h, body = c.read()
    assert cmd == "ERROR" and h["message"] == "access refused"
    assert b"AUTHORIZATION_FAILED: user 'carol' may not produce on topic " \
        b"'st.q'" in body
    admin(b, "acl", "grant", "carol", "--topic", "st.q", "--ops",
          "produce,consume")
    c = Stomp(b.stomp_addr, "carol", "carol-pw")
    assert c.read()[0] == "CONNECTED"
    c.send("SEND", {"destination": "/queue/st.q", "receipt": "r2"}, b"x")
    assert c.read()[0] == "RECEIPT"
    # a queue subscription needs consume on the group too
    c.send("SUBSCRIBE", {"destination": "/queue/st.q", "id": "1",
                         "receipt": "r3"})
    cmd, h, body = c.read()
    assert cmd == "ERROR" and b"may not consume on group 'st.q'" in body
    admin(b, "acl", "grant", "carol", "--group", "st.q", "--ops", "consume")
    c = Stomp(b.stomp_addr, "carol", "carol-pw")
    assert c.read()[0] == "CONNECTED"
    c.send("SUBSCRIBE", {"destination": "/queue/st.q", "id": "1",
                         "receipt": "r4"})
    assert c.read()[0] == "RECEIPT"
    cmd, h, body = c.read()
    assert cmd == "MESSAGE" and body == b"x"


# ---- safe defaults ---------------------------------------------------------------

def test_non_loopback_refused_without_users(tmp_path):
    b = Broker(data_dir=str(tmp_path / "d"),
               args=["--stomp-listen", "0.0.0.0:0"])
    p = b.spawn()
    assert p.wait(timeout=60) != 0
    log = b.log()
    assert "refusing to listen on 0.0.0.0:0 (--stomp-listen) without users" \
        in log
    assert "--allow-anonymous" in log
    b2 = Broker(data_dir=str(tmp_path / "d2"),
                args=["--stomp-listen", "0.0.0.0:0", "--allow-anonymous"])
    b2.start()
    assert b2.stop() == 0


def test_data_dir_private(secured):
    st = os.stat(secured.data_dir)
    assert st.st_mode & 0o777 == 0o700
    st = os.stat(os.path.join(secured.data_dir, "meta.db"))
    assert st.st_mode & 0o077 == 0


def test_bootstrap_admin_needs_password(tmp_path):
    b = Broker(data_dir=str(tmp_path / "d"), args=["--bootstrap-admin", "x"])
    env_pw = os.environ.pop("SLUICE_ADMIN_PASSWORD", None)
    p = b.spawn()
    assert p.wait(timeout=60) != 0
    assert "SLUICE_ADMIN_PASSWORD" in b.log()
    if env_pw:
        os.environ["SLUICE_ADMIN_PASSWORD"] = env_pw


# ---- HTTP API: Basic login, the same rules ------------------------------------

def http(broker, path, user=None, password=None):
    import base64
    import urllib.error
    import urllib.request
    req = urllib.request.Request("http://%s:%d%s" % (broker.http_addr + (path,)))
    if user:
        tok = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        req.add_header("Authorization", "Basic " + tok)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def test_http_api_login_and_rules(secured):
    b = secured
    code, h, body = http(b, "/api/topics")
    assert code == 401 and "Basic" in h["WWW-Authenticate"]
    assert "AUTHENTICATION_FAILED" in body
    code, _, body = http(b, "/api/topics", "bob", "wrong")
    assert code == 401 and "authentication failed for user 'bob'" in body
    admin(b, "user", "add", "dave", "--password-stdin", stdin=b"dave-pw\n")
    # a user without rules may list, and sees nothing (403 for the rest)
    code, _, body = http(b, "/api/topics", "dave", "dave-pw")
    assert code == 200 and json.loads(body)["topics"] == [], body
    code, _, body = http(b, "/api/overview", "dave", "dave-pw")
    assert code == 403
    assert "AUTHORIZATION_FAILED: user 'dave' may not describe on the " \
        "cluster" in body
    admin(b, "acl", "grant", "dave", "--cluster", "--ops", "describe")
    code, _, body = http(b, "/api/topics", "dave", "dave-pw")
    assert code == 200 and json.loads(body)["topics"], body
    code, _, _ = http(b, "/api/topics", "root", ADMIN_PW)
    assert code == 200
    # metrics and health need no login
    assert http(b, "/healthz")[0] == 200


# ---- PLAIN over TLS ----------------------------------------------------------------

def test_plain_over_tls(tmp_path):
    from sluice_tls import Pki
    pki = Pki(str(tmp_path / "pki"))
    crt, key = pki.server("srv")
    os.environ["SLUICE_ADMIN_PASSWORD"] = ADMIN_PW
    try:
        b = Broker(data_dir=str(tmp_path / "d"),
                   args=["--bootstrap-admin", "root", "--tls-listen",
                         "127.0.0.1:0", "--tls-cert", crt, "--tls-key",
                         key]).start()
    finally:
        del os.environ["SLUICE_ADMIN_PASSWORD"]
    try:
        def run_tls(*args, pw=ADMIN_PW):
            env = dict(os.environ, SLUICE_USER="root", SLUICE_PASSWORD=pw)
            p = subprocess.run(
                [sluice_bin(), "-b", "localhost:%d" % b.tls_addr[1],
                 "--tls-ca", pki.ca, "-X", "sasl.mechanism=PLAIN"] +
                list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, timeout=60)
            return p.returncode, p.stdout.decode(), p.stderr.decode()
        rc, out, err = run_tls("topic", "create", "tls.t")
        assert rc == 0, err
        rc, out, err = run_tls("topic", "list", pw="nope")
        assert rc == 1 and "authentication failed for user 'root'" in err
        # the same PLAIN on the plaintext port is refused
        env = dict(os.environ, SLUICE_USER="root", SLUICE_PASSWORD=ADMIN_PW)
        p = subprocess.run([sluice_bin(), "-b", "%s:%d" % b.binary_addr,
                            "-X", "sasl.mechanism=PLAIN", "topic", "list"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=60)
        assert p.returncode == 1
        assert "PLAIN only over TLS" in p.stderr.decode()
        assert re.search(r"authentication succeeded: user 'root' from "
                         r"127\.0\.0\.1:\d+ over binary \(PLAIN\)", b.log())
    finally:
        assert b.stop() == 0, b.log()
        b.cleanup()


def test_connection_listing_names_the_binary_user(secured):
    """`sluice connections` shows who a binary connection logged in as (the
    CLI's own connection, listed while it asks)."""
    out = admin(secured, "connections")
    rows = [l.split() for l in out.splitlines()[1:] if l.strip()]
    mine = [r for r in rows if r[1] == "binary"]
    assert mine, out
    assert all(r[3] == "root" for r in mine), out


def test_admin_verb_error_names_the_verb_once(secured):
    """The broker's message names the verb already ("acl.grant: no user
    ..."): the CLI and libsluice do not prefix it again (it read
    "acl.grant: acl.grant: acl.grant: no user ...")."""
    rc, out, err = cli(secured, "acl", "grant", "nobody-here", "--topic",
                       "x", "--ops", "describe", user="root",
                       password=ADMIN_PW)
    assert rc != 0
    assert err.startswith("sluice: acl.grant: no user 'nobody-here'"), err
    assert err.count("acl.grant:") == 1, err


def test_user_delete_closes_its_connections(secured):
    """RabbitMQ closes a deleted user's connections; before, a STOMP
    session logged in before `user delete` kept working until it closed.
    Another user's session stays open."""
    b = secured
    admin(b, "user", "add", "dora", "--password-stdin", stdin=b"dora-pw\n")
    admin(b, "user", "add", "ed", "--password-stdin", stdin=b"ed-pw\n")
    d = Stomp(b.stomp_addr, "dora", "dora-pw")
    assert d.read()[0] == "CONNECTED"
    e = Stomp(b.stomp_addr, "ed", "ed-pw")
    assert e.read()[0] == "CONNECTED"
    d.s.settimeout(10)
    admin(b, "user", "delete", "dora")
    assert d.read() is None  # EOF; before: the read timed out
    assert "closing connection" in b.log() and \
        "user 'dora' was deleted" in b.log()
    e.send("DISCONNECT", {"receipt": "bye"})
    cmd, h, _ = e.read()
    assert cmd == "RECEIPT" and h["receipt-id"] == "bye"
