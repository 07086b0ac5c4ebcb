"""Raw-frame tests: every frame and every error path of the STOMP adapter,
byte by byte over a socket."""
import os
import socket
import subprocess
import threading

import pytest

from conftest import Raw, bin_dir


# ---- CONNECT and version negotiation ------------------------------------

@pytest.mark.parametrize("offer,want", [
    ("1.0,1.1,1.2", "1.2"), ("1.1", "1.1"), ("1.0", "1.0"),
    ("1.1,1.0", "1.1"), ("1.2,2.0", "1.2")])
def test_version_negotiation(broker, offer, want):
    r = Raw(broker.stomp_port)
    f = r.connect(offer)
    assert f.command == "CONNECTED"
    assert f.headers["version"] == want
    assert f.headers["server"].startswith("Sluice/")
    assert f.headers["session"]
    # in 1.0 too, as RabbitMQ and ActiveMQ send it (issue 19)
    assert f.headers["heart-beat"] == "0,0"
    r.close()


def test_no_accept_version_is_10(broker):
    r = Raw(broker.stomp_port)
    r.send("CONNECT", {"login": "guest", "passcode": "guest"})
    f = r.expect("CONNECTED")
    assert f.headers["version"] == "1.0"
    r.close()


def test_stomp_command_and_any_host(broker):
    r = Raw(broker.stomp_port)
    r.send("STOMP", {"accept-version": "1.2", "host": "not-a-vhost.invalid"})
    f = r.expect("CONNECTED")
    assert f.headers["version"] == "1.2"
    r.close()


def test_unsupported_version(broker):
    r = Raw(broker.stomp_port)
    r.send("CONNECT", {"accept-version": "2.0,3.1"})
    f = r.expect("ERROR")
    assert f.headers["version"] == "1.0,1.1,1.2"
    assert "version" in f.headers["message"]
    assert r.expect_closed() == []


def test_first_frame_must_be_connect(broker):
    r = Raw(broker.stomp_port)
    r.send("SEND", {"destination": "/topic/a"}, "x")
    f = r.expect("ERROR")
    assert "CONNECT" in f.body.decode()
    assert r.expect_closed() == []


def test_connect_twice(raw):
    r = raw()
    r.send("CONNECT", {"accept-version": "1.2"})
    f = r.expect("ERROR")
    assert f.headers["message"] == "already connected"
    r.expect_closed()


def test_connect_receipt(broker):
    r = Raw(broker.stomp_port)
    r.send("CONNECT", {"accept-version": "1.2", "receipt": "c1"})
    r.expect("CONNECTED")
    assert r.expect("RECEIPT").headers["receipt-id"] == "c1"
    r.close()


# ---- SEND / SUBSCRIBE / MESSAGE on topics -------------------------------

def sub_and_sync(r, dest, sid="s1", ack="auto", extra=None):
    h = {"destination": dest, "id": sid, "ack": ack, "receipt": "sub-" + sid}
    h.update(extra or {})
    r.send("SUBSCRIBE", h)
    assert r.expect("RECEIPT").headers["receipt-id"] == "sub-" + sid


def test_topic_roundtrip_headers(raw):
    c, p = raw(), raw()
    sub_and_sync(c, "/topic/t1")
    p.send("SEND", [("destination", "/topic/t1"), ("content-type",
                                                   "text/plain"),
                    ("custom", "v1"), ("receipt", "r1")], "hello")
    assert p.expect("RECEIPT").headers["receipt-id"] == "r1"
    m = c.expect("MESSAGE")
    assert m.body == b"hello"
    h = m.headers
    assert h["destination"] == "/topic/t1"
    assert h["subscription"] == "s1"
    assert h["message-id"]
    assert h["content-type"] == "text/plain"
    assert h["content-length"] == "5"
    assert h["custom"] == "v1"
    assert h["redelivered"] == "false"
    assert "receipt" not in h
    assert "ack" not in h  # auto mode: nothing to ack


def test_topic_sees_only_after_subscribe(raw):
    p, c = raw(), raw()
    p.send("SEND", {"destination": "/topic/t2", "receipt": "a"}, "before")
    p.expect("RECEIPT")
    sub_and_sync(c, "/topic/t2")
    p.send("SEND", {"destination": "/topic/t2"}, "after")
    assert c.expect("MESSAGE").body == b"after"


