"""Queue group state survives the kill -9 of its coordinator (issue 14,
docs/cluster.md section 6), with 3 real sluiced (tests/cluster's
cluster_harness) and this package's QueueConsumer.

The coordinator of group g is the leader of partition fnv1a32(g) mod
partitions of __sluice_group_state. Acks, nacks and rejects answered by
it (flush() returned) are in that partition on every in-sync replica, so
after its kill -9 the new leader rebuilds them: no acked record is
delivered again, attempts and failures carry over, dead-lettered records
stay dead-lettered, and records acquired but not acked are delivered
again (locks are not part of the state)."""
import os
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

import sluice

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("SLUICE_SOURCE_DIR") or os.path.normpath(
    os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))

import cluster_harness  # noqa: E402

STATE = "__sluice_group_state"


@pytest.fixture
def cluster(bin_dir, tmp_path):
    os.environ["SLUICE_BIN_DIR"] = bin_dir
    c = cluster_harness.Cluster(tmp_path, n=3)
    c.start()
    yield c
    c.stop_all()


fnv1a32 = cluster_harness.fnv1a32


def describe(c, nid, topic):
    """[(leader, end offset)] per partition as node nid says, or None."""
    p = c.cli(nid, "topic", "describe", topic, check=False)
    if p.returncode != 0:
        return None
    out = []
    for ln in p.stdout.splitlines():
        f = ln.split()
        if f and f[0] == "partition" and "leader" in f:
            out.append((int(f[f.index("leader") + 1]), int(f[5])))
    return out or None


def all_up(c, nodes):
    want = {n: "up" for n in nodes}
    ldr = c.agreed_leader(nodes)
    return ldr if ldr and all(
        (c.status(n) or {}).get("nodes") == want for n in nodes) else None


def coordinator(c, nid, group, topic):
    """The leader of the group's state partition (before issue 14, with
    no state topic: of partition fnv1a32(group) mod partitions of the
    data topic, which the test uses to show it fails without the
    change)."""
    d = describe(c, nid, STATE) or describe(c, nid, topic)
    if not d:
        return None
    ld = d[fnv1a32(group) % len(d)][0]
    return ld if ld > 0 else None


def registered(c, nid, among):
    """Every node in among names nid at the binary address it has now
    (the harness restarts a node at new client ports; it registers them
    through the metadata leader a moment after it is up again)."""
    want = "%s:%d" % c.nodes[nid].binary_addr
    for x in among:
        p = c.cli(x, "cluster", "status", check=False)
        if p.returncode != 0:
            return False
        if not any(f[:2] == ["node", str(nid)] and "binary" in f and
                   f[f.index("binary") + 1] == want
                   for f in map(str.split, p.stdout.splitlines())):
            return False
    return True


def full_isr(c, nid, topic, part, nodes):
    """Node nid names every one of nodes in the ISR of topic/part."""
    d = c.describe(nid, topic)
    if not d or part >= len(d):
        return False
    f = d[part].split()
    return "isr" in f and \
        sorted(f[f.index("isr") + 1].split(",")) == sorted(map(str, nodes))


def bootstrap(c, nodes):
    return ",".join("%s:%d" % c.nodes[n].binary_addr for n in nodes)


def poll_until(qc, want, deadline_s=60.0):
    """Poll until want(msgs) holds; the messages in order."""
    got = []
    end = time.monotonic() + deadline_s
    while not want(got):
        assert time.monotonic() < end, "timed out; got %r" % (
            [(m.offset, m.attempts) for m in got],)
        m = qc.poll(0.5)
        if m is not None:
            got.append(m)
    return got


