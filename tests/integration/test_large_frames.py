"""Large binary frames that arrive in pieces (broker/conn.c, "2. Reading":
the broker asks the kernel to wake it only once the rest of a large frame
is there). Whatever the pieces, every frame is answered, in order, with
what it carried: a frame cut anywhere, a small rest after a large one, a
large frame with a small one behind it in the same send, and several
connections doing so at once."""
import random
import socket
import struct

import sluice_wire as sw


def big_batch(tag, n, size):
    return sw.encode_batch([("%s-%d-" % (tag, i)).encode().ljust(size, b"x")
                            for i in range(n)])


def produce_frame(corr, topic, recs):
    return sw.request_frame(sw.API_PRODUCE, corr, sw.produce_body(
        sw.ACKS_DURABLE, {topic: {0: recs}}))


def reply(sock_buf, sock):
    """(correlation id, produce result) of the next reply on sock."""
    while len(sock_buf) < 4 or len(sock_buf) < 4 + struct.unpack_from(
            "<I", sock_buf)[0]:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed by the broker"
        sock_buf += chunk
    n = struct.unpack_from("<I", sock_buf)[0]
    frame = bytes(sock_buf[4:4 + n])
    del sock_buf[:4 + n]
    corr = struct.unpack_from("<I", frame)[0]
    return corr, sw.decode_produce(frame[4:])


def send_in_pieces(s, data, cuts, other):
    """data in pieces ending at the offsets of cuts; between two pieces a
    round trip on another connection lets the broker read what came."""
    at = 0
    for cut in list(cuts) + [len(data)]:
        s.sendall(data[at:cut])
        at = cut
        assert other.list_topics() is not None


def values(c, topic, start, n):
    return [r["value"] for r in c.fetch_records(topic, 0, start,
                                                upto=start + n)]


def test_large_frames_in_pieces(broker):
    c = broker.client()
    c.create_topic("big", 1)
    other = broker.client()
    s = socket.create_connection(broker.binary_addr)
    s.settimeout(60)
    buf = bytearray()
    one = produce_frame(1, "big", big_batch("a", 400, 1000))  # ~400 KiB
    two = produce_frame(2, "big", big_batch("b", 300, 1000))
    small = produce_frame(3, "big", sw.encode_batch([b"small"]))
    # cut inside the length, the header, early, late (a rest below the
    # broker's 32 KiB threshold) and one byte before the end
    send_in_pieces(s, one, [2, 9, 20, 5000, 200000, len(one) - 20000,
                            len(one) - 1], other)
    # the next large frame and a small one in one send, cut once
    send_in_pieces(s, two + small, [len(two) - 100], other)
    got = [reply(buf, s) for _ in range(3)]
    assert [g[0] for g in got] == [1, 2, 3]
    bases = [g[1][("big", 0)] for g in got]
    assert [b["error"] for b in bases] == [0, 0, 0]
    assert [b["base_offset"] for b in bases] == [0, 400, 700]
    assert values(c, "big", 399, 2) == [
        b"a-399-".ljust(1000, b"x"), b"b-0-".ljust(1000, b"x")]
    assert values(c, "big", 700, 1) == [b"small"]
    s.close()


def test_many_connections_cut_at_random(broker):
    c = broker.client()
    c.create_topic("bigm", 1)
    other = broker.client()
    rnd = random.Random(20)
    socks = [socket.create_connection(broker.binary_addr) for _ in range(8)]
    frames = [produce_frame(k + 1, "bigm", big_batch("c%d" % k, 300, 900))
              for k in range(len(socks))]
    at = [0] * len(socks)
    while any(a < len(f) for a, f in zip(at, frames)):
        for k, s in enumerate(socks):  # interleaved pieces of every frame
            if at[k] < len(frames[k]):
                step = rnd.choice([1, 7, 4096, 40000, 150000])
                s.sendall(frames[k][at[k]:at[k] + step])
                at[k] += step
        assert other.list_topics() is not None
    seen = []
    for k, s in enumerate(socks):
        s.settimeout(60)
        corr, r = reply(bytearray(), s)
        assert corr == k + 1 and r[("bigm", 0)]["error"] == 0
        seen.append(r[("bigm", 0)]["base_offset"])
        s.close()
    assert sorted(seen) == [300 * k for k in range(len(socks))]
    assert len(values(c, "bigm", 0, 300 * len(socks))) == 300 * len(socks)


