"""Stream consumers: groups, commit, seek, offsets by time, watermarks."""

import time

import sluice


def produce(bootstrap, topic, values, **kw):
    with sluice.Producer(bootstrap) as p:
        futs = [p.send(topic, v, **kw) for v in values]
        return [f.result(timeout=30) for f in futs]


def take(consumer, n, timeout=15.0):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out.extend(consumer.consume(n - len(out), timeout=0.5))
    return out


def test_group_commit_and_resume(bootstrap, topic):
    produce(bootstrap, topic, [b"%d" % i for i in range(20)])
    group = topic + "-g"
    with sluice.Consumer(bootstrap, group, auto_offset_reset="earliest") as c:
        c.subscribe(topic)
        first = take(c, 12)
        assert [m.value for m in first] == [b"%d" % i for i in range(12)]
        c.commit(first[-1])  # next offset = 12
        assert c.committed(topic, 0) == 12
    with sluice.Consumer(bootstrap, group, auto_offset_reset="earliest",
                         topics=[topic]) as c:
        rest = take(c, 8)
        assert [m.value for m in rest] == [b"%d" % i for i in range(12, 20)]
        c.commit()
        assert c.committed(topic, 0) == 20


def test_assign_with_group_starts_at_committed(bootstrap, topic):
    produce(bootstrap, topic, [b"a", b"b", b"c"])
    group = topic + "-g"
    with sluice.Consumer(bootstrap, group) as c:
        c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
        take(c, 1)
        c.commit([sluice.TopicPartition(topic, 0, 1)])
    with sluice.Consumer(bootstrap, group) as c:
        c.assign([(topic, 0)])  # default: the group's committed offset
        assert [m.value for m in take(c, 2)] == [b"b", b"c"]


def test_assign_commits_the_old_positions_with_auto_commit(bootstrap,
                                                           topic):
    """With enable_auto_commit, assign() commits the positions of the
    partitions assigned before (synchronously), as Kafka's assign() does:
    a consumer of the group that takes them over starts where the first
    stopped and reads nothing twice. Before, the positions were dropped
    with the old assignment and the next consumer read them again (here
    from offset 0: the interval keeps the periodic auto-commit away)."""
    other = topic + "-b"
    produce(bootstrap, topic, [b"%d" % i for i in range(10)])
    produce(bootstrap, other, [b"x"])
    group = topic + "-g"
    with sluice.Consumer(bootstrap, group, auto_offset_reset="earliest",
                         enable_auto_commit=True,
                         auto_commit_interval_ms=600000) as c:
        c.assign([(topic, 0)])
        first = take(c, 6)
        assert [m.value for m in first] == [b"%d" % i for i in range(6)]
        c.assign([(other, 0)])
        assert c.committed(topic, 0) == 6
        assert [m.value for m in take(c, 1)] == [b"x"]
        assert c.auto_commit_failures()[0] == 0
    with sluice.Consumer(bootstrap, group, auto_offset_reset="earliest") as d:
        d.assign([(topic, 0)])
        assert [m.value for m in take(d, 4)] == \
            [b"%d" % i for i in range(6, 10)]
        assert d.committed(other, 0) == 1  # the first one's close


def test_seek_and_assignment(bootstrap, topic):
    produce(bootstrap, topic, [b"%d" % i for i in range(10)])
    with sluice.Consumer(bootstrap) as c:
        c.assign([(topic, 0, 7)])
        assert take(c, 1)[0].offset == 7
        c.seek(topic, 0, 2)
        assert [m.offset for m in take(c, 3)] == [2, 3, 4]
        (tp,) = c.assignment()
        assert (tp.topic, tp.partition, tp.offset) == (topic, 0, 5)
        c.seek(topic, 0, sluice.OFFSET_BEGINNING)
        assert take(c, 1)[0].offset == 0


def test_offsets_for_times_and_watermarks(bootstrap, topic):
    base = 1_700_000_000_000
    with sluice.Producer(bootstrap) as p:
        for i in range(5):
            p.send(topic, b"%d" % i, timestamp=base + i * 1000)
        p.flush(timeout=30)
    with sluice.Consumer(bootstrap) as c:
        c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
        got = c.offsets_for_times({(topic, 0): base + 2500})
        assert got == {(topic, 0): 3}
        assert c.offsets_for_times({(topic, 0): base + 99999}) == \
            {(topic, 0): 5}
        assert c.watermarks(topic, 0) == (0, 5)
        c.seek_to_time(topic, 0, base + 1000)
        assert take(c, 1)[0].offset == 1


def test_end_offset_sees_only_new_records(bootstrap, topic):
    produce(bootstrap, topic, [b"old"])
    with sluice.Consumer(bootstrap) as c:
        c.assign([(topic, 0, sluice.OFFSET_END)])
        assert c.poll(timeout=0.3) is None
        produce(bootstrap, topic, [b"new"])
        m = c.poll(timeout=10)
        assert m is not None and m.value == b"new" and m.offset == 1


def test_two_groups_each_see_everything(bootstrap, topic):
    produce(bootstrap, topic, [b"%d" % i for i in range(30)])
    for g in ("a", "b"):
        with sluice.Consumer(bootstrap, topic + g,
                             auto_offset_reset="earliest",
                             topics=[topic]) as c:
            assert len(take(c, 30)) == 30


def test_assign_default_offset_follows_auto_offset_reset(bootstrap, topic):
    produce(bootstrap, topic, [b"a", b"b"])
    with sluice.Consumer(bootstrap, auto_offset_reset="earliest") as c:
        c.assign([(topic, 0)])
        assert [m.value for m in take(c, 2)] == [b"a", b"b"]
    with sluice.Consumer(bootstrap) as c:  # "latest": only new records
        c.assign([sluice.TopicPartition(topic, 0)])
        assert c.poll(timeout=0.3) is None
        produce(bootstrap, topic, [b"c"])
        assert c.poll(timeout=10).value == b"c"


def test_group_members_share_partitions(bootstrap, admin, topic):
    admin.create_topic(topic, partitions=4)
    group = topic + "-g"
    a = sluice.Consumer(bootstrap, group, auto_offset_reset="earliest",
                        heartbeat_interval_ms=100)
    b = sluice.Consumer(bootstrap, group, auto_offset_reset="earliest",
                        heartbeat_interval_ms=100)
    try:
        a.subscribe(topic)
        b.subscribe(topic)
        # poll both until the broker has split the partitions 2 + 2 and
        # both members know their share
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            a.poll(timeout=0.1)
            b.poll(timeout=0.1)
            sa = {tp.partition for tp in a.assignment()}
            sb = {tp.partition for tp in b.assignment()}
            if len(sa) == 2 and len(sb) == 2 and not sa & sb:
                break
        assert sorted(sa | sb) == [0, 1, 2, 3] and not sa & sb
        with sluice.Producer(bootstrap) as p:
            for i in range(200):
                p.send(topic, b"%d" % i, key=b"k%d" % i)
        seen = {}
        deadline = time.monotonic() + 30
        while len(seen) < 200 and time.monotonic() < deadline:
            for name, c, mine in (("a", a, sa), ("b", b, sb)):
                for m in c.consume(100, timeout=0.1):
                    assert m.partition in mine
                    assert int(m.value) not in seen, "delivered twice"
                    seen[int(m.value)] = name
        assert sorted(seen) == list(range(200))
        assert set(seen.values()) == {"a", "b"}
    finally:
        a.close()
        b.close()
