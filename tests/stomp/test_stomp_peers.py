"""Side by side: the same STOMP scenarios against Sluice, RabbitMQ 3.10 and
ActiveMQ 5.17 (issue 19).

Each scenario runs once per broker and returns what a client observes
(frames, headers, bodies, order, redeliveries, receipts, errors); the
test asserts that the observations are equal, and equal to what we
expect, so it fails when Sluice drifts from the references and when all
three change together. Where a reference broker really behaves otherwise,
the test says so in its expected values and docs/stomp.md's table
"Side by side with the reference brokers" lists the difference and the
reason.

Clients: raw frames (conftest.Raw), stomp.py, stompit (Node),
@stomp/stompjs over WebSocket (Node; RabbitMQ's Web-STOMP: Debian's
ActiveMQ has no WebSocket transport) and the Ruby stomp gem. The brokers
(tests/stomp/peers.py) start once for the module, all at the same time;
every scenario uses destinations of its own.
"""
import itertools
import json
import os
import select
import subprocess
import uuid

import pytest
import stomp

from conftest import Broker, Raw
from peers import ActiveMQ, RabbitMQ

HERE = os.path.dirname(os.path.abspath(__file__))
BROKERS = ("sluice", "rabbitmq", "activemq")
_seq = itertools.count()


class Target:
    def __init__(self, name, stomp_port, ws_port=None, log=None):
        self.name, self.stomp_port, self.ws_port = name, stomp_port, ws_port
        self.log = log or (lambda: "")


@pytest.fixture(scope="module")
def peers():
    rabbit, amq = RabbitMQ(), ActiveMQ()
    sluice = Broker(args=["--stomp-ws-listen", "127.0.0.1:0"])
    started = []
    try:
        for p in (rabbit, amq, sluice):
            p.start()
            started.append(p)
        rabbit.wait()
        amq.wait()
        yield {
            "sluice": Target("sluice", sluice.stomp_port, sluice.ws_port,
                             sluice.log),
            "rabbitmq": Target("rabbitmq", rabbit.stomp_port, rabbit.ws_port,
                               rabbit.log),
            "activemq": Target("activemq", amq.stomp_port, None, amq.log),
        }
    finally:
        for p in started:
            p.cleanup()


def name(kind):
    """A destination name of this scenario's own (the brokers live for the
    whole module)."""
    return "peers.%s.%d.%s" % (kind, next(_seq), uuid.uuid4().hex[:6])


def conn(t, version="1.2", **headers):
    r = Raw(t.stomp_port, timeout=20)
    h = {"login": "guest", "passcode": "guest", "host": "/"}
    h.update(headers)
    f = r.connect(version, headers=h)
    assert f.command == "CONNECTED", (t.name, f)
    return r


def on_all(peers, scenario, only=BROKERS):
    """{broker: scenario(target)} for each broker in only."""
    out = {}
    for b in only:
        try:
            out[b] = scenario(peers[b])
        except Exception as e:  # name the broker, keep its log at hand
            raise AssertionError("%s: %r\n%s" % (b, e, peers[b].log()[-1500:]))
    return out


def same(results, expected, differs=None):
    """Every broker observed `expected`, except those in `differs`
    ({broker: what it observes instead}, each listed in docs/stomp.md)."""
    want = {b: expected for b in results}
    want.update(differs or {})
    assert results == want


def send_sync(r, dest, body, rid="snd", **h):
    h.update({"destination": dest, "receipt": rid})
    r.send("SEND", h, body)
    f = r.expect("RECEIPT")
    assert f.headers["receipt-id"] == rid
    return f


def sub_sync(r, dest, sid="s1", ack="auto", **extra):
    h = {"destination": dest, "id": sid, "ack": ack, "receipt": "sub-" + sid}
    h.update(extra)
    r.send("SUBSCRIBE", h)
    assert r.expect("RECEIPT").headers["receipt-id"] == "sub-" + sid


def bodies(frames):
    return [f.body.decode() for f in frames]