def test_queue_state_survives_coordinator_kill(cluster):
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "jobs", "--partitions", "1",
          "--replication-factor", "3")
    c.wait(lambda: all(describe(c, n, "jobs") for n in all3), "jobs")
    n = 60
    c.cli(1, "produce", "jobs", "--acks", "durable",
          input="".join("job-%03d\n" % i for i in range(n)))
    bs = bootstrap(c, all3)

    # 1. settle the first 30: ack 0-19, reject 20-24, nack 25-29 twice
    qc = sluice.QueueConsumer(bs, "jobs", "g", prefetch=5)
    seen = {}  # offset -> (attempts, failures) last seen before the kill
    acked, rejected = set(), set()
    nacks = {}
    end = time.monotonic() + 60
    while len(acked) < 20 or len(rejected) < 5 or \
            any(nacks.get(o, 0) < 2 for o in range(25, 30)):
        assert time.monotonic() < end, (acked, rejected, nacks)
        m = qc.poll(0.5)
        if m is None:
            continue
        seen[m.offset] = (m.attempts, m.failures)
        assert m.offset not in acked and m.offset not in rejected
        if m.offset < 20:
            m.ack()
            acked.add(m.offset)
        elif m.offset < 25:
            m.reject("bad job")
            rejected.add(m.offset)
        else:  # nacked: available again at once, one failure more
            m.nack()
            nacks[m.offset] = nacks.get(m.offset, 0) + 1
        qc.flush()  # every settlement answered before the next poll
    qc.close()
    # the dead-lettered copies are on every replica of jobs.DLQ
    c.wait(lambda: all((describe(c, x, "jobs.DLQ") or [(0, 0)])[0][1] >= 5
                       for x in all3), "the DLQ copies replicated")

    # 2. a consumer holds records without acking them
    holder = sluice.QueueConsumer(bs, "jobs", "g", prefetch=5)
    held = poll_until(holder, lambda g: len(g) >= 3)
    held_attempts = {m.offset: m.attempts for m in held}

    # 3. the coordinator dies
    coord = c.wait(lambda: coordinator(c, 1, "g", "jobs"), "g's coordinator")
    c.kill9(coord)
    rest = [x for x in all3 if x != coord]

    # 4. a new consumer gets everything not acked or rejected, once
    expect = set(range(25, n))
    qc = sluice.QueueConsumer(bootstrap(c, rest), "jobs", "g", prefetch=10)
    got = {}
    end = time.monotonic() + 90
    while set(got) != expect:
        assert time.monotonic() < end, sorted(expect - set(got))
        m = qc.poll(0.5)
        if m is None:
            continue
        assert m.offset in expect, \
            "offset %d delivered again after its answered %s" % (
                m.offset, "ack" if m.offset < 20 else "reject")
        assert m.offset not in got, "offset %d twice" % m.offset
        got[m.offset] = (m.attempts, m.failures)
        m.ack()
    qc.flush()
    # nothing else is left for the group (the acked ones stay acked)
    assert qc.poll(1.0) is None
    # a reject on the new coordinator: its dead-letter copy is stored by
    # the DLQ partition's leader, wherever that is now (forwarded)
    c.cli(rest[0], "produce", "jobs", "--acks", "durable", input="late\n")
    m = poll_until(qc, lambda g: len(g) >= 1)[0]
    assert m.value == b"late"
    m.reject("late")
    qc.flush()
    qc.close()
    holder.close()
    c.wait(lambda: all((describe(c, x, "jobs.DLQ") or [(0, 0)])[0][1] >= 6
                       for x in rest), "the late reject in the DLQ")

    # attempts and failures never go backwards
    for off in range(25, 30):
        a0, f0 = seen[off]
        a1, f1 = got[off]
        assert a1 > a0 and f1 >= f0, (off, seen[off], got[off])
        assert f1 >= 2, (off, got[off])
    for off, a0 in held_attempts.items():
        assert got[off][0] >= a0, (off, a0, got[off])

    # the dead-letter moves survived: each rejected record in the DLQ
    p = c.cli(rest[0], "dlq", "show", "jobs.DLQ", "--count", "100",
              "--format", "json")
    offs = sorted(int(ln.split('"dlq.offset":"')[1].split('"')[0])
                  for ln in p.stdout.splitlines() if "dlq.offset" in ln)
    assert set(offs) == set(range(20, 25)) | {n}, p.stdout


