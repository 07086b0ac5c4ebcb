"""Many iterations with stable memory: no reference leaks in the extension.

Debian's python3 is a release build (no sys.gettotalrefcount), so leaks are
found three ways: the reference count of objects passed in over and over
(a leaked reference per call shows as +N), the number of GC-tracked objects,
and the process RSS across 20k messages after a warm-up.
"""

import ctypes
import gc
import os
import sys
import time

import sluice

N = 20_000


# Under ASan (scripts/python-test.sh on a -DSLUICE_SANITIZE=ON build) freed
# memory sits in ASan's quarantine, so RSS says nothing about leaks there.
CHECK_RSS = not os.environ.get("SLUICE_SANITIZED")


def rss_kib():
    """The resident set once malloc has handed its free pages back: what a
    leak keeps, without the free memory glibc's heap holds after a peak
    (how much it holds depends on how far the producer got ahead of its
    acks and on what was freed before, so it moved with the machine's load:
    +8.3 MiB in one CI run, -0.3 to +7.9 MiB in others)."""
    ctypes.CDLL(None).malloc_trim(0)
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def produce_consume(bootstrap, topic, value, key, headers, n):
    with sluice.Producer(bootstrap, linger_ms=2) as p:
        for i in range(n):
            p.send(topic, value, key=key, headers=headers)
            if i % 5000 == 4999:
                p.flush(timeout=60)
        p.flush(timeout=60)
    got = 0
    with sluice.QueueConsumer(bootstrap, topic, "mem") as q:
        deadline = time.monotonic() + 120
        while got < n and time.monotonic() < deadline:
            for m in q.consume(500, timeout=0.5):
                assert m.value == value
                m.ack()
                got += 1
        q.flush(timeout=30)
    assert got == n


def test_no_reference_leaks_across_20k_messages(bootstrap, topic):
    value = b"v" * 1024
    key = b"some-key"
    hdr_value = b"header-value"
    headers = [("h", hdr_value)]
    produce_consume(bootstrap, topic, value, key, headers, 2000)  # warm-up
    gc.collect()
    refs = [sys.getrefcount(o) for o in (value, key, hdr_value, headers,
                                         topic)]
    objs = len(gc.get_objects())
    rss0 = rss_kib()

    produce_consume(bootstrap, topic, value, key, headers, N)

    gc.collect()
    after = [sys.getrefcount(o) for o in (value, key, hdr_value, headers,
                                          topic)]
    assert after == refs, "references leaked: %r -> %r" % (refs, after)
    grown = len(gc.get_objects()) - objs
    assert grown < 500, "%d more GC objects after %d messages" % (grown, N)
    rss_growth = rss_kib() - rss0
    # a leak of one 1 KiB value per message would be > 20 MiB
    if CHECK_RSS:
        assert rss_growth < 8 * 1024, "RSS grew by %d KiB" % rss_growth


def test_stream_consumer_memory_stable(bootstrap, topic):
    with sluice.Producer(bootstrap, linger_ms=2) as p:
        for i in range(N):
            p.send(topic, b"x" * 512)
        p.flush(timeout=60)

    def read_all():
        n = 0
        with sluice.Consumer(bootstrap) as c:
            c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
            deadline = time.monotonic() + 120
            while n < N and time.monotonic() < deadline:
                n += len(c.consume(1000, timeout=0.5))
        assert n == N

    read_all()  # warm-up
    gc.collect()
    objs = len(gc.get_objects())
    rss0 = rss_kib()
    for _ in range(3):
        read_all()
    gc.collect()
    assert len(gc.get_objects()) - objs < 500
    if CHECK_RSS:
        assert rss_kib() - rss0 < 8 * 1024
