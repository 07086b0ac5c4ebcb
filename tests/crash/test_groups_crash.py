"""kill -9 sluiced while queue consumers ack and while records are
dead-lettered; after the restart:
  - no record whose ack was answered OK is delivered again;
  - every record is delivered (or dead-lettered) at least once: nothing
    unacknowledged is lost;
  - a dead-lettered record is in the DLQ at least once (maybe twice),
    never zero times, and its group state is archived."""
import random
import time

import sluice_wire as sw
import sluice_wire_groups as swg

DEADLINE_S = 60.0


def produce_all(c, topic, n, parts):
    for p in range(parts):
        for i in range(0, n, 100):
            body = sw.produce_body(sw.ACKS_DURABLE, {topic: {p: sw.encode_batch(
                [b"%s-%d-%d" % (topic.encode(), p, k)
                 for k in range(i, min(n, i + 100))])}})
            r = sw.decode_produce(c.call(sw.API_PRODUCE, body))[(topic, p)]
            assert r["error"] == 0


def test_kill9_during_acks(broker):
    rnd = random.Random(4)
    parts, n = 2, 600
    c = broker.client()
    c.create_topic("work", parts)
    produce_all(c, "work", n, parts)
    acked = set()      # ack answered OK: must never come back
    delivered = set()  # ever delivered
    for rnd_i in range(3):
        c = broker.client()
        q = swg.Queue(c, "g", "work", "c%d" % rnd_i)
        kill_at = rnd.randrange(50, 150)
        answered = 0
        killed = False
        inflight = {}
        try:
            end = time.monotonic() + DEADLINE_S
            while not killed:
                assert time.monotonic() < end
                recs = q.acquire(40, max_wait_ms=200)
                if not recs and not inflight:
                    break
                for r in recs:
                    key = (r["partition"], r["offset"])
                    assert key not in acked, "acked %r came back" % (key,)
                    delivered.add(key)
                    corr = c.send(swg.API_QUEUE_ACK, swg.settle_body(
                        swg.API_QUEUE_ACK, "g", "work", q.cid, [key]))
                    inflight[corr] = key
                while inflight:  # drain before the next acquire
                    corr, body = c.recv()
                    key = inflight.pop(corr)
                    res = swg.decode_settle(body)
                    if res[0][3] == 0:
                        acked.add(key)
                    answered += 1
                    if answered == kill_at:
                        broker.kill9()  # acks still in flight
                        killed = True
                        break
        except (ConnectionError, OSError):
            assert killed
        finally:
            c.close()
        if not killed:
            break
        broker.start()
    # Drain what is left after the last restart.
    if not broker.running():
        broker.start()
    c = broker.client()
    q = swg.Queue(c, "g", "work", "final")
    end = time.monotonic() + DEADLINE_S
    while True:
        assert time.monotonic() < end
        recs = q.acquire(100, max_wait_ms=300)
        if not recs:
            break
        for r in recs:
            key = (r["partition"], r["offset"])
            assert key not in acked, "acked %r came back" % (key,)
            delivered.add(key)
        res = q.ack([(r["partition"], r["offset"]) for r in recs])
        assert all(x[3] == 0 for x in res)
        acked.update((r["partition"], r["offset"]) for r in recs)
    everything = {(p, o) for p in range(parts) for o in range(n)}
    # Nothing lost: every record was delivered at least once. (An ack sent
    # but not answered before the kill may or may not have committed.)
    assert delivered == everything
    d = swg.describe(c, "g")
    assert sorted(p["committed"] for p in d["partitions"]) == [n] * parts


def dlq_sources(c, topic):
    """Source offsets found in the DLQ topic (with multiplicity)."""
    out = {}
    err, end = c.list_offset(topic, 0, sw.OFFSET_LATEST)
    assert err == 0
    for r in c.fetch_records(topic, 0, 0, upto=end):
        h = dict(r["headers"])
        key = (int(h[b"dlq.partition"]), int(h[b"dlq.offset"]))
        out[key] = out.get(key, 0) + 1
    return out


def test_kill9_during_dlq_moves(broker):
    rnd = random.Random(7)
    n = 300
    c = broker.client()
    c.create_topic("q", 1)
    swg.queue_config(c, "g", "q", {"max_deliveries": "1"})
    produce_all(c, "q", n, 1)
    rejected_ok = set()
    kills = 0
    for rnd_i in range(3):
        c = broker.client()
        q = swg.Queue(c, "g", "q", "c%d" % rnd_i)
        kill_at = rnd.randrange(20, 80)
        answered = 0
        killed = False
        inflight = {}
        try:
            end = time.monotonic() + DEADLINE_S
            while not killed:
                assert time.monotonic() < end
                recs = q.acquire(30, max_wait_ms=200)
                if not recs and not inflight:
                    break
                for r in recs:
                    key = (r["partition"], r["offset"])
                    # nack at the limit and reject both dead-letter
                    api = swg.API_QUEUE_NACK if r["offset"] % 2 else \
                        swg.API_QUEUE_REJECT
                    corr = c.send(api, swg.settle_body(
                        api, "g", "q", q.cid, [key], delay_ms=0,
                        reason="crash-test"))
                    inflight[corr] = key
                while inflight:  # drain before the next acquire
                    corr, body = c.recv()
                    key = inflight.pop(corr)
                    if swg.decode_settle(body)[0][3] == 0:
                        rejected_ok.add(key)
                    answered += 1
                    if answered == kill_at:
                        broker.kill9()
                        killed = True
                        kills += 1
                        break
        except (ConnectionError, OSError):
            assert killed
        finally:
            c.close()
        if not killed:
            break
        broker.start()
    if not broker.running():
        broker.start()
    c = broker.client()
    q = swg.Queue(c, "g", "q", "final")
    end = time.monotonic() + DEADLINE_S
    # Finish: whatever is still deliverable is rejected; then wait until
    # the group's start offset passed everything (all archived).
    while swg.describe(c, "g")["partitions"][0]["committed"] < n:
        assert time.monotonic() < end, swg.describe(c, "g")
        recs = q.acquire(100, max_wait_ms=100)
        if recs:
            q.reject([(r["partition"], r["offset"]) for r in recs])
    src = dlq_sources(c, "q.DLQ")
    missing = [(0, o) for o in range(n) if (0, o) not in src]
    assert not missing, "never dead-lettered: %r" % missing[:10]
    # each crash can redo a dead-letter append at most once
    assert all(v <= kills + 1 for v in src.values()), \
        [(k, v) for k, v in src.items() if v > kills + 1][:10]
    assert rejected_ok  # the test did exercise answered rejects
