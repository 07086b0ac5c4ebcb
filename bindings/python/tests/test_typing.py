"""The type stubs (.pyi) match the runtime and type-check a user program.

Needs mypy (Debian: python3-mypy); skipped where it is not installed.
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.normpath(os.path.join(HERE, ".."))

pytest.importorskip("mypy", reason="mypy not installed (apt install "
                                   "python3-mypy)")


def run(tmp_path, *args):
    env = dict(os.environ, MYPYPATH=PKG_ROOT,
               MYPY_CACHE_DIR=str(tmp_path / "mypy-cache"),
               PYTHONPATH=PKG_ROOT + os.pathsep + os.environ.get(
                   "PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m"] + list(args), cwd=PKG_ROOT,
                       env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout
    return p.stdout


def test_stubs_match_the_runtime(tmp_path):
    cfg = tmp_path / "mypy.ini"
    cfg.write_text("[mypy]\ncache_dir = %s\n" % (tmp_path / "stubtest-cache"))
    run(tmp_path, "mypy.stubtest", "--mypy-config-file", str(cfg), "sluice")


def test_stubs_type_check_strictly(tmp_path):
    run(tmp_path, "mypy", "--strict", "--no-incremental", "sluice/__init__.pyi",
        "sluice/_sluice.pyi", "sluice/errors.py",
        os.path.join(HERE, "typing", "sample_user.py"))
