"""STOMP authentication with a users file (PBKDF2-SHA256 salted hashes)."""
import hashlib
import os
import tempfile

import pytest

from conftest import Broker, Raw


def make_hash(password, iterations=1000, salt=None):
    salt = salt or os.urandom(16)
    h = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "pbkdf2-sha256$%d$%s$%s" % (iterations, salt.hex(), h.hex())


def users_broker(lines):
    """A broker with a users file of these lines; yields it, then cleans
    up."""
    fd, path = tempfile.mkstemp(prefix="sluice-users-")
    with os.fdopen(fd, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    b = Broker(args=["--stomp-users-file", path]).start()
    yield b
    b.cleanup()
    os.unlink(path)


@pytest.fixture
def auth_broker():
    yield from users_broker(["# test users",
                             "alice " + make_hash("s3cret"),
                             "bob " + make_hash("other", iterations=2000)])


@pytest.mark.parametrize("login,passcode,ok", [
    ("alice", "s3cret", True), ("bob", "other", True),
    ("alice", "wrong", False), ("alice", "", False), ("mallory", "s3cret",
                                                      False),
    (None, None, False)])
def test_login(auth_broker, login, passcode, ok):
    r = Raw(auth_broker.stomp_port)
    h = {"accept-version": "1.2"}
    if login is not None:
        h["login"] = login
        h["passcode"] = passcode
    r.send("CONNECT", h)
    f = r.read_frame()
    if ok:
        assert f.command == "CONNECTED"
    else:
        assert f.command == "ERROR"
        assert f.headers["message"] == "access refused"
        assert r.expect_closed() == []
    r.close()


@pytest.fixture
def slow_auth_broker():
    """alice checks fast; slow has 5,000,000 PBKDF2 iterations (about a
    second of CPU)."""
    yield from users_broker(["alice " + make_hash("s3cret"),
                             "slow " + make_hash("pw", iterations=5000000)])


def test_password_check_does_not_stall_others(slow_auth_broker):
    """The PBKDF2 check runs off the event loop: while one CONNECT is being
    checked, an already connected client is served; frames sent right
    behind a CONNECT wait for the check and are then handled."""
    b = slow_auth_broker
    other = Raw(b.stomp_port)
    assert other.connect("1.2", headers={"login": "alice",
                                         "passcode": "s3cret"}
                         ).command == "CONNECTED"
    slow = Raw(b.stomp_port, timeout=300)  # 5M PBKDF2 rounds under ASan
    slow.send("CONNECT", {"accept-version": "1.2", "login": "slow",
                          "passcode": "pw"})
    slow.send("SUBSCRIBE", {"destination": "/queue/behind", "id": "s",
                            "receipt": "sub"})
    gone = Raw(b.stomp_port)  # leaves while its check runs
    gone.send("CONNECT", {"accept-version": "1.2", "login": "slow",
                          "passcode": "pw"})
    gone.close()
    other.send("SEND", {"destination": "/queue/behind", "receipt": "r"},
               "hello")
    assert other.expect("RECEIPT").headers["receipt-id"] == "r"
    # served while slow's check (about a second) is still running
    slow.sock.setblocking(False)
    try:
        pending = slow.sock.recv(1)
    except BlockingIOError:
        pending = b""
    slow.sock.setblocking(True)
    assert pending == b"", "CONNECTED came before the other client's receipt"
    assert slow.read_frame().command == "CONNECTED"
    assert slow.expect("RECEIPT").headers["receipt-id"] == "sub"
    assert slow.expect("MESSAGE").body == b"hello"
    slow.close()
    other.close()


@pytest.fixture
def flood_broker():
    """slow: 2,000,000 PBKDF2 iterations per check; alice: 1,000."""
    yield from users_broker(["alice " + make_hash("s3cret"),
                             "slow " + make_hash("pw", iterations=2000000)])


def test_login_flood_does_not_delay_others(flood_broker):
    """Eight wrong CONNECTs for one user are in flight when another user
    logs in: the checks queue fairly (per address and user name), so the
    good one is answered while most of the bad ones still wait (before,
    it came after every one of them)."""
    b = flood_broker
    bad = []
    for _ in range(8):
        r = Raw(b.stomp_port, timeout=300)
        r.send("CONNECT", {"accept-version": "1.2", "login": "slow",
                           "passcode": "wrong"})
        bad.append(r)
    # every bad CONNECT is with the broker before the good one
    probe = Raw(b.stomp_port, timeout=300)  # waits for a running check
    assert probe.connect("1.2", headers={"login": "alice",
                                         "passcode": "s3cret"}
                         ).command == "CONNECTED"
    probe.close()
    good = Raw(b.stomp_port, timeout=300)
    assert good.connect("1.2", headers={"login": "alice",
                                        "passcode": "s3cret"}
                        ).command == "CONNECTED"
    answered = 0
    for r in bad:
        r.sock.setblocking(False)
        try:
            answered += 1 if r.sock.recv(1) else 0
        except BlockingIOError:
            pass
        r.sock.setblocking(True)
    assert answered <= 4, "%d of 8 bad logins answered first" % answered
    for r in bad:
        assert r.read_frame().headers["message"] == "access refused"
        r.close()
    good.close()


def test_dev_mode_logged(broker):
    # without users: guest/guest from loopback, any other login refused
    # (issue 19; tests/integration/test_guest.py has the rest)
    r = Raw(broker.stomp_port)
    f = r.connect("1.2", headers={"login": "guest", "passcode": "guest"})
    assert f.command == "CONNECTED"
    r.close()
    r = Raw(broker.stomp_port)
    f = r.connect("1.2", headers={"login": "anyone", "passcode": "x"})
    assert f.command == "ERROR"
    assert f.headers["message"] == "access refused"
    r.close()
    assert "development mode" in broker.log()


def test_bad_users_file_refuses_start(tmp_path):
    p = tmp_path / "users"
    p.write_text("carol plaintext\n")
    b = Broker(args=["--stomp-users-file", str(p)])
    with pytest.raises(RuntimeError) as e:
        b.start()
    assert "pbkdf2-sha256" in str(e.value)
    b.cleanup()