def test_topic_broadcast_to_all(raw):
    subs = [raw() for _ in range(3)]
    for i, s in enumerate(subs):
        sub_and_sync(s, "/topic/t3", sid="x%d" % i)
    p = raw()
    for i in range(5):
        p.send("SEND", {"destination": "/topic/t3"}, "m%d" % i)
    for s in subs:
        got = [s.expect("MESSAGE").body for _ in range(5)]
        assert got == [b"m%d" % i for i in range(5)]


def test_body_with_nuls(raw):
    c, p = raw(), raw()
    sub_and_sync(c, "/topic/bin")
    body = b"\0a\0\0b\0" + bytes(range(256))
    p.send("SEND", {"destination": "/topic/bin",
                    "content-length": str(len(body))}, body)
    m = c.expect("MESSAGE")
    assert m.body == body
    assert m.headers["content-length"] == str(len(body))


def test_escaped_header_roundtrip_12(raw):
    c, p = raw("1.2"), raw("1.2")
    sub_and_sync(c, "/topic/esc")
    weird = "a:b\nc\\d\re"
    p.send("SEND", [("destination", "/topic/esc"), ("we:ird", weird)], "x")
    m = c.expect("MESSAGE")
    assert m.headers["we:ird"] == weird


def test_escaped_header_11_to_10(raw):
    c, p = raw("1.0"), raw("1.1")
    sub_and_sync(c, "/topic/esc10")
    p.send("SEND", [("destination", "/topic/esc10"), ("k", "x:y\nz")], "x")
    m = c.expect("MESSAGE")
    # 1.0 has no escaping: the newline cannot travel, ':' in a value can
    assert m.headers["k"] == "x:y z"


def test_repeated_header_first_wins(raw):
    c, p = raw(), raw()
    sub_and_sync(c, "/topic/rep")
    p.send("SEND", [("destination", "/topic/rep"), ("foo", "1"),
                    ("foo", "2")], "x")
    m = c.expect("MESSAGE")
    assert [v for k, v in m.all_headers if k == "foo"] == ["1"]


def test_crlf_frames(raw):
    c, p = raw(), raw()
    sub_and_sync(c, "/topic/crlf")
    p.send_raw(b"SEND\r\ndestination:/topic/crlf\r\nreceipt:r\r\n\r\nbody"
               b"\0\r\n")
    p.expect("RECEIPT")
    assert c.expect("MESSAGE").body == b"body"


def test_10_subscribe_without_id(raw):
    c, p = raw("1.0"), raw("1.0")
    c.send("SUBSCRIBE", {"destination": "/topic/ten", "receipt": "s"})
    c.expect("RECEIPT")
    p.send("SEND", {"destination": "/topic/ten"}, "x")
    m = c.expect("MESSAGE")
    assert m.headers["subscription"] == "/topic/ten"


def test_unsubscribe_stops_delivery(raw):
    c, p = raw(), raw()
    sub_and_sync(c, "/topic/u1", sid="a")
    sub_and_sync(c, "/topic/u2", sid="b")
    c.send("UNSUBSCRIBE", {"id": "a", "receipt": "un"})
    c.expect("RECEIPT")
    p.send("SEND", {"destination": "/topic/u1"}, "lost")
    p.send("SEND", {"destination": "/topic/u2"}, "kept")
    m = c.expect("MESSAGE")
    assert m.body == b"kept" and m.headers["subscription"] == "b"


def test_disconnect_receipt_then_close(raw):
    r = raw()
    r.call("DISCONNECT", {"receipt": "bye"})
    assert r.expect_closed() == []


def by_sub(r, n):
    """The next n MESSAGEs of r, by their subscription header."""
    got = {}
    for _ in range(n):
        m = r.expect("MESSAGE")
        got[m.headers["subscription"]] = m
    return got


def test_wildcards(raw):
    c, p = raw(), raw()
    # topics must exist for the subscription to see them at once; new
    # ones are discovered on their first message
    sub_and_sync(c, "/topic/w.*.x", sid="rabbit-star")
    sub_and_sync(c, "/topic/w.#", sid="rabbit-hash")
    sub_and_sync(c, "/topic/w.>", sid="amq-gt")
    p.send("SEND", {"destination": "/topic/w.a.x", "receipt": "1"}, "1")
    p.expect("RECEIPT")
    got = by_sub(c, 3)
    assert set(got) == {"rabbit-star", "rabbit-hash", "amq-gt"}
    assert got["rabbit-star"].headers["destination"] == "/topic/w.a.x"
    p.send("SEND", {"destination": "/topic/w.b"}, "2")
    got = sorted(c.expect("MESSAGE").headers["subscription"]
                 for _ in range(2))
    assert got == ["amq-gt", "rabbit-hash"]


