"""Several threads on one producer, competing consumers in threads, close
from another thread."""

import threading
import time

import pytest

import sluice


def test_threads_share_one_producer(bootstrap, topic):
    n_threads, per_thread = 4, 2500
    futs = [[] for _ in range(n_threads)]
    errors = []
    with sluice.Producer(bootstrap) as p:
        def work(t):
            try:
                for i in range(per_thread):
                    futs[t].append(p.send(topic, b"%d:%d" % (t, i)))
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)
        threads = [threading.Thread(target=work, args=(t,))
                   for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        p.flush(timeout=60)
    assert errors == []
    offsets = {}
    for t in range(n_threads):
        last = -1
        for i, f in enumerate(futs[t]):
            m = f.result(timeout=0)
            assert m.offset > last  # each thread's records stay in order
            last = m.offset
            offsets[m.offset] = (t, i)
    total = n_threads * per_thread
    assert sorted(offsets) == list(range(total))  # dense, no duplicates

    with sluice.Consumer(bootstrap) as c:
        c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
        seen = 0
        deadline = time.monotonic() + 60
        while seen < total and time.monotonic() < deadline:
            for m in c.consume(1000, timeout=0.5):
                t, i = offsets[m.offset]
                assert m.value == b"%d:%d" % (t, i)
                seen += 1
    assert seen == total


def test_queue_consumers_in_threads_process_each_once(bootstrap, topic):
    total = 2000
    with sluice.Producer(bootstrap) as p:
        for i in range(total):
            p.send(topic, b"%d" % i)
        p.flush(timeout=60)
    lock = threading.Lock()
    seen = {}
    done = threading.Event()

    def worker(name):
        with sluice.QueueConsumer(bootstrap, topic, "pool") as q:
            while not done.is_set():
                for m in q.consume(50, timeout=0.2):
                    with lock:
                        seen.setdefault(int(m.value), []).append(name)
                        if len(seen) == total:
                            done.set()
                    m.ack()
            q.flush(timeout=10)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    done.wait(timeout=120)
    done.set()
    for th in threads:
        th.join()
    assert sorted(seen) == list(range(total))
    assert all(len(v) == 1 for v in seen.values()), "delivered twice"


def test_close_from_another_thread_unblocks_poll(bootstrap, topic):
    with sluice.Producer(bootstrap) as p:  # make the topic exist
        p.send(topic, b"x").result(timeout=30)
    q = sluice.QueueConsumer(bootstrap, topic, "g")
    first = q.poll(timeout=10)
    first.ack()
    result = []

    def blocked():
        try:
            result.append(q.poll(timeout=None))  # nothing will come
        except sluice.ClosedError as e:
            result.append(e)

    th = threading.Thread(target=blocked)
    th.start()
    # Whether close() lands while the thread is inside poll (the usual
    # case) or before it got there, poll must end with ClosedError.
    q.close()
    th.join(timeout=30)
    assert not th.is_alive()
    assert len(result) == 1 and isinstance(result[0], sluice.ClosedError)


def test_consumer_iteration_ends_when_closed_elsewhere(bootstrap, topic):
    with sluice.Producer(bootstrap) as p:
        p.send(topic, b"only").result(timeout=30)
    c = sluice.Consumer(bootstrap)
    c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
    got = []

    def it():
        for m in c:  # blocks for more after the first message
            got.append(m.value)
            threading.Thread(target=c.close).start()

    th = threading.Thread(target=it)
    th.start()
    th.join(timeout=30)
    assert not th.is_alive() and got == [b"only"]
