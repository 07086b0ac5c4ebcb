"""Logins and permissions from Python (issue 16): typed exceptions, then
the operation allowed by a rule."""
import os
import subprocess

import pytest

import sluice
import sluice_harness

ADMIN_PW = "py-root-secret"


@pytest.fixture(scope="module")
def secured(bin_dir, tmp_path_factory):
    os.environ["SLUICE_BIN_DIR"] = bin_dir
    os.environ["SLUICE_ADMIN_PASSWORD"] = ADMIN_PW
    try:
        b = sluice_harness.Broker(
            data_dir=str(tmp_path_factory.mktemp("authdata")),
            args=["--bootstrap-admin", "root"]).start()
    finally:
        del os.environ["SLUICE_ADMIN_PASSWORD"]
    yield b
    assert b.stop() == 0, b.log()
    b.cleanup()


def cli(b, *args, stdin=None):
    env = dict(os.environ, SLUICE_USER="root", SLUICE_PASSWORD=ADMIN_PW)
    p = subprocess.run([os.path.join(os.environ["SLUICE_BIN_DIR"], "sluice"),
                        "-b", "%s:%d" % b.binary_addr] + list(args),
                       input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def test_login_errors_and_rules(secured):
    boot = "%s:%d" % secured.binary_addr
    cli(secured, "user", "add", "pyuser", "--password-stdin",
        stdin=b"py-pw\n")
    cli(secured, "topic", "create", "py.t", "--partitions", "1")
    with pytest.raises(sluice.AuthenticationError) as e:
        with sluice.Admin(boot, user="pyuser", password="wrong") as a:
            a.topics()
    assert "authentication failed for user 'pyuser'" in str(e.value)
    with pytest.raises(sluice.AuthenticationError):
        with sluice.Admin(boot) as a:  # no login at all
            a.topics()
    with sluice.Admin(boot, user="pyuser", password="py-pw") as a:
        with pytest.raises(sluice.AuthorizationError) as e:
            a.topic("py.t")
        assert isinstance(e.value, PermissionError)
        assert "user 'pyuser' may not describe on topic 'py.t'" in \
            str(e.value)
    cli(secured, "acl", "grant", "pyuser", "--topic", "py.", "--prefix",
        "--ops", "produce,consume")
    with sluice.Producer(boot, user="pyuser", password="py-pw") as p:
        p.send("py.t", b"hello").result(timeout=30)
    with sluice.Admin(boot, user="pyuser", password="py-pw") as a:
        assert a.topic("py.t").name == "py.t"
