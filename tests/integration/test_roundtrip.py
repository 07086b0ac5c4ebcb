"""Produce/fetch round trips, topic admin, pipelining, long poll, restart."""
import struct

import sluice_wire as sw


def values(tag, n, size=0):
    return [("%s-%05d" % (tag, i)).encode().ljust(size, b".")
            for i in range(n)]


def test_produce_fetch_partitions_both_acks(broker):
    c = broker.client()
    assert c.create_topic("orders", 4) == (0, None)
    expect = {p: [] for p in range(4)}
    for rnd in range(3):
        for p in range(4):
            acks = sw.ACKS_DURABLE if (rnd + p) % 2 else sw.ACKS_WRITTEN
            vals = values("r%dp%d" % (rnd, p), 5 + p, size=50 * p)
            r = c.produce("orders", p, vals, acks=acks)
            assert r["error"] == 0
            assert r["base_offset"] == len(expect[p])
            assert r["last_offset"] == len(expect[p]) + len(vals) - 1
            assert r["log_end_offset"] == len(expect[p]) + len(vals)
            expect[p] += vals
    for p in range(4):
        recs = c.fetch_records("orders", p, 0, upto=len(expect[p]))
        assert [x["value"] for x in recs] == expect[p]
        assert [x["offset"] for x in recs] == list(range(len(expect[p])))
        # from the middle: the first batch may start earlier, records not
        mid = len(expect[p]) // 2
        recs = c.fetch_records("orders", p, mid, upto=len(expect[p]))
        assert [x["value"] for x in recs] == expect[p][mid:]
    lo = c.list_offset("orders", 2, sw.OFFSET_EARLIEST)
    hi = c.list_offset("orders", 2, sw.OFFSET_LATEST)
    assert lo == (0, 0) and hi == (0, len(expect[2]))
    md = c.metadata(["orders"])["orders"]
    assert md["error"] == 0
    assert {p: e for p, (s, e) in md["partitions"].items()} == \
        {p: len(v) for p, v in expect.items()}


def test_keys_and_headers_round_trip(broker):
    c = broker.client()
    body = sw.produce_body(sw.ACKS_DURABLE, {"kv": {0: sw.encode_batch(
        [b"v1", None, b""], keys=[b"k1", b"k2", None],
        headers=[[(b"h", b"x")], [], [(b"a", None), (b"b", b"y")]])}})
    r = sw.decode_produce(c.call(sw.API_PRODUCE, body))[("kv", 0)]
    assert r["error"] == 0 and r["base_offset"] == 0
    recs = c.fetch_records("kv", 0, 0, upto=3)
    assert [(x["key"], x["value"], x["headers"]) for x in recs] == [
        (b"k1", b"v1", [(b"h", b"x")]),
        (b"k2", None, []),
        (None, b"", [(b"a", None), (b"b", b"y")])]


def test_auto_create_and_unknown(broker):
    c = broker.client()
    r = c.produce("auto.topic_1", 0, [b"a"], acks=sw.ACKS_DURABLE)
    assert r["error"] == 0
    assert c.list_topics() == {"auto.topic_1": 1}
    # partition beyond the default count of 1
    r = c.produce("auto.topic_1", 1, [b"a"], acks=sw.ACKS_WRITTEN)
    assert r["error"] == sw.ERR_UNKNOWN_PARTITION
    r = c.produce("bad/name", 0, [b"a"], acks=sw.ACKS_WRITTEN)
    assert r["error"] == sw.ERR_INVALID_TOPIC
    f = c.fetch("nope", 0, 0)
    assert f["error"] == sw.ERR_UNKNOWN_TOPIC
    f = c.fetch("auto.topic_1", 0, 99)
    assert f["error"] == sw.ERR_OFFSET_OUT_OF_RANGE