def read_from(conns, n):
    """n MESSAGE frames from any of conns: [(index of conn, frame)]."""
    got = []
    while len(got) < n:
        # heart-beat EOLs (ActiveMQ sends one after each frame) are not a
        # frame: a buffer holding only those would block in read_frame
        ready = [i for i, c in enumerate(conns) if c.buf.lstrip(b"\r\n")]
        if not ready:
            rl, _, _ = select.select([c.sock for c in conns], [], [], 20)
            assert rl, "no MESSAGE within 20 s; got %r" % got
            for c in conns:
                if c.sock in rl:
                    c._fill()  # maybe only an EOL: looked at again above
            continue
        for i in ready:
            f = conns[i].read_frame()
            assert f.command == "MESSAGE", f
            got.append((i, f))
    return got


def quiet(r):
    """Nothing more arrives on r: a receipt round trip comes back alone."""
    r.send("SEND", {"destination": "/queue/" + name("probe"),
                    "receipt": "quiet"}, "x")
    f = r.read_frame()
    return f.command == "RECEIPT" and f.headers["receipt-id"] == "quiet"


# ---- connecting ---------------------------------------------------------------------


def test_connected_frame(peers):
    def scenario(t):
        out = {}
        for version in ("1.0", "1.1", "1.2"):
            r = Raw(t.stomp_port, timeout=20)
            h = {"login": "guest", "passcode": "guest", "host": "/"}
            if version != "1.0":
                h["heart-beat"] = "0,2000"
            f = r.connect(None if version == "1.0" else version, headers=h)
            r.close()
            out[version] = (f.command, f.headers.get("version"),
                            f.headers.get("heart-beat"),
                            "session" in f.headers,
                            f.headers.get("server", "").split("/")[0] != "")
        return out

    same(on_all(peers, scenario), {
        "1.0": ("CONNECTED", "1.0", "0,0", True, True),
        "1.1": ("CONNECTED", "1.1", "2000,0", True, True),
        "1.2": ("CONNECTED", "1.2", "2000,0", True, True)})


# ---- queues -------------------------------------------------------------------------


def test_queue_round_trip_headers_and_order(peers):
    """Receipts in frame order; bodies in send order; user headers,
    content-type and a body with NULs (content-length) pass unchanged.
    ActiveMQ sends content-length only on a message sent with one (its
    BytesMessage); Sluice and RabbitMQ on every MESSAGE."""
    def scenario(t):
        q = "/queue/" + name("q")
        p = conn(t)
        for i in range(5):
            p.send("SEND", {"destination": q, "receipt": "r%d" % i,
                            "x-app": "v%d" % i,
                            "content-type": "text/plain"}, "m%d" % i)
        receipts = [p.expect("RECEIPT").headers["receipt-id"]
                    for _ in range(5)]
        send_sync(p, q, b"a\0b\0", rid="bin", **{"content-length": "4"})
        c = conn(t)
        sub_sync(c, q, ack="client-individual")
        msgs = [c.expect("MESSAGE") for _ in range(6)]
        for m in msgs:
            c.send("ACK", {"id": m.headers["ack"]})
        seen = [(m.body, m.headers.get("x-app"),
                 m.headers.get("content-type", "").split(";")[0],
                 m.headers["destination"] == q,
                 m.headers["subscription"], "message-id" in m.headers,
                 m.headers.get("content-length") == str(len(m.body)))
                for m in msgs]
        ok = quiet(c)
        p.close()
        c.close()
        return receipts, seen, ok

    def want(text_length):
        return (["r0", "r1", "r2", "r3", "r4"],
                [(b"m%d" % i, "v%d" % i, "text/plain", True, "s1", True,
                  text_length) for i in range(5)] +
                [(b"a\0b\0", None, "", True, "s1", True, True)], True)

    same(on_all(peers, scenario), want(True),
         differs={"activemq": want(False)})


