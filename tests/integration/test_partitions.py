"""Many partitions on few descriptors (issue 18 item 11, issue 20): a
partition keeps one descriptor open (its active segment's log), not four
(log, two index files, directory). A broker whose descriptor limit
(soft = hard, so it cannot raise it) is below 4 per partition serves a
topic of PARTS partitions: it creates the topic, takes a durable produce to
every partition in one request (one journal round), restarts, and reads
every record back."""
import os
import resource
import subprocess

import sluice_wire as sw
from sluice_harness import Broker, sluiced_path

LIMIT = 512
PARTS = 300  # 4 per partition would be 1,200 descriptors


class LimitedBroker(Broker):
    """sluiced under RLIMIT_NOFILE = LIMIT (soft and hard)."""

    def spawn(self, extra=()):
        cmd = [sluiced_path(), "--data", self.data_dir,
               "--listen", "127.0.0.1:0", "--stomp-listen", "127.0.0.1:0",
               "--http-listen", "127.0.0.1:0"]
        cmd += self.args + list(extra)
        log = open(self.log_path, "ab")

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))
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
