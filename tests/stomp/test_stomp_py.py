"""Debian's python3-stomp (stomp.py 8) as a real client against sluiced:
queues, topics, durable subscriptions, every ack mode, NACK to the DLQ,
transactions, receipts and heart-beats."""
import queue
import threading
import time
import uuid

import pytest
import stomp

WAIT = 15  # seconds an expected event may take at most (never slept)


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.msgs = queue.Queue()
        self.errors = queue.Queue()
        self.receipts = set()
        self.cv = threading.Condition()
        self.connected_frame = None
        self.connected = threading.Event()
        self.heartbeats = 0
        self.disconnected = threading.Event()

    def on_connected(self, frame):
        self.connected_frame = frame
        self.connected.set()

    def on_message(self, frame):
        self.msgs.put(frame)

    def on_error(self, frame):
        self.errors.put(frame)

    def on_receipt(self, frame):
        with self.cv:
            self.receipts.add(frame.headers["receipt-id"])
            self.cv.notify_all()

    def on_disconnected(self):
        self.disconnected.set()

    def on_heartbeat(self):
        with self.cv:
            self.heartbeats += 1
            self.cv.notify_all()

    def wait_receipt(self, rid):
        with self.cv:
            ok = self.cv.wait_for(lambda: rid in self.receipts, WAIT)
        assert ok, "no RECEIPT %s" % rid

    def get(self, n=1):
        out = []
        for _ in range(n):
            try:
                out.append(self.msgs.get(timeout=WAIT))
            except queue.Empty:
                raise AssertionError("got %d of %d messages" % (len(out), n))
        return out


class Client:
    def __init__(self, port, version="1.2", heartbeats=(0, 0), headers=None,
                 login="guest", passcode="guest"):
        cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11,
               "1.2": stomp.Connection12}[version]
        kw = {} if version == "1.0" else {"heartbeats": heartbeats}
        self.version = version
        self.conn = cls([("127.0.0.1", port)], **kw)
        self.l = Listener()
        self.conn.set_listener("t", self.l)
        self.conn.connect(login, passcode, wait=True, headers=headers or {})

    def sync(self):
        """A round trip: every frame sent before is handled."""
        rid = uuid.uuid4().hex
        self.conn.send("/topic/sync-" + rid[:8], "", receipt=rid)
        self.l.wait_receipt(rid)

    def send(self, dest, body, receipt=True, **h):
        rid = uuid.uuid4().hex if receipt else None
        if rid:
            h["receipt"] = rid
        self.conn.send(dest, body, **h)
        if rid:
            self.l.wait_receipt(rid)

    def subscribe(self, dest, sid, ack="auto", **h):
        rid = uuid.uuid4().hex
        h["receipt"] = rid
        if self.version == "1.0":
            h["id"] = sid
            self.conn.subscribe(dest, ack=ack, headers=h)
        else:
            self.conn.subscribe(dest, sid, ack=ack, headers=h)
        self.l.wait_receipt(rid)

    def ack(self, m, **kw):
        if self.version == "1.2":
            self.conn.ack(m.headers["ack"], **kw)
        elif self.version == "1.1":
            self.conn.ack(m.headers["message-id"],
                          m.headers["subscription"], **kw)
        else:
            self.conn.ack(m.headers["message-id"], **kw)

    def nack(self, m, **kw):
        if self.version == "1.2":
            self.conn.nack(m.headers["ack"], **kw)
        else:
            self.conn.nack(m.headers["message-id"],
                           m.headers["subscription"], **kw)

    def close(self):
        if self.conn.is_connected():
            rid = uuid.uuid4().hex
            self.conn.disconnect(receipt=rid)


