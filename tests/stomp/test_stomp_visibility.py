"""One visibility rule for every reader of a partition (groups/visible.c,
docs/broker.md "Which records readers see"): a STOMP /topic subscriber
sees exactly the records a binary FETCH sees, and queue-dispatch decides
for both. The topic "slow" is flush=interval with a one-hour interval, so
nothing of it is fsynced while a test runs; "mark" is flush=never, whose
records are visible at once in every mode: a record of "mark" appended
after one of "slow" is the barrier that shows what the subscriber would
have got by then."""
import os
import sys

import pytest

from conftest import Broker, Raw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "harness"))
import sluice_wire  # noqa: E402

SLOW = {"flush": "interval", "flush-interval-ms": "3600000"}


@pytest.fixture
def setup(request):
    b = Broker(args=["--queue-dispatch", request.param]).start()
    c = sluice_wire.Client(("127.0.0.1", b.binary_port))
    c.handshake()
    assert c.create_topic("slow", configs=SLOW) == (0, None)
    assert c.create_topic("mark", configs={"flush": "never"}) == (0, None)
    assert c.create_topic("dur", configs={"flush": "always"}) == (0, None)
    s = Raw(b.stomp_port)
    s.connect("1.2")
    for i, d in enumerate(("slow", "mark", "dur")):
        s.call("SUBSCRIBE", {"destination": "/topic/" + d, "id": d,
                             "receipt": "sub%d" % i})
    yield b, c, s
    s.close()
    c.close()
    b.cleanup()


def frames_until_receipt(s, rid):
    """Ask for a receipt and return every frame read before it."""
    s.send("SUBSCRIBE", {"destination": "/topic/other", "id": "sync",
                         "receipt": rid})
    got = []
    while True:
        f = s.read_frame()
        if f.command == "RECEIPT" and f.headers["receipt-id"] == rid:
            return got
        got.append(f)


def fetched(c, topic, max_wait_ms=0):
    r = c.fetch(topic, 0, 0, max_wait_ms=max_wait_ms,
                min_bytes=1 if max_wait_ms else 0)
    assert r["error"] == 0
    return [x["value"] for x in sluice_wire.decode_batches(r["records"])]


@pytest.mark.parametrize("setup", ["durable"], indirect=True)
def test_durable_topic_subscriber_waits_for_the_fsync(setup):
    """queue-dispatch durable: a record that is not fsynced yet is shown
    neither to FETCH nor to a /topic subscriber (the subscriber used to
    get it at once)."""
    b, c, s = setup
    assert c.produce("slow", 0, [b"hidden"])["error"] == 0
    assert c.produce("mark", 0, [b"marker"])["error"] == 0
    m = s.expect("MESSAGE")
    assert (m.headers["destination"], m.body) == ("/topic/mark", b"marker")
    late = frames_until_receipt(s, "sync1")
    assert [(f.command, f.body) for f in late] == []
    # stored, not visible: FETCH (also its long-poll) agrees
    assert c.list_offset("slow", 0, sluice_wire.OFFSET_LATEST) == (0, 1)
    assert fetched(c, "slow") == []
    assert fetched(c, "slow", max_wait_ms=100) == []
    # a flush=always record is shown once its fdatasync is done: the
    # subscriber is woken by the flusher round, not by the append
    assert c.produce("dur", 0, [b"synced"],
                     acks=sluice_wire.ACKS_DURABLE)["error"] == 0
    m = s.expect("MESSAGE")
    assert (m.headers["destination"], m.body) == ("/topic/dur", b"synced")
    assert fetched(c, "dur") == [b"synced"]


@pytest.mark.parametrize("setup", ["written"], indirect=True)
def test_written_topic_subscriber_and_fetch_see_the_append(setup):
    """queue-dispatch written (the default): both see a record as soon as
    it is appended, before any fsync."""
    b, c, s = setup
    assert c.produce("slow", 0, [b"early"])["error"] == 0
    assert c.produce("mark", 0, [b"marker"])["error"] == 0
    got = [s.expect("MESSAGE") for _ in range(2)]
    assert sorted((f.headers["destination"], f.body) for f in got) == [
        ("/topic/mark", b"marker"), ("/topic/slow", b"early")]
    assert fetched(c, "slow") == [b"early"]
    assert c.produce("dur", 0, [b"d"])["error"] == 0
    m = s.expect("MESSAGE")
    assert (m.headers["destination"], m.body) == ("/topic/dur", b"d")
    assert fetched(c, "dur") == [b"d"]


@pytest.mark.parametrize("setup", ["durable"], indirect=True)
def test_durable_long_poll_is_woken_by_the_fsync(setup):
    """queue-dispatch durable: a FETCH long-poll (and a /topic subscriber)
    parked before the append is answered once the fsync made the record
    visible: for flush=always after the flusher round, for flush=interval
    after the timed fsync."""
    b, c, s = setup
    assert c.create_topic("tick", configs={
        "flush": "interval", "flush-interval-ms": "20"}) == (0, None)
    s.call("SUBSCRIBE", {"destination": "/topic/tick", "id": "tick",
                         "receipt": "subtick"})
    for topic in ("dur", "tick"):
        poll = sluice_wire.Client(("127.0.0.1", b.binary_port))
        poll.handshake()
        corr = poll.send(sluice_wire.API_FETCH, sluice_wire.fetch_body(
            {topic: [(0, 0, 1 << 20)]}, 60000, 1))
        # parked until the record is visible (if the produce is read
        # first, the record is still not fsynced when the FETCH comes)
        assert c.produce(topic, 0, [b"x-" + topic.encode()])["error"] == 0
        rc, body = poll.recv()
        assert rc == corr
        r = sluice_wire.decode_fetch(body)[(topic, 0)]
        assert r["error"] == 0
        got = [x["value"] for x in sluice_wire.decode_batches(r["records"])]
        assert got == [b"x-" + topic.encode()]
        poll.close()
        m = s.expect("MESSAGE")
        assert (m.headers["destination"], m.body) == (
            "/topic/" + topic, b"x-" + topic.encode())