def test_stream_group_offsets_survive_coordinator_kill(cluster):
    """Committed stream group offsets are group state too: after the
    coordinator's kill -9 the group resumes at its committed offsets on
    the new coordinator; no committed offset goes backwards."""
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "ev", "--partitions", "2",
          "--replication-factor", "3")
    c.wait(lambda: all(describe(c, x, "ev") for x in all3), "ev")
    n = 40
    c.cli(1, "produce", "ev", "--acks", "durable", "--key-separator", ":",
          input="".join("k%d:ev-%03d\n" % (i, i) for i in range(n)))
    bs = bootstrap(c, all3)
    con = sluice.Consumer(bs, "sg", auto_offset_reset="earliest",
                          enable_auto_commit=False)
    con.subscribe(["ev"])
    first = poll_until(con, lambda g: len(g) >= n // 2)
    con.commit()  # answered: on every in-sync replica of its partition
    committed = {p: con.committed("ev", p) for p in (0, 1)}
    pos = {}
    for m in first:
        pos[m.partition] = max(pos.get(m.partition, 0), m.offset + 1)
    assert committed == {p: pos.get(p, 0) for p in (0, 1)}, (committed, pos)
    coord = c.wait(lambda: coordinator(c, 1, "sg", "ev"), "sg's coordinator")
    c.kill9(coord)
    rest = [x for x in all3 if x != coord]

    con2 = sluice.Consumer(bootstrap(c, rest), "sg",
                           auto_offset_reset="earliest",
                           enable_auto_commit=False)
    con2.subscribe(["ev"])
    ends = {}
    for ln in c.cli(rest[0], "topic", "describe", "ev").stdout.splitlines():
        f = ln.split()
        if f and f[0] == "partition":
            ends[int(f[1])] = int(f[5])
    left = sum(ends[p] - max(committed[p], 0) for p in (0, 1))
    rest_msgs = poll_until(con2, lambda g: len(g) >= left, 90)
    for m in rest_msgs:
        assert m.offset >= committed[m.partition], \
            "partition %d offset %d read again below its committed %d" % (
                m.partition, m.offset, committed[m.partition])
    got = sorted(m.value for m in first + rest_msgs)
    assert got == sorted(b"ev-%03d" % i for i in range(n))
    con2.commit()
    for p in (0, 1):
        assert con2.committed("ev", p) >= committed[p]
    con.close()
    con2.close()


def stream_ends(c, nid, topic, nparts):
    ends = {}
    for ln in c.cli(nid, "topic", "describe", topic).stdout.splitlines():
        f = ln.split()
        if f and f[0] == "partition":
            ends[int(f[1])] = int(f[5])
    assert sorted(ends) == list(range(nparts)), ends
    return ends


def test_stream_commit_rides_through_coordinator_kill(cluster):
    """Two members of a stream group poll, their coordinator is killed
    with -9, and each commits: commit() returns without raising (the
    client finds the new coordinator and sends the commit again), and
    the new coordinator accepts it because the group's generation and
    members were replicated with its offsets (Kafka keeps them in
    __consumer_offsets). The committed offsets are what was committed,
    the members keep their partitions, and a consumer started afterwards
    resumes there. Before: the first commit() after the kill raised
    DisconnectedError, and the new coordinator, knowing no members,
    refused the retry (UNKNOWN_MEMBER)."""
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "sk", "--partitions", "2",
          "--replication-factor", "3")
    c.wait(lambda: all(describe(c, x, "sk") for x in all3), "sk")
    for p in (0, 1):
        c.cli(1, "produce", "sk", "--acks", "durable", "--partition", str(p),
              input="".join("p%d-%03d\n" % (p, i) for i in range(20)))
    bs = bootstrap(c, all3)
    conf = dict(auto_offset_reset="earliest", enable_auto_commit=False,
                session_timeout_ms=6000)
    a = sluice.Consumer(bs, "sgk", **conf)
    a.subscribe(["sk"])
    b = sluice.Consumer(bs, "sgk", **conf)
    b.subscribe(["sk"])
    # a learns of b's join from its next heartbeat and rejoins: one
    # partition each (what a read before is read again from 0)
    end = time.monotonic() + 60
    while not (len(a.assignment()) == 1 and len(b.assignment()) == 1):
        assert time.monotonic() < end, (a.assignment(), b.assignment())
        for con in (a, b):
            con.poll(0.2)
    mine = {con: con.assignment()[0].partition for con in (a, b)}
    assert sorted(mine.values()) == [0, 1], mine
    got = {a: [], b: []}
    for con in (a, b):
        con.seek("sk", mine[con], 0)
        while len(got[con]) < 5:
            m = con.poll(1.0)
            assert m is not None or time.monotonic() < end
            if m is not None:
                got[con].append(m)
    pos = {}
    for con in (a, b):
        for m in got[con]:
            assert m.partition == mine[con], (m.partition, mine)
            assert m.value == b"p%d-%03d" % (m.partition, m.offset)
        pos[mine[con]] = con.assignment()[0].offset
        assert pos[mine[con]] == got[con][-1].offset + 1, pos
    # first commits at the old coordinator
    a.commit()
    b.commit()
    first = {p: a.committed("sk", p) for p in (0, 1)}
    assert first == pos, (first, pos)

    coord = c.wait(lambda: coordinator(c, 1, "sgk", "sk"), "sgk's coordinator")
    # records read after the last commit, then the kill: their commit
    # goes to a coordinator that is gone
    for con in (a, b):
        while True:
            m = con.poll(1.0)
            assert m is not None, "no record after offset %d" % (
                got[con][-1].offset,)
            got[con].append(m)
            if m.offset >= got[con][0].offset + 9:
                break
        pos[mine[con]] = got[con][-1].offset + 1
    c.kill9(coord)
    # committed() and commit() find the new coordinator (must not raise)
    assert b.committed("sk", mine[b]) == first[mine[b]]
    a.commit()
    b.commit()
    now = {p: a.committed("sk", p) for p in (0, 1)}
    assert now == pos, ("committed at the new coordinator", now, pos)
    assert all(now[p] >= first[p] for p in (0, 1)), (first, now)
    # still members of the same generation: each keeps its partition
    # and reads on from where it was
    rest = [x for x in all3 if x != coord]
    ends = stream_ends(c, rest[0], "sk", 2)
    for con in (a, b):
        p = mine[con]
        while got[con][-1].offset + 1 < ends[p]:
            m = con.poll(1.0)
            if m is None:
                continue
            assert m.partition == p, (m.partition, p)
            assert m.offset == got[con][-1].offset + 1, \
                "partition %d: %d after %d" % (p, m.offset,
                                               got[con][-1].offset)
            got[con].append(m)
        con.commit()
        assert con.committed("sk", p) == ends[p]
    a.close()
    b.close()
    # a consumer started afterwards resumes at the committed offsets
    for p in (0, 1):
        c.cli(rest[0], "produce", "sk", "--acks", "durable", "--partition",
              str(p), input="late-%d\n" % p)
    d = sluice.Consumer(bootstrap(c, rest), "sgk", **conf)
    d.subscribe(["sk"])
    late = poll_until(d, lambda g: len(g) >= 2, 60)
    assert sorted((m.partition, m.offset, m.value) for m in late) == \
        [(p, ends[p], b"late-%d" % p) for p in (0, 1)]
    assert d.poll(0.5) is None
    d.close()


def read_lines(p, n, deadline_s=60.0):
    """n lines of p's stdout, waiting at most deadline_s in all."""
    out, buf = [], b""
    end = time.monotonic() + deadline_s
    fd = p.stdout.fileno()
    while len(out) < n:
        left = end - time.monotonic()
        assert left > 0, "timed out: %d of %d lines: %r" % (len(out), n, out)
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 65536)
        assert chunk, "the consumer exited: %r" % (p.stderr.read(),)
        buf += chunk
        while b"\n" in buf and len(out) < n:
            ln, buf = buf.split(b"\n", 1)
            out.append(ln.decode())
    return out