def test_exchange_destinations(raw):
    c, p = raw(), raw()
    sub_and_sync(c, "/exchange/amq.topic/rk.*", sid="ex")
    sub_and_sync(c, "/exchange/amq.fanout", sid="fan")
    p.send("SEND", {"destination": "/topic/rk.one"}, "a")
    m = c.expect("MESSAGE")
    assert m.headers["subscription"] == "ex"
    assert m.headers["destination"] == "/exchange/amq.topic/rk.one"
    p.send("SEND", {"destination": "/exchange/amq.fanout/ignored"}, "f")
    m = c.expect("MESSAGE")
    assert m.headers["subscription"] == "fan" and m.body == b"f"


# ---- transactions ------------------------------------------------------

def test_transaction_commit_and_abort(raw):
    c, p = raw(), raw()
    sub_and_sync(c, "/topic/tx")
    p.send("BEGIN", {"transaction": "t1", "receipt": "b"})
    p.expect("RECEIPT")
    p.send("SEND", {"destination": "/topic/tx", "transaction": "t1",
                    "receipt": "in-tx"}, "tx1")
    p.send("SEND", {"destination": "/topic/tx", "receipt": "plain"},
           "marker")
    # the transactional SEND's receipt says "received" and comes at once
    # (issue 19: Net::Stomp waits for it before COMMIT); its message
    # waits for COMMIT
    ids = [p.expect("RECEIPT").headers["receipt-id"] for _ in range(2)]
    assert ids == ["in-tx", "plain"]
    assert c.expect("MESSAGE").body == b"marker"
    p.call("COMMIT", {"transaction": "t1", "receipt": "commit"})
    assert c.expect("MESSAGE").body == b"tx1"
    # abort: never delivered
    p.send("BEGIN", {"transaction": "t2"})
    p.call("SEND", {"destination": "/topic/tx", "transaction": "t2",
                    "receipt": "dropped"}, "no")
    p.call("ABORT", {"transaction": "t2", "receipt": "ab"})
    p.send("SEND", {"destination": "/topic/tx"}, "marker2")
    assert c.expect("MESSAGE").body == b"marker2"


# ---- receipts and ERROR paths -----------------------------------------

def expect_error(r, needle_msg=None, needle_body=None, receipt=None):
    f = r.expect("ERROR")
    if needle_msg:
        assert needle_msg in f.headers["message"], f
    if needle_body:
        assert needle_body in f.body.decode(), f
    if receipt:
        assert f.headers.get("receipt-id") == receipt
    assert f.headers["content-length"] == str(len(f.body))
    assert f.body, f  # every ERROR explains itself in its body too
    assert r.expect_closed() == []
    return f


def test_error_frame_too_large_at_once(broker):
    """The declared length is refused before the body is sent."""
    r = Raw(broker.stomp_port)
    r.connect("1.2")
    r.send_raw(b"SEND\ndestination:/topic/big\ncontent-length:999999999\n\n")
    expect_error(r, "stomp-max-frame")


def test_error_too_many_headers(raw):
    r = raw()
    hdrs = "".join("h%d:v\n" % i for i in range(1001))
    r.send_raw(("SEND\ndestination:/topic/x\n" + hdrs).encode())
    expect_error(r, "stomp-max-headers")


def test_error_header_too_long(raw):
    r = raw()
    r.send_raw(b"SEND\nx:" + b"y" * 20000)  # no newline: refused anyway
    expect_error(r, "stomp-max-header-length")


@pytest.mark.parametrize("data,needle", [
    (b"FROB\n\n\0", "unknown command"),
    (b"SEND\nnocolon\n\n\0", "no ':'"),
    (b"SEND\ndestination:/topic/a\nx:a\\tb\n\n\0", "invalid escape"),
    (b"SEND\ndestination:/topic/a\ncontent-length:x\n\n\0",
     "invalid content-length"),
    (b"SEND\ndestination:/topic/a\ncontent-length:1\n\nab\0",
     "not terminated by a NUL"),
    (b"MESSAGE\ndestination:/topic/a\n\n\0", "server frame"),
])
def test_error_malformed(raw, data, needle):
    r = raw()
    r.send_raw(data)
    f = r.expect("ERROR")
    assert needle in f.headers["message"] + f.body.decode(), f
    assert r.expect_closed() == []


