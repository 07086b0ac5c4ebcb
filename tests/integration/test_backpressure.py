"""A consumer that stops reading must not grow the broker's memory with the
backlog; a producer that does not read its replies is stopped likewise."""
import socket
import struct

import pytest

import sluice_wire as sw
from sluice_harness import Broker

MB = 1024 * 1024


def fill_backlog(c, topic, total_mb):
    """Produce total_mb of 1 MiB batches (64 x 16 KiB records)."""
    batch = sw.encode_batch([b"r" * (16 * 1024 - 40)] * 64)
    body = sw.produce_body(sw.ACKS_WRITTEN, {topic: {0: batch}})
    n = total_mb * MB // len(batch)
    corrs = [c.send(sw.API_PRODUCE, body) for _ in range(n)]
    end = 0
    for corr in corrs:
        rc, resp = c.recv()
        assert rc == corr
        r = sw.decode_produce(resp)[(topic, 0)]
        assert r["error"] == 0
        end = r["log_end_offset"]
    # long-poll until all of it is visible (durable)
    r = c.fetch(topic, 0, end - 1, max_wait_ms=30000, min_bytes=1)
    assert r["error"] == 0 and r["high_watermark"] == end
    return end


def stuff_until_blocked(sock, frames, limit):
    """Send frames until the kernel buffers are full (the broker stopped
    reading). Returns how many whole frames were sent."""
    sock.setblocking(False)
    sent = 0
    pending = b""
    i = 0
    while sent < limit:
        if not pending:
            pending = frames(i)
            i += 1
        try:
            n = sock.send(pending)
        except BlockingIOError:
            return sent
        pending = pending[n:]
        if not pending:
            sent += 1
    return sent


@pytest.fixture
def dbroker(tmp_path):
    b = Broker(str(tmp_path / "data"), args=["--log-level", "debug"])
    b.start()
    yield b
    try:
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_stalled_consumer_bounded_rss(dbroker):
    broker = dbroker
    c = broker.client()
    c.create_topic("backlog", 1)
    end = fill_backlog(c, "backlog", 200)
    base_rss = broker.rss_kb()

    s = socket.create_connection(broker.binary_addr)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    per = 4 * MB
    step = end // 50

    def frame(i):
        off = (i * step) % end
        return sw.request_frame(sw.API_FETCH, i + 1, sw.fetch_body(
            {"backlog": [(0, off, per)]}, max_bytes=per))

    # 300 fetches of 4 MiB each would be 1.2 GB of replies; the requests
    # themselves are small enough for the kernel buffers, so they all go
    # out, and the broker must stop reading them once its output to this
    # connection passes output-high-water.
    sent = stuff_until_blocked(s, frame, 300)
    # Measure while the broker works through what it read: control round
    # trips on another connection interleave with it on the one loop.
    grown = 0
    for _ in range(50):
        assert c.list_topics() == {"backlog": 1}
        grown = max(grown, broker.rss_kb() - base_rss)
    assert grown < 64 * 1024, "RSS grew by %d kB for a stalled consumer" % (
        grown)
    # others are still served while it is stalled
    r = c.produce("backlog", 0, [b"late"], acks=sw.ACKS_DURABLE)
    assert r["error"] == 0

    # now read: replies arrive in order and complete (the first 20 are
    # checked; reading 1.2 GB in Python would only cost time)
    s.setblocking(True)
    s.settimeout(60)
    buf = bytearray()
    got = 0
    while got < min(sent, 20):
        chunk = s.recv(4 * MB)
        assert chunk, "closed after %d of %d replies" % (got, sent)
        buf += chunk
        while len(buf) >= 4:
            n = struct.unpack_from("<I", buf)[0]
            if len(buf) < 4 + n:
                break
            corr = struct.unpack_from("<I", buf, 4)[0]
            assert corr == got + 1
            if got % 5 == 0:
                r = sw.decode_fetch(bytes(buf[8:4 + n]))[("backlog", 0)]
                assert r["error"] == 0 and len(r["records"]) > 0
            del buf[:4 + n]
            got += 1
    s.close()
    assert broker.rss_kb() - base_rss < 64 * 1024
    # and the bound came from back-pressure: reading was paused
    assert "paused reading" in broker.log()


def test_producer_not_reading_replies_is_paused(broker):
    c = broker.client()
    c.create_topic("p", 1)
    s = socket.create_connection(broker.binary_addr)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    body = sw.produce_body(sw.ACKS_WRITTEN, {"p": {0: sw.encode_batch(
        [b"x"])}})
    # replies are small; max-pending-requests and the output high water
    # stop the reading eventually
    sent = stuff_until_blocked(
        s, lambda i: sw.request_frame(sw.API_PRODUCE, i + 1, body), 2000000)
    assert sent < 2000000
    end = c.list_offset("p", 0, sw.OFFSET_LATEST)[1]
    assert 0 < end <= sent
    s.close()
    assert c.list_topics() == {"p": 1}
