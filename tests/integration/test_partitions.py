"""Many partitions on few descriptors (issue 18 item 11, issue 20): a
partition keeps one descriptor open (its active segment's log), not four
(log, two index files, directory). A broker whose descriptor limit
(soft = hard, so it cannot raise it) is below 4 per partition serves a
topic of PARTS partitions: it creates the topic, takes a durable produce to
every partition in one request (one journal round), restarts, and reads
every record back."""
import os
import re
import resource
import subprocess

import sluice_wire as sw
from sluice_harness import Broker, sluiced_path

LIMIT = 512
PARTS = 300  # 4 per partition would be 1,200 descriptors


class LimitedBroker(Broker):
    """sluiced under RLIMIT_NOFILE = limit (soft and hard)."""
    limit = LIMIT

    def spawn(self, extra=()):
        cmd = [sluiced_path(), "--data", self.data_dir,
               "--listen", "127.0.0.1:0", "--stomp-listen", "127.0.0.1:0",
               "--http-listen", "127.0.0.1:0"]
        cmd += self.args + list(extra)
        log = open(self.log_path, "ab")

        n = self.limit

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        try:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL,
                                    preexec_fn=limit)
        finally:
            log.close()


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_partitions_beyond_four_descriptors_each(tmp_path):
    b = LimitedBroker(str(tmp_path / "data"))
    try:
        b.start()
        with b.client() as c:
            assert c.create_topic("many", PARTS) == (0, None), b.log()
            batches = {p: sw.encode_batch([b"v-%d-%d" % (p, i)
                                           for i in range(3)])
                       for p in range(PARTS)}
            res = sw.decode_produce(c.call(sw.API_PRODUCE, sw.produce_body(
                sw.ACKS_DURABLE, {"many": batches})))
            for p in range(PARTS):
                r = res[("many", p)]
                assert r["error"] == 0, (p, r)
                assert r["base_offset"] == 0
        # one per partition, plus sockets, SQLite and the journal
        assert open_fds(b.pid) <= PARTS + 64, open_fds(b.pid)
        assert b.stop() == 0
        b.start()
        with b.client() as c:
            for p in range(PARTS):
                recs = c.fetch_records("many", p, 0, upto=3)
                assert [x["value"] for x in recs] == \
                    [b"v-%d-%d" % (p, i) for i in range(3)]
        assert open_fds(b.pid) <= PARTS + 64, open_fds(b.pid)
        assert b.stop() == 0
    finally:
        b.cleanup()


# The open-file cache (storage/fdcache.c): partitions far beyond the
# descriptor limit. Before it, a partition kept its active segment open, so
# a topic of CPARTS partitions could not even be created under CLIMIT.
CLIMIT = 256
CPARTS = 1200
CMAX = 32  # storage-max-open-files


class CachedBroker(LimitedBroker):
    limit = CLIMIT


def produce_all(c, topic, parts, tag, per_request=400):
    for lo in range(0, parts, per_request):
        batches = {p: sw.encode_batch([b"%s-%d-%d" % (tag, p, i)
                                       for i in range(2)])
                   for p in range(lo, min(parts, lo + per_request))}
        res = sw.decode_produce(c.call(sw.API_PRODUCE, sw.produce_body(
            sw.ACKS_DURABLE, {topic: batches})))
        for p in batches:
            assert res[(topic, p)]["error"] == 0, (p, res[(topic, p)])


def check_all(c, topic, parts, tags):
    for p in range(parts):
        recs = c.fetch_records(topic, p, 0, upto=2 * len(tags))
        want = [b"%s-%d-%d" % (t, p, i) for t in tags for i in range(2)]
        assert [x["value"] for x in recs] == want, p


