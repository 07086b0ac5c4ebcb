"""Queue and stream groups end to end over the binary protocol
(docs/groups.md). Each test starts its own sluiced (conftest.broker).

Waiting is by polling with a generous deadline (long-poll acquires), never
by sleeping a fixed time."""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "harness"))

import sluice_wire as sw  # noqa: E402
import sluice_wire_groups as swg  # noqa: E402

DEADLINE_S = 30.0


def produce(c, topic, part, values, keys=None, headers=None):
    body = sw.produce_body(sw.ACKS_DURABLE, {topic: {part: sw.encode_batch(
        values, keys, headers, ts=int(time.time() * 1000))}})
    r = sw.decode_produce(c.call(sw.API_PRODUCE, body))[(topic, part)]
    assert r["error"] == 0, r
    return r


def acquire_until(q, pred, n=100, lock_ms=0):
    """Acquire (long poll) until pred(records so far) holds or the deadline
    passes; returns everything acquired."""
    got = []
    end = time.monotonic() + DEADLINE_S
    while not pred(got):
        assert time.monotonic() < end, "condition not met; got %r" % (
            [(r["partition"], r["offset"]) for r in got],)
        got += q.acquire(n, max_wait_ms=200, lock_ms=lock_ms)
    return got


def stats(c, group, topic):
    kv = swg.queue_config(c, group, topic, mode=2)
    return {k[6:]: int(v) for k, v in kv.items() if k.startswith("stats.")}


