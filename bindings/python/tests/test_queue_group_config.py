"""Queue-group settings from Python: Admin.configure_queue_group /
queue_group_config and QueueConsumer(group_config=...), observed through
dead-lettering and key-ordered delivery."""

import pytest

import sluice

from test_queue import dlq_records, produce


def nack_until_gone(q, limit):
    """Poll and nack (no delay) until nothing comes; the attempts seen."""
    seen = []
    for _ in range(limit):
        m = q.poll(timeout=5)
        if m is None:
            break
        seen.append(m.attempts)
        m.nack(delay=0)
        q.flush(timeout=10)
    return seen


def test_max_deliveries_via_admin(bootstrap, admin, topic):
    admin.create_topic(topic, 1)
    cfg = admin.configure_queue_group(topic, "g", max_deliveries=3,
                                      lock_ms=45000)
    assert cfg["max_deliveries"] == "3" and cfg["lock_ms"] == "45000"
    assert cfg["backoff_max_ms"] == "60000"  # a default, untouched
    assert not any(k.startswith("stats.") for k in cfg)
    assert admin.queue_group_config(topic, "g") == cfg
    stats = admin.queue_group_config(topic, "g", stats=True)
    assert "stats.dlq_appends" in stats
    produce(bootstrap, topic, [b"job"])
    with sluice.QueueConsumer(bootstrap, topic, "g",
                              queue_credits=1) as q:
        # the 3rd nack reaches max_deliveries: no 4th delivery
        assert nack_until_gone(q, 5) == [1, 2, 3]
    (d,) = dlq_records(bootstrap, topic, 1)
    assert d.value == b"job"
    assert d.header("dlq.reason") == b"max_deliveries"
    assert d.header("dlq.attempts") == b"3"
    assert d.header("dlq.group") == b"g"


def test_key_ordered_holds_later_records_of_a_key(bootstrap, admin, topic):
    admin.create_topic(topic, 1)
    cfg = admin.configure_queue_group(topic, "ko", key_ordered=True)
    assert cfg["key_ordered"] == "1"
    produce(bootstrap, topic, [b"a1"], key=b"a")
    produce(bootstrap, topic, [b"a2"], key=b"a")
    produce(bootstrap, topic, [b"b1"], key=b"b")
    with sluice.QueueConsumer(bootstrap, topic, "ko") as q:
        got = q.consume(3, timeout=2)
        got += q.consume(3, timeout=0.5)
        # a2 waits while a1 is in flight; b1 is another key
        assert sorted(m.value for m in got) == [b"a1", b"b1"]
        for m in got:
            if m.value == b"a1":
                m.ack()
        q.flush(timeout=10)
        m = q.poll(timeout=10)
        assert m is not None and m.value == b"a2"
        m.ack()
        for m in got:
            if m.value == b"b1":
                m.ack()
        q.flush(timeout=10)


def test_without_key_ordered_all_are_delivered_at_once(bootstrap, admin,
                                                       topic):
    # the control for the test above: the same records, default settings
    admin.create_topic(topic, 1)
    produce(bootstrap, topic, [b"a1", b"a2"], key=b"a")
    with sluice.QueueConsumer(bootstrap, topic, "plain") as q:
        got = q.consume(2, timeout=2)
        got += q.consume(2, timeout=0.5) if len(got) < 2 else []
        assert sorted(m.value for m in got) == [b"a1", b"a2"]
        for m in got:
            m.ack()


def test_queue_consumer_group_config(bootstrap, admin, topic):
    admin.create_topic(topic, 1)
    produce(bootstrap, topic, [b"once"])
    with sluice.QueueConsumer(bootstrap, topic, "g1",
                              group_config={"max_deliveries": 1,
                                            "dlq_expired": False}) as q:
        assert nack_until_gone(q, 3) == [1]
    assert admin.queue_group_config(topic, "g1")["max_deliveries"] == "1"
    (d,) = dlq_records(bootstrap, topic, 1)
    assert d.value == b"once" and d.header("dlq.reason") == b"max_deliveries"


def test_bad_settings_raise_and_change_nothing(bootstrap, admin, topic):
    admin.create_topic(topic, 1)
    admin.configure_queue_group(topic, "g", lock_ms=5000)
    with pytest.raises(sluice.InvalidConfigError) as ei:
        admin.configure_queue_group(topic, "g", lock_ms=7000,
                                    max_delivery=3)
    assert "'max_delivery'" in str(ei.value)
    assert ei.value.code == 10
    with pytest.raises(sluice.InvalidConfigError) as ei:
        admin.configure_queue_group(topic, "g", backoff_multiplier="zero")
    assert "backoff_multiplier" in str(ei.value) and "zero" in str(ei.value)
    with pytest.raises(ValueError):  # InvalidConfigError is a ValueError
        admin.configure_queue_group(topic, "g", max_deliveries=0)
    assert admin.queue_group_config(topic, "g")["lock_ms"] == "5000"
    with pytest.raises(sluice.UnknownGroupError) as ei:
        admin.configure_queue_group(topic, "nosuch", create=False,
                                    lock_ms=1000)
    assert "nosuch" in str(ei.value)
    with pytest.raises(sluice.UnknownGroupError):
        admin.queue_group_config(topic, "nosuch")
    with pytest.raises(sluice.InvalidConfigError) as ei:
        sluice.QueueConsumer(bootstrap, topic, "g2",
                             group_config={"lock_msec": 5})
    assert "'lock_msec'" in str(ei.value)