def test_partitions_beyond_the_descriptor_limit(tmp_path):
    b = CachedBroker(str(tmp_path / "data"),
                     args=["--storage-max-open-files", str(CMAX)])
    try:
        b.start()
        with b.client() as c:
            assert c.create_topic("wide", CPARTS) == (0, None), b.log()
            produce_all(c, "wide", CPARTS, b"a")
            check_all(c, "wide", CPARTS, [b"a"])
            # one FETCH over every partition: small slices are copied into
            # the reply, not held as one descriptor each until it is sent
            # (that was 1,200 descriptors under a limit of 256)
            res = sw.decode_fetch(c.call(sw.API_FETCH, sw.fetch_body(
                {"wide": [(p, 0, 1 << 16) for p in range(CPARTS)]})))
            for p in range(CPARTS):
                r = res[("wide", p)]
                assert r["error"] == 0, (p, r["error"])
                assert [x["value"] for x in sw.decode_batches(
                    r["records"])] == [b"a-%d-%d" % (p, i)
                                       for i in range(2)], p
            # every partition written and read, yet the cache's bound
            # holds (plus sockets, SQLite, the journal, the lock)
            assert open_fds(b.pid) <= CMAX + 48, open_fds(b.pid)
            produce_all(c, "wide", CPARTS, b"b")
        assert open_fds(b.pid) <= CMAX + 48, open_fds(b.pid)
        assert b.stop() == 0
        # a clean stop leaves the marker; the next start consumes it
        # (no recovery syncfs) before it serves anything
        marker = os.path.join(b.data_dir, "clean-shutdown")
        assert os.path.exists(marker)
        b.start()  # after a clean stop
        assert not os.path.exists(marker)
        assert "(after a clean stop)" in b.log()
        with b.client() as c:
            check_all(c, "wide", CPARTS, [b"a", b"b"])
            produce_all(c, "wide", CPARTS, b"c")
        b.kill9()  # every acknowledged record survives a kill -9
        assert not os.path.exists(marker)
        b.start()
        assert "(recovered, then syncfs)" in b.log()
        with b.client() as c:
            check_all(c, "wide", CPARTS, [b"a", b"b", b"c"])
            assert open_fds(b.pid) <= CMAX + 48, open_fds(b.pid)
        assert b.stop() == 0
    finally:
        b.cleanup()


# Lazy partitions (issue 20): a clean stop writes every partition's
# summary (DATA/partitions.summary, its token in the clean-stop marker);
# the next start opens each partition from it without touching its
# directory, and a partition opens its segments at its first read or
# write. So after a restart an idle partition holds no descriptor, and
# metadata (offsets) is answered without loading anything.
LPARTS = 300
LIDLE = 200


def test_restart_opens_partitions_lazily(tmp_path):
    b = Broker(str(tmp_path / "data"))
    summary = os.path.join(str(tmp_path / "data"), "partitions.summary")
    try:
        b.start()
        with b.client() as c:
            assert c.create_topic("lazy", LPARTS) == (0, None), b.log()
            assert c.create_topic("idle", LIDLE) == (0, None), b.log()
            produce_all(c, "lazy", LPARTS, b"a")
        assert b.stop() == 0
        assert os.path.exists(summary)
        b.start()
        assert "%d partition(s) from their summary" % (LPARTS + LIDLE) \
            in b.log(), b.log()
        # kept: a start after a crash of this run still uses it for what
        # the run does not change (partitions.touched)
        assert os.path.exists(summary)
        base = open_fds(b.pid)
        # an eager start held one descriptor per partition (500 here)
        assert base <= 64, base
        with b.client() as c:
            for p in range(LPARTS):
                assert c.list_offset("lazy", p, sw.OFFSET_EARLIEST) == (0, 0)
                assert c.list_offset("lazy", p, sw.OFFSET_LATEST) == (0, 2)
            for p in range(LIDLE):
                assert c.list_offset("idle", p, sw.OFFSET_LATEST) == (0, 0)
                # a read at the end of an empty partition loads nothing
                assert c.fetch("idle", p, 0)["error"] == 0
            assert open_fds(b.pid) <= base + 2, open_fds(b.pid)
            # first use: the records are there, appends go on after them
            check_all(c, "lazy", LPARTS, [b"a"])
            produce_all(c, "lazy", LPARTS, b"b")
            check_all(c, "lazy", LPARTS, [b"a", b"b"])
            produce_all(c, "idle", LIDLE, b"i")
            check_all(c, "idle", LIDLE, [b"i"])
        b.kill9()  # no summary is trusted after a crash
        b.start()
        assert "(recovered, then syncfs); 0 partition(s) from their " \
            "summary" in b.log(), b.log()
        with b.client() as c:
            check_all(c, "lazy", LPARTS, [b"a", b"b"])
            check_all(c, "idle", LIDLE, [b"i"])
        assert b.stop() == 0
        # a summary whose token is not the marker's is not used
        with open(summary, "r+") as f:
            text = f.read()
            f.seek(0)
            f.write(text.replace("sluice-partitions 1 ",
                                 "sluice-partitions 1 x", 1))
        b.start()
        assert "is not from the last clean stop" in b.log(), b.log()
        with b.client() as c:
            assert c.list_offset("lazy", 7, sw.OFFSET_LATEST) == (0, 4)
            check_all(c, "lazy", LPARTS, [b"a", b"b"])
        assert b.stop() == 0
    finally:
        b.cleanup()


