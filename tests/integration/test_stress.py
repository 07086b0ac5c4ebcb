"""Concurrency shake-out: producers, long-polling fetchers, topic
create/delete and abrupt disconnects with requests in flight, all at once.
The broker must stay up, answer every connection it keeps, and exit 0
(under ASan: without a leak or a use-after-free)."""
import random
import socket
import threading

import sluice_wire as sw

ROUNDS = 60


def producer(addr, seed, errors):
    rnd = random.Random(seed)
    try:
        for _ in range(ROUNDS):
            c = sw.Client(addr)
            n = rnd.randrange(1, 20)
            expect = []
            for _ in range(n):
                topic = rnd.choice(["s0", "s1", "tmp"])
                acks = rnd.choice([0, 1, 2, 2])
                body = sw.produce_body(acks, {
                    topic: {rnd.randrange(2): sw.encode_batch(
                        [b"x" * rnd.randrange(1, 300)])}})
                corr = c.send(sw.API_PRODUCE, body)
                if acks:
                    expect.append(corr)
            if rnd.random() < 0.5:
                c.sock.close()  # abrupt: replies still pending
                continue
            for corr in expect:  # in order, none missing
                assert c.recv()[0] == corr
            # a final round trip proves the connection stayed healthy
            assert c.list_topics() is not None
            c.close()
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))


def fetcher(addr, seed, errors):
    rnd = random.Random(seed)
    try:
        for _ in range(ROUNDS):
            c = sw.Client(addr)
            expect = []
            for _ in range(rnd.randrange(1, 5)):
                topic = rnd.choice(["s0", "s1", "tmp", "nope"])
                expect.append(c.send(sw.API_FETCH, sw.fetch_body(
                    {topic: [(0, rnd.randrange(0, 50), 4096),
                             (1, 0, 100)]},
                    max_wait_ms=rnd.choice([0, 5, 50]), min_bytes=1)))
            if rnd.random() < 0.5:
                c.sock.close()  # long polls parked
                continue
            for corr in expect:
                assert c.recv()[0] == corr
            assert c.list_topics() is not None
            c.close()
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))


def admin(addr, seed, errors):
    rnd = random.Random(seed)
    try:
        c = sw.Client(addr)
        for _ in range(ROUNDS):
            c.create_topic("tmp", 2, {"flush": rnd.choice(
                ["always", "interval", "never"])})
            c.delete_topic("tmp")
        c.close()
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))


def garbage(addr, seed, errors):
    rnd = random.Random(seed)
    try:
        for _ in range(ROUNDS):
            s = socket.create_connection(addr)
            s.sendall(bytes(rnd.getrandbits(8)
                            for _ in range(rnd.randrange(1, 64))))
            s.close()
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))


def test_everything_at_once(broker):
    c = broker.client()
    c.create_topic("s0", 2)
    c.create_topic("s1", 2, {"flush": "interval", "flush-interval-ms": "5"})
    addr = broker.binary_addr
    errors = []
    threads = [threading.Thread(target=f, args=(addr, i, errors))
               for i, f in enumerate([producer, producer, producer,
                                      fetcher, fetcher, admin, garbage])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    # still serving, and the surviving topics are consistent
    for t in ("s0", "s1"):
        for p in range(2):
            end = c.list_offset(t, p, sw.OFFSET_LATEST)[1]
            recs = c.fetch_records(t, p, 0, upto=end) if end else []
            assert [x["offset"] for x in recs] == list(range(end))