@pytest.mark.parametrize("headers,needle", [
    ({}, "missing destination"),
    ({"destination": "/nowhere/x"}, "unknown destination"),
    ({"destination": "/exchange/other/x"}, "unsupported exchange"),
    ({"destination": "/queue/bad name"}, "invalid destination"),
    ({"destination": "/topic/a.*"}, "wildcard"),
    ({"destination": "/topic/a", "transaction": "nope"},
     "unknown transaction"),
])
def test_error_send(raw, headers, needle):
    r = raw()
    h = dict(headers)
    h["receipt"] = "r9"
    r.send("SEND", h, "x")
    f = r.expect("ERROR")
    assert needle in f.headers["message"] + " " + f.body.decode(), f
    assert f.headers["receipt-id"] == "r9"
    assert r.expect_closed() == []


@pytest.mark.parametrize("headers,needle", [
    ({"destination": "/topic/a"}, "requires an id"),
    ({"destination": "/queue/a", "id": "1", "selector": "x = "},
     "invalid selector"),
    ({"destination": "/topic/a", "id": "1", "ack": "sometimes"},
     "ack must be"),
    ({"destination": "/topic/a", "id": "1", "prefetch-count": "-3"},
     "prefetch"),
])
def test_error_subscribe(raw, headers, needle):
    r = raw("1.2")
    r.send("SUBSCRIBE", headers)
    f = r.expect("ERROR")
    assert needle in f.headers["message"] + " " + f.body.decode(), f
    assert r.expect_closed() == []


def test_error_duplicate_subscription(raw):
    r = raw()
    sub_and_sync(r, "/topic/d1", sid="same")
    r.send("SUBSCRIBE", {"destination": "/topic/d2", "id": "same"})
    f = r.expect("ERROR")
    assert "already in use" in f.body.decode()
    assert r.expect_closed() == []


def test_error_unknown_ack_and_unsubscribe(raw):
    r = raw()
    r.send("ACK", {"id": "nope/0/1"})
    expect_error(r, "unknown message")
    r2 = raw()
    r2.send("UNSUBSCRIBE", {"id": "ghost"})
    expect_error(r2, "unknown subscription")


def test_error_tx_paths(raw):
    r = raw()
    r.send("COMMIT", {"transaction": "never"})
    expect_error(r, "Bad transaction", "unknown transaction")
    r = raw()
    r.send("BEGIN", {"transaction": "t"})
    r.send("BEGIN", {"transaction": "t"})
    expect_error(r, "Bad transaction", "duplicate transaction")
    r = raw()
    r.send("BEGIN", {})
    expect_error(r, "Missing header", "missing transaction")


def test_bad_heartbeat_header(broker):
    r = Raw(broker.stomp_port)
    r.send("CONNECT", {"accept-version": "1.2", "heart-beat": "x,1"})
    expect_error(r, "Invalid header", "heart-beat")


# ---- heart-beats -----------------------------------------------------------

def test_server_sends_heartbeats(broker):
    r = Raw(broker.stomp_port)
    f = r.connect("1.2", heart_beat="0,100")
    assert f.headers["heart-beat"] == "100,0"
    # wait for three EOLs (the socket timeout bounds the wait)
    r.sock.settimeout(10)
    while r.eols < 3:
        r.buf = b""
        d = r.sock.recv(10)
        assert d and set(d) <= {10}, d
        r.eols += d.count(b"\n")
    r.close()


def test_silent_client_closed(broker):
    r = Raw(broker.stomp_port)
    f = r.connect("1.2", heart_beat="150,0")
    assert f.headers["heart-beat"] == "0,150"
    r.sock.settimeout(20)
    assert r.expect_closed() == []
    assert "no heart-beat" in broker.log()


def test_heartbeating_client_kept(broker):
    r = Raw(broker.stomp_port)
    f = r.connect("1.2", heart_beat="500,0")
    assert f.headers["heart-beat"] == "0,500"
    stop = threading.Event()

    def beat():
        while not stop.wait(0.05):
            try:
                r.send_raw(b"\n")
            except OSError:
                return

    t = threading.Thread(target=beat)
    t.start()
    try:
        # 2 s = 4 intervals of 500 ms: a broker that ignored the beats
        # would have closed us after 750 ms
        stop.wait(2.0)
        r.call("SEND", {"destination": "/topic/hb", "receipt": "alive"}, "x")
    finally:
        stop.set()
        t.join()
        r.close()


