"""kill -9 sluiced in the middle of a stream of durable produces; after the
restart every acknowledged record is present, at its acknowledged offset,
with its exact content, and everything present is a whole record that was
sent (nothing half-visible, nothing invented)."""
import random

import sluice_wire as sw
from sluice_harness import Broker

PARTS = 3
WINDOW = 24  # produce requests in flight


def make_values(rnd, rid, p, seq, n):
    return [("r%d-p%d-s%d-%d|" % (rid, p, seq, i)).encode() +
            bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 600)))
            for i in range(n)]


def run_round(broker, rnd, rid, acked, sent_values, parts=PARTS):
    c = broker.client()
    kill_at = rnd.randrange(80, 400)
    inflight = {}
    seq = 0
    nacked = 0
    killed = False
    try:
        while True:
            while not killed and len(inflight) < WINDOW:
                p = seq % parts
                vals = make_values(rnd, rid, p, seq, rnd.randrange(1, 6))
                for v in vals:
                    sent_values.add(v)
                body = sw.produce_body(sw.ACKS_DURABLE, {
                    "crash": {p: sw.encode_batch(vals)}})
                inflight[c.send(sw.API_PRODUCE, body)] = (p, vals)
                seq += 1
            if not inflight:
                break
            corr, resp = c.recv()
            p, vals = inflight.pop(corr)
            r = sw.decode_produce(resp)[("crash", p)]
            assert r["error"] == 0, r
            assert r["last_offset"] - r["base_offset"] + 1 == len(vals)
            for i, v in enumerate(vals):
                acked[(p, r["base_offset"] + i)] = v
            nacked += 1
            if nacked == kill_at and not killed:
                broker.kill9()  # requests still in flight
                killed = True
    except (ConnectionError, OSError):
        assert killed
    finally:
        c.close()
    assert killed


def verify(broker, acked, sent_values, parts=PARTS):
    c = broker.client()
    for p in range(parts):
        end = c.list_offset("crash", p, sw.OFFSET_LATEST)[1]
        recs = c.fetch_records("crash", p, 0, upto=end) if end else []
        assert [x["offset"] for x in recs] == list(range(end))
        present = {x["offset"]: x["value"] for x in recs}
        for v in present.values():
            assert v in sent_values, "record never sent: %r" % v[:40]
        for (ap, off), v in acked.items():
            if ap != p:
                continue
            assert off in present, "acked %d/%d lost (end %d)" % (p, off, end)
            assert present[off] == v, "acked %d/%d changed" % (p, off)
    c.close()


def test_kill9_loses_no_durable_ack(tmp_path):
    rnd = random.Random(20261125)
    b = Broker(str(tmp_path / "data"))
    acked = {}
    sent_values = set()
    try:
        b.start()
        with b.client() as c:
            assert c.create_topic("crash", PARTS, {"segment-bytes": "64k"}) \
                == (0, None)
        for rid in range(4):
            run_round(b, rnd, rid, acked, sent_values)
            b.start()
            verify(b, acked, sent_values)
        assert len(acked) > 300
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_kill9_journal_loses_no_durable_ack(tmp_path):
    """The same over 16 partitions with the shared journal taking every
    round of 2 or more partitions (and small journal files, so that
    rotations and background checkpoints happen between the kills): the
    restart replays the journal before recovery."""
    rnd = random.Random(20261206)
    parts = 16
    b = Broker(str(tmp_path / "data"),
               args=["--journal-min-partitions", "2",
                     "--journal-file-bytes", "1m"])
    acked = {}
    sent_values = set()
    try:
        b.start()
        with b.client() as c:
            assert c.create_topic("crash", parts, {"segment-bytes": "64k"}) \
                == (0, None)
        jdir = tmp_path / "data" / "journal"
        journaled = 0
        for rid in range(4):
            run_round(b, rnd, rid, acked, sent_values, parts)
            # the killed broker's journal: left for the restart to replay
            journaled += sum(f.stat().st_size for f in jdir.glob("*.wal"))
            b.start()
            verify(b, acked, sent_values, parts)
        assert journaled > 0
        assert len(acked) > 300
        assert b.stop() == 0
        assert list(jdir.glob("*.wal")) == []  # a clean stop leaves none
    finally:
        b.cleanup()