def test_competing_consumers_share_a_queue(peers):
    """Two subscribers, four messages: Sluice and RabbitMQ give each two
    (round robin); ActiveMQ not always two and two (its dispatch to a
    consumer with prefetch room can run ahead of the other's: 1 and 3,
    and on a loaded machine 0 and 4, are seen), so for it only "each
    message once"."""
    def scenario(t):
        q = "/queue/" + name("rr")
        a, b, p = conn(t), conn(t), conn(t)
        sub_sync(a, q, ack="client-individual")
        sub_sync(b, q, ack="client-individual")
        for i in range(4):
            send_sync(p, q, "m%d" % i, rid="r%d" % i)
        got = read_from([a, b], 4)
        per = [sorted(f.body.decode() for i, f in got if i == k)
               for k in (0, 1)]
        for x in (a, b, p):
            x.close()
        return sorted(len(x) for x in per), sorted(sum(per, []))

    res = on_all(peers, scenario)
    same({b: m for b, (n, m) in res.items()}, ["m0", "m1", "m2", "m3"])
    same({b: n for b, (n, m) in res.items() if b != "activemq"}, [2, 2])


def test_unacked_messages_return_on_disconnect(peers):
    """client-individual: what was not acked when the connection ended is
    delivered to the next consumer, flagged redelivered; what was acked
    is not. ActiveMQ leaves the redelivered header out on a first
    delivery; RabbitMQ and Sluice send redelivered:false."""
    def scenario(t):
        q = "/queue/" + name("redeliver")
        p = conn(t)
        for i in range(3):
            send_sync(p, q, "m%d" % i, rid="r%d" % i)
        a = conn(t)
        sub_sync(a, q, ack="client-individual")
        first = [a.expect("MESSAGE") for _ in range(3)]
        a.call("ACK", {"id": first[1].headers["ack"], "receipt": "ack"})
        a.send("DISCONNECT", {"receipt": "bye"})
        a.expect("RECEIPT")
        a.close()
        b = conn(t)
        sub_sync(b, q, ack="client-individual")
        again = [b.expect("MESSAGE") for _ in range(2)]
        flags = [m.headers.get("redelivered") for m in first + again]
        for m in again:
            b.send("ACK", {"id": m.headers["ack"]})
        ok = quiet(b)
        p.close()
        b.close()
        return bodies(again), flags, ok

    same(on_all(peers, scenario),
         (["m0", "m2"], ["false", "false", "false", "true", "true"], True),
         differs={"activemq": (["m0", "m2"], [None, None, None, "true",
                                               "true"], True)})


def test_client_ack_is_cumulative(peers):
    """ack:client: one ACK settles that message and the ones before it."""
    def scenario(t):
        q = "/queue/" + name("cumulative")
        p = conn(t)
        for i in range(4):
            send_sync(p, q, "m%d" % i, rid="r%d" % i)
        a = conn(t)
        sub_sync(a, q, ack="client")
        got = [a.expect("MESSAGE") for _ in range(4)]
        a.call("ACK", {"id": got[2].headers["ack"], "receipt": "ack"})
        a.send("DISCONNECT", {"receipt": "bye"})
        a.expect("RECEIPT")
        a.close()
        b = conn(t)
        sub_sync(b, q, ack="client")
        rest = [b.expect("MESSAGE")]
        b.send("ACK", {"id": rest[0].headers["ack"]})
        ok = quiet(b)
        p.close()
        b.close()
        return bodies(got), bodies(rest), ok

    same(on_all(peers, scenario),
         (["m0", "m1", "m2", "m3"], ["m3"], True))