def test_heartbeat_min_applies(broker):
    r = Raw(broker.stomp_port)
    f = r.connect("1.2", heart_beat="5,7")
    # both below stomp-heartbeat-min-ms (100): raised to it
    assert f.headers["heart-beat"] == "100,100"
    r.close()


def test_shutdown_with_live_sessions(broker):
    """SIGTERM with open sessions holding unacked messages, a temp queue,
    a durable subscription, an open transaction and a topic reader: a clean
    exit (and, under ASan, no report)."""
    p = Raw(broker.stomp_port)
    p.connect("1.2")
    for i in range(5):
        p.send("SEND", {"destination": "/queue/shut", "persistent": "true",
                        "receipt": "p%d" % i}, "m%d" % i)
    for i in range(5):
        p.expect("RECEIPT")
    c = Raw(broker.stomp_port)
    c.connect("1.2", headers={"client-id": "shut"})
    c.send("SUBSCRIBE", {"destination": "/queue/shut", "id": "q",
                         "ack": "client-individual", "receipt": "q"})
    c.send("SUBSCRIBE", {"destination": "/topic/shut-t", "id": "t",
                         "receipt": "t"})
    c.send("SUBSCRIBE", {"destination": "/topic/shut-d", "id": "d",
                         "activemq.subscriptionName": "dur",
                         "receipt": "d"})
    c.send("SEND", {"destination": "/queue/shut-x",
                    "reply-to": "/temp-queue/r", "receipt": "tmp"}, "x")
    c.send("BEGIN", {"transaction": "open"})
    c.send("SEND", {"destination": "/topic/shut-t", "transaction": "open"},
           "pending")
    receipts, msgs = set(), 0
    while receipts != {"q", "t", "d", "tmp"} or msgs < 5:
        f = c.read_frame()
        if f.command == "RECEIPT":
            receipts.add(f.headers["receipt-id"])
        else:
            assert f.command == "MESSAGE", f
            msgs += 1
    assert msgs == 5
    broker.stop()
    assert broker.returncode == 0, broker.log()
    p.close()
    c.close()


def test_temp_queue_is_private(raw):
    """Another connection may send to a temp queue (reply-to) but not read
    it: a wildcard subscription skips it, subscribing to it is refused."""
    req, srv, eve, p = raw(), raw(), raw(), raw()
    sub_and_sync(srv, "/queue/rpc", sid="srv")
    req.send("SEND", {"destination": "/queue/rpc",
                      "reply-to": "/temp-queue/r", "receipt": "q"}, "ask")
    req.expect("RECEIPT")
    m = srv.expect("MESSAGE")
    reply_to = m.headers["reply-to"]
    assert reply_to.startswith("/queue/stomp-tmp-"), m
    sub_and_sync(eve, "/topic/#", sid="all")
    srv.send("SEND", {"destination": reply_to, "receipt": "a"}, "answer")
    srv.expect("RECEIPT")
    assert req.expect("MESSAGE").body == b"answer"
    p.send("SEND", {"destination": "/topic/marker", "receipt": "m"}, "mark")
    p.expect("RECEIPT")
    assert eve.expect("MESSAGE").body == b"mark"  # not "answer"
    eve.send("SUBSCRIBE", {"destination": reply_to, "id": "spy",
                           "receipt": "spy"})
    f = expect_error(eve, "access refused", "another connection")
    assert f.headers.get("receipt-id") == "spy"


def test_temp_queue_removed_after_restart(broker):
    """A temp queue whose connection was open at shutdown is deleted at
    the next start (its session is gone)."""
    r = Raw(broker.stomp_port)
    f = r.connect("1.2")
    sub_and_sync(r, "/temp-queue/keep", sid="tq")
    name = "stomp-tmp-%s-keep" % f.headers["session"]
    broker.stop()
    r.close()
    broker.start()
    assert ("deleted temp queue %s of a previous run" % name) in broker.log()
    r = Raw(broker.stomp_port)
    f = r.connect("1.2")
    r.close()


