"""Logs: --log-format json writes one JSON object per line (ts, level,
subsys, msg), escaping whatever a message holds."""
import json
import os
import subprocess

from sluice_harness import Broker, bin_dir


def cli(b, *args):
    p = subprocess.run([os.path.join(bin_dir(), "sluice"), "-b",
                        "%s:%d" % b.binary_addr] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0, p.stderr.decode()


def test_json_log_lines(tmp_path):
    b = Broker(str(tmp_path / "d"), args=["--log-format", "json"])
    b.start()
    try:
        # a message with a quote and a backslash in it: the INFO line of a
        # group deleted by name
        cli(b, "topic", "create", "t", "--partitions", "1")
        cli(b, "group", "config", 'we"ird\\g', "--topic", "t",
            "max_deliveries=2")
        cli(b, "group", "delete", 'we"ird\\g')
    finally:
        assert b.stop() == 0
    lines = [l for l in b.log().splitlines() if l.strip()]
    assert len(lines) >= 3
    recs = [json.loads(l) for l in lines]
    for r in recs:
        assert set(r) == {"ts", "level", "subsys", "msg"}
        assert r["ts"].endswith("Z") and r["level"] in (
            "DEBUG", "INFO", "WARN", "ERROR")
    assert any(r["subsys"] == "server" and r["msg"].startswith(
        "sluiced started") for r in recs)
    assert any(r["msg"] == 'deleted group we"ird\\g' for r in recs)
    b.cleanup()
