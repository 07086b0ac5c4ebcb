"""RabbitMQ and ActiveMQ behaviours a STOMP application relies on when it
moves to Sluice (issue 19), each over raw frames: what the reference
brokers do, and so what Sluice must do. docs/stomp.md's compatibility
table lists them."""
import select

import pytest

from conftest import Raw


def sub_and_sync(r, dest, sid="s1", ack="auto", extra=None):
    h = {"destination": dest, "id": sid, "ack": ack, "receipt": "sub-" + sid}
    h.update(extra or {})
    r.send("SUBSCRIBE", h)
    assert r.expect("RECEIPT").headers["receipt-id"] == "sub-" + sid


def send_sync(r, dest, body, **h):
    h.update({"destination": dest, "receipt": "snd"})
    r.send("SEND", h, body)
    assert r.expect("RECEIPT").headers["receipt-id"] == "snd"


def error_of(r):
    f = r.expect("ERROR")
    assert f.headers["content-length"] == str(len(f.body))
    assert r.expect_closed() == []
    return f


# ---- transactions --------------------------------------------------------

def test_transactional_send_receipt_before_commit(raw):
    """Net::Stomp's send_transactional: BEGIN, SEND with transaction and
    receipt, wait for that receipt, then COMMIT. ActiveMQ answers the
    receipt at once; holding it until COMMIT hangs the client."""
    c, p = raw(), raw()
    sub_and_sync(c, "/queue/txr")
    p.send("BEGIN", {"transaction": "t"})
    p.call("SEND", {"destination": "/queue/txr", "transaction": "t",
                    "receipt": "in-tx"}, "m")
    p.call("COMMIT", {"transaction": "t", "receipt": "commit"})
    assert c.expect("MESSAGE").body == b"m"


def test_transactional_ack_receipt_before_commit(raw):
    c, p = raw(), raw()
    send_sync(p, "/queue/txa", "a")
    sub_and_sync(c, "/queue/txa", ack="client-individual")
    m = c.expect("MESSAGE")
    c.send("BEGIN", {"transaction": "t"})
    c.call("ACK", {"id": m.headers["ack"], "transaction": "t",
                   "receipt": "ack"})
    c.call("COMMIT", {"transaction": "t", "receipt": "commit"})


# ---- ACK / NACK ----------------------------------------------------------

@pytest.mark.parametrize("value", ["False", "FALSE", "false"])
def test_nack_requeue_false_any_case(raw, value):
    """stomp.py sends requeue:False; RabbitMQ reads it as false: the
    message is dead-lettered, not requeued."""
    p, c = raw(), raw()
    send_sync(p, "/queue/rq", "poison")
    send_sync(p, "/queue/rq", "next")
    sub_and_sync(c, "/queue/rq", ack="client-individual",
                 extra={"prefetch-count": "1"})
    m = c.expect("MESSAGE")
    assert m.body == b"poison"
    c.send("NACK", {"id": m.headers["ack"], "requeue": value,
                    "receipt": "n"})
    got = [c.read_frame() for _ in range(2)]
    assert sorted(f.command for f in got) == ["MESSAGE", "RECEIPT"], got
    m2 = [f for f in got if f.command == "MESSAGE"][0]
    assert m2.body == b"next"  # not the poison message again
    d = raw()
    sub_and_sync(d, "/queue/rq.DLQ")
    assert d.expect("MESSAGE").body == b"poison"


def test_nack_requeue_true_any_case(raw):
    p, c = raw(), raw()
    send_sync(p, "/queue/rqt", "again")
    sub_and_sync(c, "/queue/rqt", ack="client-individual")
    m = c.expect("MESSAGE")
    c.send("NACK", {"id": m.headers["ack"], "requeue": "True"})
    m2 = c.expect("MESSAGE")
    assert m2.body == b"again" and m2.headers["redelivered"] == "true"