@pytest.fixture
def client(broker):
    made = []

    def make(*a, **kw):
        c = Client(broker.stomp_port, *a, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.close()
        except Exception:
            pass


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_queue_roundtrip(client, version):
    p = client(version)
    for i in range(10):
        p.send("/queue/rt", "m%d" % i, persistent="true",
               content_type="text/plain", myheader="v%d" % i)
    c = client(version)
    c.subscribe("/queue/rt", "s1", ack="client-individual"
                if version != "1.0" else "client")
    msgs = c.l.get(10)
    assert [m.body for m in msgs] == ["m%d" % i for i in range(10)]
    for i, m in enumerate(msgs):
        assert m.headers["destination"] == "/queue/rt"
        assert m.headers["subscription"] == "s1"
        assert m.headers["redelivered"] == "false"
        assert m.headers["myheader"] == "v%d" % i
        assert m.headers["content-type"] == "text/plain"
        assert m.headers["content-length"] == str(len(m.body))
        assert m.headers["persistent"] == "true"
        assert ("ack" in m.headers) == (version == "1.2")
    if version == "1.0":
        c.ack(msgs[-1])  # client mode: cumulative
    else:
        for m in msgs:
            c.ack(m)
    c.sync()


def test_competing_consumers_each_message_once(client):
    n = 300
    got = queue.Queue()
    cons = []
    for i in range(3):
        c = client()
        cons.append(c)

        class L(stomp.ConnectionListener):
            def __init__(self, c):
                self.c = c

            def on_message(self, frame):
                got.put((self.c, frame.body))
                self.c.conn.ack(frame.headers["ack"])

        c.conn.set_listener("ack", L(c))
        c.subscribe("/queue/work", "w", ack="client-individual",
                    **{"prefetch-count": "5"})
    p = client()
    for i in range(n):
        p.conn.send("/queue/work", "job-%d" % i)
    p.sync()
    bodies = []
    per = {}
    for _ in range(n):
        c, b = got.get(timeout=WAIT)
        bodies.append(b)
        per[id(c)] = per.get(id(c), 0) + 1
    assert sorted(bodies) == sorted("job-%d" % i for i in range(n))
    assert len(set(bodies)) == n
    for c in cons:
        c.sync()
    assert got.empty()


def test_client_ack_is_cumulative(client):
    p = client()
    for i in range(5):
        p.send("/queue/cum", "c%d" % i)
    c = client()
    c.subscribe("/queue/cum", "s", ack="client")
    msgs = c.l.get(5)
    c.conn.ack(msgs[2].headers["ack"], receipt="ackd")
    c.l.wait_receipt("ackd")
    c.close()
    c2 = client()
    c2.subscribe("/queue/cum", "s", ack="client")
    again = c2.l.get(2)
    assert [m.body for m in again] == ["c3", "c4"]
    assert all(m.headers["redelivered"] == "true" for m in again)
    assert all(m.headers["x-delivery-count"] == "1" for m in again)


def test_unacked_return_on_disconnect_and_unsubscribe(client):
    p = client()
    for i in range(3):
        p.send("/queue/ret", "r%d" % i)
    c = client()
    c.subscribe("/queue/ret", "s", ack="client-individual")
    msgs = c.l.get(3)
    c.ack(msgs[1])
    c.sync()
    c.conn.unsubscribe("s")
    c.sync()
    c.subscribe("/queue/ret", "s2", ack="client-individual")
    back = c.l.get(2)
    assert [m.body for m in back] == ["r0", "r2"]
    assert all(m.headers["redelivered"] == "true" for m in back)
    c.close()  # not acked: back to the queue again
    c3 = client()
    c3.subscribe("/queue/ret", "s", ack="auto")
    assert sorted(m.body for m in c3.l.get(2)) == ["r0", "r2"]


def test_auto_ack_is_done(client):
    p = client()
    p.send("/queue/auto", "a1")
    c = client()
    c.subscribe("/queue/auto", "s", ack="auto")
    assert c.l.get(1)[0].body == "a1"
    c.close()
    p.send("/queue/auto", "a2")
    c2 = client()
    c2.subscribe("/queue/auto", "s")
    assert c2.l.get(1)[0].body == "a2"


def test_nack_redelivers_then_dead_letters(client):
    p = client()
    p.send("/queue/poison", "bad", persistent="true")
    c = client()
    c.subscribe("/queue/poison", "s", ack="client-individual")
    deliveries = 0
    while True:
        m = c.l.get(1)[0]
        assert m.body == "bad"
        assert m.headers["redelivered"] == ("true" if deliveries else "false")
        assert m.headers["x-delivery-count"] == str(deliveries)
        deliveries += 1
        c.nack(m)
        if deliveries == 10:  # the group's max deliveries (default 10)
            break
    d = client()
    d.subscribe("/queue/poison.DLQ", "dlq", ack="client-individual")
    m = d.l.get(1)[0]
    assert m.body == "bad"
    assert m.headers["destination"] == "/queue/poison.DLQ"
    d.ack(m)
    c.sync()
    assert c.l.msgs.empty()


def test_nack_requeue_false_dead_letters_at_once(client):
    p = client()
    p.send("/queue/rej", "x1")
    p.send("/queue/rej", "x2")
    c = client()
    c.subscribe("/queue/rej", "s", ack="client-individual")
    m1, m2 = c.l.get(2)
    c.nack(m1, requeue="false")
    c.ack(m2)
    c.sync()
    d = client()
    d.subscribe("/queue/rej.DLQ", "d")
    m = d.l.get(1)[0]
    assert m.body == "x1"


def test_nack_client_mode_is_cumulative(client):
    p = client()
    for i in range(3):
        p.send("/queue/ncum", "n%d" % i)
    c = client()
    c.subscribe("/queue/ncum", "s", ack="client")
    ms = c.l.get(3)
    c.conn.nack(ms[1].headers["ack"], requeue="false")
    c.sync()
    d = client()
    d.subscribe("/queue/ncum.DLQ", "d")
    assert [m.body for m in d.l.get(2)] == ["n0", "n1"]
    c.close()  # n2 returns to the queue
    e = client()
    e.subscribe("/queue/ncum", "s")
    assert e.l.get(1)[0].body == "n2"


def test_11_ack_resolved_by_message_id(client):
    p = client("1.1")
    p.send("/queue/ack11", "q")
    c = client("1.1")
    c.subscribe("/queue/ack11", "right", ack="client-individual")
    m = c.l.get(1)[0]
    rid = uuid.uuid4().hex
    c.conn.ack(m.headers["message-id"], "wrong-subscription", receipt=rid)
    c.l.wait_receipt(rid)
    assert c.l.errors.empty()
    c.close()
    c2 = client("1.1")
    c2.subscribe("/queue/ack11", "x")
    p.send("/queue/ack11", "next")
    assert c2.l.get(1)[0].body == "next"  # q was acked, not redelivered


def test_prefetch_limits_in_flight(client):
    p = client()
    for i in range(5):
        p.send("/queue/pf", "p%d" % i)
    c1 = client()
    c1.subscribe("/queue/pf", "a", ack="client-individual",
                 **{"prefetch-count": "2"})
    first = c1.l.get(2)
    c2 = client()
    c2.subscribe("/queue/pf", "b", ack="client-individual",
                 **{"activemq.prefetchSize": "10"})
    rest = c2.l.get(3)
    assert sorted(m.body for m in first + rest) == [
        "p%d" % i for i in range(5)]
    c1.sync()
    assert c1.l.msgs.empty()


def test_durable_activemq_style(client):
    h = {"client-id": "app1"}
    c = client(headers=h)
    c.subscribe("/topic/news", "d1", ack="client-individual",
                **{"activemq.subscriptionName": "sub1"})
    p = client()
    p.send("/topic/news", "n0")
    c.ack(c.l.get(1)[0])
    c.sync()
    c.close()
    for i in range(1, 4):
        p.send("/topic/news", "n%d" % i, persistent="true")
    c2 = client(headers=h)
    c2.subscribe("/topic/news", "d1", ack="client-individual",
                 **{"activemq.subscriptionName": "sub1"})
    ms = c2.l.get(3)
    assert [m.body for m in ms] == ["n1", "n2", "n3"]
    assert ms[0].headers["destination"] == "/topic/news"
    for m in ms:
        c2.ack(m)
    # remove it: later messages are not kept
    rid = uuid.uuid4().hex
    c2.conn.unsubscribe("d1", headers={
        "activemq.subscriptionName": "sub1", "receipt": rid})
    c2.l.wait_receipt(rid)
    p.send("/topic/news", "n4")
    c3 = client(headers=h)
    c3.subscribe("/topic/news", "d1",
                 **{"activemq.subscriptionName": "sub1"})
    p.send("/topic/news", "n5")
    assert c3.l.get(1)[0].body == "n5"


def test_durable_rabbitmq_style(client):
    c = client()
    c.subscribe("/topic/rnews", "rsub", ack="client-individual",
                durable="true", **{"auto-delete": "false"})
    c.close()
    p = client()
    for i in range(3):
        p.send("/topic/rnews", "r%d" % i, persistent="true")
    c2 = client()
    c2.subscribe("/topic/rnews", "rsub", ack="client-individual",
                 durable="true", **{"auto-delete": "false"})
    ms = c2.l.get(3)
    assert [m.body for m in ms] == ["r0", "r1", "r2"]
    for m in ms:
        c2.ack(m)
    c2.sync()


def test_transactions_send_and_ack(client):
    p = client()
    c = client()
    c.subscribe("/queue/txq", "s", ack="client-individual")
    p.conn.begin("t1")
    p.conn.send("/queue/txq", "in-tx", transaction="t1")
    p.send("/queue/txq", "outside")
    assert c.l.get(1)[0].body == "outside"
    rid = uuid.uuid4().hex
    p.conn.commit("t1", receipt=rid)
    p.l.wait_receipt(rid)
    m = c.l.get(1)[0]
    assert m.body == "in-tx"
    # ACK inside an aborted transaction: still unacked
    c.conn.begin("ta")
    c.conn.ack(m.headers["ack"], transaction="ta")
    c.conn.abort("ta")
    c.sync()
    # ACK inside a committed transaction: done
    c.conn.begin("tc")
    c.conn.ack(m.headers["ack"], transaction="tc")
    rid = uuid.uuid4().hex
    c.conn.commit("tc", receipt=rid)
    c.l.wait_receipt(rid)
    c.close()
    c2 = client()
    c2.subscribe("/queue/txq", "s")
    p.send("/queue/txq", "last")
    # "outside" was never acked: it comes back first, in-tx does not
    assert [m.body for m in c2.l.get(2)] == ["outside", "last"]


def test_expired_not_delivered(client):
    p = client()
    past = str(int(time.time() * 1000) - 1000)
    p.send("/queue/exp", "stale", expires=past)
    p.send("/queue/exp", "fresh")
    c = client()
    c.subscribe("/queue/exp", "s")
    assert c.l.get(1)[0].body == "fresh"
    c.sync()
    assert c.l.msgs.empty()


def test_scheduled_delay(client):
    p = client()
    p.send("/queue/sched", "later", AMQ_SCHEDULED_DELAY="400")
    p.send("/queue/sched", "now")
    c = client()
    c.subscribe("/queue/sched", "s")
    assert [m.body for m in c.l.get(2)] == ["now", "later"]


def test_temp_queue_request_reply(client):
    svc = client()

    class Echo(stomp.ConnectionListener):
        def on_message(self, frame):
            svc.conn.send(frame.headers["reply-to"], "re:" + frame.body,
                          **{"correlation-id":
                             frame.headers["correlation-id"]})

    svc.conn.set_listener("echo", Echo())
    svc.subscribe("/queue/service", "svc")
    req = client()
    req.send("/queue/service", "ping", **{"reply-to": "/temp-queue/r1",
                                          "correlation-id": "42"})
    m = req.l.get(1)[0]
    assert m.body == "re:ping"
    assert m.headers["subscription"] == "/temp-queue/r1"
    assert m.headers["correlation-id"] == "42"


def test_amq_queue_alias_and_topic_exchange(client):
    p = client()
    p.send("/amq/queue/alias", "via-amq")
    c = client()
    c.subscribe("/queue/alias", "s")
    assert c.l.get(1)[0].body == "via-amq"


def test_topic_plain_subscriber(client):
    c = client()
    c.subscribe("/topic/plain", "s")
    p = client()
    for i in range(20):
        p.conn.send("/topic/plain", "t%d" % i)
    assert [m.body for m in c.l.get(20)] == ["t%d" % i for i in range(20)]


def test_heartbeats_negotiated(client):
    c = client(heartbeats=(500, 500))
    assert c.l.connected.wait(WAIT)
    assert c.l.connected_frame.headers["heart-beat"] == "500,500"
    # stomp.py counts the server's EOLs; it sends its own every 500 ms and
    # would be closed after 750 ms of silence otherwise
    with c.l.cv:
        assert c.l.cv.wait_for(lambda: c.l.heartbeats >= 4, WAIT)
    c.send("/topic/hb-py", "still-here")
    assert c.conn.is_connected()


def test_error_closes_connection(client):
    c = client()
    c.conn.send("/nowhere/at-all", "x")
    f = c.l.errors.get(timeout=WAIT)
    assert "unknown destination" in f.headers["message"] + f.body
    assert c.l.disconnected.wait(WAIT)


def test_jmsxgroupid_one_in_flight_per_group(client):
    p = client()
    p.send("/queue/grp", "g1-a", JMSXGroupID="g1")
    p.send("/queue/grp", "g1-b", JMSXGroupID="g1")
    p.send("/queue/grp", "g2-a", JMSXGroupID="g2")
    c = client()
    c.subscribe("/queue/grp", "s", ack="client-individual")
    first = c.l.get(2)
    # g1-b waits until g1-a is settled (key-ordered queue group)
    assert [m.body for m in first] == ["g1-a", "g2-a"]
    c.sync()
    assert c.l.msgs.empty()
    c.ack(first[0])
    m = c.l.get(1)[0]
    assert m.body == "g1-b"
    assert m.headers["JMSXGroupID"] == "g1"


def test_priority_accepted_order_kept(client):
    p = client()
    p.send("/queue/prio", "low", priority="1")
    p.send("/queue/prio", "high", priority="9")
    c = client()
    c.subscribe("/queue/prio", "s")
    ms = c.l.get(2)
    assert [m.body for m in ms] == ["low", "high"]
    assert ms[1].headers["priority"] == "9"


def test_rabbitmq_expiration_ttl(client):
    p = client()
    p.send("/queue/ttl", "short", expiration="0")
    p.send("/queue/ttl", "long", expiration="600000")
    c = client()
    c.subscribe("/queue/ttl", "s")
    m = c.l.get(1)[0]
    assert m.body == "long"
    assert m.headers["expiration"] == "600000"
    c.sync()
    assert c.l.msgs.empty()


def test_rabbitmq_queue_arguments_on_subscribe(client):
    c = client()
    c.subscribe("/queue/qargs", "s", ack="client-individual",
                **{"x-delivery-limit": "1", "x-message-ttl": "600000"})
    p = client()
    p.send("/queue/qargs", "poison")
    m = c.l.get(1)[0]
    c.nack(m)
    m = c.l.get(1)[0]
    assert m.headers["redelivered"] == "true"
    c.nack(m)  # 1 redelivery allowed: now dead-lettered
    d = client()
    d.subscribe("/queue/qargs.DLQ", "d")
    assert d.l.get(1)[0].body == "poison"
    c.sync()
    assert c.l.msgs.empty()


def test_durable_name_shared_with_a_queue(client):
    """A RabbitMQ-style durable subscription whose id is also a queue's
    name: the durable one still starts at the topic's end."""
    p = client()
    p.send("/queue/same", "queued")
    p.send("/topic/same-t", "old")
    q = client()
    q.subscribe("/queue/same", "q")
    assert q.l.get(1)[0].body == "queued"
    c = client()
    c.subscribe("/topic/same-t", "same", durable="true",
                **{"auto-delete": "false"})
    p.send("/topic/same-t", "published")
    assert c.l.get(1)[0].body == "published"
