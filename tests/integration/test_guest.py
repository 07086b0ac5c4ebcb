"""The default set-up's guest user (issue 19), against a real sluiced.

Without users a client that logs in must be guest/guest from loopback
(RabbitMQ's default); a wrong password or any other user gets an ERROR
(STOMP) or AUTHENTICATION_FAILED (binary SASL) and the connection closes;
guest from another address is refused as loopback-only; a client that does
not log in is still the anonymous user. Once users exist, guest does not.
"""
import os
import socket
import subprocess

import pytest

from sluice_harness import Broker
from stomp_raw import Raw

ADMIN_PW = "root-secret"


def sluice_bin():
    d = os.environ.get("SLUICE_BIN_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bin")
    return os.path.join(d, "sluice")


def cli(addr, *args, user=None, password=None):
    env = dict(os.environ)
    env.pop("SLUICE_USER", None)
    env.pop("SLUICE_PASSWORD", None)
    if user:
        env["SLUICE_USER"] = user
        env["SLUICE_PASSWORD"] = password
    p = subprocess.run([sluice_bin(), "-b", "%s:%d" % addr] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def own_ip():
    """This machine's address on its default route (not loopback)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # no packet is sent
        ip = s.getsockname()[0]
    finally:
        s.close()
    assert not ip.startswith("127."), "no non-loopback address: %s" % ip
    return ip


def stomp_login(port, login=None, passcode=None, host="127.0.0.1"):
    r = Raw(port, host=host)
    h = {"accept-version": "1.2", "host": "/"}
    if login is not None:
        h["login"] = login
        h["passcode"] = passcode
    r.send("CONNECT", h)
    return r, r.read_frame()


@pytest.fixture(scope="module")
def plain():
    b = Broker().start()
    yield b
    assert b.stop() == 0, b.log()
    b.cleanup()


def test_guest_from_loopback(plain):
    r, f = stomp_login(plain.stomp_addr[1], "guest", "guest")
    assert f.command == "CONNECTED", f
    r.send("SEND", {"destination": "/queue/guest.q", "receipt": "r1"}, b"hi")
    assert r.read_frame().command == "RECEIPT"
    r.send("SUBSCRIBE", {"destination": "/queue/guest.q", "id": "1"})
    m = r.read_frame()
    assert m.command == "MESSAGE" and m.body == b"hi"
    r.close()
    assert "authentication succeeded: user 'guest' from 127.0.0.1" in \
        plain.log()


@pytest.mark.parametrize("login,passcode", [
    ("guest", "wrong"), ("guest", ""), ("anyone", "x"), ("admin", "admin")])
def test_other_logins_refused(plain, login, passcode):
    r, f = stomp_login(plain.stomp_addr[1], login, passcode)
    assert f.command == "ERROR", f
    assert f.headers["message"] == "access refused"
    body = f.body.decode()
    assert "Access refused for user '%s'" % login in body
    assert "only guest/guest" in body
    assert r.expect_closed() == []
    r.close()


def test_no_login_is_anonymous(plain):
    r, f = stomp_login(plain.stomp_addr[1])
    assert f.command == "CONNECTED", f
    r.send("SEND", {"destination": "/queue/anon.q", "receipt": "r1"}, b"x")
    assert r.read_frame().command == "RECEIPT"
    r.close()


def test_binary_sasl_guest(plain):
    rc, out, err = cli(plain.binary_addr, "topic", "create", "gq",
                       user="guest", password="guest")
    assert rc == 0, err
    rc, out, err = cli(plain.binary_addr, "topic", "list",
                       user="guest", password="guest")
    assert rc == 0 and "gq" in out, (out, err)
    for user, pw in (("guest", "nope"), ("bob", "guest")):
        rc, out, err = cli(plain.binary_addr, "topic", "list",
                           user=user, password=pw)
        assert rc != 0 and "AUTHENTICATION_FAILED" in err, (user, out, err)
        assert "gq" not in out
    # no login: anonymous, as before
    rc, out, err = cli(plain.binary_addr, "topic", "list")
    assert rc == 0 and "gq" in out, err


def test_guest_only_from_loopback(tmp_path):
    ip = own_ip()
    b = Broker(data_dir=str(tmp_path / "d"),
               args=["--listen", "0.0.0.0:0", "--stomp-listen", "0.0.0.0:0",
                     "--allow-anonymous"]).start()
    try:
        port = b.stomp_addr[1]
        r, f = stomp_login(port, "guest", "guest", host=ip)
        assert f.command == "ERROR", f
        assert f.headers["message"] == "access refused"
        assert "user 'guest' can only connect via localhost" in \
            f.body.decode()
        assert r.expect_closed() == []
        r.close()
        # the same listener from loopback: guest works
        r, f = stomp_login(port, "guest", "guest")
        assert f.command == "CONNECTED", f
        r.close()
        # no login from outside: --allow-anonymous's anonymous user
        r, f = stomp_login(port, host=ip)
        assert f.command == "CONNECTED", f
        r.close()
        # binary SASL from outside
        rc, out, err = cli((ip, b.binary_addr[1]), "topic", "list",
                           user="guest", password="guest")
        assert rc != 0, out
        assert "can only connect via localhost" in err, err
        rc, out, err = cli(b.binary_addr, "topic", "list", user="guest",
                           password="guest")
        assert rc == 0, err
        log = b.log()
        assert "authentication failed: user 'guest' from %s over stomp: " \
            "guest can only connect via localhost" % ip in log
        assert "authentication failed: user 'guest' from %s over binary: " \
            "guest can only connect via localhost" % ip in log
    finally:
        assert b.stop() == 0, b.log()
        b.cleanup()


def test_no_guest_once_users_exist(tmp_path):
    os.environ["SLUICE_ADMIN_PASSWORD"] = ADMIN_PW
    try:
        b = Broker(data_dir=str(tmp_path / "d"),
                   args=["--bootstrap-admin", "root"]).start()
    finally:
        del os.environ["SLUICE_ADMIN_PASSWORD"]
    try:
        r, f = stomp_login(b.stomp_addr[1], "guest", "guest")
        assert f.command == "ERROR", f
        assert f.headers["message"] == "access refused"
        assert "only guest/guest" not in f.body.decode()
        r.close()
        rc, out, err = cli(b.binary_addr, "topic", "list", user="guest",
                           password="guest")
        assert rc != 0 and "AUTHENTICATION_FAILED" in err, err
        r, f = stomp_login(b.stomp_addr[1], "root", ADMIN_PW)
        assert f.command == "CONNECTED", f
        r.close()
    finally:
        assert b.stop() == 0, b.log()
        b.cleanup()
