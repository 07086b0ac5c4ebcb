"""sluice_harness.py - start and stop a real sluiced for tests.

    from sluice_harness import Broker
    b = Broker(data_dir)            # or Broker() for a fresh temp dir
    b.start()                       # --listen/--stomp-listen 127.0.0.1:0
    b.binary_addr, b.stomp_addr     # ("127.0.0.1", port) tuples
    c = b.client()                  # sluice_wire.Client on the binary port
    b.stop()                        # SIGTERM, returns the exit status
    b.kill9(); b.start()            # crash and restart on the same dir

The ready line `sluiced ready binary=IP:PORT stomp=IP:PORT pid=PID` is read
from stdout (no sleeps, no fixed ports). stderr goes to b.log_path. The
binary is $SLUICE_BIN_DIR/sluiced (ctest sets it; the ASan build runs the
ASan binary), else build/bin/sluiced of the source tree.
"""

import os
import random
import select
import socket
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import ctypes

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import sluice_wire  # noqa: E402


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def reserve_ports(n):
    """n free ports BELOW the kernel's ephemeral range: a node restarted
    by a test must get its Raft port back, and a port from the ephemeral
    range (what bind(0) gives) can meanwhile become the source port of an
    outgoing connection (seen once: "cannot start on ...: Address already
    in use" after a restart)."""
    low = _ephemeral_low()
    rng = random.Random()
    socks, ports = [], []
    while len(ports) < n:
        port = rng.randrange(10000, low)
        if port in ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        socks.append(s)
        ports.append(port)
    for s in socks:
        s.close()
    return ports


_libc = ctypes.CDLL(None, use_errno=True)
_IN_MODIFY = 0x2


def wait_written(path, cond, what, timeout=30.0):
    """cond()'s first true value, checked again each time `path` is
    written (inotify), so nothing sleeps: a write between a check and the
    wait is queued on the watch, set up before the first check. Raises
    AssertionError naming `what` after `timeout` seconds."""
    fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    try:
        if _libc.inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch %s" % path)
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out after %.0fs waiting for %s"
                                     % (timeout, what))
            if select.select([fd], [], [], left)[0]:
                try:
                    os.read(fd, 65536)
                except BlockingIOError:
                    pass
    finally:
        os.close(fd)


def bin_dir():
    return os.environ.get("SLUICE_BIN_DIR") or os.path.join(SRC, "build",
                                                            "bin")


def sluiced_path():
    return os.path.join(bin_dir(), "sluiced")


def _parse_addr(s):
    host, port = s.rsplit(":", 1)
    return (host.strip("[]"), int(port))


class BrokerError(Exception):
    pass


class Broker:
    def __init__(self, data_dir=None, args=(), start_timeout=60.0):
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="sluice-test-")
        self.args = list(args)
        self.start_timeout = start_timeout
        self.proc = None
        self.pid = None
        self.binary_addr = None
        self.stomp_addr = None
        self.http_addr = None
        self.ws_addr = None
        self.tls_addr = self.stomp_tls_addr = self.http_tls_addr = None
        # beside the data directory (pytest's tmp_path keeps both)
        self.log_path = self.data_dir.rstrip("/") + ".log"
        self.ready_line = None

    # -- life cycle --------------------------------------------------------
    def spawn(self, extra=()):
        """Start sluiced and return the Popen without waiting (for tests of
        start-up failures)."""
        cmd = [sluiced_path(), "--data", self.data_dir,
               "--listen", "127.0.0.1:0", "--stomp-listen", "127.0.0.1:0",
               "--http-listen", "127.0.0.1:0"]
        cmd += self.args + list(extra)
        log = open(self.log_path, "ab")
        try:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL)
        finally:
            log.close()

    def start(self, extra=()):
        if self.proc is not None:
            raise BrokerError("already running")
        p = self.spawn(extra)
        deadline = time.monotonic() + self.start_timeout
        line = b""
        fd = p.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                p.kill()
                p.wait()
                raise BrokerError("sluiced printed no ready line within "
                                  "%.0fs; log:\n%s" % (self.start_timeout,
                                                       self.log()))
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            ch = os.read(fd, 1)
            if not ch:
                rc = p.wait()
                raise BrokerError("sluiced exited with %d before ready; "
                                  "log:\n%s" % (rc, self.log()))
            line += ch
        self.ready_line = line.decode().strip()
        fields = dict(f.split("=", 1) for f in self.ready_line.split()[2:])
        if not self.ready_line.startswith("sluiced ready "):
            raise BrokerError("unexpected ready line %r" % self.ready_line)
        self.binary_addr = _parse_addr(fields["binary"])
        self.stomp_addr = _parse_addr(fields["stomp"])
        if "http" in fields:
            self.http_addr = _parse_addr(fields["http"])
        if "stomp-ws" in fields:  # --stomp-ws-listen
            self.ws_addr = _parse_addr(fields["stomp-ws"])
        # TLS listeners: only when configured (--tls-listen and the like)
        self.tls_addr = (_parse_addr(fields["tls"]) if "tls" in fields
                         else None)
        self.stomp_tls_addr = (_parse_addr(fields["stomp-tls"])
                               if "stomp-tls" in fields else None)
        self.http_tls_addr = (_parse_addr(fields["http-tls"])
                              if "http-tls" in fields else None)
        self.pid = int(fields["pid"])
        assert self.pid == p.pid
        self.proc = p
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=60.0):
        """Send sig and wait; returns the exit status (negative = signal)."""
        if self.proc is None:
            return None
        p = self.proc
        if p.poll() is None:
            os.kill(p.pid, sig)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
            raise BrokerError("sluiced did not exit within %.0fs after "
                              "signal %d" % (timeout, sig))
        finally:
            p.stdout.close()
            self.proc = None
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self, extra=()):
        self.stop()
        return self.start(extra)

    def cleanup(self):
        if self.proc is not None:
            self.kill9()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            try:
                os.unlink(self.log_path)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.cleanup()

    # -- helpers -------------------------------------------------------------
    def client(self, timeout=30.0):
        return sluice_wire.Client(self.binary_addr, timeout=timeout)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_log(self, cond, what, timeout=30.0):
        """cond(log text)'s first true value, checked each time the log is
        written (wait_written), at most `timeout` seconds."""
        try:
            return wait_written(self.log_path, lambda: cond(self.log()),
                                what, timeout)
        except AssertionError as e:
            raise AssertionError("%s; the log:\n%s" % (e, self.log()))

    def rss_kb(self):
        """Resident set size of the running sluiced (VmRSS, kB)."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise BrokerError("no VmRSS for pid %d" % self.pid)
