"""The HTTP adapter on the connection layer (issue 15): keep-alive and
pipelined requests answered in order, Expect: 100-continue, and bad input
answered with a status and a text naming the problem, closing only that
connection. Raw sockets, so the bytes on the wire are what is checked."""
import json
import socket

import pytest

from sluice_harness import Broker

WAIT = 30


@pytest.fixture
def broker():
    b = Broker().start()
    yield b
    assert b.stop() == 0
    b.cleanup()


def conn(b):
    return socket.create_connection(b.http_addr, timeout=WAIT)


def read_response(s, buf=b""):
    """One response off s: (status, headers dict, body, rest of buf)."""
    while b"\r\n\r\n" not in buf:
        got = s.recv(65536)
        assert got, ("closed before a response", buf)
        buf += got
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    assert lines[0].startswith("HTTP/1.1 ")
    hdrs = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs["content-length"])
    while len(buf) < n:
        got = s.recv(65536)
        assert got, "closed inside a body"
        buf += got
    return status, hdrs, buf[:n], buf[n:]


def closed_by_peer(s):
    try:
        while True:
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True


def test_keep_alive_and_pipelining(broker):
    s = conn(broker)
    # three requests in one write: answered in order on one connection
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /nosuch HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /api/connections HTTP/1.1\r\nHost: x\r\n\r\n")
    st, h, body, rest = read_response(s)
    assert (st, body) == (200, b"ok\n")
    assert h["content-type"] == "text/plain; charset=utf-8"
    assert "connection" not in h
    st, h, body, rest = read_response(s, rest)
    assert st == 404
    st, h, body, rest = read_response(s, rest)
    assert st == 200 and h["content-type"] == "application/json"
    # the connection is one of the layer's, listed with its protocol
    mine = [c for c in json.loads(body)["connections"]
            if c["peer"] == "%s:%d" % s.getsockname()]
    assert [(c["protocol"], c["listener"]) for c in mine] == \
        [("http", "http")]
    assert rest == b""
    # still open: a fourth request later on the same connection
    s.sendall(b"HEAD /readyz HTTP/1.1\r\n\r\n")
    st, h, body, _ = read_response_head_only(s)
    assert st == 200 and h["content-length"] == "6" and body == b""
    s.close()


def read_response_head_only(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = s.recv(65536)
        assert got
        buf += got
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    hdrs = dict((k.strip().lower(), v.strip()) for k, v in
                (l.split(":", 1) for l in lines[1:]))
    return int(lines[0].split()[1]), hdrs, rest, b""


def test_connection_close_and_http10(broker):
    s = conn(broker)
    s.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"
              b"GET /healthz HTTP/1.1\r\n\r\n")
    st, h, body, rest = read_response(s)
    assert st == 200 and h["connection"] == "close"
    assert rest == b"" and closed_by_peer(s)  # the second is not answered
    s = conn(broker)
    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    st, h, body, rest = read_response(s)
    assert st == 200 and h["connection"] == "close" and closed_by_peer(s)


def test_expect_continue_and_form_body(broker):
    s = conn(broker)
    body = b"topic=hc1&partitions=2"
    s.sendall(b"POST /api/topics HTTP/1.1\r\nContent-Length: %d\r\n"
              b"Content-Type: application/x-www-form-urlencoded\r\n"
              b"Expect: 100-continue\r\n\r\n" % len(body))
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(100)
    assert got == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body[:5])
    s.sendall(body[5:])
    st, h, out, _ = read_response(s)
    assert st == 200, out
    t = json.loads(out)
    assert t["name"] == "hc1" and t["partition_count"] == 2
    s.close()


@pytest.mark.parametrize("req,status,words", [
    (b"\x00\x00\x00\x10\x00\x03binary\r\n\r\n", 400,
     b"malformed request line"),
    (b"GET /healthz\r\n\r\n", 400, b"malformed request line"),
    (b"GET /healthz HTTP/2.0\r\n\r\n", 505, b"version"),
    (b"PUT /api/topics HTTP/1.1\r\n\r\n", 501, b"method"),
    (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400, b"header line"),
    (b"POST /api/topics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
     501, b"Content-Length"),
    (b"POST /api/topics HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413,
     b"1 MiB"),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000, 431, b"16 KiB"),
])
def test_bad_input_closes_only_that_connection(broker, req, status, words):
    keep = conn(broker)
    keep.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
    assert read_response(keep)[0] == 200
    s = conn(broker)
    s.sendall(req)
    st, h, body, rest = read_response(s)
    assert st == status and words in body, (st, body)
    assert h["connection"] == "close"
    assert closed_by_peer(s)
    s.close()
    # the other connection and the broker go on
    keep.sendall(b"GET /readyz HTTP/1.1\r\n\r\n")
    assert read_response(keep)[:3:2] == (200, b"ready\n")
    keep.close()
    assert "bad HTTP request (%d)" % status in broker.log()


def test_tls_hello_on_the_plain_port(broker):
    """A TLS client on the plaintext HTTP port is closed by the layer with
    a line naming the flag for the TLS listener."""
    s = conn(broker)
    s.sendall(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
    assert closed_by_peer(s)
    s.close()
    assert "started a TLS handshake on the plaintext http port" in \
        broker.log()
    assert "--http-tls-listen" in broker.log()


def test_http_counts_against_max_connections():
    """One count for every listener: HTTP connections take
    max-connections slots like binary and STOMP ones."""
    b = Broker(args=["--max-connections", "2"]).start()
    try:
        a, c = conn(b), conn(b)
        for s in (a, c):
            s.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            assert read_response(s)[0] == 200
        s = socket.create_connection(b.http_addr, timeout=WAIT)
        assert closed_by_peer(s)  # refused
        s.close()
        assert "max-connections reached" in b.log()
        a.close()
        c.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert read_response(c)[0] == 200
        c.close()
    finally:
        assert b.stop() == 0
        b.cleanup()