def test_competing_consumers_each_record_once(broker):
    c = broker.client()
    assert c.create_topic("jobs", 2) == (0, None)
    n = 400
    for p in range(2):
        for i in range(0, n // 2, 50):
            produce(c, "jobs", p, [b"job-%d-%d" % (p, i + k)
                                   for k in range(50)])
    clients = [broker.client() for _ in range(4)]
    qs = [swg.Queue(clients[i], "workers", "jobs", "w%d" % i)
          for i in range(4)]
    seen = {}
    per = [0] * 4
    end = time.monotonic() + DEADLINE_S
    while len(seen) < n:
        assert time.monotonic() < end, "only %d of %d records" % (len(seen),
                                                                n)
        for i, q in enumerate(qs):
            recs = q.acquire(7, max_wait_ms=0)
            for r in recs:
                key = (r["partition"], r["offset"])
                assert key not in seen, "record %r delivered twice" % (key,)
                seen[key] = r["value"]
                assert r["attempts"] == 1 and r["failures"] == 0
            per[i] += len(recs)
            if recs:
                res = q.ack([(r["partition"], r["offset"]) for r in recs])
                assert all(e == 0 for (_, _, _, e) in res), res
    assert sorted(seen) == sorted((p, o) for p in range(2)
                                  for o in range(n // 2))
    assert all(x > 0 for x in per), per
    # Nothing left, nothing in flight; the start offsets passed everything.
    assert qs[0].acquire(100, max_wait_ms=0) == []
    d = swg.describe(c, "workers")
    assert d["kind"] == 1
    assert sorted((p["partition"], p["committed"], p["in_flight"])
                  for p in d["partitions"]) == [(0, 200, 0), (1, 200, 0)]


def test_nack_redelivers_with_counts_and_delay(broker):
    c = broker.client()
    c.create_topic("t", 1)
    produce(c, "t", 0, [b"a", b"b"])
    q = swg.Queue(c, "g", "t", "c1")
    recs = q.acquire(10, max_wait_ms=1000)
    assert [r["offset"] for r in recs] == [0, 1]
    # a: long delay (not back soon); b: short delay (back after it)
    assert q.nack([(0, 0)], delay_ms=600000) == [(0, 0, 0, 0)]
    assert q.nack([(0, 1)], delay_ms=300) == [(0, 1, 1, 0)]
    assert q.acquire(10, max_wait_ms=0) == []  # b is still delayed
    got = acquire_until(q, lambda g: g)
    assert [(r["offset"], r["attempts"], r["failures"]) for r in got] == \
        [(1, 2, 1)]
    assert got[0]["value"] == b"b"
    # nack with the group's backoff policy
    swg.queue_config(c, "g", "t", {"backoff_initial_ms": "200"})
    assert q.nack([(0, 1)], delay_ms=-1) == [(0, 1, 1, 0)]
    got = acquire_until(q, lambda g: g)
    assert [(r["offset"], r["attempts"], r["failures"]) for r in got] == \
        [(1, 3, 2)]
    # an ack of something not held is refused, per range
    assert q.ack([(0, 5)])[0][3] == swg.ERR_NOT_ACQUIRED


def test_lock_expiry_redelivers_and_fences_old_holder(broker):
    c1, c2 = broker.client(), broker.client()
    c1.create_topic("t", 1)
    produce(c1, "t", 0, [b"x"])
    q1 = swg.Queue(c1, "g", "t", "slow")
    q2 = swg.Queue(c2, "g", "t", "fast")
    r = q1.acquire(1, max_wait_ms=1000, lock_ms=300)
    assert [(x["offset"], x["attempts"]) for x in r] == [(0, 1)]
    got = acquire_until(q2, lambda g: g)
    assert [(x["offset"], x["attempts"], x["failures"]) for x in got] == \
        [(0, 2, 1)]
    assert q1.ack([(0, 0)])[0][3] == swg.ERR_NOT_ACQUIRED
    # touch keeps a lock alive
    assert q2.touch([(0, 0)], 60000) == [(0, 0, 0, 0)]
    assert q2.ack([(0, 0)]) == [(0, 0, 0, 0)]
    assert stats(c1, "g", "t")["lock_expiries"] >= 1



def test_consumer_disconnect_releases_held_records_at_once(broker):
    """A consumer that closes its connection without acking (no acquire
    pending) gives its records back at once, attempts kept and no failure
    counted, not after its 10-minute lock (docs/groups.md, Consumers)."""
    c = broker.client()
    c.create_topic("t", 2)
    produce(c, "t", 0, [b"a0", b"a1", b"a2"])
    produce(c, "t", 1, [b"b0"])
    ca = broker.client()
    qa = swg.Queue(ca, "g", "t", "worker-a")
    held = acquire_until(qa, lambda g: len(g) >= 4, lock_ms=600000)
    assert sorted((r["partition"], r["offset"], r["attempts"]) for r in held) \
        == [(0, 0, 1), (0, 1, 1), (0, 2, 1), (1, 0, 1)]
    assert all(r["lock_deadline"] > time.time() * 1000 + 500000
               for r in held)
    # one acked before the crash: that one must not come back
    assert qa.ack([(0, 1)]) == [(0, 1, 1, 0)]
    ca.close()
    cb = broker.client()
    qb = swg.Queue(cb, "g", "t", "worker-b")
    # Long polls far below the lock time: without the release on close this
    # runs into the deadline (30 s) while the locks hold for 10 minutes.
    got = acquire_until(qb, lambda g: len(g) >= 3, lock_ms=600000)
    assert sorted((r["partition"], r["offset"], r["attempts"], r["failures"],
                   r["value"]) for r in got) == \
        [(0, 0, 2, 0, b"a0"), (0, 2, 2, 0, b"a2"), (1, 0, 2, 0, b"b0")]
    assert qb.acquire(10, max_wait_ms=0) == []
    assert qb.ack([(0, 0), (0, 2), (1, 0)]) == [
        (0, 0, 0, 0), (0, 2, 2, 0), (1, 0, 0, 0)]
    assert stats(c, "g", "t")["lock_expiries"] == 0
    d = swg.describe(c, "g")
    assert sorted((p["partition"], p["committed"], p["in_flight"])
                  for p in d["partitions"]) == [(0, 3, 0), (1, 1, 0)]



def test_consumer_disconnect_during_long_poll_releases(broker):
    """Close while an acquire is parked: the parked acquire is cancelled and
    the records acquired before come back at once (attempts kept)."""
    c = broker.client()
    c.create_topic("t", 1)
    produce(c, "t", 0, [b"p0", b"p1"])
    cp = broker.client()
    qp = swg.Queue(cp, "g", "t", "parked")
    got = acquire_until(qp, lambda g: len(g) >= 2, lock_ms=600000)
    assert [r["offset"] for r in got] == [0, 1]
    # nothing left: this acquire parks for a minute; close under it
    cp.send(swg.API_QUEUE_ACQUIRE, swg.acquire_body(
        "g", "t", "parked", 10, lock_ms=600000, max_wait_ms=60000))
    cp.close()
    qb = swg.Queue(broker.client(), "g", "t", "b")
    got = acquire_until(qb, lambda g: len(g) >= 2)
    assert [(r["offset"], r["attempts"], r["failures"]) for r in got] == [
        (0, 2, 0), (1, 2, 0)]
    produce(c, "t", 0, [b"p2"])  # goes to b, not to the cancelled acquire
    got = acquire_until(qb, lambda g: g)
    assert [(r["offset"], r["attempts"]) for r in got] == [(2, 1)]


def test_consumer_taken_over_by_new_connection_keeps_records(broker):
    """A client that reconnects under the same consumer_id owns the consumer
    from its first acquire on: the old connection's close releases nothing
    of it. A second consumer on the old connection is the sentinel that
    shows the close was handled."""
    c = broker.client()
    c.create_topic("t", 1)
    produce(c, "t", 0, [b"w0", b"w1", b"z2"])
    old = broker.client()
    qw_old = swg.Queue(old, "g", "t", "w")
    got = qw_old.acquire(2, max_wait_ms=5000, lock_ms=600000)
    assert [r["offset"] for r in got] == [0, 1]
    qz = swg.Queue(old, "g", "t", "z")
    assert [r["offset"] for r in
            qz.acquire(1, max_wait_ms=5000, lock_ms=600000)] == [2]
    new = broker.client()
    qw_new = swg.Queue(new, "g", "t", "w")
    assert qw_new.acquire(10, max_wait_ms=0) == []  # takes "w" over
    old.close()
    other = broker.client()
    qo = swg.Queue(other, "g", "t", "other")
    got = acquire_until(qo, lambda g: g, lock_ms=600000)
    assert [(r["offset"], r["attempts"]) for r in got] == [(2, 2)]
    # z's release was handled: w's records are still w's
    assert qw_new.ack([(0, 0, 1)]) == [(0, 0, 1, 0)]
    assert qo.acquire(10, max_wait_ms=0) == []


def dlq_records(c, topic, n):
    recs = c.fetch_records(topic, 0, 0, upto=n)
    return [dict((k.decode(), v) for k, v in r["headers"]) | {
        "_key": r["key"], "_value": r["value"]} for r in recs]


def test_dead_letter_after_max_deliveries_with_headers(broker):
    c = broker.client()
    c.create_topic("orders", 1)
    swg.queue_config(c, "g", "orders", {"max_deliveries": "2"})
    produce(c, "orders", 0, [b"poison"], keys=[b"k1"],
            headers=[[(b"trace", b"abc")]])
    q = swg.Queue(c, "g", "orders", "c1")
    for attempt in (1, 2):
        r = acquire_until(q, lambda g: g)
        assert [(x["offset"], x["attempts"]) for x in r] == [(0, attempt)]
        q.nack([(0, 0)], delay_ms=0)
    assert q.acquire(10, max_wait_ms=300) == []
    h = dlq_records(c, "orders.DLQ", 1)[0]
    assert h["_value"] == b"poison" and h["_key"] == b"k1"
    assert h["trace"] == b"abc"
    assert h["dlq.topic"] == b"orders"
    assert h["dlq.partition"] == b"0"
    assert h["dlq.offset"] == b"0"
    assert h["dlq.group"] == b"g"
    assert h["dlq.attempts"] == b"2"
    assert h["dlq.failures"] == b"2"
    assert h["dlq.reason"] == b"max_deliveries"
    assert int(h["dlq.first-delivery-ms"]) <= int(h["dlq.last-delivery-ms"])
    assert int(h["dlq.first-delivery-ms"]) > 0
    # reject goes straight there, with the reason text
    produce(c, "orders", 0, [b"bad"])
    r = acquire_until(q, lambda g: g)
    q.reject([(0, r[0]["offset"])], reason="schema mismatch")
    h = dlq_records(c, "orders.DLQ", 2)[1]
    assert h["dlq.reason"] == b"rejected"
    assert h["dlq.reason-text"] == b"schema mismatch"
    assert h["dlq.attempts"] == b"1" and h["dlq.failures"] == b"1"
    d = swg.describe(c, "g")
    assert d["dlq_topic"] == "orders.DLQ" and d["dlq_depth"] == 2
    end = time.monotonic() + DEADLINE_S
    while swg.describe(c, "g")["partitions"][0]["committed"] != 2:
        assert time.monotonic() < end, "archive never happened"
        q.acquire(1, max_wait_ms=100)
    assert swg.dlq_list(c, topic="orders")[0]["depth"] == 2
    # redrive the rejected one back to the source topic
    moved, skipped = swg.dlq_redrive(c, "orders.DLQ", reason="rejected")
    assert (moved, skipped) == (1, 1)
    r = acquire_until(q, lambda g: g)
    assert r[0]["value"] == b"bad" and r[0]["offset"] == 2
    assert r[0]["headers"]["redrive.from"] == b"orders.DLQ"
    # one cursor per DLQ: what the filter passed over is not revisited
    assert swg.dlq_redrive(c, "orders.DLQ") == (0, 0)


def test_ttl_expired_not_delivered(broker):
    c = broker.client()
    c.create_topic("t", 1)
    now = int(time.time() * 1000)
    produce(c, "t", 0, [b"old", b"fresh"],
            headers=[[(b"expires", str(now - 1000).encode())], []])
    q = swg.Queue(c, "g", "t", "c1")
    r = acquire_until(q, lambda g: g)
    assert [x["value"] for x in r] == [b"fresh"]
    assert q.acquire(10, max_wait_ms=100) == []
    # a group asking for it gets expired records in the DLQ
    swg.queue_config(c, "g2", "t", {"dlq_expired": "true"})
    q2 = swg.Queue(c, "g2", "t", "c2")
    r = acquire_until(q2, lambda g: g)
    assert [x["value"] for x in r] == [b"fresh"]
    h = dlq_records(c, "t.DLQ", 1)[0]
    assert h["dlq.reason"] == b"expired" and h["_value"] == b"old"
    assert h["dlq.attempts"] == b"0"


def test_delayed_delivery(broker):
    c = broker.client()
    c.create_topic("t", 1)
    now = int(time.time() * 1000)
    produce(c, "t", 0, [b"later", b"soon", b"now"],
            headers=[[(b"not-before", str(now + 600000).encode())],
                     [(b"not-before", str(now + 300).encode())], []])
    q = swg.Queue(c, "g", "t", "c1")
    r = acquire_until(q, lambda g: g)
    assert [x["value"] for x in r] == [b"now"]
    q.ack([(0, 2)])
    r = acquire_until(q, lambda g: g)
    assert [x["value"] for x in r] == [b"soon"]
    assert int(time.time() * 1000) >= now + 300
    q.ack([(0, 1)])
    assert q.acquire(10, max_wait_ms=100) == []  # "later" waits


def test_key_ordered_mode(broker):
    c1, c2 = broker.client(), broker.client()
    c1.create_topic("t", 1)
    swg.queue_config(c1, "g", "t", {"key_ordered": "true"})
    produce(c1, "t", 0, [b"a1", b"a2", b"b1", b"a3"],
            keys=[b"A", b"A", b"B", b"A"])
    q1 = swg.Queue(c1, "g", "t", "c1")
    q2 = swg.Queue(c2, "g", "t", "c2")
    r1 = acquire_until(q1, lambda g: g, n=1)
    assert [x["value"] for x in r1] == [b"a1"]
    r2 = acquire_until(q2, lambda g: g, n=10)
    assert [x["value"] for x in r2] == [b"b1"]  # A is busy with c1
    assert q2.acquire(10, max_wait_ms=100) == []
    q1.ack([(0, 0)])
    r2 = acquire_until(q2, lambda g: g, n=10)
    assert [x["value"] for x in r2] == [b"a2"]  # a3 waits for a2
    q2.nack([(0, 1)], delay_ms=0)
    r1 = acquire_until(q1, lambda g: g, n=10)
    assert [x["value"] for x in r1] == [b"a2"]  # a2 again, before a3
    q1.ack([(0, 1)])
    r1 = acquire_until(q1, lambda g: g, n=10)
    assert [x["value"] for x in r1] == [b"a3"]


def test_sqlite_transactions_are_batched(broker):
    c = broker.client()
    c.create_topic("t", 1)
    n = 2000
    for i in range(0, n, 500):
        produce(c, "t", 0, [b"v%d" % k for k in range(i, i + 500)])
    q = swg.Queue(c, "g", "t", "c1")
    recs = acquire_until(q, lambda g: len(g) >= n, n=n)
    before = stats(c, "g", "t")
    # one ack request per record, pipelined
    for r in recs:
        c.send(swg.API_QUEUE_ACK, swg.settle_body(
            swg.API_QUEUE_ACK, "g", "t", "c1", [(0, r["offset"])]))
    for r in recs:
        _, body = c.recv()
        assert swg.decode_settle(body)[0][3] == 0
    after = stats(c, "g", "t")
    acks = after["acks"] - before["acks"]
    txns = after["groups_db_txns"] - before["groups_db_txns"]
    assert acks == n
    assert txns * 10 < acks, "%d transactions for %d acks" % (txns, acks)


def test_state_survives_restart(broker):
    c = broker.client()
    c.create_topic("t", 1)
    produce(c, "t", 0, [b"v%d" % i for i in range(6)])
    swg.queue_config(c, "g", "t", {"max_deliveries": "7"})
    q = swg.Queue(c, "g", "t", "c1")
    r = acquire_until(q, lambda g: len(g) >= 6, n=6)
    q.ack([(0, 0, 1), (0, 3)])
    q.nack([(0, 4)], delay_ms=600000)
    c.close()
    broker.restart()
    c = broker.client()
    q = swg.Queue(c, "g", "t", "c2")
    r = acquire_until(q, lambda g: len(g) >= 2, n=10)
    # 2 and 5 were held: back with their delivery counted; 4 still delayed
    assert [(x["offset"], x["attempts"], x["failures"]) for x in r] == \
        [(2, 2, 0), (5, 2, 0)]
    assert q.acquire(10, max_wait_ms=100) == []
    assert swg.queue_config(c, "g", "t", mode=2)["max_deliveries"] == "7"


def test_stream_group_assignment_commit_and_rebalance(broker):
    c = broker.client()
    c.create_topic("s", 4)
    m1, g1, a1 = swg.join(c, "sg", ["s"], client_id="one")
    assert a1 == [("s", p) for p in range(4)]
    m2, g2, a2 = swg.join(c, "sg", ["s"], client_id="two")
    assert g2 == g1 + 1 and len(a2) == 2
    assert swg.heartbeat(c, "sg", m1, g1) == swg.ERR_REBALANCE
    # a stale generation cannot commit
    assert swg.commit(c, "sg", {("s", 0): 5}, m1, g1) == {
        ("s", 0): swg.ERR_REBALANCE}
    m1b, g3, a1 = swg.join(c, "sg", ["s"], member_id=m1)
    assert m1b == m1 and len(a1) == 2 and not set(a1) & set(a2) or \
        swg.heartbeat(c, "sg", m2, g3) == swg.ERR_REBALANCE
    assert swg.heartbeat(c, "sg", m1, g3) == 0
    tp = a1[0]
    assert swg.commit(c, "sg", {tp: 42}, m1, g3) == {tp: 0}
    assert swg.committed(c, "sg", [tp]) == {tp: 42}
    assert swg.commit(c, "solo", {("s", 3): 7}) == {("s", 3): 0}
    d = swg.describe(c, "sg")
    assert d["kind"] == 0 and len(d["members"]) == 2
    assert swg.leave(c, "sg", m2) == 0
    assert swg.leave(c, "sg", m1) == 0
    assert {g["group"] for g in swg.group_list(c)} >= {"sg", "solo"}
    c.close()
    broker.restart()
    c = broker.client()
    assert swg.committed(c, "sg", [tp]) == {tp: 42}
    assert swg.committed(c, "solo") == {("s", 3): 7}


def test_bad_input_named(broker):
    c = broker.client()
    c.create_topic("t", 1)
    with pytest.raises(sw.ProtocolError) as e:
        swg.queue_config(c, "g", "t", {"max_deliveries": "zero"})
    assert e.value.code == sw.ERR_INVALID_CONFIG
    assert "max_deliveries" in e.value.msg
    with pytest.raises(sw.ProtocolError) as e:
        swg.queue_config(c, "g", "t", {"nonsense": "1"})
    assert "nonsense" in e.value.msg
    # a missing topic is created by the first acquire (auto-create-topics
    # is on), unless its name cannot be a topic's
    with pytest.raises(sw.ProtocolError) as e:
        swg.Queue(c, "g", "no such/topic", "c1").acquire(1)
    assert e.value.code in (sw.ERR_UNKNOWN_TOPIC, sw.ERR_INVALID_TOPIC)
    swg.Queue(c, "g", "missing", "c1").acquire(1)
    assert "missing" in c.list_topics()
    with pytest.raises(sw.ProtocolError) as e:
        swg.describe(c, "nope")
    assert e.value.code == swg.ERR_UNKNOWN_GROUP
    # a truncated body is answered, and the connection survives
    with pytest.raises(sw.ProtocolError) as e:
        sw._ok(c.call(swg.API_QUEUE_ACQUIRE, b"\x01\x00"))
    assert e.value.code == sw.ERR_MALFORMED
    assert c.create_topic("t2", 1) == (0, None)


def test_window_is_bounded(broker):
    c = broker.client()
    c.create_topic("t", 1)
    swg.queue_config(c, "g", "t", {"max_inflight": "50",
                                   "max_delayed": "10"})
    produce(c, "t", 0, [b"v%d" % i for i in range(200)])
    q = swg.Queue(c, "g", "t", "c1")
    r = acquire_until(q, lambda g: g, n=1000)
    assert [x["offset"] for x in r] == list(range(50))
    assert q.acquire(1000, max_wait_ms=100) == []  # 50 in flight
    q.ack([(0, 1, 9)])
    # 9 slots free, but done records behind the held offset 0 count
    # against the span: 50 + max_delayed 10 = 60 offsets at most
    r = acquire_until(q, lambda g: g, n=1000)
    assert [x["offset"] for x in r] == list(range(50, 59))
    q.ack([(0, 10, 20)])
    r = q.acquire(1000, max_wait_ms=100)
    assert [x["offset"] for x in r] == [59]  # the span cap, not in-flight
    q.ack([(0, 0)])  # the head moves: start passes 0..20
    r = acquire_until(q, lambda g: g, n=1000)
    assert [x["offset"] for x in r] == list(range(60, 71))  # 50 in flight


def test_topic_deleted_and_recreated(broker):
    c = broker.client()
    c.create_topic("t", 1)
    produce(c, "t", 0, [b"old1", b"old2"])
    q = swg.Queue(c, "g", "t", "c1")
    assert len(acquire_until(q, lambda g: g, n=10)) == 2
    assert c.delete_topic("t") == (0, None)
    c.create_topic("t", 1)
    produce(c, "t", 0, [b"new"])
    r = acquire_until(q, lambda g: g, n=10)
    assert [(x["offset"], x["value"], x["attempts"]) for x in r] == \
        [(0, b"new", 1)]
    # the old topic's group state is gone from groups.db too: after a
    # restart the re-created topic's records are not taken as done
    q.ack([(0, 0)])
    assert swg.commit(c, "sg", {("t", 0): 1}) == {("t", 0): 0}
    c.delete_topic("t")
    c.create_topic("t", 1)
    produce(c, "t", 0, [b"n1", b"n2"])
    c.close()
    broker.restart()
    c = broker.client()
    q = swg.Queue(c, "g", "t", "c2")
    r = acquire_until(q, lambda g: len(g) >= 2, n=10)
    assert [(x["offset"], x["value"]) for x in r] == [(0, b"n1"), (1, b"n2")]
    assert swg.committed(c, "sg", [("t", 0)]) == {("t", 0): -1}


def test_consumption_based_retention(tmp_path):
    from sluice_harness import Broker
    b = Broker(str(tmp_path / "data"), args=["--maintenance-interval-ms",
                                             "50"])
    b.start()
    try:
        c = b.client()
        cfg = {"segment-bytes": "4096", "retention-bytes": "4096"}
        assert c.create_topic("q", 1, cfg) == (0, None)
        assert c.create_topic("witness", 1, cfg) == (0, None)
        swg.queue_config(c, "g", "q")  # the group exists before the data
        for i in range(60):
            for t in ("q", "witness"):
                produce(c, t, 0, [b"x" * 200])
        # wait until retention visibly ran on the witness topic
        end = time.monotonic() + DEADLINE_S
        while c.list_offset("witness", 0, sw.OFFSET_EARLIEST)[1] == 0:
            assert time.monotonic() < end, "retention never ran"
            c.list_offset("witness", 0, sw.OFFSET_LATEST)
        # the queue group's start offset (0) keeps every segment of q
        assert c.list_offset("q", 0, sw.OFFSET_EARLIEST)[1] == 0
        q = swg.Queue(c, "g", "q", "c1")
        r = acquire_until(q, lambda g: len(g) >= 60, n=100)
        q.ack([(0, 0, 59)])
        while c.list_offset("q", 0, sw.OFFSET_EARLIEST)[1] == 0:
            assert time.monotonic() < end, "consumed segments kept"
            q.acquire(1, max_wait_ms=50)
        assert len(r) == 60
        c.close()
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_topic_ttl_and_broker_defaults(tmp_path):
    from sluice_harness import Broker
    b = Broker(str(tmp_path / "data"), args=["--queue-max-deliveries", "3",
                                             "--queue-lock-ms", "5s"])
    b.start()
    try:
        c = b.client()
        assert c.create_topic("t", 1, {"message-ttl-ms": "60s"}) == (0, None)
        now = int(time.time() * 1000)
        for ts, v in ((now - 120000, b"stale"), (now, b"fresh")):
            body = sw.produce_body(sw.ACKS_DURABLE, {"t": {0: sw.encode_batch(
                [v], ts=ts)}})
            assert sw.decode_produce(c.call(sw.API_PRODUCE, body))[
                ("t", 0)]["error"] == 0
        q = swg.Queue(c, "g", "t", "c1")
        r = acquire_until(q, lambda g: g, n=10)
        assert [x["value"] for x in r] == [b"fresh"]
        kv = swg.queue_config(c, "g", "t", mode=2)
        assert kv["max_deliveries"] == "3" and kv["lock_ms"] == "5000"
        c.close()
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_huge_ranges_are_cheap(broker):
    c = broker.client()
    c.create_topic("t", 1)
    produce(c, "t", 0, [b"a", b"b"])
    q = swg.Queue(c, "g", "t", "c1")
    r = acquire_until(q, lambda g: len(g) >= 2, n=10)
    q.ack([(0, 0)])
    # a range spanning 2^32 offsets below/after the window is answered at
    # once, naming the problem, and settles what it covers
    res = q.nack([(0, 0, (1 << 32))], delay_ms=0)
    assert res[0][3] == swg.ERR_NOT_ACQUIRED
    r = acquire_until(q, lambda g: g, n=10)
    assert [(x["offset"], x["attempts"]) for x in r] == [(1, 2)]
    assert q.ack([(0, 0, (1 << 32))])[0][3] == swg.ERR_NOT_ACQUIRED
    assert swg.describe(c, "g")["partitions"][0]["committed"] == 2


def test_settle_with_empty_names_is_refused_by_name(broker):
    """An ack naming no group or no topic is INVALID_ARG with a message
    saying which fields must be non-empty, and the connection stays usable."""
    c = broker.client()
    produce(c, "se", 0, [b"x"])
    for group, topic in (("", "se"), ("g", "")):
        q = swg.Queue(c, group, topic, "c1")
        with pytest.raises(sw.ProtocolError) as e:
            q.ack([(0, 0, 0)])
        assert e.value.code == 18  # SL_ERR_INVALID_ARG
        assert "non-empty" in e.value.msg
    q = swg.Queue(c, "g", "se", "c1")
    got = acquire_until(q, lambda got: len(got) == 1)
    assert [r["offset"] for r in got] == [0]
    assert q.ack([(0, 0, 0)]) == [(0, 0, 0, 0)]