def test_12_ack_without_id_is_an_error(raw):
    """STOMP 1.2 names the message by id; RabbitMQ and ActiveMQ answer an
    ACK with only message-id by ERROR 'Missing header'."""
    p, c = raw(), raw()
    send_sync(p, "/queue/noid", "x")
    sub_and_sync(c, "/queue/noid", ack="client-individual")
    m = c.expect("MESSAGE")
    c.send("ACK", {"message-id": m.headers["message-id"],
                   "subscription": "s1"})
    f = error_of(c)
    assert f.headers["message"] == "Missing header"
    assert "id" in f.body.decode()


# ---- CONNECT --------------------------------------------------------------

def test_10_connected_has_heart_beat(broker):
    r = Raw(broker.stomp_port)
    r.send("CONNECT", {"login": "guest", "passcode": "guest"})
    f = r.expect("CONNECTED")
    assert f.headers["version"] == "1.0"
    assert f.headers["heart-beat"] == "0,0"
    r.close()


# ---- competing consumers --------------------------------------------------

def next_message(conns):
    """(name, MESSAGE) from whichever of conns ({name: Raw}) has one."""
    while True:
        for name, c in conns.items():
            if b"\0" in c.buf:
                return name, c.expect("MESSAGE")
        r, _, _ = select.select([c.sock for c in conns.values()], [], [], 10)
        assert r, "no MESSAGE on any connection"
        for c in conns.values():
            if c.sock in r:
                c._fill()


def test_competing_consumers_share_one_at_a_time(raw):
    """Two subscribers on one queue, messages sent one at a time: RabbitMQ
    gives one to each in turn; Sluice gave every one to the first."""
    a, b, p = raw(), raw(), raw()
    sub_and_sync(a, "/queue/rr1", sid="a")
    sub_and_sync(b, "/queue/rr1", sid="b")
    got = {"a": [], "b": []}
    for i in range(4):
        send_sync(p, "/queue/rr1", "m%d" % i)
        name, m = next_message({"a": a, "b": b})
        assert m.body == b"m%d" % i
        got[name].append(m.body)
    assert got == {"a": [b"m0", b"m2"], "b": [b"m1", b"m3"]} or \
        got == {"a": [b"m1", b"m3"], "b": [b"m0", b"m2"]}, got


def test_competing_consumers_share_a_burst(raw):
    """Two messages in one write (one appended batch): one to each."""
    a, b, p = raw(), raw(), raw()
    sub_and_sync(a, "/queue/rr2", sid="a")
    sub_and_sync(b, "/queue/rr2", sid="b")
    frames = b"".join(
        b"SEND\ndestination:/queue/rr2\n\nm%d\0" % i for i in range(2))
    p.send_raw(frames + b"SEND\ndestination:/queue/rr2-sync\nreceipt:r\n\n\0")
    assert p.expect("RECEIPT").headers["receipt-id"] == "r"
    bodies = sorted([a.expect("MESSAGE").body, b.expect("MESSAGE").body])
    assert bodies == [b"m0", b"m1"]


def test_competing_consumers_four_workers(raw):
    """Eight messages sent one at a time to four workers: two each."""
    ws = [raw() for _ in range(4)]
    for i, w in enumerate(ws):
        sub_and_sync(w, "/queue/rr4", sid="w%d" % i)
    p = raw()
    for i in range(8):
        send_sync(p, "/queue/rr4", "m%d" % i)
    counts = []
    for w in ws:
        bodies = [w.expect("MESSAGE").body for _ in range(2)]
        counts.append(len(bodies))
    assert counts == [2, 2, 2, 2]


# ---- destinations ----------------------------------------------------------

def test_bare_destination_is_a_queue(raw):
    """ActiveMQ and RabbitMQ 3.10.8 take a bare NAME as a queue."""
    p, c = raw(), raw()
    send_sync(p, "bare1", "x")
    sub_and_sync(c, "/queue/bare1")
    m = c.expect("MESSAGE")
    assert m.body == b"x"
    d = raw()
    send_sync(p, "/queue/bare2", "y")
    sub_and_sync(d, "bare2")
    m = d.expect("MESSAGE")
    assert m.body == b"y" and m.headers["destination"] == "bare2"