def last_open_line(b):
    """The broker log's line about its last start's partitions."""
    lines = [x for x in b.log().splitlines() if "topic(s) in" in x]
    assert lines, b.log()
    return lines[-1]


def produce_some(c, topic, parts, tag):
    batches = {p: sw.encode_batch([b"%s-%d-%d" % (tag, p, i)
                                   for i in range(2)]) for p in parts}
    res = sw.decode_produce(c.call(sw.API_PRODUCE, sw.produce_body(
        sw.ACKS_DURABLE, {topic: batches})))
    for p in batches:
        assert res[(topic, p)]["error"] == 0, (p, res[(topic, p)])


# A start after a crash (issue 20): the partitions the crashed run changed
# are recovered at start (listed in DATA/partitions.touched), every other
# one is opened from the last clean stop's summary, lazily. Acknowledged
# records of both kinds are all there; a crash of a run that itself
# started after a crash adds its own changes to the list.
CPARTS_COLD = 300
HOT = [3, 17, 250]


def test_crash_start_recovers_only_what_the_run_changed(tmp_path):
    data = str(tmp_path / "data")
    b = Broker(data)
    try:
        b.start()
        with b.client() as c:
            assert c.create_topic("w", CPARTS_COLD) == (0, None), b.log()
            produce_all(c, "w", CPARTS_COLD, b"a")
        assert b.stop() == 0
        b.start()
        with b.client() as c:
            produce_some(c, "w", HOT, b"b")
        b.kill9()
        touched = open(os.path.join(data, "partitions.touched")).read()
        assert sorted(touched.splitlines()[1:]) == sorted(
            "topics/w/%d" % p for p in HOT), touched
        b.start()
        line = last_open_line(b)
        assert "(recovered, then syncfs); %d partition(s) from their " \
            "summary (loaded at first use), %d recovered" % (
                CPARTS_COLD - len(HOT), len(HOT)) in line, line
        # an idle partition holds no descriptor: far fewer than 300
        assert open_fds(b.pid) <= 64, open_fds(b.pid)
        with b.client() as c:
            for p in range(CPARTS_COLD):
                want = 4 if p in HOT else 2
                assert c.list_offset("w", p, sw.OFFSET_LATEST) == (0, want), p
            for p in range(CPARTS_COLD):
                tags = [b"a", b"b"] if p in HOT else [b"a"]
                recs = c.fetch_records("w", p, 0, upto=2 * len(tags))
                assert [x["value"] for x in recs] == [
                    b"%s-%d-%d" % (t, p, i) for t in tags for i in range(2)], p
            produce_some(c, "w", [5], b"c")  # one more, in this run
        b.kill9()
        b.start()
        line = last_open_line(b)
        assert "%d partition(s) from their summary (loaded at first use), " \
            "%d recovered" % (CPARTS_COLD - len(HOT) - 1, len(HOT) + 1) \
            in line, line
        with b.client() as c:
            assert c.list_offset("w", 5, sw.OFFSET_LATEST) == (0, 4)
            recs = c.fetch_records("w", 5, 0, upto=4)
            assert [x["value"] for x in recs] == [
                b"a-5-0", b"a-5-1", b"c-5-0", b"c-5-1"]
        # a clean stop starts the list afresh
        assert b.stop() == 0
        b.start()
        b.kill9()
        b.start()
        line = last_open_line(b)
        assert "%d partition(s) from their summary (loaded at first use), " \
            "0 recovered" % CPARTS_COLD in line, line
        # a list cut short (a torn write of its last line) trusts nothing
        b.kill9()
        with open(os.path.join(data, "partitions.touched"), "a") as f:
            f.write("topics/w/")
        b.start()
        line = last_open_line(b)
        assert "0 partition(s) from their summary (loaded at first use), " \
            "%d recovered" % CPARTS_COLD in line, line
        with b.client() as c:
            check_all(c, "w", 3, [b"a"])
        # zeros where a power loss left a block unwritten: the same
        assert b.stop() == 0
        b.start()
        b.kill9()
        with open(os.path.join(data, "partitions.touched"), "ab") as f:
            f.write(b"\0\0\0\0topics/w/1\n")
        b.start()
        line = last_open_line(b)
        assert "0 partition(s) from their summary (loaded at first use), " \
            "%d recovered" % CPARTS_COLD in line, line
        with b.client() as c:
            check_all(c, "w", 3, [b"a"])
        assert b.stop() == 0
    finally:
        b.cleanup()


