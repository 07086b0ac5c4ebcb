"""sluice_fixtures.py - pytest fixtures shared by the integration and crash
suites (their conftest.py files import them).

    broker: a started sluiced on a fresh tmp_path data dir; at teardown it
    must still exit 0 when it is running (a test that kill -9s it leaves it
    stopped), and its temp files are removed.
"""

import pytest

from sluice_harness import Broker


@pytest.fixture
def broker(tmp_path):
    b = Broker(str(tmp_path / "data"))
    b.start()
    yield b
    try:
        if b.running():
            rc = b.stop()
            assert rc == 0, "sluiced exited with %r; log:\n%s" % (rc, b.log())
    finally:
        b.cleanup()