def test_exchange_direct_and_default(raw):
    """/exchange/amq.direct/KEY: every subscriber gets what is sent with
    its key; /exchange/amq.default/KEY (the default exchange) is the queue
    KEY."""
    a, b, p = raw(), raw(), raw()
    sub_and_sync(a, "/exchange/amq.direct/dk", sid="a")
    sub_and_sync(b, "/exchange/amq.direct/dk", sid="b")
    send_sync(p, "/exchange/amq.direct/dk", "both")
    for c in (a, b):
        m = c.expect("MESSAGE")
        assert m.body == b"both"
        assert m.headers["destination"] == "/exchange/amq.direct/dk"
    q = raw()
    send_sync(p, "/exchange/amq.default/dq", "to-queue")
    sub_and_sync(q, "/queue/dq")
    assert q.expect("MESSAGE").body == b"to-queue"


def test_virtual_topic_consumer_groups(raw):
    """ActiveMQ virtual topics: each Consumer.G queue gets every message
    sent to /topic/VirtualTopic.X; the consumers of one G compete."""
    a1, a2, b1, p = raw(), raw(), raw(), raw()
    sub_and_sync(a1, "/queue/Consumer.A.VirtualTopic.Orders", sid="a1")
    sub_and_sync(a2, "/queue/Consumer.A.VirtualTopic.Orders", sid="a2")
    sub_and_sync(b1, "/queue/Consumer.B.VirtualTopic.Orders", sid="b1")
    for i in range(4):
        send_sync(p, "/topic/VirtualTopic.Orders", "o%d" % i)
    got_b = [b1.expect("MESSAGE").body for _ in range(4)]
    assert got_b == [b"o0", b"o1", b"o2", b"o3"]
    got_a = []
    for _ in range(4):
        _, m = next_message({"a1": a1, "a2": a2})
        got_a.append(m.body)
    assert sorted(got_a) == [b"o0", b"o1", b"o2", b"o3"]


# ---- error wording (RabbitMQ's) -------------------------------------------

@pytest.mark.parametrize("frame,headers,message", [
    ("SEND", {}, "Missing destination"),
    ("SEND", {"destination": "/nowhere/x"}, "Unknown destination"),
    ("SEND", {"destination": "/queue/bad name"}, "Invalid destination"),
    ("SEND", {"destination": "/exchange/nosuch/k"}, "not_found"),
    ("SEND", {"destination": "/queue/a", "transaction": "t9"},
     "Bad transaction"),
    ("COMMIT", {"transaction": "t9"}, "Bad transaction"),
    ("SUBSCRIBE", {"destination": "/queue/a"}, "Missing header"),
    ("SUBSCRIBE", {"destination": "/queue/a", "id": "1", "ack": "x"},
     "Invalid header"),
    ("SUBSCRIBE", {"destination": "/queue/a", "id": "1",
                   "prefetch-count": "x"}, "Invalid header"),
])
def test_error_messages_in_rabbitmq_words(raw, frame, headers, message):
    r = raw()
    r.send(frame, headers, "")
    f = error_of(r)
    assert f.headers["message"] == message, f
    assert f.body and f.body.decode() != message  # the detail is there


def test_duplicated_subscription_identifier(raw):
    r = raw()
    sub_and_sync(r, "/queue/dup1", sid="same")
    r.send("SUBSCRIBE", {"destination": "/queue/dup2", "id": "same"})
    f = error_of(r)
    assert f.headers["message"] == "Duplicated subscription identifier"
    assert "already in use" in f.body.decode()


# ---- durable topic subscriptions (RabbitMQ) --------------------------------

def test_durable_topic_subscription_needs_an_id(raw):
    """RabbitMQ: the id names a durable subscription's queue; without one
    (STOMP 1.0 allows SUBSCRIBE without id) it is an ERROR."""
    r = raw("1.0")
    r.send("SUBSCRIBE", {"destination": "/topic/dur-noid", "durable": "true",
                         "auto-delete": "false"})
    f = error_of(r)
    assert f.headers["message"] == "Missing header"
    assert "id" in f.body.decode()