def _rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _asan(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


@pytest.mark.parametrize("dest", ["/topic/bp", "/queue/bp"])
def test_stalled_consumer_bounded_memory(broker, dest):
    """A consumer that stops reading: the broker stops delivering to it
    (output-high-water) instead of buffering the backlog in memory; the
    producer is not blocked; once the consumer reads, everything arrives
    in order."""
    c = Raw(broker.stomp_port)
    c.connect("1.2")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sub_and_sync(c, dest, sid="slow")
    p = Raw(broker.stomp_port)
    p.connect("1.2")
    body = b"z" * (1 << 20)
    n = 80
    for i in range(n):
        p.send("SEND", {"destination": dest, "seq": str(i),
                        "content-length": str(len(body))}, body)
    p.send("SEND", {"destination": "/topic/bp-done", "receipt": "done"}, "")
    p.expect("RECEIPT")
    pid = broker.proc.pid
    if not _asan(pid):
        rss = _rss_mib(pid)
        print("sluiced RSS %.1f MiB" % rss)
        assert rss < 40, "sluiced RSS %.0f MiB" % rss
    for i in range(n):
        m = c.expect("MESSAGE")
        assert m.headers["seq"] == str(i)
        assert len(m.body) == len(body)
    p.close()
    c.close()


def test_error_to_stalled_client_releases_its_messages(broker):
    """A client that stops reading and then sends a bad frame: its ERROR
    cannot be written, so after a bounded linger the broker drops the
    connection anyway and its unacked messages go to another consumer."""
    a = Raw(broker.stomp_port)
    a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    a.connect("1.2")
    sub_and_sync(a, "/queue/linger", sid="a", ack="client-individual")
    p = Raw(broker.stomp_port)
    p.connect("1.2")
    body = b"L" * (1 << 20)
    n = 12
    for i in range(n):
        p.send("SEND", {"destination": "/queue/linger", "seq": str(i),
                        "content-length": str(len(body))}, body)
    p.send("SEND", {"destination": "/topic/x", "receipt": "sent"}, "")
    p.expect("RECEIPT")
    a.send_raw(b"FROB\n\n\0")  # a protocol error, never read by a
    b = Raw(broker.stomp_port)
    b.connect("1.2")
    b.sock.settimeout(30)
    sub_and_sync(b, "/queue/linger", sid="b", ack="auto")
    seqs = sorted(int(b.expect("MESSAGE").headers["seq"]) for _ in range(n))
    assert seqs == list(range(n))
    assert "not drained" in broker.log()
    a.close()
    b.close()
    p.close()


@pytest.mark.parametrize("headers,connect,needle", [
    ({"destination": "/topic/dur", "id": "1",
      "activemq.subscriptionName": "s"}, {}, "client-id"),
    ({"destination": "/topic/dur.*", "id": "1", "durable": "true",
      "auto-delete": "false"}, {}, "wildcard"),
    ({"destination": "/temp-queue/", "id": "1"}, {}, "temp-queue"),
])
def test_error_durable_and_temp(raw, headers, connect, needle):
    r = raw("1.2", headers=connect)
    r.send("SUBSCRIBE", headers)
    f = r.expect("ERROR")
    assert needle in f.headers["message"] + " " + f.body.decode(), f
    assert r.expect_closed() == []


def test_nack_10_11_12_wire(raw):
    """NACK by id (1.2) and by message-id + subscription (1.1); the
    message comes back redelivered."""
    p = raw()
    for v in ("1.1", "1.2"):
        c = raw(v)
        dest = "/queue/nack-" + v
        p.send("SEND", {"destination": dest, "receipt": "s" + v}, "n")
        p.expect("RECEIPT")
        sub_and_sync(c, dest, sid="s", ack="client-individual")
        m = c.expect("MESSAGE")
        assert m.headers["redelivered"] == "false"
        if v == "1.2":
            c.send("NACK", {"id": m.headers["ack"], "receipt": "n"})
        else:
            c.send("NACK", {"message-id": m.headers["message-id"],
                            "subscription": "s", "receipt": "n"})
        got = [c.read_frame() for _ in range(2)]
        cmds = sorted(f.command for f in got)
        assert cmds == ["MESSAGE", "RECEIPT"], got
        m2 = [f for f in got if f.command == "MESSAGE"][0]
        assert m2.headers["redelivered"] == "true"
        assert m2.headers["message-id"] == m.headers["message-id"]


def test_ack_id_names_its_subscription(raw):
    """One connection, two client-individual subscriptions that both get
    the same record: the 1.2 ack id of one copy settles that copy only, so
    the other copy's ack id is still valid afterwards."""
    c, p = raw(), raw()
    sub_and_sync(c, "/topic/ackx", sid="a", ack="client-individual")
    sub_and_sync(c, "/topic/ackx", sid="b", ack="client-individual")
    p.send("SEND", {"destination": "/topic/ackx", "receipt": "s"}, "one")
    p.expect("RECEIPT")
    got = by_sub(c, 2)
    assert sorted(got) == ["a", "b"]
    assert got["a"].headers["message-id"] == got["b"].headers["message-id"]
    assert got["a"].headers["ack"] != got["b"].headers["ack"]
    c.call("ACK", {"id": got["b"].headers["ack"], "receipt": "ab"})
    c.call("ACK", {"id": got["a"].headers["ack"], "receipt": "aa"})
    # both settled now: the same ids again are unknown
    c.send("ACK", {"id": got["a"].headers["ack"], "receipt": "again"})
    f = c.expect("ERROR")
    assert "no unacknowledged message" in f.body.decode(), f


def test_nack_waits_for_the_group_backoff(raw, broker):
    """NACK releases with the queue group's backoff: with a 10-minute
    first delay the NACKed message is not redelivered before a message
    sent after the NACK (with no backoff it would come back at once)."""
    c, p = raw(), raw()
    sub_and_sync(c, "/queue/nb", sid="s", ack="client-individual")
    subprocess.run([os.path.join(bin_dir(), "sluice"), "-b",
                    "127.0.0.1:%d" % broker.binary_port, "group", "config",
                    "nb", "--topic", "nb", "--alter",
                    "backoff_initial_ms=600000"],
                   check=True, stdout=subprocess.DEVNULL)
    p.send("SEND", {"destination": "/queue/nb", "receipt": "1"}, "first")
    p.expect("RECEIPT")
    m = c.expect("MESSAGE")
    assert m.body == b"first"
    c.call("NACK", {"id": m.headers["ack"], "receipt": "n"})
    p.send("SEND", {"destination": "/queue/nb", "receipt": "2"}, "second")
    p.expect("RECEIPT")
    m = c.expect("MESSAGE")
    assert m.body == b"second", m


def test_rabbitmq_x_message_ttl_expires_queued_messages(raw):
    """x-message-ttl on the SUBSCRIBE that creates a queue: a message
    older than that is not delivered; a fresh one is."""
    c, p = raw(), raw()
    sub_and_sync(c, "/queue/xttl", sid="s", extra={"x-message-ttl": "300"})
    c.send("UNSUBSCRIBE", {"id": "s", "receipt": "u"})
    c.expect("RECEIPT")
    p.send("SEND", {"destination": "/queue/xttl", "receipt": "1"}, "old")
    p.expect("RECEIPT")
    # the broker's own clock says when the TTL has passed: a message sent
    # now with a 600 ms delay arrives after it
    sub_and_sync(c, "/queue/xttl-clock", sid="clock")
    p.send("SEND", {"destination": "/queue/xttl-clock",
                    "AMQ_SCHEDULED_DELAY": "600"}, "tick")
    assert c.expect("MESSAGE").body == b"tick"
    p.send("SEND", {"destination": "/queue/xttl", "receipt": "2"}, "new")
    p.expect("RECEIPT")
    sub_and_sync(c, "/queue/xttl", sid="s2")
    m = c.expect("MESSAGE")
    assert m.body == b"new", m


def test_unsubscribe_rabbitmq_durable_removes_it(raw):
    c = raw()
    h = {"destination": "/topic/rdur", "id": "keep", "durable": "true",
         "auto-delete": "false", "ack": "client-individual"}
    c.send("SUBSCRIBE", dict(h, receipt="s1"))
    c.expect("RECEIPT")
    c.send("UNSUBSCRIBE", {"id": "keep", "durable": "true", "receipt": "u"})
    c.expect("RECEIPT")
    p = raw()
    p.send("SEND", {"destination": "/topic/rdur", "receipt": "x"}, "gone")
    p.expect("RECEIPT")
    c.send("SUBSCRIBE", dict(h, receipt="s2"))
    c.expect("RECEIPT")
    p.send("SEND", {"destination": "/topic/rdur"}, "new")
    assert c.expect("MESSAGE").body == b"new"
