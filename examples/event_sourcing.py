#!/usr/bin/env python3
"""Event sourcing over a compacted topic.

Every change to a bank account is written to the compacted topic
`accounts` as the account's new state, keyed by account id; closing an
account writes a tombstone (a null value). Compaction keeps only the latest
record per key (and drops tombstones after `delete-retention-ms`), so the
topic never grows beyond one record per live account, yet replaying it
from offset 0 always rebuilds the current state of every account.

A second "service" proves it: it starts from nothing, replays the topic
from the beginning up to the end offset it saw at start-up, and ends with
exactly the state the writer holds.

    ./scripts/run.sh                     # in another terminal
    PYTHONPATH=bindings/python /usr/bin/python3 examples/event_sourcing.py
"""

import argparse
import json
import os
import random
import time

import sluice


def write_history(bootstrap, topic, n_accounts=25, n_events=2000):
    """Apply random deposits/withdrawals/closures; return the final state."""
    rng = random.Random(7)
    state = {}
    with sluice.Producer(bootstrap) as producer:
        for _ in range(n_events):
            acct = "acct-%03d" % rng.randrange(n_accounts)
            if acct in state and rng.random() < 0.02:
                del state[acct]  # closed: a tombstone deletes the key
                producer.send(topic, None, key=acct.encode())
                continue
            s = state.setdefault(acct, {"balance": 0, "version": 0})
            s["balance"] += rng.randrange(-50, 100)
            s["version"] += 1
            producer.send(topic, json.dumps(s, sort_keys=True).encode(),
                          key=acct.encode())
        producer.flush()
    return state


def rebuild(bootstrap, topic):
    """Replay the compacted topic from offset 0 into a dict."""
    state, records = {}, 0
    with sluice.Consumer(bootstrap) as consumer:
        ends = {}
        with sluice.Admin(bootstrap) as admin:
            for p in admin.topic(topic).partitions:
                if p.log_end > p.log_start:
                    ends[p.partition] = p.log_end
        consumer.assign([(topic, p, sluice.OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + 60
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError("replay did not reach the end offsets "
                                   "%r" % ends)
            for msg in consumer.consume(1000, timeout=5.0):
                records += 1
                key = msg.key.decode()
                if msg.value is None:
                    state.pop(key, None)  # tombstone
                else:
                    state[key] = json.loads(msg.value)
                if msg.offset + 1 >= ends.get(msg.partition, 0):
                    ends.pop(msg.partition, None)
    return state, records


def main(bootstrap, topic):
    with sluice.Admin(bootstrap) as admin:
        try:
            # small segments so compaction has closed segments to work on
            admin.create_topic(topic, partitions=2, config={
                "cleanup-policy": "compact", "segment-bytes": "16k"})
        except sluice.TopicExistsError:
            pass
    truth = write_history(bootstrap, topic)
    rebuilt, records = rebuild(bootstrap, topic)
    print("writer state: %d live accounts" % len(truth))
    print("replayed %d records from offset 0 (compaction drops superseded "
          "ones as segments close)" % records)
    ok = rebuilt == truth
    for acct in sorted(truth)[:3]:
        print("  %s %r" % (acct, rebuilt.get(acct)))
    print("OK" if ok else "UNEXPECTED RESULT: rebuilt state differs")
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default=os.environ.get(
        "SLUICE_BOOTSTRAP", "127.0.0.1:7410"))
    ap.add_argument("--topic", default="accounts")
    args = ap.parse_args()
    raise SystemExit(main(args.bootstrap, args.topic))