def test_nack(peers):
    """NACK of a queue message: RabbitMQ and Sluice requeue it (delivered
    again at once, redelivered); ActiveMQ treats a STOMP NACK as a poison
    ack and sends the message to its DLQ (docs/stomp.md)."""
    def scenario(t):
        q = "/queue/" + name("nack")
        p = conn(t)
        send_sync(p, q, "poison", rid="r0")
        send_sync(p, q, "next", rid="r1")
        c = conn(t)
        sub_sync(c, q, ack="client-individual", **{"prefetch-count": "1",
                 "activemq.prefetchSize": "1"})
        m = c.expect("MESSAGE")
        c.send("NACK", {"id": m.headers["ack"]})
        m2 = c.expect("MESSAGE")
        c.send("ACK", {"id": m2.headers["ack"]})
        p.close()
        c.close()
        return m.body, m2.body, m2.headers.get("redelivered")

    same(on_all(peers, scenario), (b"poison", b"poison", "true"),
         differs={"activemq": (b"poison", b"next", None)})


def test_nack_requeue_false_is_not_redelivered(peers):
    """stomp.py writes requeue:False; RabbitMQ drops (or dead-letters) the
    message, as Sluice does (dead-letters it)."""
    def scenario(t):
        q = "/queue/" + name("requeue")
        p = conn(t)
        send_sync(p, q, "poison", rid="r0")
        send_sync(p, q, "next", rid="r1")
        c = conn(t)
        sub_sync(c, q, ack="client-individual", **{"prefetch-count": "1",
                 "activemq.prefetchSize": "1"})
        m = c.expect("MESSAGE")
        c.send("NACK", {"id": m.headers["ack"], "requeue": "False"})
        m2 = c.expect("MESSAGE")
        p.close()
        c.close()
        return m.body, m2.body

    same(on_all(peers, scenario), (b"poison", b"next"))


def receipts_until(r, last):
    """The receipt ids r gets up to and including `last`."""
    out = []
    while not out or out[-1] != last:
        out.append(r.expect("RECEIPT").headers["receipt-id"])
    return out


def test_transactions(peers):
    """ABORT drops a transaction's SENDs, COMMIT delivers them together.
    The receipt of a SEND inside a transaction: Sluice and ActiveMQ send it
    when the frame is received (Net::Stomp's send_transactional waits for
    it before COMMIT); RabbitMQ 3.10 holds it until COMMIT, after COMMIT's
    own receipt, and never sends it for an aborted transaction. A probe
    SEND outside the transaction, with a receipt, shows what came first."""
    def scenario(t):
        q = "/queue/" + name("tx")
        probe = "/queue/" + name("probe")
        c = conn(t)
        sub_sync(c, q)
        p = conn(t)
        p.send("BEGIN", {"transaction": "t1"})
        p.send("SEND", {"destination": q, "transaction": "t1",
                        "receipt": "in-t1"}, "aborted")
        p.send("SEND", {"destination": probe, "receipt": "probe1"}, "x")
        first = receipts_until(p, "probe1")
        p.send("ABORT", {"transaction": "t1", "receipt": "abort"})
        aborted = receipts_until(p, "abort")
        p.send("BEGIN", {"transaction": "t2"})
        for i in range(3):
            h = {"destination": q, "transaction": "t2"}
            if i == 0:
                h["receipt"] = "in-t2"
            p.send("SEND", h, "c%d" % i)
        p.send("SEND", {"destination": probe, "receipt": "probe2"}, "x")
        before_commit = receipts_until(p, "probe2")
        p.send("COMMIT", {"transaction": "t2", "receipt": "commit"})
        p.send("SEND", {"destination": probe, "receipt": "probe3"}, "x")
        after_commit = receipts_until(p, "probe3")
        # RabbitMQ's late receipt is a publisher confirm: it may come after
        # later SENDs' receipts (seen once after probe3), so probe until
        # it is there (at once where it came before COMMIT)
        n = 3
        while "in-t2" not in before_commit + after_commit and n < 50:
            n += 1
            p.send("SEND", {"destination": probe,
                            "receipt": "probe%d" % n}, "x")
            after_commit += receipts_until(p, "probe%d" % n)
        after_commit = sorted(r for r in after_commit
                              if not r.startswith("probe"))
        got = [c.expect("MESSAGE") for _ in range(3)]
        ok = quiet(c)
        p.close()
        c.close()
        return (first, aborted, before_commit, after_commit, bodies(got), ok)

    same(on_all(peers, scenario),
         (["in-t1", "probe1"], ["abort"], ["in-t2", "probe2"],
          ["commit"], ["c0", "c1", "c2"], True),
         differs={"rabbitmq": (["probe1"], ["abort"], ["probe2"],
                               ["commit", "in-t2"],
                               ["c0", "c1", "c2"], True)})


