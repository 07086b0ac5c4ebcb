"""Queue groups from Python: ack, nack (with delay), reject to the DLQ,
touch, lock expiry, competing consumers, release on close."""

import time

import pytest

import sluice


def produce(bootstrap, topic, values, **kw):
    with sluice.Producer(bootstrap) as p:
        futs = [p.send(topic, v, **kw) for v in values]
        return [f.result(timeout=30) for f in futs]


def take(q, n, timeout=15.0):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out.extend(q.consume(n - len(out), timeout=0.5))
    return out


def dlq_records(bootstrap, topic, n, timeout=15.0):
    with sluice.Consumer(bootstrap) as c:
        c.assign([(topic + ".DLQ", 0, sluice.OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            out.extend(c.consume(n, timeout=0.5))
        return out


def test_ack_consumes_each_message_once(bootstrap, topic):
    produce(bootstrap, topic, [b"%d" % i for i in range(50)])
    g = topic + "-workers"
    with sluice.QueueConsumer(bootstrap, topic, g) as q:
        msgs = take(q, 50)
        assert sorted(int(m.value) for m in msgs) == list(range(50))
        for m in msgs:
            assert m.attempts == 1 and m.failures == 0
            assert m.lock_deadline > 0
            m.ack()
            assert m.settled
        q.flush(timeout=10)
        assert q.held == 0
        assert q.poll(timeout=0.3) is None
    # a new consumer of the same group gets nothing: all were acked
    with sluice.QueueConsumer(bootstrap, topic, g) as q:
        assert q.poll(timeout=0.5) is None
    # another group sees everything again
    with sluice.QueueConsumer(bootstrap, topic, g + "2") as q:
        assert len(take(q, 50)) == 50


def test_nack_redelivers_with_counts(bootstrap, topic):
    produce(bootstrap, topic, [b"job"])
    with sluice.QueueConsumer(bootstrap, topic, "g") as q:
        m1 = q.poll(timeout=10)
        assert (m1.value, m1.attempts, m1.failures) == (b"job", 1, 0)
        m1.nack(delay=0)
        m2 = q.poll(timeout=10)
        assert (m2.offset, m2.attempts, m2.failures) == (m1.offset, 2, 1)
        m2.ack()
        q.flush(timeout=10)


def test_nack_delay_is_respected(bootstrap, topic):
    produce(bootstrap, topic, [b"later"])
    with sluice.QueueConsumer(bootstrap, topic, "g") as q:
        m = q.poll(timeout=10)
        t0 = time.time()
        m.nack(delay=1.0)
        q.flush(timeout=10)
        m2 = q.poll(timeout=15)
        # never earlier than asked (a lower bound only: no upper timing bound)
        assert m2 is not None and m2.offset == m.offset
        assert time.time() - t0 >= 0.95
        assert m2.attempts == 2 and m2.failures == 1
        m2.ack()


def test_reject_goes_to_dlq_with_headers(bootstrap, topic):
    produce(bootstrap, topic, [b"poison"], key=b"k1",
            headers=[("trace", b"abc")])
    with sluice.QueueConsumer(bootstrap, topic, "g") as q:
        m = q.poll(timeout=10)
        m.reject("cannot parse")
        q.flush(timeout=10)
        assert q.poll(timeout=0.3) is None
    (d,) = dlq_records(bootstrap, topic, 1)
    assert d.value == b"poison" and d.key == b"k1"
    assert d.header("trace") == b"abc"
    assert d.header("dlq.topic") == topic.encode()
    assert d.header("dlq.partition") == b"0"
    assert d.header("dlq.offset") == str(m.offset).encode()
    assert d.header("dlq.group") == b"g"
    assert d.header("dlq.reason") == b"rejected"
    assert d.header("dlq.reason-text") == b"cannot parse"
    assert d.header("dlq.attempts") == b"1"


def test_admin_sees_dlq_and_redrives(bootstrap, admin, topic):
    produce(bootstrap, topic, [b"a", b"b"])
    with sluice.QueueConsumer(bootstrap, topic, "g") as q:
        for m in take(q, 2):
            m.reject()
        q.flush(timeout=10)
    assert len(dlq_records(bootstrap, topic, 2)) == 2
    (info,) = admin.dlqs(topic)
    assert info.topic == topic + ".DLQ" and info.depth == 2
    moved = admin.redrive(topic + ".DLQ")
    assert moved == 2
    with sluice.QueueConsumer(bootstrap, topic, "g") as q:
        again = take(q, 2)
        assert sorted(m.value for m in again) == [b"a", b"b"]
        for m in again:
            m.ack()


def test_touch_extends_the_lock(bootstrap, topic):
    produce(bootstrap, topic, [b"long job"])
    with sluice.QueueConsumer(bootstrap, topic, "g") as q:
        m = q.poll(timeout=10)
        before = m.lock_deadline
        new = m.touch(lock=120)
        assert new == m.lock_deadline
        assert new >= before and new >= int(time.time() * 1000) + 100_000
        assert m.touch() == 0  # group lock time: deadline not known here
        assert m.lock_deadline == new
        m.ack()
        q.flush(timeout=10)


def test_lock_expiry_redelivers_to_another_consumer(bootstrap, topic):
    produce(bootstrap, topic, [b"slow"])
    with sluice.QueueConsumer(bootstrap, topic, "g", queue_lock_ms=300) as a:
        m = a.poll(timeout=10)
        assert m.attempts == 1
        with sluice.QueueConsumer(bootstrap, topic, "g") as b:
            m2 = b.poll(timeout=15)  # after a's lock expired
            assert m2 is not None and m2.offset == m.offset
            assert m2.attempts == 2 and m2.failures == 1
            # a's late ack: b holds the message now; the broker's verdict
            # comes with flush
            m.ack()
            with pytest.raises(sluice.NotAcquiredError) as ei:
                a.flush(timeout=10)
            assert str(m.offset) in str(ei.value) or topic in str(ei.value)
            m2.ack()
            b.flush(timeout=10)
            # acks are idempotent: acking a message that is done succeeds
            a._c.ack(m.partition, m.offset)
            a.flush(timeout=10)


def test_competing_consumers_split_the_work(bootstrap, topic):
    produce(bootstrap, topic, [b"%d" % i for i in range(200)])
    with sluice.QueueConsumer(bootstrap, topic, "g", queue_credits=10) as a, \
            sluice.QueueConsumer(bootstrap, topic, "g",
                                 queue_credits=10) as b:
        seen = {}
        deadline = time.monotonic() + 30
        while len(seen) < 200 and time.monotonic() < deadline:
            for name, q in (("a", a), ("b", b)):
                for m in q.consume(10, timeout=0.1):
                    assert m.offset not in seen, "delivered twice"
                    seen[m.offset] = name
                    m.ack()
        assert sorted(seen) == list(range(200))
        assert set(seen.values()) == {"a", "b"}


def test_close_releases_held_messages(bootstrap, topic):
    produce(bootstrap, topic, [b"x", b"y"])
    q = sluice.QueueConsumer(bootstrap, topic, "g")
    held = take(q, 2)
    assert q.held == 2
    q.close()
    assert q.closed
    with pytest.raises(sluice.ClosedError):
        held[0].ack()
    with sluice.QueueConsumer(bootstrap, topic, "g") as q2:
        again = take(q2, 2)
        assert sorted(m.value for m in again) == [b"x", b"y"]
        # the first delivery is kept in attempts; closing the connection
        # released them without counting a failure (no nack)
        assert all(m.attempts == 2 for m in again)
        assert all(m.failures == 0 for m in again)
        for m in again:
            m.ack()


def test_iteration_and_async_iteration(bootstrap, topic):
    import asyncio
    produce(bootstrap, topic, [b"%d" % i for i in range(10)])
    with sluice.QueueConsumer(bootstrap, topic, "g") as q:
        got = []
        for m in q.messages(idle_timeout=1.0):
            got.append(int(m.value))
            m.ack()
        assert sorted(got) == list(range(10))
    produce(bootstrap, topic, [b"%d" % i for i in range(10, 15)])

    async def main():
        out = []
        with sluice.QueueConsumer(bootstrap, topic, "g") as q:
            async for m in q.aiter(idle_timeout=1.0):
                out.append(int(m.value))
                m.ack()
        return out
    assert sorted(asyncio.run(main())) == list(range(10, 15))


def test_ttl_and_not_before_headers(bootstrap, topic):
    now = int(time.time() * 1000)
    produce(bootstrap, topic, [b"expired"],
            headers={"ttl-ms": "1"}, timestamp=now - 60_000)
    produce(bootstrap, topic, [b"delayed"],
            headers={"not-before": str(now + 1000)})
    produce(bootstrap, topic, [b"plain"])
    with sluice.QueueConsumer(bootstrap, topic, "g") as q:
        first = q.poll(timeout=10)
        assert first.value == b"plain"
        first.ack()
        second = q.poll(timeout=15)
        assert second.value == b"delayed"
        assert time.time() * 1000 >= now + 1000
        second.ack()
        assert q.poll(timeout=0.3) is None


def test_max_deliveries_dead_letters(bootstrap, topic):
    """The group default is 10 deliveries: the 10th nack dead-letters."""
    produce(bootstrap, topic, [b"hopeless"])
    attempts = []
    with sluice.QueueConsumer(bootstrap, topic, "g") as q:
        for _ in range(10):
            m = q.poll(timeout=10)
            attempts.append((m.attempts, m.failures))
            m.nack(delay=0)
        q.flush(timeout=10)
        assert q.poll(timeout=0.5) is None  # gone to the DLQ
    assert attempts == [(i, i - 1) for i in range(1, 11)]
    (d,) = dlq_records(bootstrap, topic, 1)
    assert d.value == b"hopeless"
    assert d.header("dlq.reason") == b"max_deliveries"
    assert d.header("dlq.attempts") == b"10"
    assert d.header("dlq.failures") == b"10"


# ---- issue 19: as a pika user expects; issue 20: adaptive window ---------

def test_consumer_started_before_its_topic_creates_it(bootstrap, admin,
                                                      topic):
    # auto-create-topics is on (the default): the first acquire creates
    # the topic, as STOMP SUBSCRIBE does and pika's queue_declare does
    with sluice.QueueConsumer(bootstrap, topic, "early") as q:
        assert q.poll(timeout=0.5) is None  # no UnknownTopicError
        assert topic in [t.name for t in admin.topics()]
        produce(bootstrap, topic, [b"first"])
        m = q.poll(timeout=15)
        assert m is not None and m.value == b"first"
        m.ack()


def test_consumer_waits_for_topic_without_auto_create(tmp_path):
    import threading
    import sluice_harness
    b = sluice_harness.Broker(str(tmp_path / "d"),
                              args=["--auto-create-topics", "no"])
    b.start()
    try:
        addr = "%s:%d" % b.binary_addr
        with sluice.QueueConsumer(addr, "later", "g") as q:
            with pytest.raises(sluice.UnknownTopicError) as ei:
                q.poll(timeout=0.3)
            assert "auto-create-topics is off" in str(ei.value)
            assert "later" in str(ei.value)
            # a longer poll waits for the topic to be created
            got = []
            t = threading.Thread(target=lambda: got.append(q.poll(timeout=60)))
            t.start()
            with sluice.Admin(addr) as a:
                a.create_topic("later", partitions=1)
            produce(addr, "later", [b"v"])
            t.join(90)
            assert not t.is_alive()
            assert got and got[0] is not None and got[0].value == b"v"
            got[0].ack()
    finally:
        assert b.stop() == 0
        b.cleanup()


def test_prefetch_one_holds_one_message(bootstrap, topic):
    produce(bootstrap, topic, [b"%d" % i for i in range(10)])
    with sluice.QueueConsumer(bootstrap, topic, "qos", prefetch=1) as a, \
            sluice.QueueConsumer(bootstrap, topic, "qos") as b:
        m = a.poll(timeout=15)
        assert m is not None and a.held == 1
        # holding one unacked message, a gets no second one...
        assert a.poll(timeout=0.3) is None
        assert a.held == 1
        # ...and the other nine are b's
        rest = take(b, 9)
        assert len(rest) == 9
        assert sorted([m.value] + [x.value for x in rest]) == \
            sorted(b"%d" % i for i in range(10))
        for x in rest:
            x.ack()
        m.ack()
        assert a.held == 0
    with pytest.raises(ValueError):
        sluice.QueueConsumer(bootstrap, topic, "qos", prefetch=0)


def test_default_window_spreads_work_over_competing_consumers(bootstrap,
                                                             topic):
    # a slow consumer with the default settings holds a few records, not
    # a fixed batch of 256: the others stay available to its competitor
    produce(bootstrap, topic, [b"%d" % i for i in range(40)])
    with sluice.QueueConsumer(bootstrap, topic, "spread") as slow, \
            sluice.QueueConsumer(bootstrap, topic, "spread") as fast:
        m = slow.poll(timeout=15)
        assert m is not None
        assert slow.held <= 2
        got = take(fast, 40 - slow.held, timeout=30)
        assert len(got) >= 38
        for x in got:
            x.ack()
        m.ack()


def test_default_window_grows_for_a_fast_consumer(bootstrap, topic):
    n = 20000
    with sluice.Producer(bootstrap, linger_ms=20) as p:
        for i in range(n):
            p.send(topic, b"%d" % i)
        p.flush(30)
    with sluice.QueueConsumer(bootstrap, topic, "grow") as q:
        seen = 0
        biggest = 0  # the most records one consume() found buffered
        deadline = time.monotonic() + 60
        while seen < n and time.monotonic() < deadline:
            got = q.consume(n, timeout=1)
            biggest = max(biggest, len(got))
            for m in got:
                m.ack()
                seen += 1
        assert seen == n
        # the old fixed default (256 per acquire, the next one asked at
        # half) never had more than 384 buffered
        assert biggest > 384