def test_cli_group_consumer_rides_through_coordinator_kill(cluster):
    """`sluice consume --group G --follow` across the kill -9 of G's
    coordinator: it prints every record once, exits 0 on SIGINT after
    its final commit, and that commit is at the log end."""
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "ck", "--partitions", "2",
          "--replication-factor", "3")
    c.wait(lambda: all(describe(c, x, "ck") for x in all3), "ck")
    c.cli(1, "produce", "ck", "--acks", "durable",
          input="".join("a%d\n" % i for i in range(20)))
    p = subprocess.Popen([cluster_harness.cli_path(), "-b",
                          bootstrap(c, all3), "consume", "ck", "--group",
                          "cg", "--from-beginning", "--follow"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = read_lines(p, 20)
        coord = c.wait(lambda: coordinator(c, 1, "cg", "ck"),
                       "cg's coordinator")
        c.kill9(coord)
        rest = [x for x in all3 if x != coord]
        c.cli(rest[0], "produce", "ck", "--acks", "durable",
              input="".join("b%d\n" % i for i in range(10)))
        lines += read_lines(p, 10)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert sorted(lines) == sorted(["a%d" % i for i in range(20)] +
                                   ["b%d" % i for i in range(10)])
    ends = stream_ends(c, rest[0], "ck", 2)
    out = c.cli(rest[0], "group", "describe", "cg").stdout
    for part in (0, 1):
        assert "partition ck/%d committed %d " % (part, ends[part]) in out, \
            out


def test_queue_acks_through_repeated_coordinator_kills(cluster):
    """Jepsen-style, short: one consumer acks records and flushes (an
    answered flush = answered acks) while the group's coordinator is
    killed with -9 three times, each time restarted once the next acks
    were answered by the new one. At the end every record was acked, none
    whose ack was answered was delivered again, and a record's attempts
    never went down between deliveries."""
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "rk", "--partitions", "2",
          "--replication-factor", "3")
    c.wait(lambda: all(describe(c, x, "rk") for x in all3), "rk")
    n = 300
    c.cli(1, "produce", "rk", "--acks", "durable", "--key-separator", ":",
          input="".join("k%d:rk-%03d\n" % (i, i) for i in range(n)))
    qc = sluice.QueueConsumer(bootstrap(c, all3), "rk", "grk", prefetch=8)
    answered = set()   # (partition, offset) whose ack was answered
    pending = set()    # acked, flush not returned yet
    unsure = set()     # acked, flush failed: done or delivered again
    attempts = {}      # (partition, offset) -> attempts last delivered
    values = set()
    kills, down = 0, None
    end = time.monotonic() + 240
    while True:
        assert time.monotonic() < end, "%d of %d acked" % (len(answered), n)
        m = qc.poll(0.5)
        if m is None and not pending and len(answered | unsure) == n:
            break  # all acked (the unsure ones did not come back)
        if m is not None:
            k = (m.partition, m.offset)
            assert k not in answered, "%r delivered again after its " \
                "answered ack" % (k,)
            assert m.attempts >= attempts.get(k, 0), (k, m.attempts,
                                                      attempts[k])
            attempts[k] = m.attempts
            values.add(m.value)
            m.ack()
            pending.add(k)
        if len(pending) >= 10 or (m is None and pending):
            try:
                qc.flush()
                answered |= pending
                unsure -= pending
            except sluice.SluiceError:
                unsure |= pending  # not answered: may come again
            pending = set()
            if down is not None:
                c.restart(down)  # the new coordinator answered acks
                c.wait(lambda: all_up(c, all3), "node %d back" % down)
                # at its new address: the harness restarts a node at
                # other client ports, so after three kills none of the
                # bootstrap addresses answers, and the consumer finds the
                # cluster only through the brokers its last lookup named
                # (docs/cluster.md 6). Registered before the next kill,
                # the next lookup names it.
                c.wait(lambda: registered(c, down, all3),
                       "node %d registered again" % down)
                down = None
            elif down is None and kills < 3 and \
                    len(answered | unsure) >= (kills + 1) * n // 5:
                # (progress counts the unsure acks too: with failover
                # under a second, more flushes fail while the coordinator
                # moves, and `answered` alone may never reach the third
                # kill's mark before every record is settled)
                down = c.wait(lambda: coordinator(c, 1, "grk", "rk"),
                              "grk's coordinator")
                c.kill9(down)
                kills += 1
    qc.close()
    assert kills == 3
    assert values == {b"rk-%03d" % i for i in range(n)}


def test_queue_consumer_finds_the_coordinator_past_a_stale_bootstrap(
        cluster):
    """When its coordinator dies, a queue consumer looks the coordinator
    up again through any node it knows of, not only its bootstrap list
    (docs/cluster.md 6), as a Kafka consumer asks the nodes of its
    metadata. Here the one bootstrap node was restarted at another
    address before the coordinator's kill -9, so no bootstrap address
    answers while two nodes serve the group. Before, poll kept trying the
    bootstrap list and the dead coordinator and, after
    delivery.timeout.ms, raised DisconnectedError ("connect ...:
    Connection refused")."""
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "fo", "--partitions", "1",
          "--replication-factor", "3")
    c.wait(lambda: all(describe(c, x, "fo") for x in all3), "fo")
    n = 40
    c.cli(1, "produce", "fo", "--acks", "durable",
          input="".join("fo-%03d\n" % i for i in range(n)))
    # the group's state exists: its coordinator is the state leader
    c.cli(1, "queue", "consume", "fo", "--group", "gfo", "--count", "5")
    coord = c.wait(lambda: coordinator(c, 1, "gfo", "fo"),
                   "gfo's coordinator")
    boot = [x for x in all3 if x != coord][0]
    qc = sluice.QueueConsumer(bootstrap(c, [boot]), "fo", "gfo", prefetch=5,
                              delivery_timeout_ms=60000)
    answered = set()
    end = time.monotonic() + 60
    while len(answered) < 10:
        assert time.monotonic() < end, sorted(answered)
        m = qc.poll(0.5)
        if m is not None:
            m.ack()
            answered.add(m.offset)
    qc.flush()  # answered by the coordinator, which qc is connected to

    # the bootstrap node comes back at another address (a rescheduled
    # container, say); then the coordinator dies
    c.kill9(boot)
    c.restart(boot)
    c.wait(lambda: all_up(c, all3), "node %d back" % boot)
    # back in sync: with the coordinator gone the other two are
    # min-insync-replicas, and the new coordinator can answer acks
    part = fnv1a32("gfo") % len(describe(c, 1, STATE))
    c.wait(lambda: all(full_isr(c, x, STATE, part, all3) and
                       full_isr(c, x, "fo", 0, all3) for x in all3),
           "node %d in sync again" % boot)
    c.kill9(coord)

    unsure = set()  # acks sent when the coordinator died: flush failed
    pending = set()
    end = time.monotonic() + 120
    while True:
        assert time.monotonic() < end, sorted(answered | unsure)
        m = qc.poll(0.5)  # rides out the failover, raises nothing
        if m is None and not pending and \
                answered | unsure == set(range(5, n)):
            break
        if m is not None:
            assert m.offset not in answered, \
                "offset %d delivered again after its answered ack" % m.offset
            assert 5 <= m.offset < n, m.offset
            m.ack()
            pending.add(m.offset)
        if pending and (m is None or len(pending) >= 5):
            try:
                qc.flush()
                answered |= pending
                unsure -= pending
            except sluice.SluiceError:
                unsure |= pending  # not answered: may come again
            pending = set()
    qc.close()
    # the new coordinator answered acks (the consumer found it)
    assert len(answered) > 10