def test_priority(peers):
    """A backlog sent with priorities, consumed with prefetch 1: highest
    first, in send order within a priority. The queue is made first by a
    SUBSCRIBE with x-max-priority (RabbitMQ, Sluice); ActiveMQ's is
    prioritizedMessages in its activemq.xml (peers.py). RabbitMQ declares
    the queue again on every SEND and SUBSCRIBE, and refuses one without
    the same x-max-priority (precondition_failed): RabbitMQ applications
    repeat it, so the scenario does. An absent priority is 4 in Sluice and
    ActiveMQ (JMS), 0 in RabbitMQ; 12 counts as 9 where the maximum is 9."""
    arg = {"x-max-priority": "9"}
    prios = ["1", "5", "9", None, "5", "0", "9", "12"]

    def scenario(t):
        q = "/queue/" + name("prio")
        c, p = conn(t), conn(t)
        sub_sync(c, q, sid="mk", **arg)
        c.call("UNSUBSCRIBE", {"id": "mk", "receipt": "un"})
        for i, pr in enumerate(prios):
            h = dict(arg) if pr is None else dict(arg, priority=pr)
            send_sync(p, q, "m%d" % i, rid="r%d" % i, **h)
        sub_sync(c, q, sid="s", ack="client-individual",
                 **dict(arg, **{"prefetch-count": "1",
                                "activemq.prefetchSize": "1"}))
        got = []
        for _ in prios:
            m = c.expect("MESSAGE")
            got.append(m.body.decode())
            c.send("ACK", {"id": m.headers["ack"]})
        p.close()
        c.close()
        return got

    same(on_all(peers, scenario),
         ["m2", "m6", "m7", "m1", "m4", "m3", "m0", "m5"],
         differs={"rabbitmq": ["m2", "m6", "m7", "m1", "m4", "m0", "m3",
                               "m5"]})


# ---- topics -------------------------------------------------------------------------


def test_topic_broadcast_from_subscription_on(peers):
    """Every subscriber gets every message sent after it subscribed, in
    order; what was sent before is not delivered."""
    def scenario(t):
        dest = "/topic/" + name("t")
        p = conn(t)
        send_sync(p, dest, "before", rid="r0")
        a, b = conn(t), conn(t)
        sub_sync(a, dest)
        sub_sync(b, dest)
        for i in range(3):
            send_sync(p, dest, "m%d" % i, rid="r%d" % (i + 1))
        ga = [a.expect("MESSAGE") for _ in range(3)]
        gb = [b.expect("MESSAGE") for _ in range(3)]
        ok = quiet(a) and quiet(b)
        for x in (a, b, p):
            x.close()
        return bodies(ga), bodies(gb), ok

    same(on_all(peers, scenario), (["m0", "m1", "m2"],) * 2 + (True,))


def test_durable_subscription_keeps_messages_while_away(peers):
    """RabbitMQ's durable:true + id, ActiveMQ's client-id +
    activemq.subscriptionName: each broker in its own style, Sluice in
    both."""
    def scenario(t, style):
        dest = "/topic/" + name("durable")
        sid = name("dsub")
        if style == "rabbitmq":
            cheaders, extra = {}, {"durable": "true", "auto-delete": "false"}
        else:
            cheaders = {"client-id": sid}
            extra = {"activemq.subscriptionName": sid}
        a = conn(t, **cheaders)
        sub_sync(a, dest, sid=sid, **extra)
        a.send("DISCONNECT", {"receipt": "bye"})
        a.expect("RECEIPT")
        a.close()
        p = conn(t)
        for i in range(2):
            send_sync(p, dest, "while-away-%d" % i, rid="r%d" % i)
        b = conn(t, **cheaders)
        sub_sync(b, dest, sid=sid, **extra)
        got = [b.expect("MESSAGE") for _ in range(2)]
        p.close()
        b.close()
        return bodies(got)

    want = ["while-away-0", "while-away-1"]
    for style in ("rabbitmq", "activemq"):
        same(on_all(peers, lambda t: scenario(t, style),
                    only=("sluice", style)), want)


