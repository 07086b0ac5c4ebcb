"""Fixtures shared by the cluster suite (docs/cluster.md, Tests).

`cluster`: three real sluiced nodes on loopback (cluster_harness.Cluster),
started before the test and stopped by pid after it; `cluster5` the same
with five. A test may leave a node paused with SIGSTOP; it is resumed
first so that it can stop."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import cluster_harness  # noqa: E402


def _cluster(tmp_path, n):
    yield from cluster_harness.running(tmp_path, n)


@pytest.fixture
def cluster(tmp_path):
    yield from _cluster(tmp_path, 3)


@pytest.fixture
def cluster5(tmp_path):
    yield from _cluster(tmp_path, 5)
