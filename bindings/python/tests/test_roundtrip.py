"""Producer -> broker -> stream consumer round trips through libsluice."""

import asyncio
import time

import pytest

import sluice


def read_all(bootstrap, topic, count, partitions=None, timeout=10.0):
    """Read `count` records of `topic` from the beginning (all partitions)."""
    out = []
    with sluice.Consumer(bootstrap) as c:
        if partitions is None:
            c.assign_topic(topic, sluice.OFFSET_BEGINNING)
        else:
            c.assign([(topic, p, sluice.OFFSET_BEGINNING)
                      for p in partitions])
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            out.extend(c.consume(1000, timeout=0.5))
    return out


def test_send_returns_metadata_and_values_round_trip(bootstrap, admin, topic):
    admin.create_topic(topic, partitions=3)
    values = [b"value-%d" % i for i in range(300)]
    with sluice.Producer(bootstrap) as p:
        futs = [p.send(topic, v, key=b"k%d" % (i % 17),
                       headers={"n": str(i), "bin": b"\x00\xff"})
                for i, v in enumerate(values)]
        metas = [f.result(timeout=30) for f in futs]
    # offsets are dense and unique per partition, and the key decides it
    by_part = {}
    for i, m in enumerate(metas):
        assert m.topic == topic
        assert m.partition == sluice.partition_for_key(b"k%d" % (i % 17), 3)
        by_part.setdefault(m.partition, []).append(m.offset)
        assert m.timestamp > 0
    for offs in by_part.values():
        assert sorted(offs) == list(range(len(offs)))
        assert offs == sorted(offs)  # one producer: order kept

    msgs = read_all(bootstrap, topic, len(values))
    assert len(msgs) == len(values)
    got = {}
    for m in msgs:
        assert isinstance(m, sluice.Message)
        n = int(m.header("n"))
        assert m.value == values[n]
        assert m.key == b"k%d" % (n % 17)
        assert m.headers == [("n", str(n).encode()), ("bin", b"\x00\xff")]
        assert (m.partition, m.offset) == (metas[n].partition,
                                           metas[n].offset)
        assert m.attempts == 0 and m.failures == 0
        got[n] = m
    assert sorted(got) == list(range(len(values)))


def test_null_empty_binary_and_str_values(bootstrap, topic):
    blobs = [None, b"", b"\x00" * 5, "h\u00e9llo", bytearray(b"ba"),
             memoryview(b"mv"), b"x" * 100000]
    with sluice.Producer(bootstrap) as p:
        for v in blobs:
            p.send(topic, v, key=None if v is None else b"k")
        p.flush(timeout=30)
        assert len(p) == 0
    msgs = read_all(bootstrap, topic, len(blobs))
    assert [m.value for m in msgs] == [
        None, b"", b"\x00" * 5, "h\u00e9llo".encode(), b"ba", b"mv",
        b"x" * 100000]
    assert msgs[0].key is None and msgs[1].key == b"k"


def test_on_delivery_called_once_per_record(bootstrap, topic):
    seen = []
    per_send = []
    with sluice.Producer(bootstrap,
                         on_delivery=lambda e, m: seen.append((e, m))) as p:
        for i in range(50):
            p.send(topic, b"%d" % i)
        p.send(topic, b"last", on_delivery=lambda e, m: per_send.append(m))
        p.flush(timeout=30)
    assert len(seen) == 50
    assert all(e is None for e, _ in seen)
    assert sorted(m.offset for _, m in seen) == list(range(50))
    assert [m.offset for m in per_send] == [50]


def test_explicit_partition_and_timestamp(bootstrap, admin, topic):
    admin.create_topic(topic, partitions=2)
    with sluice.Producer(bootstrap) as p:
        m = p.send(topic, b"a", partition=1, timestamp=1_600_000_000_000) \
            .result(timeout=30)
        assert p.partitions_for(topic) == 2
    assert m.partition == 1 and m.offset == 0
    (msg,) = read_all(bootstrap, topic, 1, partitions=[1])
    assert msg.timestamp == 1_600_000_000_000 and msg.value == b"a"


def test_future_api(bootstrap, topic):
    with sluice.Producer(bootstrap) as p:
        f = p.send(topic, b"v")
        called = []
        f.add_done_callback(called.append)
        meta = f.result(timeout=30)
        assert f.done() and f.exception() is None
        assert called == [f]
        late = []
        f.add_done_callback(late.append)  # already done: called at once
        assert late == [f]
        assert "DeliveryFuture" in repr(f) and str(meta.offset) in repr(f)


def test_await_future_and_async_iteration(bootstrap, topic):
    async def main():
        with sluice.Producer(bootstrap) as p:
            metas = [await p.send(topic, b"%d" % i) for i in range(5)]
        assert [m.offset for m in metas] == list(range(5))
        got = []
        with sluice.Consumer(bootstrap) as c:
            c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
            async for m in c.aiter(idle_timeout=2.0):
                got.append(m.value)
                if len(got) == 5:
                    break
        return got
    assert asyncio.run(main()) == [b"%d" % i for i in range(5)]


def test_message_repr_and_iteration_idle_timeout(bootstrap, topic):
    with sluice.Producer(bootstrap) as p:
        p.send(topic, b"y" * 100).result(timeout=30)
    with sluice.Consumer(bootstrap) as c:
        c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
        msgs = list(c.messages(idle_timeout=1.0))
    assert len(msgs) == 1
    r = repr(msgs[0])
    assert topic in r and "offset=0" in r and "100 bytes" in r


def test_zstd_compression_round_trip(bootstrap, topic):
    with sluice.Producer(bootstrap, compression="zstd", linger_ms=20) as p:
        for i in range(1000):
            p.send(topic, b"compressible %d " % i * 10)
        p.flush(timeout=30)
    msgs = read_all(bootstrap, topic, 1000)
    assert [m.value for m in msgs] == [b"compressible %d " % i * 10
                                       for i in range(1000)]


def test_background_thread_delivers_without_being_driven(bootstrap, topic):
    """After send() the application never calls into the producer again;
    the producer's own thread still sends the lingering batch and runs the
    callback."""
    import threading
    done = threading.Event()
    seen = []

    def cb(err, meta):
        seen.append((err, meta.offset, threading.current_thread().name))
        done.set()

    p = sluice.Producer(bootstrap, linger_ms=20, on_delivery=cb)
    try:
        p.send(topic, b"lonely")
        assert done.wait(timeout=30)
        assert seen == [(None, 0, "sluice-producer")]
    finally:
        p.close()
