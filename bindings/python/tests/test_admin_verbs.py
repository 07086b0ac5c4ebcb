"""Admin management verbs (ADMIN api): queues, status, purge, peek, group
reset/delete, topic alter/add-partitions, DLQ pending/total and purge."""

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


def row(admin, topic, group):
    (r,) = [q for q in admin.queues()
            if q["topic"] == topic and q["group"] == group]
    return r


def test_queues_counts_ready_in_flight_delayed(bootstrap, admin, topic):
    admin.create_topic(topic, partitions=2)
    produce(bootstrap, topic, [b"%d" % i for i in range(10)], partition=0)
    produce(bootstrap, topic, [b"late"], partition=1,
            headers=[("not-before", str(int(time.time() * 1000) + 3600000)
                      .encode())])
    admin.configure_queue_group(topic, "w")
    r = row(admin, topic, "w")
    assert r["consumers"] == 0 and r["in_flight"] == 0
    assert r["ready"] + r["delayed"] == 11
    assert r["oldest_ready_age_ms"] is not None
    with sluice.QueueConsumer(bootstrap, topic, "w", queue_credits=3,
                            queue_prefetch=False) as q:
        got = take(q, 3)
        assert len(got) == 3
        r = row(admin, topic, "w")
        assert r["consumers"] == 1
        assert r["in_flight"] == 3
        assert r["ready"] == 7
        assert r["delayed"] == 1
        for m in got:
            m.ack()
        q.flush(timeout=10)
    r = row(admin, topic, "w")
    assert (r["ready"], r["in_flight"], r["delayed"]) == (7, 0, 1)


def test_peek_changes_nothing(bootstrap, admin, topic):
    produce(bootstrap, topic, [b"a", b"b", b"c"], headers=[("h", b"1")])
    admin.configure_queue_group(topic, "w")
    for _ in range(2):
        recs = admin.peek(topic, "w", count=2)
        assert [r["value"] for r in recs] == ["a", "b"]
        assert recs[0]["headers"] == {"h": "1"}
        assert all(r["attempts"] == 0 for r in recs)
    with sluice.QueueConsumer(bootstrap, topic, "w") as q:
        m = take(q, 1)[0]
        assert m.value == b"a" and m.attempts == 1  # peek counted nothing
        m.ack()
        q.flush(timeout=10)


def test_purge_then_reset_to_earliest(bootstrap, admin, topic):
    produce(bootstrap, topic, [b"%d" % i for i in range(5)])
    admin.configure_queue_group(topic, "w")
    assert admin.purge_queue(topic, "w") == 5
    assert row(admin, topic, "w")["ready"] == 0
    with sluice.QueueConsumer(bootstrap, topic, "w") as q:
        assert q.poll(timeout=0.3) is None
    produce(bootstrap, topic, [b"new"])
    with sluice.QueueConsumer(bootstrap, topic, "w") as q:
        (m,) = take(q, 1)
        assert m.value == b"new"
        m.ack()
        q.flush(timeout=10)
    assert admin.reset_group("w", topic, to_earliest=True) == {(topic, 0): 0}
    assert row(admin, topic, "w")["ready"] == 6
    assert admin.reset_group("w", topic, to_offset=4) == {(topic, 0): 4}
    assert [r["value"] for r in admin.peek(topic, "w", 5)] == ["4", "new"]


def test_reset_stream_group_and_delete(bootstrap, admin, topic):
    produce(bootstrap, topic, [b"%d" % i for i in range(10)])
    g = topic + "-s"
    with sluice.Consumer(bootstrap, g) as c:
        c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
        got = []
        while len(got) < 10:
            got += c.consume(10 - len(got), timeout=5)
        c.commit()
    assert admin.lag(g) == {(topic, 0): 0}
    admin.reset_group(g, topic, to_offset=3)
    assert admin.lag(g) == {(topic, 0): 7}
    admin.delete_group(g)
    with pytest.raises(sluice.UnknownGroupError):
        admin.group(g)
    with pytest.raises(sluice.UnknownGroupError):
        admin.delete_group(g)


def test_alter_topic_and_add_partitions(bootstrap, admin, topic):
    admin.create_topic(topic, partitions=1)
    cfg = admin.alter_topic(topic, retention_ms=3600000)
    assert cfg["retention-ms"] == "3600000"
    assert admin.topic(topic).config["retention-ms"] == "3600000"
    with pytest.raises(sluice.InvalidConfigError):
        admin.alter_topic(topic, retention_ms="soon")
    assert admin.add_partitions(topic, 3) == 3
    assert admin.topic(topic).partition_count == 3
    produce(bootstrap, topic, [b"x"], partition=2)
    assert admin.topic(topic).partitions[2].log_end == 1
    with pytest.raises(sluice.InvalidConfigError):
        admin.add_partitions(topic, 2)


def test_dlq_pending_drops_after_redrive_and_purge(bootstrap, admin, topic):
    produce(bootstrap, topic, [b"a", b"b", b"c"])
    with sluice.QueueConsumer(bootstrap, topic, "w") as q:
        for m in take(q, 3):
            m.reject()
        q.flush(timeout=10)
    (d,) = admin.dlq_status(topic)
    assert (d["dlq_topic"], d["pending"], d["total"]) == (
        topic + ".DLQ", 3, 3)
    assert admin.redrive(topic + ".DLQ", max_records=2) == 2
    (d,) = admin.dlq_status(topic)
    assert (d["pending"], d["total"]) == (1, 3)
    assert row(admin, topic, "w")["dlq_pending"] == 1
    assert admin.purge_dlq(topic + ".DLQ") == 1
    (d,) = admin.dlq_status(topic)
    assert (d["pending"], d["total"]) == (0, 3)
    # a purged DLQ redrives nothing
    assert admin.redrive(topic + ".DLQ") == 0


def test_status_version_and_unknown_verb(admin):
    s = admin.status()
    assert s["version"] == admin.version()
    assert s["listeners"]["binary"] and s["uptime_s"] >= 0
    with pytest.raises(sluice.SluiceError) as e:
        admin.call("no.such.verb")
    assert "no.such.verb" in str(e.value)


def test_connections_list_and_close(bootstrap, admin, topic):
    """A queue consumer's connection is listed with what it holds; closing
    it makes its records ready again."""
    admin.create_topic(topic, partitions=1)
    produce(bootstrap, topic, [b"a", b"b", b"c"])
    with sluice.QueueConsumer(bootstrap, topic, "cg", queue_credits=2,
                              queue_prefetch=False) as q:
        assert len(take(q, 2)) == 2
        mine = [c for c in admin.connections()
                if any(g["group"] == "cg" for g in c.get("groups", []))]
        assert len(mine) == 1
        (c,) = mine
        assert c["protocol"] == "binary" and c["listener"] == "binary"
        assert c["in_flight"] == 2 and c["bytes_in"] > 0
        assert [(g["group"], g["topic"], g["in_flight"])
                for g in c["groups"]] == [("cg", topic, 2)]
        admin.close_connection(c["id"], reason="test")
        assert c["id"] not in [x["id"] for x in admin.connections()]
        r = row(admin, topic, "cg")
        assert (r["ready"], r["in_flight"]) == (3, 0)
    with pytest.raises(sluice.SluiceError) as e:
        admin.close_connection(c["id"])
    assert "no open connection" in str(e.value)
