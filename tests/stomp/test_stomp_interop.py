"""STOMP <-> binary protocol: the same topics, headers mapped both ways.
The binary side uses the pure-Python wire codec of tests/harness."""
import os
import subprocess
import sys

from conftest import Broker, Raw, bin_dir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "harness"))
import sluice_wire  # noqa: E402


def binary_client(broker):
    c = sluice_wire.Client(("127.0.0.1", broker.binary_port))
    c.handshake()
    return c


def test_stomp_send_binary_fetch(broker):
    r = Raw(broker.stomp_port)
    r.connect("1.2")
    for i in range(3):
        r.send("SEND", [("destination", "/queue/interop1"),
                        ("persistent", "true"), ("receipt", "r%d" % i),
                        ("content-type", "application/json"),
                        ("JMSXGroupID", "order-7"),
                        ("x-custom", "a:b\nc"),
                        ("transaction-free", "yes")],
               b'{"n": %d}' % i)
    for i in range(3):
        assert r.expect("RECEIPT").headers["receipt-id"] == "r%d" % i
    c = binary_client(broker)
    recs = c.fetch_records("interop1", 0, 0, upto=3)
    assert [x["value"] for x in recs] == [b'{"n": %d}' % i for i in range(3)]
    for x in recs:
        h = dict(x["headers"])
        assert x["key"] == b"order-7"
        assert h[b"content-type"] == b"application/json"
        assert h[b"x-custom"] == b"a:b\nc"  # unescaped once, stored raw
        assert h[b"persistent"] == b"true"
        assert h[b"JMSXGroupID"] == b"order-7"
        for proto in (b"destination", b"receipt", b"content-length"):
            assert proto not in h
    c.close()
    r.close()


def test_binary_produce_stomp_receive(broker):
    c = binary_client(broker)
    c.create_topic("interop2", partitions=1)
    s = Raw(broker.stomp_port)
    s.connect("1.2")
    s.send("SUBSCRIBE", {"destination": "/topic/interop2", "id": "t",
                         "receipt": "s"})
    s.expect("RECEIPT")
    q = Raw(broker.stomp_port)
    q.connect("1.1")
    q.send("SUBSCRIBE", {"destination": "/queue/interop2", "id": "q",
                         "ack": "client-individual", "receipt": "s"})
    q.expect("RECEIPT")
    batch = sluice_wire.encode_batch(
        [b"bin-0", b"bin\x001"], keys=[b"k0", None],
        headers=[[(b"content-type", b"text/plain"), (b"trace", b"x:y")],
                 [(b"empty", b"")]])
    body = sluice_wire.produce_body(sluice_wire.ACKS_DURABLE,
                                    {"interop2": {0: batch}})
    res = sluice_wire.decode_produce(c.call(sluice_wire.API_PRODUCE, body))
    assert res[("interop2", 0)]["error"] == 0
    for conn, sub in ((s, "t"), (q, "q")):
        m0 = conn.expect("MESSAGE")
        m1 = conn.expect("MESSAGE")
        assert m0.body == b"bin-0" and m1.body == b"bin\x001"
        assert m0.headers["subscription"] == sub
        assert m0.headers["content-type"] == "text/plain"
        assert m0.headers["trace"] == "x:y"
        assert m0.headers["sluice-key"] == "k0"
        assert m0.headers["content-length"] == "5"
        assert m1.headers["content-length"] == "5"
        assert m1.headers["empty"] == ""
        assert "sluice-key" not in m1.headers
        assert m0.headers["redelivered"] == "false"
    c.close()
    s.close()
    q.close()