def cli_groups(c, nid):
    """{name: (kind, state)} from `sluice group list` on node nid."""
    out = {}
    for ln in c.cli(nid, "group", "list").stdout.splitlines():
        f = ln.split("\t")
        out[f[0]] = (f[1], f[2])
    return out


def test_group_list_and_describe_answer_for_the_whole_cluster(cluster):
    """Any node answers `group list` and `group describe` for every group
    of the cluster (docs/cluster.md 6.4), whichever node coordinates it:
    the list is gathered from every node, a describe is sent on to the
    group's coordinator. Before, each node knew only the groups it
    coordinates: the list differed per node and describing a group
    coordinated elsewhere failed with UNKNOWN_GROUP."""
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "work", "--partitions", "1",
          "--replication-factor", "3")
    c.wait(lambda: all(describe(c, n, "work") for n in all3), "work")
    c.cli(1, "produce", "work", "--acks", "durable",
          input="".join("w-%03d\n" % i for i in range(20)))
    # queue groups that ack 1, 2 or 3 records each, through any node
    groups = {"q%d" % i: i % 3 + 1 for i in range(9)}
    for i, (g, k) in enumerate(sorted(groups.items())):
        c.cli(all3[i % 3], "queue", "consume", "work", "--group", g,
              "--count", str(k))
    # a stream group with a committed offset
    con = sluice.Consumer(bootstrap(c, all3), "s1",
                          auto_offset_reset="earliest",
                          enable_auto_commit=False)
    con.subscribe(["work"])
    poll_until(con, lambda got: len(got) >= 5)
    con.commit()
    committed = con.committed("work", 0)
    con.close()
    coords = {g: c.wait(lambda g=g: coordinator(c, 1, g, "work"),
                        "%s's coordinator" % g)
              for g in list(groups) + ["s1"]}
    # the test means something only if the groups are spread out
    assert len(set(coords.values())) >= 2, coords

    want = set(groups) | {"s1"}
    for n in all3:
        listed = cli_groups(c, n)
        assert set(listed) == want, (n, listed)
        assert all(listed[g][0] == "queue" for g in groups), listed
        assert listed["s1"][0] == "stream", listed
    # describe: the same answer from every node, the coordinator's
    for g, k in groups.items():
        outs = [c.cli(n, "group", "describe", g).stdout for n in all3]
        assert outs[0] == outs[1] == outs[2], (g, outs)
        assert "partition work/0 start %d end 20 " % k in outs[0], outs[0]
    outs = [c.cli(n, "group", "describe", "s1").stdout for n in all3]
    assert outs[0] == outs[1] == outs[2], outs
    assert "partition work/0 committed %d end 20 " % committed in outs[0]
    p = c.cli(2, "group", "describe", "nosuch", check=False)
    assert p.returncode != 0 and "nosuch" in p.stderr, p.stderr

    # the Python bindings (libsluice's admin calls) see the same
    for n in all3:
        with sluice.Admin(bootstrap(c, [n])) as a:
            names = {gi.name for gi in a.groups()}
            assert names == want, (n, names)
            for g, k in groups.items():
                gi = a.group(g)
                assert gi.kind == "queue", gi
                assert [(p.topic, p.partition, p.committed)
                        for p in gi.partitions] == [("work", 0, k)], gi
            assert [p.committed for p in a.group("s1").partitions] == \
                [committed]
            with pytest.raises(sluice.UnknownGroupError):
                a.group("nosuch")


