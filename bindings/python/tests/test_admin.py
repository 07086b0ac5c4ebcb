"""Admin: topics, configs, groups, lag, DLQ listing."""

import time

import pytest

import sluice


def test_topics_and_configs(bootstrap, admin, topic):
    admin.create_topic(topic, partitions=3,
                       config={"retention-ms": 3600000,
                               "cleanup-policy": "compact"})
    t = admin.topic(topic)
    assert t.name == topic and t.partition_count == 3
    assert [p.partition for p in t.partitions] == [0, 1, 2]
    assert all(p.log_start == 0 and p.log_end == 0 for p in t.partitions)
    assert t.config.get("cleanup-policy") == "compact"
    assert t.config.get("retention-ms") in ("3600000", "1h", "3600000ms")
    with sluice.Producer(bootstrap) as p:
        for i in range(5):
            p.send(topic, b"v", partition=1)
    assert admin.topic(topic).partitions[1].log_end == 5
    assert topic in [x.name for x in admin.topics()]
    # topics() gives what topic() gives: configs and partitions too
    listed = {x.name: x for x in admin.topics()}[topic]
    assert listed.config == admin.topic(topic).config
    assert listed.config.get("cleanup-policy") == "compact"
    assert listed.partition_count == 3
    assert [p.log_end for p in listed.partitions] == [0, 5, 0]
    admin.delete_topic(topic)
    assert topic not in [x.name for x in admin.topics()]


def test_stream_group_lag(bootstrap, admin, topic):
    with sluice.Producer(bootstrap) as p:
        for i in range(10):
            p.send(topic, b"%d" % i)
    group = topic + "-g"
    with sluice.Consumer(bootstrap, group) as c:
        c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
        got = []
        while len(got) < 4:
            got += c.consume(4 - len(got), timeout=5)
        c.commit()
    assert admin.lag(group) == {(topic, 0): 6}
    g = admin.group(group)
    assert g.kind == "stream" and g.lag == 6
    assert g.partitions[0].committed == 4 and g.partitions[0].log_end == 10
    assert group in [x.name for x in admin.groups()]


def test_queue_group_in_flight_and_dlq(bootstrap, admin, topic):
    with sluice.Producer(bootstrap) as p:
        for i in range(6):
            p.send(topic, b"%d" % i)
    with sluice.QueueConsumer(bootstrap, topic, "qg", queue_credits=3,
                              queue_prefetch=False) as q:
        msgs = []
        deadline = time.monotonic() + 10
        while len(msgs) < 3 and time.monotonic() < deadline:
            msgs += q.consume(3 - len(msgs), timeout=1)
        msgs[0].ack()
        msgs[1].reject("bad")
        q.flush(timeout=10)
        g = admin.group("qg")
        assert g.kind == "queue" and g.dlq_topic == topic + ".DLQ"
        (part,) = [p for p in g.partitions if p.topic == topic]
        assert part.in_flight == 1   # msgs[2] still held
        assert part.log_end == 6
    dl = {d.topic: d for d in admin.dlqs()}
    assert dl[topic + ".DLQ"].source_topic == topic
    assert dl[topic + ".DLQ"].depth == 1


def test_sluice_bootstrap_environment_variable(bootstrap, topic, monkeypatch):
    # no address given: SLUICE_BOOTSTRAP, as for the CLI and libsluice
    monkeypatch.setenv("SLUICE_BOOTSTRAP", bootstrap)
    with sluice.Admin() as a:
        a.create_topic(topic, partitions=1)
    with sluice.Producer() as p:
        p.send(topic, b"x").result()
    with sluice.Consumer() as c:
        c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
        assert [m.value for m in c.consume(1, timeout=10)] == [b"x"]
    # an explicit address wins
    monkeypatch.setenv("SLUICE_BOOTSTRAP", "127.0.0.1:1")
    with sluice.Admin(bootstrap) as a:
        assert topic in [t.name for t in a.topics()]
    with pytest.raises(sluice.SluiceError) as e:
        with sluice.Admin(connect_timeout_ms=2000) as a:
            a.topics()
    assert "127.0.0.1:1" in str(e.value)


def test_topic_reads_see_changes_through_a_lagging_follower(bin_dir, tmp_path,
                                                            monkeypatch):
    """Admin.topic() and Admin.topics() read your writes in a cluster
    (docs/cluster.md 2.7): through a node whose copy of the metadata
    applies the log 150 ms late (the test hook), right after a change
    answered by the metadata leader. They read METADATA, which does not
    wait (producers and consumers use it), and showed the topic as it
    was; libsluice now makes an admin read first, which waits."""
    import os
    import sys
    root = os.environ.get("SLUICE_SOURCE_DIR") or os.path.normpath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                     ".."))
    sys.path.insert(0, os.path.join(root, "tests", "cluster"))
    import cluster_harness
    monkeypatch.setenv("SLUICE_BIN_DIR", bin_dir)
    monkeypatch.setenv("SLUICE_TEST_FOLLOWER_APPLY_DELAY_MS", "150")
    c = cluster_harness.Cluster(tmp_path, n=3)
    c.start()
    try:
        ldr = c.wait(lambda: c.agreed_leader([1, 2, 3]), "a leader")
        fol = [n for n in (1, 2, 3) if n != ldr][0]
        c.wait(lambda: c.cli(fol, "topic", "create", "warmup",
                             check=False).returncode == 0, "a topic")
        failures = []
        with sluice.Admin("%s:%d" % c.nodes[fol].binary_addr) as a:
            for i in range(4):
                t = "rw%d" % i
                c.cli(ldr, "topic", "create", t, "--partitions", "1")
                c.cli(ldr, "topic", "alter", t, "--config",
                      "retention-ms=%d" % (3600000 + i))
                got = a.topic(t).config.get("retention-ms")
                if got != str(3600000 + i):
                    failures.append("round %d: topic(): %r" % (i, got))
                c.cli(ldr, "topic", "add-partitions", t, "--count", "2")
                listed = {x.name: x for x in a.topics()}.get(t)
                if not listed or listed.partition_count != 2:
                    failures.append("round %d: topics(): %r" % (
                        i, listed and listed.partition_count))
        assert not failures, failures
    finally:
        c.stop_all()
