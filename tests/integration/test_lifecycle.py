"""Start-up, configuration and shutdown of sluiced."""
import os
import signal
import socket
import subprocess
import time

import sluice_wire as sw
from sluice_harness import Broker, sluiced_path


def run(*args):
    return subprocess.run([sluiced_path()] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)


def table_keys():
    out = run("--dump-config").stdout.decode()
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def test_help_lists_every_key():
    r = run("--help")
    assert r.returncode == 0
    text = r.stdout.decode()
    keys = table_keys() + ["config"]
    assert len(keys) >= 20
    for k in keys:
        assert "--%s " % k in text, k
    md = run("--dump-config-md").stdout.decode()
    for k in keys:
        assert "`--%s`" % k in md, k


def test_defaults_documented():
    text = run("--help").stdout.decode()
    assert "127.0.0.1:7410" in text and "127.0.0.1:61613" in text
    assert "./sluice-data" in text
    conf = dict(line.split(" ", 1) for line in
                run("--dump-config").stdout.decode().splitlines())
    assert conf["listen"] == "127.0.0.1:7410"
    assert conf["stomp-listen"] == "127.0.0.1:61613"
    assert conf["data"] == "./sluice-data"
    assert conf["default-partitions"] == "1"
    assert conf["flush"] == "always"


def test_bad_settings_name_the_key(tmp_path):
    r = run("--flush", "sometimes")
    assert r.returncode == 2 and b"flush" in r.stderr
    r = run("--no-such-thing", "1")
    assert r.returncode == 2 and b"no-such-thing" in r.stderr
    r = run("--max-frame-bytes", "12")
    assert r.returncode == 2 and b"max-frame-bytes" in r.stderr
    conf = tmp_path / "bad.conf"
    conf.write_text("# comment\n\nsegment-bytes lots\n")
    r = run("--config", str(conf))
    assert r.returncode == 2
    assert b"bad.conf:3" in r.stderr and b"segment-bytes" in r.stderr


def test_config_file_and_flags(tmp_path):
    conf = tmp_path / "sluiced.conf"
    conf.write_text("default-partitions 3\nflush interval\n"
                    "flush-interval-ms 20\nmax-frame-bytes 64k\n"
                    "log-level debug\n")
    # flags override the file wherever they stand
    out = run("--default-partitions=5", "--config", str(conf),
              "--dump-config").stdout.decode()
    conf_out = dict(line.split(" ", 1) for line in out.splitlines())
    assert conf_out["default-partitions"] == "5"
    assert conf_out["flush"] == "interval"
    assert conf_out["max-frame-bytes"] == str(64 * 1024)
    b = Broker(str(tmp_path / "d"), args=["--config", str(conf)])
    b.start()
    try:
        c = b.client()
        assert c.produce("auto", 2, [b"x"], acks=sw.ACKS_DURABLE)["error"] == 0
        assert c.list_topics() == {"auto": 3}
        recs = c.fetch_records("auto", 2, 0, upto=1)
        assert recs[0]["value"] == b"x"
        # max-frame-bytes from the file is enforced
        s = socket.create_connection(b.binary_addr)
        s.sendall(sw.request_frame(sw.API_PRODUCE, 9, b"\0" * (70 * 1024)))
        s.settimeout(30)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        err, msg, _ = sw.status(data[8:])
        assert err == sw.ERR_TOO_LARGE and "65536" in msg
        assert "DEBUG" in b.log()
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_sigterm_exits_zero_and_sigint_too(tmp_path):
    b = Broker(str(tmp_path / "d"))
    try:
        b.start()
        c = b.client()
        c.produce("t", 0, [b"a"], acks=sw.ACKS_DURABLE)
        assert b.stop(signal.SIGTERM) == 0
        b.start()
        assert b.stop(signal.SIGINT) == 0
        assert "stopped" in b.log()
    finally:
        b.cleanup()


def test_sigterm_answers_inflight_long_poll(tmp_path):
    b = Broker(str(tmp_path / "d"))
    try:
        b.start()
        c = b.client()
        c.create_topic("lp", 1)
        corr = c.send(sw.API_FETCH, sw.fetch_body({"lp": [(0, 0, 1000)]},
                                                  max_wait_ms=600000,
                                                  min_bytes=1))
        os.kill(b.pid, signal.SIGTERM)
        rc, body = c.recv()  # answered (empty), not dropped
        assert rc == corr
        assert sw.decode_fetch(body)[("lp", 0)]["records"] == b""
        assert b.proc.wait(60) == 0
        b.proc.stdout.close()
        b.proc = None
    finally:
        b.cleanup()


def test_second_broker_on_same_dir_refuses(broker):
    p = Broker(broker.data_dir).spawn()
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 3
    assert out == b""  # no ready line
    assert "locked by another sluiced" in broker.log()
    assert "pid %d" % broker.pid in broker.log()
    # the first broker is unaffected
    assert broker.client().list_topics() == {}