# Idle partitions are unloaded (issue 20): a partition nothing used for
# partition-idle-unload-ms gives back its descriptor and memory once all
# of it is fdatasynced, and loads again at its next use: its records,
# offsets and idempotent producers' state (a resent batch is still stored
# once) are as before.
UPARTS = 100


def wait_all_unloaded(b, since):
    """Wait for the maintenance tick's line saying idle partitions were
    unloaded and none is loaded any more, written after the log offset
    `since` (the test is idle by then, so nothing loads them again)."""
    b.wait_log(lambda log: re.search(
        r"unloaded \d+ idle partition\(s\), 0 partition\(s\) loaded",
        log[since:]), "every partition unloaded", timeout=120)


def produce_idem(c, topic, parts, pid, epoch, seq, tag):
    batches = {p: sw.encode_batch([b"%s-%d-%d" % (tag, p, i)
                                   for i in range(2)],
                                  producer=(pid, epoch, seq)) for p in parts}
    res = sw.decode_produce(c.call(sw.API_PRODUCE, sw.produce_body(
        sw.ACKS_DURABLE, {topic: batches})))
    return {p: (res[(topic, p)]["error"], res[(topic, p)]["base_offset"])
            for p in parts}


def test_idle_partitions_are_unloaded(tmp_path):
    b = Broker(str(tmp_path / "data"),
               args=["--partition-idle-unload-ms", "300",
                     "--maintenance-interval-ms", "50"])
    try:
        b.start()
        base = open_fds(b.pid)
        parts = list(range(UPARTS))
        with b.client() as c:
            assert c.create_topic("u", UPARTS) == (0, None), b.log()
            pid, epoch = c.init_producer_id()
            assert produce_idem(c, "u", parts, pid, epoch, 0, b"a") == \
                {p: (0, 0) for p in parts}
            since = len(b.log())
            # each written partition holds its active segment open until
            # it is idle and unloaded
            wait_all_unloaded(b, since)
            assert open_fds(b.pid) <= base + 4
            assert c.list_offset("u", 7, sw.OFFSET_LATEST) == (0, 2)
            # a resend of the same batches: still known, stored once
            assert produce_idem(c, "u", parts, pid, epoch, 0, b"a") == \
                {p: (0, 0) for p in parts}
            assert produce_idem(c, "u", parts, pid, epoch, 2, b"b") == \
                {p: (0, 2) for p in parts}
            check_all(c, "u", UPARTS, [b"a", b"b"])
            since = len(b.log())
            wait_all_unloaded(b, since)
            assert open_fds(b.pid) <= base + 4
            check_all(c, "u", UPARTS, [b"a", b"b"])
        # what an unloaded partition was is what a crash start recovers
        b.kill9()
        b.start()
        with b.client() as c:
            check_all(c, "u", UPARTS, [b"a", b"b"])
            assert produce_idem(c, "u", [3], pid, epoch, 2, b"b") == \
                {3: (0, 2)}
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_crash_start_after_a_topic_was_made_again(tmp_path):
    """A topic deleted and made again under its name, then a crash: its
    partitions are new (listed at creation), not what the summary of the
    last clean stop says about the old topic's."""
    b = Broker(str(tmp_path / "data"))
    try:
        b.start()
        with b.client() as c:
            assert c.create_topic("r", 4) == (0, None), b.log()
            produce_all(c, "r", 4, b"a")
        assert b.stop() == 0
        b.start()
        with b.client() as c:
            assert c.delete_topic("r")[0] == 0, b.log()
            assert c.create_topic("r", 4) == (0, None), b.log()
        b.kill9()
        b.start()
        line = last_open_line(b)
        assert "0 partition(s) from their summary (loaded at first use), " \
            "4 recovered" in line, line
        with b.client() as c:
            for p in range(4):
                assert c.list_offset("r", p, sw.OFFSET_LATEST) == (0, 0), p
            produce_all(c, "r", 4, b"b")
            check_all(c, "r", 4, [b"b"])
        assert b.stop() == 0
    finally:
        b.cleanup()