@pytest.mark.parametrize("header", ["durable", "persistent"])
def test_legacy_persistent_makes_a_durable_subscription(raw, header):
    """persistent:true on SUBSCRIBE is RabbitMQ's legacy durable:true: what
    is sent while the subscriber is away waits for it."""
    dest = "/topic/dur-" + header
    extra = {header: "true", "auto-delete": "false"}
    c = raw()
    sub_and_sync(c, dest, sid="keep", extra=extra)
    c.send("DISCONNECT", {"receipt": "bye"})
    c.expect("RECEIPT")
    p = raw()
    send_sync(p, dest, "while-away")
    c2 = raw()
    sub_and_sync(c2, dest, sid="keep", extra=extra)
    assert c2.expect("MESSAGE").body == b"while-away"


# ---- JMS selectors (ActiveMQ) ---------------------------------------------

def test_selector_on_topic_subscription(raw):
    """ActiveMQ: a topic subscriber with a selector gets only the messages
    whose headers make it TRUE (numbers in headers compare as numbers)."""
    c, p = raw(), raw()
    sub_and_sync(c, "/topic/sel1", sid="red", extra={
        "selector": "color = 'red' AND size > 5"})
    sends = [("red", "10", "a"), ("blue", "10", "b"), ("red", "3", "c"),
             ("red", "6", "d")]
    for color, size, body in sends:
        p.send("SEND", {"destination": "/topic/sel1", "color": color,
                        "size": size}, body)
    p.send("SEND", {"destination": "/topic/sel1", "size": "9"}, "no-color")
    send_sync(p, "/topic/sel1", "end", color="red", size="100")
    got = [c.expect("MESSAGE").body for _ in range(3)]
    assert got == [b"a", b"d", b"end"]


def test_selector_three_valued_logic_and_like(raw):
    c, p = raw(), raw()
    sub_and_sync(c, "/topic/sel2.*", sid="w", extra={
        "selector": "NOT (region LIKE 'eu-%') OR JMSPriority > 7"})
    p.send("SEND", {"destination": "/topic/sel2.x", "region": "eu-west"},
           "eu")  # FALSE OR FALSE (priority 4 by default)
    p.send("SEND", {"destination": "/topic/sel2.x"}, "none")  # unknown
    p.send("SEND", {"destination": "/topic/sel2.y", "region": "us-east"},
           "us")
    send_sync(p, "/topic/sel2.x", "urgent-eu", region="eu-1", priority="9")
    got = [c.expect("MESSAGE").body for _ in range(2)]
    assert got == [b"us", b"urgent-eu"]


@pytest.mark.parametrize("dest,selector,message", [
    ("/topic/sel3", "color = ", "Invalid selector"),
    ("/topic/sel3", "(a = 1", "Invalid selector"),
    ("/queue/sel3", "color = ", "Invalid selector"),
])
def test_selector_refused(raw, dest, selector, message):
    r = raw()
    r.send("SUBSCRIBE", {"destination": dest, "id": "1",
                         "selector": selector})
    f = error_of(r)
    assert f.headers["message"] == message, f


def test_selector_on_a_queue_leaves_the_rest_for_others(raw):
    """ActiveMQ: a queue consumer with a selector gets the messages it
    matches; the others stay in the queue, in order, for consumers without
    one (or with another selector), and the queue does not stall behind
    them. Before: ERROR Invalid header."""
    red, p = raw(), raw()
    sub_and_sync(red, "/queue/selq", sid="red", ack="client-individual",
                 extra={"selector": "color = 'red'"})
    for i, color in enumerate(["blue", "red", "blue", "green", "red"]):
        send_sync(p, "/queue/selq", "%s%d" % (color, i), color=color)
    got = []
    for _ in range(2):
        m = red.expect("MESSAGE")
        got.append(m.body)
        red.send("ACK", {"id": m.headers["ack"]})
    assert got == [b"red1", b"red4"]
    # the rest waited, in order, for a consumer that takes them
    blue = raw()
    sub_and_sync(blue, "/queue/selq", sid="blue", ack="client-individual",
                 extra={"selector": "color <> 'red'"})
    rest = [blue.expect("MESSAGE") for _ in range(3)]
    assert [m.body for m in rest] == [b"blue0", b"blue2", b"green3"]
    for m in rest:
        blue.send("ACK", {"id": m.headers["ack"]})
    # new messages keep flowing to the matching consumer
    send_sync(p, "/queue/selq", "red5", color="red")
    send_sync(p, "/queue/selq", "blue6", color="blue")
    assert red.expect("MESSAGE").body == b"red5"
    assert blue.expect("MESSAGE").body == b"blue6"


