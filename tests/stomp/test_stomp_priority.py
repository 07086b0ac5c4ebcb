"""Message priority on STOMP queues (issue 19): RabbitMQ's x-max-priority
on the SUBSCRIBE that creates the queue, or the group setting
max_priority (`sluice group config Q --topic Q --alter max_priority=9`,
what ActiveMQ's prioritizedMessages policy is for). What is available goes
out highest `priority` first, in send order within a priority; without the
setting, log order. test_stomp_peers.py runs the same scenario against
RabbitMQ and ActiveMQ."""
import os
import subprocess

from conftest import bin_dir


def sluice(broker, *args):
    return subprocess.run(
        [os.path.join(bin_dir(), "sluice"), "-b",
         "127.0.0.1:%d" % broker.binary_port] + list(args),
        check=True, stdout=subprocess.PIPE).stdout.decode()


PRIOS = ["1", "5", "9", None, "5", "0", "9", "12"]


def send_all(p, dest):
    for i, pr in enumerate(PRIOS):
        h = {"destination": dest, "receipt": "r%d" % i}
        if pr is not None:
            h["priority"] = pr
        p.send("SEND", h, "m%d" % i)
        assert p.expect("RECEIPT").headers["receipt-id"] == "r%d" % i


def consume(c, dest, n, **extra):
    h = {"destination": dest, "id": "s", "ack": "client-individual",
         "prefetch-count": "1", "receipt": "sub"}
    h.update(extra)
    c.send("SUBSCRIBE", h)
    assert c.expect("RECEIPT").headers["receipt-id"] == "sub"
    got = []
    for _ in range(n):
        m = c.expect("MESSAGE")
        got.append(m.body.decode())
        c.send("ACK", {"id": m.headers["ack"]})
    return got


# 9s (and 12, clamped to 9) in send order, then 5s, the absent one (4),
# 1, 0
BY_PRIORITY = ["m2", "m6", "m7", "m1", "m4", "m3", "m0", "m5"]


def test_x_max_priority_orders_a_backlog(raw, broker):
    c, p = raw(), raw()
    # the SUBSCRIBE creates the queue with its priority; nothing sent yet
    c.call("SUBSCRIBE", {"destination": "/queue/prio", "id": "x",
                         "x-max-priority": "9", "receipt": "mk"})
    c.call("UNSUBSCRIBE", {"id": "x", "receipt": "un"})
    send_all(p, "/queue/prio")
    assert consume(c, "/queue/prio", len(PRIOS)) == BY_PRIORITY
    cfg = sluice(broker, "group", "config", "prio", "--topic", "prio")
    assert "max_priority=9" in cfg.replace(" ", "")


def test_without_max_priority_the_log_order_holds(raw):
    c, p = raw(), raw()
    send_all(p, "/queue/noprio")
    assert consume(c, "/queue/noprio", len(PRIOS)) == \
        ["m%d" % i for i in range(len(PRIOS))]


def test_group_setting_turns_priority_on(raw, broker):
    """An ActiveMQ application: the queue exists (its messages are
    waiting); the administrator turns priorities on."""
    c, p = raw(), raw()
    c.call("SUBSCRIBE", {"destination": "/queue/amqprio", "id": "x",
                         "receipt": "mk"})
    c.call("UNSUBSCRIBE", {"id": "x", "receipt": "un"})
    send_all(p, "/queue/amqprio")
    sluice(broker, "group", "config", "amqprio", "--topic", "amqprio",
           "--alter", "max_priority=9")
    assert consume(c, "/queue/amqprio", len(PRIOS)) == BY_PRIORITY


def test_bad_x_max_priority_is_refused(raw):
    c = raw()
    c.send("SUBSCRIBE", {"destination": "/queue/badprio", "id": "x",
                         "x-max-priority": "256"})
    f = c.expect("ERROR")
    assert "x-max-priority must be 0..255, not '256'" in f.body.decode(), f
    assert c.expect_closed() == []
