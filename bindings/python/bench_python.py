#!/usr/bin/env python3
"""Python throughput through the Sluice bindings, next to python3-stomp
(stomp.py) against the same broker.

    ./scripts/build.sh && (cd bindings/python && \\
        /usr/bin/python3 setup.py -q build_ext --inplace)
    PYTHONPATH=bindings/python /usr/bin/python3 bindings/python/bench_python.py \\
        [--count 200000] [--stomp-count 20000] [--size 100]

Starts its own sluiced (tests/harness, port 0, temporary data directory)
unless --bootstrap/--stomp are given. Measures, one after the other:

  bindings producer      Producer.send() of COUNT records, then flush();
                         acks=durable (fsynced) and acks=written
  bindings queue         QueueConsumer: consume(1000) + msg.ack() per
                         record, until COUNT records were acked; once with
                         the defaults (queue.credits 256, ack.batch.records
                         256) and once with 2000 / 2000
  bindings stream        Consumer: consume(1000) from offset 0
  stomp producer         stomp.py SEND to /queue/NAME, persistent:true,
                         a receipt every 100 sends, waits for the last
  stomp consumer         stomp.py SUBSCRIBE client-individual,
                         prefetch-count 1000, ACK per message

Prints one line per measurement (records/s, MB/s of payload) and a
Markdown table. Not a test: run it on a quiet machine.
"""

import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))

import sluice  # noqa: E402

results = []


def report(name, n, size, secs, note=""):
    rate = n / secs
    results.append((name, n, size, secs, rate, note))
    print("%-30s %8d x %5d B in %6.2fs: %9.0f rec/s %6.1f MB/s %s"
          % (name, n, size, secs, rate, rate * size / 1e6, note), flush=True)


def bench_producer(bootstrap, topic, n, size, acks):
    value = b"x" * size
    with sluice.Producer(bootstrap, acks=acks) as p:
        p.send(topic, value).result()  # connect + metadata outside timing
        t0 = time.perf_counter()
        for _ in range(n):
            p.send(topic, value)
        p.flush()
        dt = time.perf_counter() - t0
    report("bindings producer acks=%s" % acks, n, size, dt)


def bench_queue(bootstrap, topic, n, size, label, **config):
    got = 0
    with sluice.QueueConsumer(bootstrap, topic, "bench-" + label,
                              **config) as q:
        first = q.consume(1000, timeout=10)
        t0 = time.perf_counter()
        for m in first:
            m.ack()
        got = len(first)
        while got < n:
            msgs = q.consume(1000, timeout=10)
            if not msgs:
                break
            for m in msgs:
                m.ack()
            got += len(msgs)
        q.flush()
        dt = time.perf_counter() - t0
    report("bindings queue consume+ack", got, size, dt,
           ", ".join("%s=%s" % kv for kv in config.items()) or "defaults")


def bench_stream(bootstrap, topic, n, size):
    got = 0
    with sluice.Consumer(bootstrap) as c:
        c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
        t0 = time.perf_counter()
        while got < n:
            msgs = c.consume(1000, timeout=10)
            if not msgs:
                break
            got += len(msgs)
        dt = time.perf_counter() - t0
    report("bindings stream consume", got, size, dt)


def bench_stomp(host, port, dest, n, size):
    import stomp

    class L(stomp.ConnectionListener):
        def __init__(self):
            self.receipts = set()
            self.cv = threading.Condition()
            self.count = 0
            self.conn = None

        def on_receipt(self, frame):
            with self.cv:
                self.receipts.add(frame.headers.get("receipt-id"))
                self.cv.notify_all()

        def on_message(self, frame):
            self.conn.ack(frame.headers["message-id"], "1")
            with self.cv:
                self.count += 1
                if self.count >= n:
                    self.cv.notify_all()

    body = "x" * size
    prod = stomp.Connection([(host, port)], heartbeats=(0, 0))
    pl = L()
    prod.set_listener("", pl)
    prod.connect(wait=True)
    t0 = time.perf_counter()
    last = None
    for i in range(n):
        h = {"persistent": "true"}
        if i % 100 == 99 or i == n - 1:
            last = "r%d" % i
            h["receipt"] = last
        prod.send(dest, body, headers=h)
    with pl.cv:
        pl.cv.wait_for(lambda: last in pl.receipts, timeout=300)
    dt = time.perf_counter() - t0
    prod.disconnect()
    report("stomp.py producer", n, size, dt, "persistent, receipt/100")

    cons = stomp.Connection([(host, port)], heartbeats=(0, 0))
    cl = L()
    cl.conn = cons
    cons.set_listener("", cl)
    cons.connect(wait=True)
    t0 = time.perf_counter()
    cons.subscribe(dest, id="1", ack="client-individual",
                   headers={"prefetch-count": "1000"})
    with cl.cv:
        cl.cv.wait_for(lambda: cl.count >= n, timeout=300)
    dt = time.perf_counter() - t0
    cons.disconnect()
    report("stomp.py consumer", cl.count, size, dt,
           "client-individual ACK each")


def main():
    ap = argparse.ArgumentParser(description="Python client throughput")
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--stomp-count", type=int, default=20000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--bootstrap", help="HOST:PORT of a running sluiced")
    ap.add_argument("--stomp", help="HOST:PORT of its STOMP listener")
    a = ap.parse_args()

    broker = None
    if a.bootstrap:
        bootstrap = a.bootstrap
        stomp_host, stomp_port = (a.stomp or "127.0.0.1:61613").rsplit(":", 1)
    else:
        import sluice_harness
        broker = sluice_harness.Broker().start()
        bootstrap = "%s:%d" % broker.binary_addr
        stomp_host, stomp_port = broker.stomp_addr
    try:
        tag = str(int(time.time()))
        print("sluice bindings %s, libsluice %s, python %s" % (
            sluice.__version__, sluice.LIBSLUICE_VERSION,
            sys.version.split()[0]))
        bench_producer(bootstrap, "bench-w-" + tag, a.count, a.size,
                       "written")
        t = "bench-d-" + tag
        bench_producer(bootstrap, t, a.count, a.size, "durable")
        bench_stream(bootstrap, t, a.count + 1, a.size)
        bench_queue(bootstrap, t, a.count + 1, a.size, "default")
        bench_queue(bootstrap, t, a.count + 1, a.size, "tuned",
                    queue_credits=2000, ack_batch_records=2000)
        if a.stomp_count:
            bench_stomp(stomp_host, int(stomp_port), "/queue/bench-s-" + tag,
                        a.stomp_count, a.size)
    finally:
        if broker is not None:
            broker.stop()
            broker.cleanup()

    print()
    print("| workload | records | size | seconds | records/s |")
    print("|---|---:|---:|---:|---:|")
    for name, n, size, secs, rate, note in results:
        print("| %s%s | %d | %d B | %.2f | %.0f |" % (
            name, " (%s)" % note if note else "", n, size, secs, rate))


if __name__ == "__main__":
    main()
