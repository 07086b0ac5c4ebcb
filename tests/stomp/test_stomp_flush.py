"""Lazy fsync rounds (flush-lazy-ms, storage/flusher.c LAZY REQUESTS): a
persistent SEND without a receipt starts no fsync round of its own; the
next receipt (or a durable wait of any kind) starts one round that covers
every SEND before it. The broker runs with flush-lazy-ms at its maximum
(60 s), so within a test nothing is synced unless someone waits for it:
the counts of /metrics show exactly which frames started rounds."""
import re
import time
import urllib.request

import pytest

from conftest import Broker, Raw


@pytest.fixture
def lazy():
    b = Broker(args=["--flush-lazy-ms", "60000"]).start()
    yield b
    b.cleanup()


def metric(b, name, labels=""):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.http_port,
                                timeout=30) as r:
        text = r.read().decode()
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)),
                  text, re.M)
    assert m, (name, labels, text[:2000])
    return float(m.group(1))


def warm(b, topic):
    """A /topic subscriber and a producer; one receipted SEND makes the
    topic and its first record durable. Returns (subscriber, producer)."""
    sub = Raw(b.stomp_port)
    sub.connect()
    sub.call("SUBSCRIBE", {"destination": "/topic/" + topic, "id": "t",
                           "receipt": "s"})
    p = Raw(b.stomp_port)
    p.connect()
    p.call("SEND", {"destination": "/topic/" + topic, "persistent": "true",
                    "receipt": "w"}, "warm")
    assert sub.expect("MESSAGE").body == b"warm"
    assert durable(b, topic) == 1
    return sub, p


def durable(b, topic):
    return metric(b, "sluice_partition_durable_offset",
                  '{topic="%s",partition="0"}' % topic)


def test_sends_without_receipt_share_the_receipts_round(lazy):
    b = lazy
    sub, p = warm(b, "lz")
    rounds = metric(b, "sluice_fsync_rounds_total")
    for i in range(20):
        p.send("SEND", {"destination": "/topic/lz", "persistent": "true"},
               "m%d" % i)
        # delivered (queue-dispatch written: at append), one at a time
        assert sub.expect("MESSAGE").body == b"m%d" % i
    # twenty appends, no round: nobody waits for them
    assert metric(b, "sluice_fsync_rounds_total") == rounds
    assert durable(b, "lz") == 1
    # the receipt's round covers all of them
    p.call("SEND", {"destination": "/topic/lz", "persistent": "true",
                    "receipt": "last"}, "last")
    assert durable(b, "lz") == 22
    assert metric(b, "sluice_fsync_rounds_total") >= rounds + 1
    sub.close()
    p.close()


def test_ack_of_a_record_not_yet_synced_starts_its_round(lazy):
    """A queue consumer acks a record it got before its fsync (no receipt
    asked for it, so no round started): the ack's commit must wait for
    that record's round (group state never ahead of the log), and asks
    for it; its receipt comes without waiting for flush-lazy-ms."""
    b = lazy
    c = Raw(b.stomp_port, timeout=20)
    c.connect()
    c.call("SUBSCRIBE", {"destination": "/queue/lq", "id": "q",
                         "ack": "client-individual", "receipt": "s"})
    p = Raw(b.stomp_port)
    p.connect()
    p.send("SEND", {"destination": "/queue/lq", "persistent": "true"}, "job")
    m = c.expect("MESSAGE")
    assert m.body == b"job"
    assert durable(b, "lq") == 0
    c.call("ACK", {"id": m.headers["ack"], "receipt": "a"})
    assert durable(b, "lq") == 1
    # acknowledged: a new consumer gets only what comes after it
    c.close()
    c2 = Raw(b.stomp_port)
    c2.connect()
    c2.call("SUBSCRIBE", {"destination": "/queue/lq", "id": "q2",
                          "ack": "client-individual", "receipt": "s2"})
    p.call("SEND", {"destination": "/queue/lq", "persistent": "true",
                    "receipt": "n"}, "next")
    assert c2.expect("MESSAGE").body == b"next"
    c2.close()
    p.close()


def test_flush_lazy_ms_0_starts_a_round_per_append():
    """flush-lazy-ms 0: every append starts its round (the behaviour
    before lazy rounds): the record is durable without any receipt."""
    b = Broker(args=["--flush-lazy-ms", "0"]).start()
    try:
        sub, p = warm(b, "z")
        rounds = metric(b, "sluice_fsync_rounds_total")
        p.send("SEND", {"destination": "/topic/z", "persistent": "true"},
               "x")
        assert sub.expect("MESSAGE").body == b"x"
        # its round was started by the append itself: wait for it on the
        # metric (a condition, bounded by the test's timeout)
        deadline = time.monotonic() + 30
        while durable(b, "z") < 2:
            assert time.monotonic() < deadline, "record never synced"
        assert metric(b, "sluice_fsync_rounds_total") >= rounds + 1
        sub.close()
        p.close()
    finally:
        b.cleanup()
