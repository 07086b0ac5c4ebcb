"""Power loss at random I/O operations (tests/crash/powerloss.py): a few
dozen rounds here; scripts/powerloss.sh --rounds 1000 is the long mode."""
import os

import powerloss


def test_powerloss_rounds(tmp_path):
    rounds = int(os.environ.get("SLUICE_POWERLOSS_ROUNDS", "30"))
    s = powerloss.run(rounds, seed=20261206, nmax=1000, fresh_every=10,
                      workdir=str(tmp_path))
    assert s["rounds"] == rounds
    # the rounds did cut power under load, not only kill -9
    assert s["cut"] >= rounds // 3, s
    assert s["acked"] > 1000 and s["qacked"] > 500, s


def test_powerloss_rounds_journal(tmp_path, monkeypatch):
    """The same with every fsync round going through the shared journal
    (storage/journal.c) and 1 MiB journal files: segment files are then
    fsynced only at checkpoints, so a cut usually drops acked bytes from
    them and the restart must replay them from the journal."""
    rounds = int(os.environ.get("SLUICE_POWERLOSS_ROUNDS", "12"))
    monkeypatch.setattr(powerloss, "BROKER_ARGS", powerloss.BROKER_ARGS + [
        "--journal-min-partitions", "1", "--journal-file-bytes", "1m"])
    s = powerloss.run(rounds, seed=20261207, nmax=1000, fresh_every=10,
                      workdir=str(tmp_path))
    assert s["rounds"] == rounds
    assert s["cut"] >= rounds // 3, s
    assert s["acked"] > 200, s