def test_slow_large_frame_is_not_idle(tmp_path):
    """Bytes of a large frame that trickle in below the read mark make no
    read event; the idle timeout reads them instead of closing, and still
    closes a peer that stalls mid-frame."""
    from sluice_harness import Broker
    b = Broker(str(tmp_path / "d"),
               args=["--idle-timeout-ms", "1000", "--log-level", "debug"])
    try:
        b.start()
        with b.client() as admin:
            assert admin.create_topic("slow", 1) == (0, None)
        frame = produce_frame(9, "slow", big_batch("s", 200, 1000))
        s = socket.create_connection(b.binary_addr)
        s.settimeout(60)
        s.sendall(frame[:10000])  # the rest (~190 KiB) sets the mark
        # a slow sender: 2 KiB per idle period for 3 periods. Each chunk
        # goes once the broker has read everything before it and set its
        # read mark again (its debug line, logged after the read), so each
        # idle period finds bytes below the mark and reads them.
        mark = "read mark set at"
        trickle = "bytes of a large frame came below the read mark"
        at = 10000
        for k in range(1, 4):
            b.wait_log(lambda t, k=k: t.count(mark) >= k, "read mark %d" % k)
            s.sendall(frame[at:at + 2048])
            at += 2048
        b.wait_log(lambda t: t.count(mark) >= 4 and t.count(trickle) >= 3,
                   "the idle checks read the trickle")
        s.sendall(frame[at:])
        corr, r = reply(bytearray(), s)
        assert corr == 9 and r[("slow", 0)]["error"] == 0
        # stalled mid-frame: closed as idle
        s.sendall(produce_frame(10, "slow", big_batch("t", 200, 1000))[:5000])
        assert s.recv(10) == b""
        s.close()
        assert "closing idle connection" in b.log()
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_a_new_connection_takes_a_whole_batch_unread(broker):
    """A new binary connection's receive buffer holds a produce request of
    libsluice's default batch (256 KiB) before the broker reads any of it
    (broker/conn_accept.c, grow_rcvbuf): with tcp_rmem's default the
    kernel took 175,616 bytes of a 600 KiB request here, the rest waiting
    in the producer's send queue for the broker's read to send it. The
    broker is paused (SIGSTOP) once the connection is answered; the
    client's own send buffer is kept small (32 KiB), so what its
    nonblocking sends take is about what the broker's side holds."""
    import os
    import select
    import signal
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    s.connect(broker.binary_addr)
    s.settimeout(60)
    hs = sw.request_frame(sw.API_HANDSHAKE, 1, sw.handshake_body())
    s.sendall(hs)
    buf = bytearray()
    while len(buf) < 4 or len(buf) < 4 + struct.unpack_from("<I", buf)[0]:
        chunk = s.recv(65536)
        assert chunk, "connection closed by the broker"
        buf += chunk
    frame = produce_frame(2, "rcvbuf", big_batch("r", 600, 1000))  # ~600 KiB
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        s.setblocking(False)
        took = 0
        # until the socket stays unwritable for a second: the paused
        # broker's side holds no more
        while took < len(frame) and select.select([], [s], [], 1.0)[1]:
            try:
                took += s.send(frame[took:took + 65536])
            except BlockingIOError:
                pass
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    s.setblocking(True)
    assert took >= 300 * 1024, "the kernel took %d bytes" % took
    s.sendall(frame[took:])
    corr, r = reply(bytearray(), s)
    assert corr == 2 and r[("rcvbuf", 0)]["error"] == 0
    s.close()
