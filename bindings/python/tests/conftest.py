"""pytest fixtures for the Sluice Python bindings.

The broker comes from tests/harness/sluice_harness.py (sluiced on port 0 in a
temporary data directory, ready line parsed, stopped by pid). SLUICE_BIN_DIR
names the directory holding sluiced (scripts/python-test.sh sets it to
BUILD_DIR/bin).
"""

import itertools
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("SLUICE_SOURCE_DIR") or os.path.normpath(
    os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..")))

import sluice_harness  # noqa: E402

import sluice  # noqa: E402

_names = itertools.count()


def _bin_dir():
    d = os.environ.get("SLUICE_BIN_DIR") or os.path.join(ROOT, "build", "bin")
    if not os.path.exists(os.path.join(d, "sluiced")):
        pytest.exit("sluiced not found in %s: set SLUICE_BIN_DIR (run "
                    "./scripts/python-test.sh BUILD_DIR)" % d, returncode=2)
    return d


@pytest.fixture(scope="session")
def bin_dir():
    return _bin_dir()


@pytest.fixture(scope="module")
def broker(bin_dir, tmp_path_factory):
    """One sluiced per test module (topics are unique per test)."""
    os.environ["SLUICE_BIN_DIR"] = bin_dir
    b = sluice_harness.Broker(data_dir=str(tmp_path_factory.mktemp("data")))
    b.start()
    yield b
    rc = b.stop()
    b.cleanup()
    # a clean SIGTERM shutdown exits 0; anything else is a broker bug the
    # Python suite happened to trigger: show its log
    assert rc == 0, "sluiced exited with %r; log:\n%s" % (rc, b.log())


@pytest.fixture
def bootstrap(broker):
    return "%s:%d" % broker.binary_addr


@pytest.fixture
def topic(request):
    """A topic name unique to the test."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)
    return "%s-%d" % (base[:60], next(_names))


@pytest.fixture
def admin(bootstrap):
    with sluice.Admin(bootstrap) as a:
        yield a