def test_topic_admin(broker):
    c = broker.client()
    assert c.create_topic("a", 2, {"retention-ms": "1h",
                                   "flush": "interval"}) == (0, None)
    err, msg = c.create_topic("a", 2)
    assert err == sw.ERR_TOPIC_EXISTS and "exists" in msg
    err, msg = c.create_topic("x" * 250, 1)
    assert err == sw.ERR_INVALID_TOPIC
    err, msg = c.create_topic("..", 1)
    assert err == sw.ERR_INVALID_TOPIC
    err, msg = c.create_topic("b", 1, {"flush": "sometimes"})
    assert err == sw.ERR_INVALID_CONFIG and "flush" in msg
    err, msg = c.create_topic("b", 1, {"listen": "1.2.3.4:5"})
    assert err == sw.ERR_INVALID_CONFIG and "listen" in msg
    md = c.metadata(["a", "zz"])
    assert md["a"]["configs"] == {"retention-ms": "1h", "flush": "interval"}
    assert md["zz"]["error"] == sw.ERR_UNKNOWN_TOPIC
    assert c.produce("a", 1, [b"x"], acks=sw.ACKS_DURABLE)["error"] == 0
    assert c.list_topics() == {"a": 2}
    assert c.delete_topic("a") == (0, None)
    assert c.delete_topic("a")[0] == sw.ERR_UNKNOWN_TOPIC
    assert c.list_topics() == {}
    # re-created topic starts empty
    assert c.create_topic("a", 1) == (0, None)
    assert c.list_offset("a", 0, sw.OFFSET_LATEST) == (0, 0)


def test_pipelined_replies_in_order(broker):
    """Durable produces complete later than metadata requests; replies must
    still come back in request order."""
    c = broker.client()
    c.create_topic("pipe", 2)
    sent = []
    for i in range(200):
        if i % 3 == 0:
            sent.append(("m", c.send(sw.API_LIST_TOPICS, b"")))
        else:
            body = sw.produce_body(sw.ACKS_DURABLE if i % 2 else
                                   sw.ACKS_WRITTEN,
                                   {"pipe": {i % 2: sw.encode_batch(
                                       [b"v%d" % i])}})
            sent.append(("p", c.send(sw.API_PRODUCE, body)))
    next_off = {0: 0, 1: 0}
    for i, (kind, corr) in enumerate(sent):
        rc, body = c.recv()
        assert rc == corr
        if kind == "p":
            r = sw.decode_produce(body)[("pipe", i % 2)]
            assert r["error"] == 0
            assert r["base_offset"] == next_off[i % 2]
            next_off[i % 2] += 1
        else:
            assert sw.decode_list_topics(body) == {"pipe": 2}


def test_acks_none_then_visible(broker):
    c = broker.client()
    c.create_topic("fire", 1)
    for i in range(50):
        c.produce("fire", 0, [b"n%d" % i], acks=sw.ACKS_NONE)
    # a durable produce after them on the same connection covers them
    r = c.produce("fire", 0, [b"last"], acks=sw.ACKS_DURABLE)
    assert r["base_offset"] == 50
    recs = c.fetch_records("fire", 0, 0, upto=51)
    assert [x["value"] for x in recs] == [b"n%d" % i for i in range(50)] + \
        [b"last"]


def test_long_poll_woken_by_produce(broker):
    c1 = broker.client()
    c2 = broker.client()
    c1.create_topic("lp", 1)
    corr = c1.send(sw.API_FETCH, sw.fetch_body({"lp": [(0, 0, 1 << 20)]},
                                               max_wait_ms=60000,
                                               min_bytes=1))
    # the fetch is parked; a produce on another connection wakes it
    assert c2.produce("lp", 0, [b"wake"], acks=sw.ACKS_DURABLE)["error"] == 0
    rc, body = c1.recv()
    assert rc == corr
    r = sw.decode_fetch(body)[("lp", 0)]
    assert r["error"] == 0
    assert [x["value"] for x in sw.decode_batches(r["records"])] == [b"wake"]


