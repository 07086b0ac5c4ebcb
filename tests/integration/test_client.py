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
