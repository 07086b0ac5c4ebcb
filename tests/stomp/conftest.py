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
import socket
import subprocess
import tempfile

import pytest

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


def esc12(s):
    return (s.replace("\\", "\\\\").replace("\r", "\\r")
            .replace("\n", "\\n").replace(":", "\\c"))


def unesc(s, version):
    if version == "1.0":
        return s
    out, i = [], 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            nx = s[i + 1]
            out.append({"n": "\n", "c": ":", "\\": "\\", "r": "\r"}[nx])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Frame:
    def __init__(self, command, headers, body):
        self.command = command
        self.headers = headers  # first occurrence wins
        self.all_headers = []
        self.body = body

    def __repr__(self):
        return "Frame(%s, %r, %r)" % (self.command, self.headers,
                                      self.body[:80])


class Raw:
    """A raw STOMP connection: bytes out, frames in."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.buf = b""
        self.version = "1.0"
        self.eols = 0

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, command, headers=(), body=b"", escape=None):
        if isinstance(body, str):
            body = body.encode()
        if escape is None:
            escape = self.version != "1.0" and command not in (
                "CONNECT", "STOMP")
        lines = [command]
        for k, v in (headers.items() if isinstance(headers, dict)
                     else headers):
            if escape:
                k, v = esc12(k), esc12(v)
            lines.append("%s:%s" % (k, v))
        self.send_raw(("\n".join(lines) + "\n\n").encode() + body + b"\0")

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def read_frame(self):
        # skip heart-beat EOLs
        while True:
            while not self.buf:
                self._fill()
            if self.buf[:1] == b"\n":
                self.buf = self.buf[1:]
                self.eols += 1
                continue
            if self.buf[:2] == b"\r\n":
                self.buf = self.buf[2:]
                self.eols += 1
                continue
            if self.buf[:1] == b"\r":
                self._fill()
                continue
            break
        while b"\n\n" not in self.buf:
            self._fill()
        head, rest = self.buf.split(b"\n\n", 1)
        lines = head.decode().split("\n")
        command = lines[0]
        headers = {}
        allh = []
        raw_unesc = command in ("CONNECTED",) or self.version == "1.0"
        for l in lines[1:]:
            k, v = l.split(":", 1)
            if not raw_unesc:
                k, v = unesc(k, self.version), unesc(v, self.version)
            allh.append((k, v))
            headers.setdefault(k, v)
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(rest) < n + 1:
                self._fill()
                head2, rest = self.buf.split(b"\n\n", 1)
            body, tail = rest[:n], rest[n:]
            assert tail[:1] == b"\0", "no NUL after content-length body"
            self.buf = tail[1:]
        else:
            while b"\0" not in rest:
                self._fill()
                _, rest = self.buf.split(b"\n\n", 1)
            body, self.buf = rest.split(b"\0", 1)
        f = Frame(command, headers, body)
        f.all_headers = allh
        return f

    def expect(self, command):
        f = self.read_frame()
        assert f.command == command, "expected %s, got %r" % (command, f)
        return f

    def expect_closed(self):
        """Read until EOF; return the frames read before it."""
        frames = []
        while True:
            try:
                frames.append(self.read_frame())
            except EOFError:
                return frames
            except ConnectionResetError:
                return frames

    def connect(self, version="1.2", headers=None, heart_beat=None):
        h = {"accept-version": version, "host": "whatever.example"}
        if heart_beat:
            h["heart-beat"] = heart_beat
        h.update(headers or {})
        if version is None:
            del h["accept-version"]
        self.send("CONNECT", h)
        f = self.read_frame()
        if f.command == "CONNECTED":
            self.version = f.headers.get("version", "1.0")
        return f


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
