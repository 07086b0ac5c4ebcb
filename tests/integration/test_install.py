"""cmake --install: binaries, library, header, pkg-config file, systemd
unit, example config and docs land under the prefix and work from there:
a program built with `pkg-config --cflags --libs sluice` talks to the
installed sluiced started with the installed config (ports overridden)."""
import os
import re
import subprocess

import pytest

from sluice_harness import Broker, bin_dir

BUILD = os.path.dirname(bin_dir().rstrip("/"))

PROGRAM = r"""
#include <stdio.h>
#include <sluice.h>
int main(int argc, char **argv)
{
    sluice_conf *c = sluice_conf_new();
    sluice_admin *a = NULL;
    char err[256], *json = NULL;
    if (sluice_conf_set(c, "bootstrap", argv[1], err, sizeof(err)) ||
        sluice_admin_new(c, &a, err, sizeof(err)) ||
        sluice_admin_call(a, "version", NULL, 0, &json, NULL)) {
        fprintf(stderr, "failed: %s\n", err);
        return 1;
    }
    printf("%s %s\n", sluice_version(), json);
    sluice_free(json);
    sluice_admin_free(a);
    sluice_conf_free(c);
    return argc == 2 ? 0 : 1;
}
"""


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    p = str(tmp_path_factory.mktemp("prefix"))
    r = subprocess.run(["cmake", "--install", BUILD, "--prefix", p],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return p


def test_layout(prefix):
    for f in ["bin/sluiced", "bin/sluice", "include/sluice.h",
              "lib/libsluice.so", "lib/pkgconfig/sluice.pc",
              "lib/systemd/system/sluiced.service",
              "etc/sluice/sluiced.conf",
              "share/doc/sluice/operations.md",
              "share/doc/sluice/sluiced-help.txt"]:
        assert os.path.exists(os.path.join(prefix, f)), f
    help_txt = open(os.path.join(prefix,
                                 "share/doc/sluice/sluiced-help.txt")).read()
    assert "--http-listen" in help_txt


def test_systemd_unit(prefix):
    unit = os.path.join(prefix, "lib/systemd/system/sluiced.service")
    text = open(unit).read()
    for want in ["User=sluice", "ProtectSystem=strict", "LimitNOFILE=",
                 "NoNewPrivileges=yes", "StateDirectory=sluice",
                 "ExecStart=%s/bin/sluiced --config %s/etc/sluice/"
                 "sluiced.conf" % (prefix, prefix)]:
        assert want in text, want
    r = subprocess.run(["systemd-analyze", "verify", unit],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    # unknown user/paths on the test machine are fine; syntax errors not
    assert not re.search(rb"(Unknown (key|section)|Failed to parse)",
                         r.stderr), r.stderr.decode()


def test_pkg_config_program_talks_to_installed_sluiced(prefix, tmp_path):
    env = dict(os.environ,
               PKG_CONFIG_PATH=os.path.join(prefix, "lib/pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "sluice"],
                           env=env, stdout=subprocess.PIPE, check=True,
                           timeout=30).stdout.decode().split()
    src = tmp_path / "prog.c"
    src.write_text(PROGRAM)
    exe = str(tmp_path / "prog")
    # a sanitized build installs a sanitized libsluice: link the runtime
    cache = open(os.path.join(BUILD, "CMakeCache.txt")).read()
    if "SLUICE_SANITIZE:BOOL=ON" in cache:
        flags.append("-fsanitize=address,undefined")
    subprocess.run(["cc", "-o", exe, str(src)] + flags, check=True,
                   timeout=120)
    # the installed broker with the installed config, on free ports and a
    # temporary data directory
    conf = open(os.path.join(prefix, "etc/sluice/sluiced.conf")).read()
    assert "data /var/lib/sluice" in conf
    saved = os.environ.get("SLUICE_BIN_DIR")
    os.environ["SLUICE_BIN_DIR"] = os.path.join(prefix, "bin")
    try:
        b = Broker(args=["--config",
                         os.path.join(prefix, "etc/sluice/sluiced.conf")])
        b.start()
    finally:
        if saved is None:
            del os.environ["SLUICE_BIN_DIR"]
        else:
            os.environ["SLUICE_BIN_DIR"] = saved
    try:
        r = subprocess.run([exe, "%s:%d" % b.binary_addr],
                           env=dict(os.environ, LD_LIBRARY_PATH=os.path.join(
                               prefix, "lib")),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout.decode().startswith("0.1.0 {\"version\":\"0.1.0\"")
    finally:
        assert b.stop() == 0
        b.cleanup()

