#!/usr/bin/env python3
"""A work queue with retries and a dead-letter queue.

A producer enqueues jobs on the topic `jobs`; a pool of workers (threads,
each with its own QueueConsumer in the queue group `workers`) takes them.
Each job is processed once by one worker:

  - a job that succeeds is acked;
  - a job that fails is nacked with an exponential delay and retried, up
    to MAX_ATTEMPTS deliveries (msg.attempts counts them);
  - a job that can never succeed ("poison") is rejected at once, and a job
    still failing after MAX_ATTEMPTS is rejected too: both land in the
    dead-letter topic `jobs.DLQ`, with headers saying why.

Finally the DLQ is read back as an ordinary topic.

    ./scripts/run.sh                     # in another terminal
    PYTHONPATH=bindings/python /usr/bin/python3 examples/work_queue.py
"""

import argparse
import json
import os
import threading
import time

import sluice

MAX_ATTEMPTS = 3
BASE_DELAY = 0.05  # seconds; doubled on every retry


def process(job, attempt):
    """The 'business logic': raise to fail."""
    if job["kind"] == "poison":
        raise ValueError("cannot process job %d: malformed" % job["id"])
    if job["kind"] == "flaky" and attempt < 3:
        raise RuntimeError("job %d: upstream timeout" % job["id"])
    if job["kind"] == "broken":
        raise RuntimeError("job %d: upstream down" % job["id"])
    return job["id"] * 2


def worker(bootstrap, topic, results, lock, stop):
    with sluice.QueueConsumer(bootstrap, topic, "workers") as queue:
        while not stop.is_set():
            msg = queue.poll(timeout=0.2)
            if msg is None:
                continue
            job = json.loads(msg.value)
            try:
                value = process(job, msg.attempts)
            except ValueError as e:  # permanent: no point retrying
                msg.reject(str(e))
                outcome = "rejected"
            except Exception as e:  # transient: retry later, or give up
                if msg.attempts >= MAX_ATTEMPTS:
                    msg.reject("gave up after %d attempts: %s" %
                               (msg.attempts, e))
                    outcome = "gave up"
                else:
                    msg.nack(delay=BASE_DELAY * 2 ** (msg.attempts - 1))
                    outcome = "retry"
            else:
                msg.ack()
                outcome = "done"
            with lock:
                results.setdefault(job["id"], []).append(
                    (outcome, msg.attempts))


def main(bootstrap, topic, workers=3):
    jobs = [{"id": i, "kind": "ok"} for i in range(20)]
    jobs += [{"id": 20, "kind": "flaky"}, {"id": 21, "kind": "poison"},
             {"id": 22, "kind": "broken"}]
    with sluice.Producer(bootstrap) as producer:
        for job in jobs:
            producer.send(topic, json.dumps(job).encode(),
                          key=str(job["id"]).encode())
        producer.flush()
    print("enqueued %d jobs on %s" % (len(jobs), topic))

    results, lock, stop = {}, threading.Lock(), threading.Event()
    pool = [threading.Thread(target=worker,
                             args=(bootstrap, topic, results, lock, stop))
            for _ in range(workers)]
    for t in pool:
        t.start()
    final = {"done", "rejected", "gave up"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            if len(results) == len(jobs) and all(
                    r[-1][0] in final for r in results.values()):
                break
        time.sleep(0.05)
    stop.set()
    for t in pool:
        t.join()

    for job_id in (20, 21, 22):
        print("job %d: %s" % (job_id, " -> ".join(
            "%s(attempt %d)" % o for o in results[job_id])))
    done = sorted(i for i, r in results.items() if r[-1][0] == "done")
    print("done: %d jobs" % len(done))

    # The dead-letter topic is an ordinary topic: read it from the start.
    dead = []
    with sluice.Consumer(bootstrap) as dlq:
        dlq.assign([(topic + ".DLQ", 0, sluice.OFFSET_BEGINNING)])
        for msg in dlq.messages(idle_timeout=2.0):
            dead.append(msg)
            print("DLQ: job %s reason=%s attempts=%s text=%r" % (
                json.loads(msg.value)["id"],
                msg.header("dlq.reason").decode(),
                msg.header("dlq.attempts").decode(),
                msg.header("dlq.reason-text").decode()))
            if len(dead) == 2:
                break

    ok = (done == list(range(21)) and
          [o for o, _ in results[20]] == ["retry", "retry", "done"] and
          results[21] == [("rejected", 1)] and
          [o for o, _ in results[22]] == ["retry", "retry", "gave up"] and
          sorted(json.loads(m.value)["id"] for m in dead) == [21, 22])
    print("OK" if ok else "UNEXPECTED RESULT")
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default=os.environ.get(
        "SLUICE_BOOTSTRAP", "127.0.0.1:7410"))
    ap.add_argument("--topic", default="jobs")
    args = ap.parse_args()
    raise SystemExit(main(args.bootstrap, args.topic))