def test_selector_on_a_topic(peers):
    """ActiveMQ's JMS selectors (RabbitMQ has none: it ignores the header
    and delivers everything)."""
    def scenario(t):
        dest = "/topic/" + name("sel")
        c = conn(t)
        sub_sync(c, dest, selector="kind = 'big' AND amount > 10")
        p = conn(t)
        for i, (kind, amount) in enumerate([("big", "25"), ("small", "50"),
                                            ("big", "5"), ("big", "11")]):
            send_sync(p, dest, "m%d" % i, rid="r%d" % i, kind=kind,
                      amount=amount)
        send_sync(p, dest, "end", rid="end", kind="big", amount="1000")
        got = []
        while not got or got[-1] != "end":
            got.append(c.expect("MESSAGE").body.decode())
        p.close()
        c.close()
        return got

    same(on_all(peers, scenario), ["m0", "m3", "end"],
         differs={"rabbitmq": ["m0", "m1", "m2", "m3", "end"]})


def test_selector_on_a_queue(peers):
    """A queue consumer with a selector takes what it matches; the rest
    stays, in order, for the next consumer. RabbitMQ ignores selectors."""
    def scenario(t):
        q = "/queue/" + name("selq")
        red, p = conn(t), conn(t)
        sub_sync(red, q, sid="red", ack="client-individual",
                 selector="color = 'red'")
        for i, color in enumerate(["blue", "red", "blue", "green", "red"]):
            send_sync(p, q, "%s%d" % (color, i), rid="r%d" % i, color=color)
        msgs = [red.expect("MESSAGE") for _ in range(2)]
        got = bodies(msgs)
        red.send("ACK", {"id": msgs[0].headers["ack"]})
        red.send("ACK", {"id": msgs[1].headers["ack"], "receipt": "acked"})
        while red.read_frame().command != "RECEIPT":
            pass  # RabbitMQ sends on what it ignores the selector for
        red.send("DISCONNECT", {"receipt": "bye"})
        while red.read_frame().command != "RECEIPT":
            pass
        red.close()
        other = conn(t)
        sub_sync(other, q, sid="other", selector="color <> 'red'")
        rest = [other.expect("MESSAGE").body.decode() for _ in range(3)]
        p.close()
        other.close()
        return got, rest

    same(on_all(peers, scenario),
         (["red1", "red4"], ["blue0", "blue2", "green3"]),
         differs={"rabbitmq": (["blue0", "red1"], ["blue2", "green3",
                                                    "red4"])})


def test_virtual_topic(peers):
    """ActiveMQ's virtual topics: each Consumer.G queue gets every message
    sent to the topic; the consumers of one group compete."""
    def scenario(t):
        vt = "VirtualTopic." + name("vt").replace(".", "-")
        a1, a2, b = conn(t), conn(t), conn(t)
        sub_sync(a1, "/queue/Consumer.A." + vt)
        sub_sync(a2, "/queue/Consumer.A." + vt)
        sub_sync(b, "/queue/Consumer.B." + vt)
        p = conn(t)
        for i in range(4):
            send_sync(p, "/topic/" + vt, "m%d" % i, rid="r%d" % i)
        ga = read_from([a1, a2], 4)
        gb = [b.expect("MESSAGE") for _ in range(4)]
        for x in (a1, a2, b, p):
            x.close()
        return (sorted(f.body.decode() for _, f in ga),
                sorted(len([1 for i, _ in ga if i == k]) for k in (0, 1)),
                bodies(gb))

    same(on_all(peers, scenario, only=("sluice", "activemq")),
         (["m0", "m1", "m2", "m3"], [2, 2], ["m0", "m1", "m2", "m3"]))