def test_topic_created_again_does_not_find_the_old_group_state(cluster):
    """A topic deleted and created again under its name starts with no
    group state, also after its groups' coordinator changed: the old
    topic's acked ranges must not hide the new topic's records at the
    same offsets. Before, the rebuilt coordinator replayed the old
    topic's window from __sluice_group_state and the new records counted
    as acked (never delivered); now each state partition's leader marks
    the deletion there and a rebuild drops what came before."""
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")

    def make():
        c.cli(1, "topic", "create", "again", "--partitions", "1",
              "--replication-factor", "3")
        c.wait(lambda: all(describe(c, n, "again") for n in all3),
               "again everywhere")

    make()
    c.cli(1, "produce", "again", "--acks", "durable",
          input="".join("old-%02d\n" % i for i in range(10)))
    # group g acks all ten (and a stream group commits offset 10)
    out = c.cli(2, "queue", "consume", "again", "--group", "g", "--count",
                "10").stdout.split()
    assert sorted(out) == ["old-%02d" % i for i in range(10)]
    con = sluice.Consumer(bootstrap(c, all3), "sg",
                          auto_offset_reset="earliest",
                          enable_auto_commit=False)
    con.subscribe(["again"])
    poll_until(con, lambda got: len(got) >= 10)
    con.commit()
    con.close()

    c.cli(3, "topic", "delete", "again")
    c.wait(lambda: all(describe(c, n, "again") is None for n in all3),
           "again deleted everywhere")
    make()
    c.cli(1, "produce", "again", "--acks", "durable",
          input="".join("new-%02d\n" % i for i in range(10)))

    # the coordinators of g and sg rebuild their state from the log
    coord = c.wait(lambda: coordinator(c, 1, "g", "again"), "g's coordinator")
    c.kill9(coord)
    rest = [n for n in all3 if n != coord]
    c.wait(lambda: coordinator(c, rest[0], "g", "again") not in (None, coord),
           "a new coordinator for g")
    qc = sluice.QueueConsumer(bootstrap(c, rest), "again", "g", prefetch=10)
    got = poll_until(qc, lambda got: len(got) >= 10, 90)
    for m in got:
        m.ack()
    qc.flush()
    qc.close()
    assert sorted(m.value for m in got) == [b"new-%02d" % i
                                            for i in range(10)]
    con = sluice.Consumer(bootstrap(c, rest), "sg",
                          auto_offset_reset="earliest",
                          enable_auto_commit=False)
    assert con.committed("again", 0) in (-1, None), \
        con.committed("again", 0)
    con.close()


def test_group_list_and_describe_with_a_cluster_secret(bin_dir, tmp_path,
                                                       monkeypatch):
    """With a cluster secret and users, the nodes that gather the group
    list and send a describe on log in to each other as brokers
    (peer_auth.c) and still answer for every group."""
    os.environ["SLUICE_BIN_DIR"] = bin_dir
    secret = os.path.join(str(tmp_path), "secret")
    with open(secret, "w") as f:
        f.write("0123456789abcdef-cluster\n")
    os.chmod(secret, 0o600)
    monkeypatch.setenv("SLUICE_ADMIN_PASSWORD", "admin-pw-0123")
    monkeypatch.setenv("SLUICE_USER", "admin")
    monkeypatch.setenv("SLUICE_PASSWORD", "admin-pw-0123")
    c = cluster_harness.Cluster(tmp_path, n=3, extra=[
        "--cluster-secret-file", secret, "--bootstrap-admin", "admin"])
    c.start()
    try:
        all3 = [1, 2, 3]
        c.wait(lambda: all_up(c, all3), "a cluster with every node up")
        c.cli(1, "topic", "create", "sec", "--partitions", "1",
              "--replication-factor", "3")
        c.wait(lambda: all(describe(c, n, "sec") for n in all3), "sec")
        c.cli(1, "produce", "sec", "--acks", "durable",
              input="".join("s-%d\n" % i for i in range(10)))
        groups = ["a%d" % i for i in range(6)]
        for g in groups:
            c.cli(2, "queue", "consume", "sec", "--group", g, "--count", "2")
        coords = {c.wait(lambda g=g: coordinator(c, 1, g, "sec"), g)
                  for g in groups}
        assert len(coords) >= 2, coords
        for n in all3:
            assert set(cli_groups(c, n)) == set(groups), n
            for g in groups:
                out = c.cli(n, "group", "describe", g).stdout
                assert "partition sec/0 start 2 end 10 " in out, (n, out)
    finally:
        c.stop_all()


