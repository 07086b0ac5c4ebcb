"""CLI round trips against a real sluiced (port 0, temp data dir).

Runs build/bin/sluice (SLUICE_BIN_DIR) against a broker spawned by
tests/harness/sluice_harness.py. Exit codes are those of docs/cli.md:
0 ok, 1 operation failed, 2 usage, 3 broker unreachable, 4 timeout.
"""
import json
import os
import socket
import subprocess

import pytest


def sluice_bin():
    d = os.environ.get("SLUICE_BIN_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bin")
    return os.path.join(d, "sluice")


def run(broker, *args, stdin=None, timeout=60):
    addr = "%s:%d" % broker.binary_addr if broker else "127.0.0.1:1"
    p = subprocess.run([sluice_bin(), "-b", addr] + list(args),
                       input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode()


def ok(broker, *args, stdin=None):
    rc, out, err = run(broker, *args, stdin=stdin)
    assert rc == 0, "sluice %s -> %d: %s" % (" ".join(args), rc, err)
    return out


def test_produce_consume_raw_equals_input(broker):
    ok(broker, "topic", "create", "lines", "--partitions", "1")
    lines = [("record %d " % i) + "x" * (i % 50) for i in range(500)]
    data = ("\n".join(lines) + "\n").encode()
    ok(broker, "produce", "lines", stdin=data)
    out = ok(broker, "consume", "lines", "--from-beginning", "--count",
             "500", "--format", "raw")
    assert out == data
    # without --count: stops at the log end, same output
    out = ok(broker, "consume", "lines", "--from-beginning")
    assert out == data
    # --offset
    out = ok(broker, "consume", "lines", "--offset", "498")
    assert out.decode().splitlines() == lines[498:]


def test_several_partitions_and_acks(broker):
    ok(broker, "topic", "create", "multi", "--partitions", "3")
    want = []
    for acks in ("none", "written", "durable"):
        batch = ["%s-%d" % (acks, i) for i in range(100)]
        want += batch
        ok(broker, "produce", "multi", "--acks", acks,
           stdin=("\n".join(batch) + "\n").encode())
    for p in range(3):
        ok(broker, "produce", "multi", "--partition", str(p),
           stdin=("p%d\n" % p).encode())
        want.append("p%d" % p)
    out = ok(broker, "consume", "multi", "--from-beginning", "--format",
             "json")
    recs = [json.loads(l) for l in out.decode().splitlines()]
    assert sorted(r["value"] for r in recs) == sorted(want)
    for p in range(3):
        assert {"value": "p%d" % p, "partition": p} in [
            {"value": r["value"], "partition": r["partition"]} for r in recs]
    # offsets within a partition are 0..n-1 in order
    for p in range(3):
        offs = [r["offset"] for r in recs if r["partition"] == p]
        assert offs == list(range(len(offs)))
    out = ok(broker, "consume", "multi", "--from-beginning", "--partition",
             "2", "--format", "json")
    assert all(json.loads(l)["partition"] == 2
               for l in out.decode().splitlines())


def test_json_key_separator_headers(broker):
    ok(broker, "topic", "create", "kv", "--partitions", "4")
    ok(broker, "produce", "kv", "--key-separator", "::", "--header", "h=1",
       stdin=b'alpha::{"n": 1}\nbeta::two\nno separator here\n'
             b'alpha::again\n')
    out = ok(broker, "consume", "kv", "--from-beginning", "--format", "json")
    recs = [json.loads(l) for l in out.decode().splitlines()]
    assert len(recs) == 4
    by_val = {r["value"]: r for r in recs}
    assert by_val['{"n": 1}']["key"] == "alpha"
    assert by_val["two"]["key"] == "beta"
    assert by_val["no separator here"]["key"] is None
    assert by_val["again"]["key"] == "alpha"
    # same key, same partition, in order
    assert by_val["again"]["partition"] == by_val['{"n": 1}']["partition"]
    assert by_val["again"]["offset"] > by_val['{"n": 1}']["offset"]
    for r in recs:
        assert r["headers"] == {"h": "1"}
        assert r["topic"] == "kv"
        assert r["timestamp"] > 1600000000000


def test_time(broker):
    ok(broker, "topic", "create", "timed", "--partitions", "2")
    ok(broker, "produce", "timed", stdin=b"old1\nold2\n")
    out = ok(broker, "consume", "timed", "--from-beginning", "--format",
             "json")
    t = max(json.loads(l)["timestamp"] for l in out.decode().splitlines())
    # a new process: its records are stamped at least a millisecond later
    ok(broker, "produce", "timed", stdin=b"new1\nnew2\n")
    out = ok(broker, "consume", "timed", "--time", str(t + 1))
    assert sorted(out.decode().splitlines()) == ["new1", "new2"]
    out = ok(broker, "consume", "timed", "--time", "1970-01-01T00:00:00Z")
    assert len(out.decode().splitlines()) == 4


def test_group_commit_and_resume(broker):
    ok(broker, "topic", "create", "grp", "--partitions", "2")
    vals = ["v%d" % i for i in range(20)]
    ok(broker, "produce", "grp", stdin=("\n".join(vals) + "\n").encode())
    first = ok(broker, "consume", "grp", "--group", "g1", "--from-beginning",
               "--count", "5").decode().splitlines()
    assert len(first) == 5
    rest = ok(broker, "consume", "grp", "--group", "g1",
              "--from-beginning").decode().splitlines()
    assert sorted(first + rest) == sorted(vals)
    assert ok(broker, "consume", "grp", "--group", "g1") == b""
    out = ok(broker, "group", "list").decode()
    assert "g1" in out and "stream" in out
    out = ok(broker, "group", "describe", "g1").decode()
    assert "group g1 kind stream" in out
    assert "lag 0" in out


def test_queue_consume_acks(broker):
    ok(broker, "topic", "create", "jobs", "--partitions", "2")
    vals = ["job%d" % i for i in range(30)]
    ok(broker, "produce", "jobs", stdin=("\n".join(vals) + "\n").encode())
    out = ok(broker, "queue", "consume", "jobs", "--group", "w", "--count",
             "30", "--format", "json")
    recs = [json.loads(l) for l in out.decode().splitlines()]
    assert sorted(r["value"] for r in recs) == sorted(vals)
    assert all(r["attempts"] == 1 and r["failures"] == 0 for r in recs)
    # everything was acked: nothing is delivered again
    out = ok(broker, "queue", "consume", "jobs", "--group", "w",
             "--wait-ms", "300")
    assert out == b""
    out = ok(broker, "group", "describe", "w").decode()
    assert "kind queue" in out


def test_errors_and_exit_codes(broker):
    rc, out, err = run(broker, "consume", "nosuch", "--from-beginning")
    assert rc == 1
    assert "nosuch" in err and "unknown topic" in err
    ok(broker, "topic", "create", "dup")
    rc, out, err = run(broker, "topic", "create", "dup")
    assert rc == 1 and "dup" in err
    rc, out, err = run(broker, "topic", "describe", "nosuch")
    assert rc == 1 and "nosuch" in err
    rc, out, err = run(broker, "consume")
    assert rc == 2 and "missing topic" in err
    rc, out, err = run(broker, "produce", "x", "--acks", "all")
    assert rc == 2 and "--acks" in err
    rc, out, err = run(broker, "consume", "x", "--time", "yesterday")
    assert rc == 2 and "yesterday" in err
    rc, out, err = run(broker, "frobnicate")
    assert rc == 2 and "frobnicate" in err
    rc, out, err = run(broker, "queue", "consume", "x")
    assert rc == 2 and "--group" in err


def test_unreachable_broker():
    # a port that was just free: nothing listens there
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = subprocess.run([sluice_bin(), "-b", "127.0.0.1:%d" % port, "topic",
                        "list"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 3
    assert ("127.0.0.1:%d" % port) in p.stderr.decode()
    p = subprocess.run([sluice_bin(), "-b", "127.0.0.1:%d" % port, "produce",
                        "t"], input=b"x\n", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 3


def test_follow(broker):
    ok(broker, "topic", "create", "live", "--partitions", "1")
    ok(broker, "produce", "live", stdin=b"first\n")
    addr = "%s:%d" % broker.binary_addr
    p = subprocess.Popen([sluice_bin(), "-b", addr, "consume", "live",
                          "--offset", "0", "--follow", "--count", "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the consumer is positioned once it printed the first record
        assert p.stdout.readline() == b"first\n"
        ok(broker, "produce", "live", stdin=b"second\nthird\n")
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err.decode()
    assert out == b"second\nthird\n"


def test_dlq_list_show_redrive(broker):
    ok(broker, "topic", "create", "orders", "--partitions", "1")
    ok(broker, "produce", "orders", stdin=b"o1\no2\no3\n")
    exe = os.path.join(os.path.dirname(sluice_bin()),
                       "test_client_integration")
    p = subprocess.run([exe, "reject", "%s:%d" % broker.binary_addr,
                        "orders", "billing", "2"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    out = ok(broker, "dlq", "list").decode()
    assert "orders.DLQ" in out and "source=orders" in out
    assert "group=billing" in out and "pending=2\ttotal=2" in out
    assert ok(broker, "dlq", "list", "nosuch").decode() == ""
    out = ok(broker, "dlq", "show", "orders.DLQ").decode()
    recs = [json.loads(l) for l in out.splitlines()]
    assert sorted(r["value"] for r in recs) == ["o1", "o2"]
    for r in recs:
        assert r["headers"]["dlq.reason"] == "rejected"
        assert r["headers"]["dlq.topic"] == "orders"
        assert r["headers"]["dlq.group"] == "billing"
    out = ok(broker, "group", "describe", "billing").decode()
    assert "dlq orders.DLQ depth 2" in out
    out = ok(broker, "dlq", "redrive", "orders.DLQ", "--reason",
             "rejected").decode()
    assert "redrove 2 records" in out
    # redriven records are handled: the depth to alert on went down
    out = ok(broker, "dlq", "list").decode()
    assert "pending=0\ttotal=2" in out
    out = ok(broker, "consume", "orders", "--from-beginning").decode()
    assert out.splitlines() == ["o1", "o2", "o3", "o1", "o2"]
    rc, out, err = run(broker, "dlq", "redrive", "nosuch.DLQ")
    assert rc == 1 and "nosuch.DLQ" in err


def test_group_spanning_topics_describes_each_dlq(broker):
    # one queue group on two topics; only the first has dead letters
    ok(broker, "topic", "create", "span1", "--partitions", "1")
    ok(broker, "topic", "create", "span2", "--partitions", "1")
    ok(broker, "produce", "span1", stdin=b"a\n")
    ok(broker, "produce", "span2", stdin=b"b\n")
    exe = os.path.join(os.path.dirname(sluice_bin()),
                       "test_client_integration")
    p = subprocess.run([exe, "reject", "%s:%d" % broker.binary_addr,
                        "span1", "spanning", "1"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    assert ok(broker, "queue", "consume", "span2", "--group", "spanning",
              "--count", "1") == b"b\n"
    out = ok(broker, "group", "describe", "spanning").decode()
    assert "dlq span1.DLQ depth 1 source span1" in out
    assert "dlq span2.DLQ depth 0 source span2" in out
    assert "depth -1" not in out
    # the name dlq list prints is one dlq redrive accepts (not created yet)
    out = ok(broker, "dlq", "list", "span2").decode()
    assert out.split("\t")[0] == "span2.DLQ" and "pending=0\ttotal=0" in out
    out = ok(broker, "dlq", "redrive", "span2.DLQ").decode()
    assert "redrove 0 records" in out


def helper(broker, *args):
    exe = os.path.join(os.path.dirname(sluice_bin()),
                       "test_client_integration")
    p = subprocess.run([exe, args[0], "%s:%d" % broker.binary_addr]
                       + list(args[1:]), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def settings(out):
    return dict(l.split("=", 1) for l in out.decode().splitlines())


def test_group_config_max_deliveries_dead_letters(broker):
    ok(broker, "topic", "create", "tasks", "--partitions", "1")
    # no key=value on a missing group: nothing to show, nothing created
    rc, out, err = run(broker, "group", "config", "pay", "--topic", "tasks")
    assert rc == 1 and "pay" in err and "unknown group" in err
    out = ok(broker, "group", "config", "pay", "--topic", "tasks",
             "max_deliveries=2", "lock_ms=60000")
    cfg = settings(out)
    assert cfg["max_deliveries"] == "2" and cfg["lock_ms"] == "60000"
    assert cfg["backoff_max_ms"] == "60000"  # untouched default
    assert not any(k.startswith("stats.") for k in cfg)
    # reading it back (describe) gives the same settings
    assert settings(ok(broker, "group", "config", "pay", "--topic",
                       "tasks")) == cfg
    ok(broker, "produce", "tasks", stdin=b"t1\n")
    # nacked twice: the 2nd nack reaches max_deliveries -> dead-lettered,
    # so a 3rd poll finds nothing
    out = helper(broker, "nack", "tasks", "pay", "3")
    assert out.splitlines() == ["t1 attempts=1", "t1 attempts=2", "none"]
    out = ok(broker, "dlq", "show", "tasks.DLQ").decode()
    recs = [json.loads(l) for l in out.splitlines()]
    assert [r["value"] for r in recs] == ["t1"]
    assert recs[0]["headers"]["dlq.reason"] == "max_deliveries"
    assert recs[0]["headers"]["dlq.attempts"] == "2"
    assert recs[0]["headers"]["dlq.group"] == "pay"
    out = ok(broker, "group", "config", "pay", "--topic", "tasks",
             "--stats").decode()
    assert "stats.dlq_appends=1" in out.splitlines()


def test_group_config_errors(broker):
    ok(broker, "topic", "create", "tasks2", "--partitions", "1")
    ok(broker, "group", "config", "g", "--topic", "tasks2", "lock_ms=5000")
    # an unknown key: usage exit code, the key named, nothing changed
    rc, out, err = run(broker, "group", "config", "g", "--topic", "tasks2",
                       "max_deliveries=4", "max_delivery=2")
    assert rc == 2 and "'max_delivery'" in err and out == b""
    rc, out, err = run(broker, "group", "config", "g", "--topic", "tasks2",
                       "lock_ms=-5")
    assert rc == 2 and "lock_ms" in err and "'-5'" in err
    cfg = settings(ok(broker, "group", "config", "g", "--topic", "tasks2"))
    assert cfg["lock_ms"] == "5000" and cfg["max_deliveries"] == "10"
    # --alter does not create
    rc, out, err = run(broker, "group", "config", "h", "--topic", "tasks2",
                       "--alter", "lock_ms=5000")
    assert rc == 1 and "h" in err and "unknown group" in err
    rc, out, err = run(broker, "group", "config", "g", "lock_ms=1")
    assert rc == 2 and "--topic" in err
    rc, out, err = run(broker, "group", "config", "g", "--topic", "tasks2",
                       "lock_ms")
    assert rc == 2 and "key=value" in err
    rc, out, err = run(broker, "group", "config", "--topic", "tasks2")
    assert rc == 2 and "group name" in err


def test_sluice_bootstrap_environment_variable(broker):
    # no -b: SLUICE_BOOTSTRAP names the broker (issues 13, 17, 19)
    env = dict(os.environ, SLUICE_BOOTSTRAP="%s:%d" % broker.binary_addr)
    p = subprocess.run([sluice_bin(), "topic", "create", "envtopic",
                        "--partitions", "2"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sluice_bin(), "topic", "list"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0 and b"envtopic" in p.stdout
    # -b wins over the environment
    env["SLUICE_BOOTSTRAP"] = "127.0.0.1:1"
    p = subprocess.run([sluice_bin(), "-b", "%s:%d" % broker.binary_addr,
                        "topic", "list"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0 and b"envtopic" in p.stdout
    # and the environment is really used without -b: unreachable, exit 3
    p = subprocess.run([sluice_bin(), "topic", "list"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 3 and b"127.0.0.1:1" in p.stderr


def test_produce_without_keys_spreads_over_partitions(broker):
    # docs/cli.md: seq 1 1000 | sluice produce orders2, then a partition
    ok(broker, "topic", "create", "spread", "--partitions", "4")
    ok(broker, "produce", "spread",
       stdin="".join("%d\n" % i for i in range(1, 1001)).encode())
    counts = [len(ok(broker, "consume", "spread", "--from-beginning",
                     "--partition", str(p)).splitlines()) for p in range(4)]
    assert counts == [250, 250, 250, 250]


# ---- management commands (issue 17) -----------------------------------

HELP_COMMANDS = [
    ["topic", "create"], ["topic", "list"], ["topic", "describe"],
    ["topic", "delete"], ["topic", "alter"], ["topic", "add-partitions"],
    ["produce"], ["consume"], ["queue", "consume"], ["queue", "purge"],
    ["queue", "peek"], ["queues"], ["connections"], ["connections", "close"],
    ["status"], ["version"],
    ["group", "list"], ["group", "describe"], ["group", "config"],
    ["group", "delete"], ["group", "reset"], ["dlq", "list"], ["dlq", "show"],
    ["dlq", "redrive"], ["dlq", "purge"],
]


@pytest.mark.parametrize("cmd", HELP_COMMANDS, ids=" ".join)
def test_every_command_answers_help_without_a_broker(cmd):
    # broker None: -b 127.0.0.1:1, nothing listens there
    rc, out, err = run(None, *(cmd + ["--help"]))
    assert rc == 0, err
    text = out.decode()
    assert text.startswith("usage: sluice " + " ".join(cmd)), text
    assert "example:\n  " in text and "sluice " + cmd[0] in text
    # also in the middle of other arguments, and as -h
    rc, out2, _ = run(None, *(cmd + ["x", "-h"]))
    assert rc == 0 and out2 == out


def test_queues_purge_peek_reset(broker):
    ok(broker, "topic", "create", "jobs", "--partitions", "1")
    ok(broker, "produce", "jobs", stdin=b"j1\nj2\nj3\n")
    ok(broker, "group", "config", "w", "--topic", "jobs", "max_deliveries=3")
    out = ok(broker, "queues").decode().splitlines()
    assert out[0].split()[:5] == ["TOPIC", "GROUP", "READY", "IN-FLIGHT",
                                  "DELAYED"]
    (line,) = [l for l in out[1:] if l.split()[:2] == ["jobs", "w"]]
    assert line.split()[2:7] == ["3", "0", "0", "0/0", "0"]
    rows = json.loads(ok(broker, "queues", "--format", "json"))["queues"]
    (r,) = [r for r in rows if r["topic"] == "jobs"]
    assert r["ready"] == 3 and r["dlq_topic"] == "jobs.DLQ"
    # peek twice: same records, nothing delivered
    for _ in range(2):
        recs = [json.loads(l) for l in
                ok(broker, "queue", "peek", "jobs", "--group", "w",
                   "--count", "2").decode().splitlines()]
        assert [x["value"] for x in recs] == ["j1", "j2"]
    out = ok(broker, "queue", "purge", "jobs", "--group", "w").decode()
    assert "purged 3 records" in out
    assert ok(broker, "queue", "peek", "jobs", "--group", "w") == b""
    out = ok(broker, "group", "reset", "w", "--topic", "jobs",
             "--to-offset", "1").decode()
    assert "jobs/0\t1" in out
    out = ok(broker, "queue", "consume", "jobs", "--group", "w",
             "--count", "2")
    assert out == b"j2\nj3\n"
    rc, _, err = run(broker, "group", "reset", "w", "--topic", "jobs")
    assert rc == 2 and "exactly one of" in err
    rc, _, err = run(broker, "queue", "purge", "jobs", "--group", "nosuch")
    assert rc == 1 and "nosuch" in err
    ok(broker, "group", "delete", "w")
    rc, _, err = run(broker, "group", "delete", "w")
    assert rc == 1 and "unknown group 'w'" in err


def test_topic_alter_add_partitions_status_version(broker):
    ok(broker, "topic", "create", "alt", "--partitions", "1")
    out = ok(broker, "topic", "alter", "alt", "--config",
             "retention-ms=60000").decode()
    assert "config retention-ms=60000" in out
    assert "config retention-ms=60000" in ok(
        broker, "topic", "describe", "alt").decode()
    rc, _, err = run(broker, "topic", "alter", "alt", "--config",
                     "no-such-key=1")
    assert rc == 1 and "no-such-key" in err
    out = ok(broker, "topic", "add-partitions", "alt", "--count",
             "4").decode()
    assert "now has 4 partitions" in out
    assert ok(broker, "topic", "list").decode().count("alt\t4") == 1
    status = ok(broker, "status").decode()
    assert "version:" in status and "binary:      %s:%d" % \
        broker.binary_addr in status
    ver = ok(broker, "version").decode().splitlines()
    assert ver[0].startswith("sluice ") and ver[1].startswith("sluiced ")
