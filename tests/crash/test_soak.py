"""A short soak (tests/crash/soak.py): kill -9 rounds under binary and
STOMP producers, a queue consumer acking and dead-lettering. The long
mode is scripts/soak.sh --rounds 1000."""
import os

import soak


def test_soak_short(tmp_path):
    rounds = int(os.environ.get("SLUICE_SOAK_ROUNDS", "8"))
    r = soak.run(rounds, 20261206, str(tmp_path / "data"), every=0)
    assert r["kills"] == rounds
    assert r["binary"] > 0 and r["stomp"] > 0 and r["qacked"] > 0, r
    assert r["dlq"] > 0, r
