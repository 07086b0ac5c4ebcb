"""libsluice C integration test: runs build/bin/test_client_integration
against a sluiced spawned by the harness (port 0, temp data dir)."""
import os
import subprocess


def test_client_roundtrip(broker):
    exe = os.path.join(os.environ.get("SLUICE_BIN_DIR", "build/bin"),
                       "test_client_integration")
    p = subprocess.run([exe, "%s:%d" % broker.binary_addr],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=240)
    assert p.returncode == 0, "stdout:\n%s\nstderr:\n%s\nbroker log:\n%s" % (
        p.stdout.decode(), p.stderr.decode(), broker.log()[-4000:])
    assert p.stdout.decode().strip() == "ok"


def test_client_reconnects_after_restart(broker):
    """Producer and consumer survive a broker restart on the same port:
    records reported stored are there exactly once, in order, and the
    consumer resumes at its position."""
    exe = os.path.join(os.environ.get("SLUICE_BIN_DIR", "build/bin"),
                       "test_client_integration")
    host, port = broker.binary_addr
    p = subprocess.Popen([exe, "reconnect", "%s:%d" % (host, port)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"restart\n", p.stderr.read().decode()
        assert broker.stop() == 0
        broker.start(extra=["--listen", "%s:%d" % (host, port)])
        assert broker.binary_addr == (host, port)
        p.stdin.write(b"go\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, "stderr:\n%s\nbroker log:\n%s" % (
        err.decode(), broker.log()[-3000:])
    assert out == b"ok\n"