def test_a_join_whose_reply_died_with_the_coordinator_is_answered(
        bin_dir, tmp_path, monkeypatch):
    """The coordinator replicates a member's join and dies before it
    answers (SLUICE_TEST_HOLD_JOIN_REPLY, broker/binary_stream_groups.c:
    the reply is held, then the node is killed with -9). subscribe()
    sends the join again to the new coordinator under the same member id
    (libsluice makes member ids itself): the new coordinator knows that
    member from the replicated record and answers with its partition.
    Before, the retry came as a second, new member, and the first one
    (whose id the client never learned) held a partition, unread, until
    its session timeout (60 s here): one consumer was assigned nothing
    and one partition was read by nobody. No record is read twice or
    lost."""
    hold = str(tmp_path / "hold-join")
    monkeypatch.setenv("SLUICE_TEST_HOLD_JOIN_REPLY", hold)
    monkeypatch.setenv("SLUICE_BIN_DIR", bin_dir)
    c = cluster_harness.Cluster(tmp_path, n=3)
    c.start()
    try:
        all3 = [1, 2, 3]
        c.wait(lambda: all_up(c, all3), "a cluster with every node up")
        c.cli(1, "topic", "create", "sj", "--partitions", "2",
              "--replication-factor", "3")
        c.wait(lambda: all(describe(c, x, "sj") for x in all3), "sj")
        bs = bootstrap(c, all3)
        conf = dict(auto_offset_reset="earliest", enable_auto_commit=False,
                    session_timeout_ms=60000)
        a = sluice.Consumer(bs, "sgj", **conf)
        a.subscribe(["sj"])
        assert len(a.assignment()) == 2
        coord = c.wait(lambda: coordinator(c, 1, "sgj", "sj"),
                       "sgj's coordinator")
        b = sluice.Consumer(bs, "sgj", **conf)
        res = {}

        def join():
            try:
                b.subscribe(["sj"])
                res["ok"] = True
            except sluice.SluiceError as e:
                res["err"] = e

        open(hold, "w").close()  # the next join's reply is held
        th = threading.Thread(target=join)
        th.start()
        c.nodes[coord].wait_log(
            lambda t: "test hook: join of member" in t, "the held join")
        c.kill9(coord)
        th.join(120)
        assert res.get("ok"), res
        # a learns of the new generation from the new coordinator; both
        # own one partition well before b's first join could expire
        end = time.monotonic() + 40
        while not (len(a.assignment()) == 1 and len(b.assignment()) == 1):
            assert time.monotonic() < end, (
                "assignments", a.assignment(), b.assignment())
            assert a.poll(0.2) is None and b.poll(0.2) is None
        mine = {a: a.assignment()[0].partition,
                b: b.assignment()[0].partition}
        assert sorted(mine.values()) == [0, 1], mine
        rest = [x for x in all3 if x != coord]
        for p in (0, 1):
            c.cli(rest[0], "produce", "sj", "--acks", "durable",
                  "--partition", str(p),
                  input="".join("p%d-%02d\n" % (p, i) for i in range(10)))
        got = {a: [], b: []}
        end = time.monotonic() + 60
        while sum(map(len, got.values())) < 20:
            assert time.monotonic() < end, got
            for con in (a, b):
                m = con.poll(0.2)
                if m is not None:
                    assert m.partition == mine[con], (m.partition, mine)
                    got[con].append((m.partition, m.offset, m.value))
        for con in (a, b):
            p = mine[con]
            assert got[con] == [(p, i, b"p%d-%02d" % (p, i))
                                for i in range(10)], got[con]
        assert a.poll(0.3) is None and b.poll(0.3) is None
        a.close()
        b.close()
    finally:
        c.stop_all()


def test_auto_commit_rides_through_coordinator_kill(cluster):
    """enable.auto.commit across the kill -9 of the group's coordinator:
    the auto-commits that went to the dead coordinator are counted
    (auto_commit_failures) and sent again to the new one, and close()
    commits the positions synchronously, through the failover (Kafka's
    consumer does both). A consumer started afterwards resumes at the
    position of the first: no record is read twice. Before, a failed
    auto-commit was dropped without a word and close() did not commit:
    the records read since the last auto-commit that succeeded were read
    again."""
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "sa", "--partitions", "2",
          "--replication-factor", "3")
    c.wait(lambda: all(describe(c, x, "sa") for x in all3), "sa")
    for p in (0, 1):
        c.cli(1, "produce", "sa", "--acks", "durable", "--partition", str(p),
              input="".join("p%d-%02d\n" % (p, i) for i in range(30)))
    a = sluice.Consumer(bootstrap(c, all3), "sga",
                        auto_offset_reset="earliest", enable_auto_commit=True,
                        auto_commit_interval_ms=1)
    a.subscribe(["sa"])
    first = poll_until(a, lambda g: len(g) >= 40)
    assert a.auto_commit_failures() == (0, "")
    coord = c.wait(lambda: coordinator(c, 1, "sga", "sa"), "sga's coordinator")
    c.kill9(coord)
    # every poll auto-commits (interval 1 ms): the first ones after the
    # kill go to a coordinator that is gone
    first += poll_until(a, lambda g: len(g) >= 20, 90)
    fails, err = a.auto_commit_failures()
    assert fails >= 1 and err, (fails, err)
    a.close()  # commits the positions after the last record, through it
    keys = [(m.partition, m.offset) for m in first]
    assert sorted(keys) == [(p, i) for p in (0, 1) for i in range(30)], keys
    rest = [x for x in all3 if x != coord]
    for p in (0, 1):
        c.cli(rest[0], "produce", "sa", "--acks", "durable", "--partition",
              str(p), input="late-%d\n" % p)
    b = sluice.Consumer(bootstrap(c, rest), "sga",
                        auto_offset_reset="earliest", enable_auto_commit=False)
    b.subscribe(["sa"])
    late = poll_until(b, lambda g: len(g) >= 2, 60)
    again = [(m.partition, m.offset) for m in late if m.offset < 30]
    assert again == [], "%d record(s) read twice: %r" % (len(again), again)
    assert sorted((m.partition, m.offset, m.value) for m in late) == \
        [(p, 30, b"late-%d" % p) for p in (0, 1)]
    assert b.poll(0.5) is None
    b.close()