def test_acks_without_receipt_share_commits(broker):
    """One message at a time (a flusher round each), each ACKed without a
    receipt: those ACKs are committed to groups.db in a few lazy
    transactions (group-commit-interval-ms), not one per round. An ACK
    with a receipt is committed before its RECEIPT, and covers the
    earlier ones: after a restart nothing acked comes back."""
    import sluice_wire_groups as swg
    p = Raw(broker.stomp_port)
    p.connect("1.2")
    c = Raw(broker.stomp_port)
    c.connect("1.2")
    c.send("SUBSCRIBE", {"destination": "/queue/lazyack", "id": "s",
                         "ack": "client-individual"})
    c.call("SEND", {"destination": "/queue/lazyack", "receipt": "w"}, "warm")
    b = binary_client(broker)

    def stats():
        kv = swg.queue_config(b, "lazyack", "lazyack", mode=2)
        return {k[6:]: int(v) for k, v in kv.items()
                if k.startswith("stats.")}

    n = 300
    before = stats()
    for i in range(n):
        p.call("SEND", {"destination": "/queue/lazyack", "persistent": "true",
                        "receipt": str(i)}, "m-%d" % i)
        m = c.expect("MESSAGE")
        if m.body == b"warm":
            c.send("ACK", {"id": m.headers["ack"]})
            m = c.expect("MESSAGE")
        assert m.body == b"m-%d" % i
        last = {"id": m.headers["ack"]}
        if i == n - 1:
            last["receipt"] = "done"
        c.send("ACK", last)
    assert c.expect("RECEIPT").headers["receipt-id"] == "done"
    after = stats()
    acks = after["acks"] - before["acks"]
    txns = after["groups_db_txns"] - before["groups_db_txns"]
    assert acks >= n
    assert txns * 3 < n, "%d transactions for %d acks" % (txns, acks)
    b.close()
    p.close()
    c.close()
    broker.kill9()
    broker.start()
    c = Raw(broker.stomp_port)
    c.connect("1.2")
    c.send("SUBSCRIBE", {"destination": "/queue/lazyack", "id": "s",
                         "ack": "auto"})
    c.send("SEND", {"destination": "/queue/lazyack"}, "marker")
    assert c.expect("MESSAGE").body == b"marker"
    c.close()


def test_stomp_producer_served_while_binary_floods():
    """A streaming STOMP producer's reads run after more urgent work
    (deliveries, acks: SL_PRI_INGRESS), yet not only once the loop is
    idle: while binary clients produce flat out (their connections are
    readable in every loop pass), a STOMP session sends 160 KiB at once
    and gets all its receipts, and the flood is still going when it is
    done (broker/stomp.c, ingress_guard_cb). Without the guard the last
    SENDs wait for the flood's end (its billion records) and the socket
    read times out."""
    b = Broker(args=["--maintenance-interval-ms", "100"]).start()
    flood = None
    try:
        c = binary_client(b)
        # a small, self-trimming log: the flood may run a while on any disk
        c.create_topic("flood", configs={"segment-bytes": "1m",
                                         "retention-bytes": "4m",
                                         })
        flood = subprocess.Popen(
            [os.path.join(bin_dir(), "sluice-bench"), "produce",
             "-b", "127.0.0.1:%d" % b.binary_port, "--topic", "flood",
             "--records", "1000000000", "--size", "100", "--acks", "written", "--producers", "4"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # wait (round trips, no sleep) until the flood is being stored
        while True:
            err, end = c.list_offset("flood", 0, sluice_wire.OFFSET_LATEST)
            assert err == 0 and flood.poll() is None
            if end > 100000:
                break
        r = Raw(b.stomp_port)
        r.connect("1.2")
        # 20 x 8 KiB in one go, receipts asked: a streaming producer (its
        # reads find more than 4 KiB waiting), so it is read at the lower
        # priority once its first read is done
        body = [(b"m%d-" % i) + b"x" * 8192 for i in range(20)]
        r.send_raw(b"".join(
            b"SEND\ndestination:/queue/starve\npersistent:true\n"
            b"receipt:r%d\ncontent-length:%d\n\n%s\0" % (i, len(x), x)
            for i, x in enumerate(body)))
        for i in range(20):
            assert r.expect("RECEIPT").headers["receipt-id"] == "r%d" % i
        assert flood.poll() is None, "the flood ended before the receipts"
        recs = c.fetch_records("starve", 0, 0, upto=20)
        assert [x["value"] for x in recs] == body
        r.close()
        c.close()
    finally:
        if flood:
            flood.kill()
            flood.wait()
        b.cleanup()
