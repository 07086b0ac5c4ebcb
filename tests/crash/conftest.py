import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "harness"))

from sluice_harness import Broker  # noqa: E402


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