# ---- errors -------------------------------------------------------------------------


def error_scenario(frames):
    def scenario(t):
        r = conn(t)
        for command, headers in frames:
            r.send(command, dict(headers, receipt="bad"),
                   "x" if command == "SEND" else "")
        f = r.read_frame()
        # is the connection still served? a SEND with a receipt says
        try:
            r.send("SEND", {"destination": "/queue/" + name("after"),
                            "receipt": "after"}, "x")
            after = r.read_frame().command
        except (EOFError, ConnectionError):
            after = "closed"
        r.close()
        return f.command, after, f.headers.get("message")
    return scenario


@pytest.mark.parametrize("what,frames,rabbit_message", [
    ("1.2 ACK without id", [("ACK", {"message-id": "1"})], "Missing header"),
    ("SEND without destination", [("SEND", {})], "Missing destination"),
    ("COMMIT of an unknown transaction", [("COMMIT", {"transaction": "no"})],
     "Bad transaction"),
])
def test_errors(peers, what, frames, rabbit_message):
    """An ERROR frame whose message header is in RabbitMQ's words (ActiveMQ
    has its own: not compared). Then Sluice closes the connection, as
    STOMP 1.2 says a server must; RabbitMQ 3.10 and ActiveMQ 5.17 keep
    serving it after these errors."""
    res = on_all(peers, error_scenario(frames))
    assert {b: r[:2] for b, r in res.items()} == {
        "sluice": ("ERROR", "closed"), "activemq": ("ERROR", "RECEIPT"),
        "rabbitmq": ("ERROR", "RECEIPT")}, what
    assert res["sluice"][2] == res["rabbitmq"][2] == rabbit_message, res


def test_unknown_destination_prefix(peers):
    """/nowhere/x: an ERROR in Sluice and RabbitMQ; ActiveMQ takes it as
    the name of a queue."""
    res = on_all(peers, error_scenario(
        [("SEND", {"destination": "/nowhere/x"})]))
    assert res == {"sluice": ("ERROR", "closed", "Unknown destination"),
                   "rabbitmq": ("ERROR", "RECEIPT", "Unknown destination"),
                   "activemq": ("RECEIPT", "RECEIPT", None)}


# ---- third-party clients ------------------------------------------------------------


class Listener(stomp.ConnectionListener):
    def __init__(self):
        import threading
        self.cond = threading.Condition()
        self.messages = []
        self.receipts = []
        self.errors = []

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.append(frame.headers["receipt-id"])
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self.cond.notify_all()

    def wait(self, pred):
        with self.cond:
            assert self.cond.wait_for(pred, timeout=20), (
                self.messages, self.receipts, self.errors)


def test_stomp_py(peers):
    """stomp.py (Debian's python3-stomp): send with receipts, subscribe
    client-individual, ack, a transaction, nack with requeue False."""
    def scenario(t):
        q = "/queue/" + name("stomppy")
        c = stomp.Connection12([("127.0.0.1", t.stomp_port)],
                               heartbeats=(0, 0), vhost="/")
        lis = Listener()
        c.set_listener("l", lis)
        c.connect("guest", "guest", wait=True)
        c.subscribe(q, id="1", ack="client-individual",
                    headers={"prefetch-count": "10"})
        for i in range(3):
            c.send(q, "m%d" % i, headers={"app": str(i), "receipt": "r%d" % i})
        tx = c.begin()
        c.send(q, "in-tx", transaction=tx)
        c.commit(tx, headers={"receipt": "commit"})
        lis.wait(lambda: len(lis.messages) == 4 and len(lis.receipts) == 4)
        got = [(m.body, m.headers.get("app")) for m in lis.messages]
        for m in lis.messages:
            c.ack(m.headers["ack"])
        c.disconnect(receipt="bye")
        return got, lis.receipts, [e.headers for e in lis.errors]

    res = on_all(peers, scenario)
    # RabbitMQ's receipt of a SEND is its publisher confirm: it may come
    # after the receipt of a later COMMIT (seen: commit, r0, r1, r2, bye);
    # Sluice and ActiveMQ answer in frame order
    order = ["r0", "r1", "r2", "commit", "bye"]
    assert res["sluice"][1] == res["activemq"][1] == order
    same({b: (r[0], sorted(r[1]), r[2]) for b, r in res.items()},
         ([("m0", "0"), ("m1", "1"), ("m2", "2"), ("in-tx", None)],
          sorted(order), []))


