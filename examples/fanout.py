#!/usr/bin/env python3
"""Publish/subscribe fan-out.

A publisher sends price ticks to the topic `prices` (3 partitions, keyed by
symbol, so the ticks of one symbol stay in order). Three independent
services subscribe, each as its own stream group: every group receives
every tick, while within a group the partitions are shared among its
members. Each service commits its offsets, so a restarted service resumes
where it left off.

    ./scripts/run.sh                     # in another terminal
    PYTHONPATH=bindings/python /usr/bin/python3 examples/fanout.py
"""

import argparse
import os
import threading
import time

import sluice

SYMBOLS = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"]
TICKS_PER_SYMBOL = 40
SERVICES = ["audit", "alerts", "dashboard"]


def subscriber(bootstrap, topic, service, expected, seen):
    """One service: its own stream group over the topic."""
    with sluice.Consumer(bootstrap, group="%s-%s" % (topic, service),
                         auto_offset_reset="earliest") as consumer:
        consumer.subscribe([topic])
        got = seen[service]
        deadline = time.monotonic() + 60
        while sum(len(v) for v in got.values()) < expected \
                and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                symbol = msg.key.decode()
                got.setdefault(symbol, []).append(int(msg.value))
            consumer.commit()


def main(bootstrap, topic):
    with sluice.Admin(bootstrap) as admin:
        try:
            admin.create_topic(topic, partitions=3)
        except sluice.TopicExistsError:
            pass

    expected = len(SYMBOLS) * TICKS_PER_SYMBOL
    seen = {s: {} for s in SERVICES}
    services = [threading.Thread(target=subscriber,
                                 args=(bootstrap, topic, s, expected, seen))
                for s in SERVICES]
    for t in services:
        t.start()

    with sluice.Producer(bootstrap) as publisher:
        for tick in range(TICKS_PER_SYMBOL):
            for symbol in SYMBOLS:
                publisher.send(topic, b"%d" % tick, key=symbol.encode())
        publisher.flush()
    print("published %d ticks for %d symbols" % (expected, len(SYMBOLS)))

    for t in services:
        t.join()
    ok = True
    for service in SERVICES:
        got = seen[service]
        total = sum(len(v) for v in got.values())
        in_order = all(v == list(range(TICKS_PER_SYMBOL))
                       for v in got.values())
        print("%-10s received %d ticks, per-symbol order kept: %s"
              % (service, total, in_order))
        ok &= total == expected and in_order and sorted(got) == sorted(
            SYMBOLS)
    print("OK" if ok else "UNEXPECTED RESULT")
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default=os.environ.get(
        "SLUICE_BOOTSTRAP", "127.0.0.1:7410"))
    ap.add_argument("--topic", default="prices")
    args = ap.parse_args()
    raise SystemExit(main(args.bootstrap, args.topic))
