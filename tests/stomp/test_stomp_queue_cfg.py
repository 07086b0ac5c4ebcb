"""Queue-group settings given through STOMP (RabbitMQ's SUBSCRIBE
arguments) obey the same bounds as every other interface
(groups/queue_cfg.c): x-delivery-limit could once set max_deliveries past
its 65535 cap, which the binary API and the broker settings refuse."""
import os
import subprocess

from conftest import bin_dir


def group_config(broker, group, topic):
    out = subprocess.run(
        [os.path.join(bin_dir(), "sluice"), "-b",
         "127.0.0.1:%d" % broker.binary_port, "group", "config", group,
         "--topic", topic],
        check=True, stdout=subprocess.PIPE).stdout.decode()
    cfg = {}
    for line in out.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            cfg[k.strip()] = v.strip()
    return cfg


def subscribe(r, dest, limit, receipt):
    r.send("SUBSCRIBE", {"destination": dest, "id": receipt,
                         "ack": "client-individual", "receipt": receipt,
                         "x-delivery-limit": limit})


def test_x_delivery_limit_at_the_cap_is_taken(raw, broker):
    c = raw()
    subscribe(c, "/queue/capq", "65534", "s1")
    assert c.expect("RECEIPT").headers["receipt-id"] == "s1"
    # RabbitMQ counts redeliveries, the group deliveries: one more
    assert group_config(broker, "capq", "capq")["max_deliveries"] == "65535"


def test_x_delivery_limit_past_the_cap_is_refused(raw, broker):
    """Before groups/queue_cfg.c: accepted up to 1000000, so this queue
    got max_deliveries 100001."""
    c = raw()
    subscribe(c, "/queue/overq", "100000", "s1")
    f = c.expect("ERROR")
    text = f.headers.get("message", "") + f.body.decode()
    assert "x-delivery-limit" in text, f
    assert "0..65534" in text, f
    assert "100000" in text, f
    # only this connection closes; the queue was not created with it
    c.expect_closed()
    d = raw()
    subscribe(d, "/queue/overq", "3", "s2")
    assert d.expect("RECEIPT").headers["receipt-id"] == "s2"
    assert group_config(broker, "overq", "overq")["max_deliveries"] == "4"


def test_x_delivery_limit_just_past_the_cap_is_refused(raw):
    c = raw()
    subscribe(c, "/queue/edgeq", "65535", "s1")
    f = c.expect("ERROR")
    assert "x-delivery-limit" in f.headers.get("message", "") + \
        f.body.decode(), f
