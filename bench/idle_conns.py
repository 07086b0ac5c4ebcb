"""bench/idle_conns.py PID BINARY_PORT STOMP_PORT N [binary|stomp]... - the broker's cost of
N idle connections (bench/conn_scaling.sh): open N binary connections,
measure, close them; then N STOMP sessions (CONNECT, CONNECTED), measure,
close. Prints the broker's RSS and open descriptors before and with them,
the difference per connection, and its CPU ticks over 5 s with them open.
"""
import os
import resource
import socket
import sys
import time

pid, bport, sport, n = (int(a) for a in sys.argv[1:5])
kinds = sys.argv[5:] or ["binary", "stomp"]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
HZ = os.sysconf("SC_CLK_TCK")


def rss_kib():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def fds():
    return len(os.listdir("/proc/%d/fd" % pid))


def ticks():
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])


def settle():
    # the broker has accepted them all when its descriptor count is steady
    last, same = -1, 0
    while same < 5:
        time.sleep(0.2)
        now = fds()
        same = same + 1 if now == last else 0
        last = now


def measure(kind, port, hello):
    r0, f0 = rss_kib(), fds()
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if hello:
            s.sendall(hello)
        socks.append(s)
    if hello:
        for s in socks:
            got = b""
            while b"\0" not in got:
                d = s.recv(4096)
                assert d, "closed before CONNECTED"
                got += d
            assert got.startswith(b"CONNECTED"), got[:80]
    settle()
    r1, f1 = rss_kib(), fds()
    t0 = ticks()
    time.sleep(5)
    t1 = ticks()
    print("%-6s %d idle: RSS %d -> %d KiB (%.2f KiB each), descriptors "
          "%d -> %d (%.2f each), broker CPU %.1f%% of a core over 5 s"
          % (kind, n, r0, r1, (r1 - r0) / n, f0, f1, (f1 - f0) / n,
             (t1 - t0) * 100.0 / HZ / 5))
    for s in socks:
        s.close()
    settle()


if "binary" in kinds:
    measure("binary", bport, None)
if "stomp" in kinds:
    measure("stomp", sport,
            b"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\0")