def test_a_heartbeat_to_a_paused_coordinator_finds_the_new_one(cluster):
    """The group's coordinator is paused (SIGSTOP): the member's heartbeat
    goes unanswered; after request.timeout.ms libsluice drops that
    connection, finds the new coordinator and rejoins there (a known
    member: its generation and partitions were replicated). A consumer
    that joined at the new coordinator meanwhile took one of the two
    partitions, and the first member learns it on rejoining: each
    partition is read by one member, each record once. Before, the
    unanswered heartbeat stayed in flight, no other was sent, and the
    first member kept reading both partitions (until the new
    coordinator's session timeout, 60 s here)."""
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "sp", "--partitions", "2",
          "--replication-factor", "3")
    c.wait(lambda: all(describe(c, x, "sp") for x in all3), "sp")
    conf = dict(auto_offset_reset="earliest", enable_auto_commit=False,
                session_timeout_ms=60000, request_timeout_ms=3000)
    a = sluice.Consumer(bootstrap(c, all3), "sgp", **conf)
    a.subscribe(["sp"])
    assert len(a.assignment()) == 2
    coord = c.wait(lambda: coordinator(c, 1, "sgp", "sp"), "sgp's coordinator")
    rest = [x for x in all3 if x != coord]
    c.nodes[coord].proc.send_signal(signal.SIGSTOP)
    try:
        c.wait(lambda: (coordinator(c, rest[0], "sgp", "sp") or coord) !=
               coord, "a new coordinator", timeout=60)
        b = sluice.Consumer(bootstrap(c, rest), "sgp", **conf)
        b.subscribe(["sp"])
        assert len(b.assignment()) == 1
        end = time.monotonic() + 40
        while len(a.assignment()) != 1:
            assert time.monotonic() < end, ("a's assignment", a.assignment())
            assert a.poll(0.2) is None
            assert b.poll(0.01) is None
        mine = {a: a.assignment()[0].partition,
                b: b.assignment()[0].partition}
        assert sorted(mine.values()) == [0, 1], mine
        for p in (0, 1):
            c.cli(rest[0], "produce", "sp", "--acks", "durable",
                  "--partition", str(p),
                  input="".join("p%d-%02d\n" % (p, i) for i in range(10)))
        got = {a: [], b: []}
        end = time.monotonic() + 60
        while sum(map(len, got.values())) < 20:
            assert time.monotonic() < end, got
            for con in (a, b):
                m = con.poll(0.2)
                if m is not None:
                    assert m.partition == mine[con], (m.partition, mine)
                    got[con].append((m.partition, m.offset, m.value))
        for con in (a, b):
            p = mine[con]
            assert got[con] == [(p, i, b"p%d-%02d" % (p, i))
                                for i in range(10)], got[con]
        b.close()
    finally:
        c.nodes[coord].proc.send_signal(signal.SIGCONT)
    a.close()


def test_offset_fetch_after_a_failover_mid_commit_is_never_behind(cluster):
    """OFFSET_FETCH is answered from the coordinator's memory. Checked
    against a coordinator that fails over in the middle of a stream of
    commits (docs/cluster.md 6, "Offset fetches and heartbeats from
    memory"): one consumer commits offsets 1, 2, 3, ... of the group
    without pause, another reads the committed offset without pause; the
    coordinator is paused (SIGSTOP) until the others made a new one, then
    resumed (its memory is then stale), and both go on through the
    failover. Every committed() answer is at least the last commit
    acknowledged before it was asked, and a commit acknowledged is never
    lost: a new coordinator serves a group only once it rebuilt it from
    its own copy of the state partition, which holds every acknowledged
    commit (acknowledged = fsynced on every in-sync replica, and the new
    leader is one of them), and the old one, its lease lapsed, answers
    nothing."""
    c = cluster
    all3 = [1, 2, 3]
    c.wait(lambda: all_up(c, all3), "a cluster with every node up")
    c.cli(1, "topic", "create", "so", "--partitions", "1",
          "--replication-factor", "3")
    c.wait(lambda: all(describe(c, x, "so") for x in all3), "so")
    c.cli(1, "produce", "so", "--acks", "durable",
          input="".join("r%05d\n" % i for i in range(20000)))
    bs = bootstrap(c, all3)
    conf = dict(enable_auto_commit=False, request_timeout_ms=3000)
    acked = [-1]  # the last commit acknowledged (-1: none yet)
    stop = threading.Event()
    errors = []

    def committer():
        w = sluice.Consumer(bs, "sgo", **conf)
        try:
            w.assign([("so", 0, 0)])
            for i in range(1, 20001):
                if stop.is_set():
                    break
                w.commit([sluice.TopicPartition("so", 0, i)])
                acked[0] = i
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(("commit", repr(e)))
        finally:
            w.close()

    seen = []

    def reader():
        r = sluice.Consumer(bs, "sgo", **conf)
        try:
            while not stop.is_set():
                before = acked[0]
                got = r.committed("so", 0)
                seen.append((before, got))
                if got < before:
                    errors.append(("behind", before, got))
                time.sleep(0.002)  # pacing (CPU), not synchronisation
        except Exception as e:  # noqa: BLE001
            errors.append(("committed", repr(e)))
        finally:
            r.close()

    threads = [threading.Thread(target=f) for f in (committer, reader)]
    for t in threads:
        t.start()
    try:
        c.wait(lambda: acked[0] >= 50 or errors, "50 commits")
        coord = c.wait(lambda: coordinator(c, 1, "sgo", "so"),
                       "sgo's coordinator")
        rest = [x for x in all3 if x != coord]
        at_pause = acked[0]
        c.nodes[coord].proc.send_signal(signal.SIGSTOP)
        try:
            c.wait(lambda: (coordinator(c, rest[0], "sgo", "so") or coord) !=
                   coord, "a new coordinator", timeout=60)
            c.wait(lambda: acked[0] >= at_pause + 50 or errors,
                   "commits at the new coordinator", timeout=60)
        finally:
            c.nodes[coord].proc.send_signal(signal.SIGCONT)
        mark = acked[0]
        c.wait(lambda: acked[0] >= mark + 50 or errors,
               "commits after the old coordinator resumed", timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    assert errors == [], errors[:5]
    last = acked[0]
    assert last > at_pause + 100, (at_pause, last)
    assert len(seen) > 20 and any(b > at_pause for b, _ in seen), seen[-3:]
    d = sluice.Consumer(bs, "sgo", **conf)
    assert d.committed("so", 0) == last
    d.close()