def test_listen_failure_is_reported(broker):
    host, port = broker.binary_addr
    r = run("--data", broker.data_dir + "-other", "--listen",
            "%s:%d" % (host, port), "--stomp-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0")
    assert r.returncode == 4
    assert b"cannot listen" in r.stderr and str(port).encode() in r.stderr
    assert b"move it with --listen HOST:PORT" in r.stderr


def test_stomp_port_taken_suggests_the_flag(broker):
    # the first hour on a machine that already runs RabbitMQ or ActiveMQ
    host, port = broker.stomp_addr
    r = run("--data", broker.data_dir + "-other", "--listen", "127.0.0.1:0",
            "--stomp-listen", "%s:%d" % (host, port),
            "--http-listen", "127.0.0.1:0")
    assert r.returncode == 4
    err = r.stderr.decode()
    assert "stomp: cannot listen on %s:%d: Address already in use" % (
        host, port) in err
    assert "move it with --stomp-listen HOST:PORT" in err


def test_idle_timeout_closes_quiet_connections(tmp_path):
    b = Broker(str(tmp_path / "d"), args=["--idle-timeout-ms", "500"])
    try:
        b.start()
        with b.client() as admin:
            assert admin.create_topic("lp", 1) == (0, None)
        s = socket.create_connection(b.binary_addr)
        s.settimeout(30)
        assert s.recv(10) == b""  # closed by the broker
        # a parked long poll (3 x the idle timeout) is not idle
        c = b.client()
        r = c.fetch("lp", 0, 0, max_wait_ms=1500, min_bytes=1)
        assert r["error"] == 0 and r["records"] == b""
        assert "closing idle connection" in b.log()
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_sigterm_finishes_inflight_durable_produces(tmp_path):
    b = Broker(str(tmp_path / "d"))
    try:
        b.start()
        c = b.client()
        c.create_topic("inflight", 2)
        corrs = []
        for i in range(60):
            body = sw.produce_body(sw.ACKS_DURABLE, {"inflight": {
                i % 2: sw.encode_batch([b"m%d" % i])}})
            corrs.append(c.send(sw.API_PRODUCE, body))
        os.kill(b.pid, signal.SIGTERM)
        acked = 0
        for corr in corrs:
            try:
                rc, body = c.recv()
            except ConnectionError:
                break
            assert rc == corr
            r = sw.decode_produce(body)
            assert list(r.values())[0]["error"] == 0
            acked += 1
        assert b.proc.wait(60) == 0
        b.proc.stdout.close()
        b.proc = None
        b.start()
        c = b.client()
        ends = [c.list_offset("inflight", p, sw.OFFSET_LATEST)[1]
                for p in range(2)]
        # every acked produce is there (the broker may have read them all)
        assert sum(ends) >= acked
        assert acked > 0
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_max_connections(tmp_path):
    b = Broker(str(tmp_path / "d"), args=["--max-connections", "2"])
    try:
        b.start()
        c1, c2 = b.client(), b.client()
        assert c1.list_topics() == {} and c2.list_topics() == {}
        s = socket.create_connection(b.binary_addr)
        s.settimeout(30)
        try:
            assert s.recv(10) == b""  # refused: closed at once
        except ConnectionResetError:
            pass
        assert "max-connections reached" in b.log()
        c1.close()
        # a slot frees up once the broker has reaped c1; c2 still works
        assert c2.list_topics() == {}
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_retention_runs_from_the_maintenance_timer(tmp_path):
    b = Broker(str(tmp_path / "d"), args=["--maintenance-interval-ms", "10"])
    try:
        b.start()
        c = b.client()
        assert c.create_topic("ret", 1, {"segment-bytes": "4k",
                                         "retention-bytes": "8k"}) == (0, None)
        for i in range(40):
            r = c.produce("ret", 0, [b"%04d" % i + b"z" * 1000],
                          acks=sw.ACKS_DURABLE)
            assert r["error"] == 0
        # the timer fires every 10 ms; round trips (no sleeps) until it has
        # deleted the oldest segments
        deadline = time.monotonic() + 60
        start = 0
        while start == 0 and time.monotonic() < deadline:
            start = c.list_offset("ret", 0, sw.OFFSET_EARLIEST)[1]
        assert 0 < start < 40
        assert c.fetch("ret", 0, 0)["error"] == sw.ERR_OFFSET_OUT_OF_RANGE
        # The timer keeps running: it may delete another segment between the
        # list_offset and the fetch. Then the fetch is out of range and the
        # log start has moved on; read from the new start.
        while True:
            try:
                recs = c.fetch_records("ret", 0, start, upto=40)
                break
            except sw.ProtocolError as e:
                assert e.code == sw.ERR_OFFSET_OUT_OF_RANGE
                newstart = c.list_offset("ret", 0, sw.OFFSET_EARLIEST)[1]
                assert start < newstart < 40
                start = newstart
        assert [x["value"][:4] for x in recs] == \
            [b"%04d" % i for i in range(start, 40)]
        assert "retention removed" in b.log()
        assert b.stop() == 0
    finally:
        b.cleanup()