def test_long_poll_times_out_empty(broker):
    c = broker.client()
    c.create_topic("lp2", 1)
    r = c.fetch("lp2", 0, 0, max_wait_ms=50, min_bytes=1)
    assert r["error"] == 0 and r["records"] == b""
    assert r["high_watermark"] == 0


def test_fetch_max_bytes_whole_batches(broker):
    c = broker.client()
    c.create_topic("big", 1)
    for i in range(10):
        c.produce("big", 0, [b"x" * 10000], acks=sw.ACKS_DURABLE)
    r = c.fetch("big", 0, 0, max_bytes=25000)
    recs = sw.decode_batches(r["records"])
    # whole batches only, at most max_bytes, but never nothing
    assert 1 <= len(recs) <= 2
    r = c.fetch("big", 0, 0, max_bytes=10)
    assert len(sw.decode_batches(r["records"])) == 1
    r = c.fetch("big", 0, 3, max_bytes=1 << 20)
    assert [x["offset"] for x in sw.decode_batches(r["records"])] == \
        list(range(3, 10))


def test_restart_keeps_everything(broker):
    c = broker.client()
    c.create_topic("keep", 3, {"segment-bytes": "8k"})
    expect = {p: values("k%d" % p, 40, 300) for p in range(3)}
    for p in range(3):
        for i in range(0, 40, 8):
            r = c.produce("keep", p, expect[p][i:i + 8],
                          acks=sw.ACKS_WRITTEN)
            assert r["error"] == 0
    c.close()
    assert broker.stop() == 0
    broker.start()
    c = broker.client()
    assert c.list_topics() == {"keep": 3}
    assert c.metadata(["keep"])["keep"]["configs"] == {"segment-bytes": "8k"}
    for p in range(3):
        recs = c.fetch_records("keep", p, 0, upto=40)
        assert [x["value"] for x in recs] == expect[p]
    # appends continue at the right offset
    assert c.produce("keep", 0, [b"more"])["base_offset"] == 40


def test_durable_produce_timeout(broker):
    """flush=interval of an hour: a durable ack cannot come; the request's
    timeout_ms answers TIMEOUT while the record stays appended."""
    c = broker.client()
    c.create_topic("slow", 1, {"flush": "interval",
                               "flush-interval-ms": "1h"})
    body = sw.produce_body(sw.ACKS_DURABLE,
                           {"slow": {0: sw.encode_batch([b"a"])}},
                           timeout_ms=100)
    r = sw.decode_produce(c.call(sw.API_PRODUCE, body))[("slow", 0)]
    assert r["error"] == 13  # SL_ERR_TIMEOUT
    assert r["base_offset"] == 0
    # visible anyway (flush=interval topics show the log end)
    assert c.fetch_records("slow", 0, 0, upto=1)[0]["value"] == b"a"


def test_fetch_response_budget_across_partitions(broker):
    c = broker.client()
    c.create_topic("budget", 2)
    for p in range(2):
        assert c.produce("budget", p, [b"y" * 10000],
                         acks=sw.ACKS_DURABLE)["error"] == 0
    body = sw.fetch_body({"budget": [(0, 0, 1 << 20), (1, 0, 1 << 20)]},
                         max_bytes=15000)
    r = sw.decode_fetch(c.call(sw.API_FETCH, body))
    # the first partition's batch fits; the second would exceed the budget
    assert len(sw.decode_batches(r[("budget", 0)]["records"])) == 1
    assert r[("budget", 1)]["records"] == b""
    assert r[("budget", 1)]["high_watermark"] == 1
    # a budget smaller than one batch still returns that first batch
    body = sw.fetch_body({"budget": [(1, 0, 1 << 20), (0, 0, 1 << 20)]},
                         max_bytes=100)
    r = sw.decode_fetch(c.call(sw.API_FETCH, body))
    assert len(sw.decode_batches(r[("budget", 1)]["records"])) == 1
    assert r[("budget", 0)]["records"] == b""