def npm_env():
    root = subprocess.run(["npm", "root", "-g"], stdout=subprocess.PIPE,
                          check=True, timeout=60).stdout.decode().strip()
    return dict(os.environ, NODE_PATH=root)


def test_stompit(peers):
    """stompit (npm): send, subscribe with client-individual acks, a NACK
    and the redelivery that follows (ActiveMQ: see test_nack)."""
    env = npm_env()

    def scenario(t):
        q = "/queue/" + name("stompit")
        p = subprocess.run(["node", os.path.join(HERE, "stompit_scenario.js"),
                            str(t.stomp_port), q], env=env, cwd=HERE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        return json.loads(p.stdout.decode().strip().splitlines()[-1])

    res = on_all(peers, scenario)
    want = {"received": ["one", "two", "three"], "redelivered": "two",
            "headers": ["1", "2", "3"]}
    same(res, want, differs={"activemq": dict(want, redelivered="four")})


def test_stompjs_over_websocket(peers):
    """@stomp/stompjs in Node over WebSocket (tests/stomp/ws_scenario.js):
    Sluice's --stomp-ws-listen and RabbitMQ's Web-STOMP, /ws. Text
    messages only: RabbitMQ 3.10 ignores a binary WebSocket message (no
    receipt, nothing logged); Sluice takes both (test_stomp_ws.py)."""
    env = npm_env()

    def scenario(t):
        q = name("ws")
        p = subprocess.run(["node", os.path.join(HERE, "ws_check.js"), "node",
                            "ws://127.0.0.1:%d/ws" % t.ws_port, q,
                            "text-only"], env=env,
                           cwd=HERE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, p.stderr.decode()
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
        return (out["protocol"], out["version"],
                out["received"] == out["expected"], out["kinds"],
                out["second"])

    same(on_all(peers, scenario, only=("sluice", "rabbitmq")),
         ("v12.stomp", "1.2", True, ["text"] * 52, ["sentinel"]))


RUBY_SCENARIO = r"""
require "stomp"
require "json"
port, q = ARGV[0].to_i, ARGV[1]
c = Stomp::Connection.new({hosts: [{login: "guest", passcode: "guest",
  host: "127.0.0.1", port: port}], reliable: false,
  connect_headers: {"accept-version" => "1.2", "host" => "/"}})
3.times { |i| c.publish(q, "m#{i}", {"app" => i.to_s}) }
c.subscribe(q, {"id" => "1", "ack" => "client-individual"})
got = []
3.times do
  m = c.receive
  got << [m.body, m.headers["app"]]
  c.ack(m.headers["ack"], {})
end
r = "bye"
c.disconnect({receipt: r})
puts JSON.generate({"version" => c.protocol, "got" => got})
"""


def test_ruby_stomp_gem(peers):
    def scenario(t):
        q = "/queue/" + name("ruby")
        p = subprocess.run(["ruby", "-e", RUBY_SCENARIO, str(t.stomp_port), q],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        return json.loads(p.stdout.decode().strip().splitlines()[-1])

    same(on_all(peers, scenario),
         {"version": "1.2", "got": [["m0", "0"], ["m1", "1"], ["m2", "2"]]})
