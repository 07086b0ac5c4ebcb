"""Fixtures for the STOMP suites: a real sluiced on port 0 with a temp data
directory, and a raw STOMP client over a socket.

The broker is found in $SLUICE_BIN_DIR (set by ctest) or build/bin. It is
started with --listen 127.0.0.1:0 --stomp-listen 127.0.0.1:0 and its ports
come from the ready line; it is stopped by pid (SIGTERM, or SIGKILL for
crash tests). No fixed ports, no sleeps.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "harness"))
from stomp_raw import Raw  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def bin_dir():
    d = os.environ.get("SLUICE_BIN_DIR")
    if d:
        return d
    for b in ("build", "build-stomp"):
        p = os.path.join(ROOT, b, "bin")
        if os.path.exists(os.path.join(p, "sluiced")):
            return p
    return os.path.join(ROOT, "build", "bin")


class Broker:
    def __init__(self, data=None, args=(), preexec_fn=None):
        self.preexec_fn = preexec_fn  # e.g. a lower RLIMIT_NOFILE
        self.own_data = data is None
        self.data = data or tempfile.mkdtemp(prefix="sluice-stomp-")
        self.args = list(args)
        self.proc = None
        self.stomp_port = None
        self.binary_port = None
        self.ws_port = None
        self.wss_port = None
        self.http_port = None
        # beside the data directory (not through it: cleanup removes it
        # first, and a path through it no longer resolves)
        self.stderr_path = os.path.join(
            os.path.dirname(os.path.abspath(self.data)),
            os.path.basename(self.data) + ".log")

    def start(self):
        exe = os.path.join(bin_dir(), "sluiced")
        self.errf = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [exe, "--listen", "127.0.0.1:0", "--stomp-listen", "127.0.0.1:0",
             "--http-listen", "127.0.0.1:0", "--data", self.data] + self.args,
            stdout=subprocess.PIPE, stderr=self.errf,
            preexec_fn=self.preexec_fn)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("sluiced ready"):
            self.proc.wait(timeout=10)
            raise RuntimeError("sluiced did not start: %r\n%s" %
                               (line, self.log()))
        fields = dict(f.split("=", 1) for f in line.split()[2:])
        self.binary_port = int(fields["binary"].rsplit(":", 1)[1])
        self.stomp_port = int(fields["stomp"].rsplit(":", 1)[1])
        if "http" in fields:
            self.http_port = int(fields["http"].rsplit(":", 1)[1])
        if "stomp-ws" in fields:  # --stomp-ws-listen
            self.ws_port = int(fields["stomp-ws"].rsplit(":", 1)[1])
        if "stomp-wss" in fields:  # --stomp-wss-listen (TLS)
            self.wss_port = int(fields["stomp-wss"].rsplit(":", 1)[1])
        return self

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        if self.proc:
            self.returncode = self.proc.returncode
        if self.proc:
            self.proc.stdout.close()
            self.errf.close()
        self.proc = None

    def kill9(self):
        self.stop(signal.SIGKILL)

    def cleanup(self):
        self.stop()
        log = self.log()
        # an ASan/UBSan build reports at exit: make it a test failure
        assert "Sanitizer" not in log and "runtime error" not in log, log
        if self.own_data:
            shutil.rmtree(self.data, ignore_errors=True)
            try:
                os.unlink(self.stderr_path)
            except OSError:
                pass


@pytest.fixture
def broker():
    b = Broker().start()
    yield b
    b.cleanup()


@pytest.fixture
def raw(broker):
    conns = []

    def make(version="1.2", connect=True, **kw):
        r = Raw(broker.stomp_port)
        conns.append(r)
        if connect:
            f = r.connect(version, **kw)
            assert f.command == "CONNECTED", f
        return r

    yield make
    for r in conns:
        r.close()
