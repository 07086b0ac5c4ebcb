"""The programs in examples/ run as tests, against a fresh broker, as a user
would run them (a separate interpreter, PYTHONPATH to the bindings)."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("SLUICE_SOURCE_DIR") or os.path.normpath(
    os.path.join(HERE, "..", "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples")


def run_example(name, bootstrap, topic):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.normpath(os.path.join(HERE, ".."))] +
        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name),
         "--bootstrap", bootstrap, "--topic", topic],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=180, universal_newlines=True)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.rstrip().endswith("OK"), proc.stdout
    return proc.stdout


def test_work_queue_with_retries_and_dlq(bootstrap, topic):
    out = run_example("work_queue.py", bootstrap, topic)
    assert "job 20: retry(attempt 1) -> retry(attempt 2) -> done(attempt 3)" \
        in out
    assert "job 21: rejected(attempt 1)" in out
    assert "DLQ: job 22 reason=rejected attempts=3" in out


def test_pubsub_fanout(bootstrap, topic):
    out = run_example("fanout.py", bootstrap, topic)
    for service in ("audit", "alerts", "dashboard"):
        assert "%-10s received 200 ticks, per-symbol order kept: True" \
            % service in out


def test_event_sourcing_replay_of_compacted_topic(bootstrap, topic):
    out = run_example("event_sourcing.py", bootstrap, topic)
    assert "live accounts" in out


def test_examples_run_twice_against_the_same_topic(bootstrap, topic):
    """Users re-run examples: a second run must still be right."""
    run_example("event_sourcing.py", bootstrap, topic)
    run_example("event_sourcing.py", bootstrap, topic)