def test_selector_on_a_durable_subscription(raw):
    """A durable topic subscription with a selector keeps, while away, only
    what its selector matches (ActiveMQ)."""
    h = {"client-id": "selcid"}
    a = raw(headers=h)
    sub_and_sync(a, "/topic/seld", sid="d1", ack="client-individual",
                 extra={"activemq.subscriptionName": "s",
                        "selector": "kind = 'keep'"})
    a.call("DISCONNECT", {"receipt": "bye"})
    p = raw()
    for i, kind in enumerate(["drop", "keep", "drop", "keep"]):
        send_sync(p, "/topic/seld", "%s%d" % (kind, i), kind=kind)
    b = raw(headers=h)
    sub_and_sync(b, "/topic/seld", sid="d1", ack="client-individual",
                 extra={"activemq.subscriptionName": "s",
                        "selector": "kind = 'keep'"})
    got = []
    for _ in range(2):
        m = b.expect("MESSAGE")
        got.append(m.body)
        b.send("ACK", {"id": m.headers["ack"]})
    assert got == [b"keep1", b"keep3"]
    send_sync(p, "/topic/seld", "drop4", kind="drop")
    send_sync(p, "/topic/seld", "keep5", kind="keep")
    assert b.expect("MESSAGE").body == b"keep5"


# ---- third-party clients --------------------------------------------------

NET_STOMP_TX = r"""
use strict;
use Net::Stomp;
my $s = Net::Stomp->new({hostname => '127.0.0.1', port => $ARGV[0]});
$s->connect({login => 'guest', passcode => 'guest'});
# BEGIN, SEND with transaction and receipt, wait for that RECEIPT, COMMIT
my $ok = $s->send_transactional(
    {destination => '/queue/net-stomp-tx', body => 'from perl'});
print $ok ? "committed\n" : "aborted\n";
$s->send_with_receipt({destination => '/queue/net-stomp-sync', body => 's'})
    or die "no receipt";
$s->disconnect;
"""


def test_net_stomp_send_transactional(broker, raw):
    """Net::Stomp's send_transactional waits for the transactional SEND's
    receipt before COMMIT: it hung forever when the receipt was held
    until COMMIT."""
    import subprocess
    out = subprocess.run(["perl", "-e", NET_STOMP_TX, str(broker.stomp_port)],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out
    assert out.stdout == b"committed\n", out
    c = raw()
    sub_and_sync(c, "/queue/net-stomp-tx")
    assert c.expect("MESSAGE").body == b"from perl"


def test_hash_wildcard_matches_zero_words(raw):
    """RabbitMQ: '#' is zero or more words, so /topic/hz.# gets what is
    sent to /topic/hz itself; '*' needs exactly one word."""
    c, p = raw(), raw()
    sub_and_sync(c, "/topic/hz.#", sid="hash")
    sub_and_sync(c, "/topic/hz.*", sid="star")
    send_sync(p, "/topic/hz", "bare")
    m = c.expect("MESSAGE")
    assert (m.headers["subscription"], m.body) == ("hash", b"bare")
    send_sync(p, "/topic/hz.x", "one")
    got = sorted((f.headers["subscription"], f.body)
                 for f in (c.expect("MESSAGE"), c.expect("MESSAGE")))
    assert got == [("hash", b"one"), ("star", b"one")]
