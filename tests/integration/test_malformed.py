"""Malformed input: answered with an error naming the problem when the
frame is well delimited, or only that connection closed when the framing is
broken. Another open connection keeps working in every case."""
import random
import socket
import struct

import sluice_wire as sw


def healthy(broker, other):
    """The broker answers on the old connection and on a new one."""
    assert other.list_topics() is not None
    r = other.produce("health", 0, [b"ok"], acks=sw.ACKS_DURABLE)
    assert r["error"] == 0
    with broker.client() as c:
        recs = c.fetch_records("health", 0, r["base_offset"],
                               upto=r["base_offset"] + 1)
        assert [x["value"] for x in recs] == [b"ok"]


def read_all(sock, timeout=30):
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def test_truncated_frame_then_close(broker):
    other = broker.client()
    s = socket.create_connection(broker.binary_addr)
    frame = sw.request_frame(sw.API_LIST_TOPICS, 1, b"")
    s.sendall(struct.pack("<I", 100) + frame[4:12] + b"partial")
    s.close()
    healthy(broker, other)


def test_truncated_frame_kept_open(broker):
    other = broker.client()
    s = socket.create_connection(broker.binary_addr)
    s.sendall(struct.pack("<IHHI", 1000, sw.API_PRODUCE, 1, 5) + b"x" * 10)
    healthy(broker, other)  # the half frame blocks nobody else
    s.close()


def test_huge_length_answered_and_closed(broker):
    other = broker.client()
    s = socket.create_connection(broker.binary_addr)
    s.sendall(struct.pack("<IHHI", 0x7FFFFFFF, sw.API_PRODUCE, 1, 77))
    data, closed = read_all(s)
    assert closed
    n, corr = struct.unpack_from("<II", data)
    assert corr == 77 and len(data) == 4 + n
    err, msg, _ = sw.status(data[8:])
    assert err == sw.ERR_TOO_LARGE
    assert "max-frame-bytes" in msg and "2147483651" in msg
    healthy(broker, other)
    assert "protocol error" in broker.log()


def test_length_shorter_than_header_closes(broker):
    other = broker.client()
    s = socket.create_connection(broker.binary_addr)
    s.sendall(struct.pack("<I", 3) + b"abc")
    data, closed = read_all(s)
    assert closed and data == b""
    healthy(broker, other)


def test_unknown_api_keeps_connection(broker):
    other = broker.client()
    c = broker.client()
    err, msg, _ = sw.status(c.call(999, b"whatever"))
    assert err == sw.ERR_UNSUPPORTED_API and "999" in msg
    assert c.list_topics() == {}
    healthy(broker, other)


def test_bad_version_keeps_connection(broker):
    other = broker.client()
    c = broker.client()
    body = sw.produce_body(sw.ACKS_WRITTEN, {"v": {0: sw.encode_batch([b"a"])}})
    err, msg, _ = sw.status(c.call(sw.API_PRODUCE, body, version=7))
    assert err == sw.ERR_UNSUPPORTED_VERSION
    assert "PRODUCE" in msg and "7" in msg
    assert c.list_topics() == {}  # and nothing was produced
    healthy(broker, other)


def test_bad_batch_crc_is_a_partition_error(broker):
    other = broker.client()
    c = broker.client()
    c.create_topic("crc", 2)
    bad = bytearray(sw.encode_batch([b"payload"]))
    bad[-3] ^= 0x40
    body = sw.produce_body(sw.ACKS_DURABLE, {"crc": {
        0: bytes(bad), 1: sw.encode_batch([b"good"])}})
    r = sw.decode_produce(c.call(sw.API_PRODUCE, body))
    assert r[("crc", 0)]["error"] == sw.ERR_CORRUPT
    assert r[("crc", 0)]["base_offset"] == -1
    assert r[("crc", 1)]["error"] == 0
    assert c.list_offset("crc", 0, sw.OFFSET_LATEST) == (0, 0)
    assert c.fetch_records("crc", 1, 0, upto=1)[0]["value"] == b"good"
    healthy(broker, other)


def test_garbage_records_and_bodies(broker):
    other = broker.client()
    c = broker.client()
    # records that are not a batch at all
    body = sw.produce_body(sw.ACKS_WRITTEN, {"g": {0: b"\x00" * 70}})
    r = sw.decode_produce(c.call(sw.API_PRODUCE, body))
    assert r[("g", 0)]["error"] in (sw.ERR_MALFORMED, sw.ERR_TOO_LARGE)
    # a body cut short inside a well-delimited frame
    full = sw.produce_body(sw.ACKS_WRITTEN, {"g": {0: sw.encode_batch([b"x"])}})
    err, msg, _ = sw.status(c.call(sw.API_PRODUCE, full[:20]))
    assert err == sw.ERR_MALFORMED and "PRODUCE" in msg
    err, msg, _ = sw.status(c.call(sw.API_FETCH, b"\x01\x02"))
    assert err == sw.ERR_MALFORMED and "FETCH" in msg
    # huge counts inside a small frame
    err, _, _ = sw.status(c.call(sw.API_METADATA, struct.pack("<I",
                                                              0xFFFFFFFF)))
    assert err == sw.ERR_MALFORMED
    assert c.list_topics() is not None
    healthy(broker, other)


def test_random_frames_never_hurt_others(broker):
    other = broker.client()
    rnd = random.Random(1234)
    for i in range(150):
        s = socket.create_connection(broker.binary_addr)
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 80)))
        api = rnd.choice([0, 1, 2, 3, 4, 5, 6, 7, rnd.randrange(65536)])
        frame = struct.pack("<IHHI", 8 + len(body), api,
                            rnd.choice([1, 1, 1, 0, 2]), i) + body
        if i % 5 == 0:  # sometimes break the framing too
            frame = frame[:rnd.randrange(1, len(frame))]
        s.sendall(frame)
        s.shutdown(socket.SHUT_WR)
        data, _ = read_all(s)
        s.close()
        if len(data) >= 12:
            n, corr = struct.unpack_from("<II", data)
            assert corr == i
    healthy(broker, other)
