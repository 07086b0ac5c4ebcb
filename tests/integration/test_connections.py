"""Connections (issue 17): `sluice connections`, GET /api/connections and
closing one (CLI, DELETE and POST), built on the connection layer's
registry; bytes counted exactly; one INFO line per open and close, with
at most 100 such lines per 10 s."""
import json
import os
import re
import signal
import socket
import subprocess
import urllib.error
import urllib.request

import sluice_wire as sw
import sluice_wire_groups as swg
from sluice_harness import Broker, bin_dir


from prometheus_client.parser import text_string_to_metric_families


def metrics(b):
    with urllib.request.urlopen("http://%s:%d/metrics" % b.http_addr,
                                timeout=30) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def http(b, method, path):
    req = urllib.request.Request("http://%s:%d%s" % (b.http_addr + (path,)),
                                 data=b"" if method == "POST" else None,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def cli(b, *args, ok=True):
    p = subprocess.run([os.path.join(bin_dir(), "sluice"), "-b",
                        "%s:%d" % b.binary_addr] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if ok:
        assert p.returncode == 0, p.stderr.decode()
    return p


class Stomp:
    """A raw STOMP client that counts every byte it sends and receives."""

    def __init__(self, addr):
        self.s = socket.create_connection(addr, timeout=30)
        self.sent = 0
        self.got = 0
        self.buf = b""

    def send(self, cmd, headers, body=b""):
        f = cmd.encode() + b"\n" + b"".join(
            ("%s:%s\n" % kv).encode() for kv in headers.items()) + \
            b"\n" + body + b"\0"
        self.s.sendall(f)
        self.sent += len(f)

    def frame(self):
        while b"\0" not in self.buf:
            d = self.s.recv(65536)
            assert d, "connection closed"
            self.got += len(d)
            self.buf += d
        f, self.buf = self.buf.split(b"\0", 1)
        head = f.split(b"\n\n", 1)[0].decode().split("\n")
        self.headers = dict(h.split(":", 1) for h in head[1:] if ":" in h)
        return head[0]

    def closed(self):
        """True once the broker closed the socket (EOF or reset)."""
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.got += len(d)
        except ConnectionResetError:
            return True


def by_id(conns):
    return {c["id"]: c for c in conns}


def test_list_describe_and_close(tmp_path):
    b = Broker(str(tmp_path / "d"))
    b.start()
    try:
        cli(b, "topic", "create", "jobs", "--partitions", "1")
        cli(b, "topic", "create", "work", "--partitions", "1")
        c = b.client()
        c.produce("jobs", 0, [b"j%d" % i for i in range(5)])
        c.produce("work", 0, [b"w%d" % i for i in range(4)])

        # a STOMP consumer holding 5 messages unacked
        st = Stomp(b.stomp_addr)
        st.send("CONNECT", {"accept-version": "1.2", "login": "guest",
                            "passcode": "guest", "client-id": "app-1"})
        assert st.frame() == "CONNECTED"
        st.send("SUBSCRIBE", {"id": "s1", "destination": "/queue/jobs",
                              "ack": "client-individual"})
        for _ in range(5):
            assert st.frame() == "MESSAGE"
        # a binary queue consumer holding 3
        q = swg.Queue(c, "bg", "work", "cons-1")
        assert len(q.acquire(3)) == 3

        code, body = http(b, "GET", "/api/connections")
        assert code == 200
        conns = body["connections"]
        stomp = [x for x in conns if x["protocol"] == "stomp"]
        binary = [x for x in conns if x["protocol"] == "binary"]
        assert len(stomp) == 1 and len(binary) == 1, conns
        s = stomp[0]
        assert s["user"] == "guest" and s["client"] == "app-1"
        assert s["listener"] == "stomp" and s["tls"] is False
        assert s["tls_subject"] is None
        assert s["peer"] == "%s:%d" % st.s.getsockname()
        # every byte each side sent, counted by the connection layer
        assert s["bytes_in"] == st.sent
        assert s["bytes_out"] == st.got
        assert s["in_flight"] == 5
        assert [(x["id"], x["destination"], x["ack"], x["group"],
                 x["in_flight"]) for x in s["subscriptions"]] == [
            ("s1", "/queue/jobs", "client-individual", "jobs", 5)]
        bn = binary[0]
        assert bn["user"] is None
        assert bn["in_flight"] == 3
        assert [(g["group"], g["topic"], g["consumer"], g["in_flight"])
                for g in bn["groups"]] == [("bg", "work", "cons-1", 3)]
        assert bn["bytes_in"] > 0 and bn["bytes_out"] > 0
        assert bn["requests"] >= 3  # produce, produce, acquire
        assert s["id"] != bn["id"]

        # the CLI shows the same (one more: its own connection)
        out = cli(b, "connections").stdout.decode().splitlines()
        assert out[0].split()[:4] == ["ID", "PROTOCOL", "PEER", "USER"]
        rows = {int(l.split()[0]): l.split() for l in out[1:]}
        assert rows[s["id"]][1:4] == ["stomp", s["peer"], "guest"]
        assert rows[s["id"]][-1] == "/queue/jobs"
        assert rows[bn["id"]][-1] == "bg/work"
        js = json.loads(cli(b, "connections", "--format", "json").stdout)
        assert {s["id"], bn["id"]} < set(by_id(js["connections"]))

        # close the STOMP one from the CLI: its messages are ready again
        p = cli(b, "connections", "close", str(s["id"]), "--reason", "stuck")
        assert p.stdout.decode().strip() == "closed connection %d (%s)" % (
            s["id"], s["peer"])
        assert st.closed()
        code, body = http(b, "GET", "/api/connections")
        assert s["id"] not in by_id(body["connections"])
        qs = {(x["topic"], x["group"]): x for x in
              json.loads(cli(b, "queues", "--format", "json").stdout)[
                  "queues"]}
        assert qs[("jobs", "jobs")]["ready"] == 5
        assert qs[("jobs", "jobs")]["in_flight"] == 0

        # the binary one over HTTP DELETE; its held records return too
        code, body = http(b, "DELETE", "/api/connections/%d" % bn["id"])
        assert code == 200 and body == {"id": bn["id"], "peer": bn["peer"],
                                        "closed": True}
        try:
            c.call(sw.API_METADATA, sw.metadata_body())
            raise AssertionError("the closed connection still answers")
        except OSError:  # ConnectionError: closed or reset
            pass
        qs = {(x["topic"], x["group"]): x for x in
              json.loads(cli(b, "queues", "--format", "json").stdout)[
                  "queues"]}
        assert qs[("work", "bg")]["in_flight"] == 0
        assert qs[("work", "bg")]["ready"] == 4

        # POST .../close, and the errors
        st2 = Stomp(b.stomp_addr)
        st2.send("CONNECT", {"accept-version": "1.2"})
        assert st2.frame() == "CONNECTED"
        ids = [x["id"] for x in http(b, "GET", "/api/connections")[1][
            "connections"] if x["protocol"] == "stomp"]
        assert len(ids) == 1
        code, body = http(b, "POST", "/api/connections/%d/close" % ids[0])
        assert code == 200 and body["closed"] is True
        assert st2.closed()
        code, body = http(b, "DELETE", "/api/connections/999999")
        assert code == 404 and body["error"] == "NOT_FOUND"
        assert "999999" in body["message"]
        code, body = http(b, "DELETE", "/api/connections/abc")
        assert code == 400 and body["error"] == "INVALID_ARG"
        p = cli(b, "connections", "close", "999999", ok=False)
        assert p.returncode == 1
        assert b"no open connection with id 999999" in p.stderr
        p = cli(b, "connections", "close", ok=False)
        assert p.returncode == 2
    finally:
        assert b.stop() == 0
    log = b.log()
    assert re.search(r"INFO conn peer %s: connection %d opened \(stomp\)"
                     % (re.escape(s["peer"]), s["id"]), log)
    assert re.search(r"INFO conn peer %s: connection %d closed \(closed by "
                     r"an operator: stuck\): stomp, user guest, [0-9.]+ s, "
                     r"%d bytes in, \d+ out" % (re.escape(s["peer"]), s["id"],
                                                st.sent), log), log
    b.cleanup()


def test_protocol_and_group_metrics(tmp_path):
    """/metrics: STOMP frames by command and direction, the time handling
    them took, bytes per protocol, per-group delivery counters, request
    latency per API, groups.db commit latency: all exact counts."""
    b = Broker(str(tmp_path / "d"))
    b.start()
    try:
        c = b.client()
        c.create_topic("bin", 1)
        c.produce("bin", 0, [b"a", b"b"])
        c.produce("bin", 0, [b"c"])

        st = Stomp(b.stomp_addr)
        st.send("CONNECT", {"accept-version": "1.2"})
        assert st.frame() == "CONNECTED"
        for i in range(3):
            st.send("SEND", {"destination": "/queue/mq", "receipt": "s%d" % i},
                    b"m%d" % i)
            assert st.frame() == "RECEIPT"
        st.send("SUBSCRIBE", {"id": "0", "destination": "/queue/mq",
                              "ack": "client-individual"})
        acks = []
        for _ in range(3):
            assert st.frame() == "MESSAGE"
            acks.append(st.headers["ack"])
        # NACK the first: redelivered at once (default backoff 0)
        st.send("NACK", {"id": acks[0], "receipt": "n"})
        got = []
        for _ in range(2):  # the redelivery and the receipt, either order
            got.append(st.frame())
            if got[-1] == "MESSAGE":
                acks[0] = st.headers["ack"]
        assert sorted(got) == ["MESSAGE", "RECEIPT"]
        for i, a in enumerate(acks):
            st.send("ACK", {"id": a, "receipt": "a%d" % i})
            assert st.frame() == "RECEIPT"
        st.send("DISCONNECT", {"receipt": "bye"})
        assert st.frame() == "RECEIPT"
        assert st.closed()

        m = metrics(b)
        fr = {(dict(k[1])["command"], dict(k[1])["direction"]): v
              for k, v in m.items() if k[0] == "sluice_stomp_frames_total"}
        assert {k: v for k, v in fr.items() if v} == {
            ("CONNECT", "in"): 1, ("SEND", "in"): 3, ("SUBSCRIBE", "in"): 1,
            ("NACK", "in"): 1, ("ACK", "in"): 3, ("DISCONNECT", "in"): 1,
            ("CONNECTED", "out"): 1, ("RECEIPT", "out"): 8,
            ("MESSAGE", "out"): 4}
        assert m[("sluice_stomp_frame_duration_seconds_count",
                  (("command", "SEND"),))] == 3
        assert m[("sluice_stomp_frame_duration_seconds_bucket",
                  (("command", "ACK"), ("le", "+Inf")))] == 3
        stomp = (("protocol", "stomp"),)
        assert m[("sluice_network_received_bytes_total", stomp)] == st.sent
        assert m[("sluice_network_sent_bytes_total", stomp)] == st.got
        assert m[("sluice_connections_opened_total", stomp)] == 1
        assert m[("sluice_connections_opened_total",
                  (("protocol", "binary"),))] == 1
        assert m[("sluice_connections", (("protocol", "binary"),))] == 1

        g = (("group", "mq"), ("topic", "mq"))
        for name, want in (("deliveries", 4), ("redeliveries", 1),
                           ("acks", 3), ("nacks", 1), ("rejects", 0),
                           ("dead_letters", 0)):
            assert m[("sluice_queue_group_%s_total" % name, g)] == want, name

        produce = (("api", "PRODUCE"),)
        assert m[("sluice_request_duration_seconds_count", produce)] == 2
        assert m[("sluice_request_duration_seconds_bucket",
                  (("api", "PRODUCE"), ("le", "+Inf")))] == 2
        assert m[("sluice_request_duration_seconds_sum", produce)] > 0
        assert m[("sluice_requests_total", produce)] == 2
        n = m[("sluice_groups_commit_duration_seconds_count", ())]
        assert n >= 1 and n == m[("sluice_groups_commits_total", ())]
    finally:
        assert b.stop() == 0
    b.cleanup()


def test_open_close_lines_are_rate_limited(tmp_path):
    """Each open and close is one INFO line, at most 100 per 10 s window;
    the lines left out are counted, so every connection is accounted for."""
    n = 260
    b = Broker(str(tmp_path / "d"))
    b.start()
    try:
        for _ in range(n):
            s = socket.create_connection(b.binary_addr, timeout=30)
            s.close()
    finally:
        # SIGTERM: every close is logged before the broker exits, and the
        # last window's count is written at stop
        assert b.stop() == 0
    conn_ts = []
    left_out = 0
    for l in b.log().splitlines():
        m = re.match(r"\S+T(\d+):(\d+):([0-9.]+)Z INFO conn peer [0-9.:]+: "
                     r"connection \d+ (opened \(binary\)|closed \()", l)
        if m:
            conn_ts.append(int(m.group(1)) * 3600 + int(m.group(2)) * 60 +
                           float(m.group(3)))
        m = re.search(r"INFO conn \.\.\. and (\d+) more connections opened "
                      r"or closed in that 10 s", l)
        if m:
            left_out += int(m.group(1))
    # every open and close is a line or counted in one
    assert len(conn_ts) + left_out == 2 * n
    if conn_ts[-1] - conn_ts[0] < 9.5:
        # all within one window (any machine opens 260 sockets in well
        # under 10 s; the log's timestamps say so): exactly 100 lines
        assert len(conn_ts) == 100 and left_out == 2 * n - 100
    b.cleanup()


def test_log_file_reopened_on_sighup(tmp_path):
    """--log-file: lines go to the file; after logrotate's move and a
    SIGHUP they go to a new file of the same name."""
    path = str(tmp_path / "sluiced.log")
    b = Broker(str(tmp_path / "d"), args=["--log-file", path])
    b.start()
    try:
        assert "sluiced started" in open(path).read()
        os.rename(path, path + ".1")
        os.kill(b.pid, signal.SIGHUP)
        # the signal is pending before the CLI below connects, so the
        # loop handles it no later than the CLI's accept
        cli(b, "topic", "create", "after-hup", "--partitions", "1")
    finally:
        assert b.stop() == 0
    old = open(path + ".1").read()
    new = open(path).read()
    assert "sluiced started" in old and "SIGHUP" not in old
    assert "SIGHUP: still running" in new and "log reopened" in new
    # the CLI's request was read at least one loop pass after the signal
    # was handled (its accept came first): so were its topic and close
    assert "created topic after-hup" in new and "after-hup" not in old
    assert re.search(r"connection \d+ closed \(eof\): binary", new)
    assert b.log().strip() == ""  # nothing on stderr
    b.cleanup()


def test_log_file_that_cannot_be_opened(tmp_path):
    p = subprocess.run([os.path.join(bin_dir(), "sluiced"), "--data",
                        str(tmp_path / "d"), "--log-file",
                        str(tmp_path / "no" / "such" / "dir" / "x.log")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 2
    assert b"log-file: cannot open" in p.stderr
    assert b"No such file or directory" in p.stderr
