"""STOMP <-> binary protocol: the same topics, headers mapped both ways.
The binary side uses the pure-Python wire codec of tests/harness."""
import os
import sys

from conftest import Raw

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
