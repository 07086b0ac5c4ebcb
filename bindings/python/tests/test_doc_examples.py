"""Every doc example runs, in order, as written.

The fenced ``sh``/``console``/``python`` blocks of README.md,
docs/quickstart.md, docs/cli.md and docs/python.md are run in that order
against ONE broker (this module's, on ephemeral ports), followed by the
programs of examples/ with their default topic names, as a user following
the docs would run them. The addresses the docs show (127.0.0.1:7410,
127.0.0.1:61613) are replaced by the test broker's; ``./build/bin/`` by the
build under test; SLUICE_BOOTSTRAP names the broker for commands without
``-b``. Every other user doc (SESSION_DOCS) runs in a shell session of its
own, on a broker of its own (see "the other user docs" below);
docs/cluster.md runs in tests/cluster/test_cluster_doc_examples.py.
Fences indented in list items count too.

Markers, an HTML comment on the line before a fence:
  <!-- doc-test: skip (why) -->  the block is not run (installation steps,
                                 the broker start itself, fragments); the
                                 reason is required
  <!-- doc-test: broker -->      (SESSION_DOCS) the block starts sluiced:
                                 the test starts it with the block's flags
  <!-- doc-test: cluster -->     run on three nodes by
                                 tests/cluster/test_cluster_doc_examples.py
  <!-- doc-test: output -->      this block is the expected output of the
                                 block before it: each of its lines must
                                 appear in that output, in order ("..."
                                 lines stand for anything)
``console`` blocks hold ``$ command`` lines, each followed by its expected
output (same rule); their commands may fail (error examples). ``sh`` blocks
run under ``bash -e`` and must exit 0; ``python`` blocks under this
interpreter and must exit 0. A block with no language is text; one whose
first line is a command (``sluice ...``, ``curl ...``) must be run or
marked.
"""

import os
import re
import shlex
import subprocess
import sys

import pytest

import sluice_harness  # tests/harness, on sys.path through conftest.py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("SLUICE_SOURCE_DIR") or os.path.normpath(
    os.path.join(HERE, "..", "..", ".."))
DOCS = ["README.md", "docs/quickstart.md", "docs/cli.md", "docs/python.md"]
EXAMPLES = ["examples/work_queue.py", "examples/fanout.py",
            "examples/event_sourcing.py"]
RUN_LANGS = {"sh", "bash", "shell", "console", "python"}
MARK = re.compile(r"^<!--\s*doc-test:\s*(\w+)")
FENCE = re.compile(r"^(\s*)```\s*([\w-]*)\s*$")  # indented in lists too


class Block:
    def __init__(self, doc, line, lang, text, mark):
        self.doc, self.line, self.lang, self.text = doc, line, lang, text
        self.mark = mark
        self.expect = None  # lines of a following output block

    def __repr__(self):
        return "%s:%d" % (self.doc, self.line)


def blocks_of(doc):
    """The fenced blocks of doc with their markers, output blocks attached
    to the block they follow."""
    lines = open(os.path.join(ROOT, doc), encoding="utf-8").read().split("\n")
    out, i, prev = [], 0, None
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                prev = lines[i].strip()
            i += 1
            continue
        start, indent, lang = i + 1, m.group(1), m.group(2)
        j = start
        while j < len(lines) and not lines[j].lstrip().startswith("```"):
            j += 1
        mk = MARK.match(prev or "")
        mark = mk.group(1) if mk else None
        body = [ln[len(indent):] if ln.startswith(indent) else ln
                for ln in lines[start:j]]
        b = Block(doc, start, lang, "\n".join(body) + "\n", mark)
        if mark == "output":
            assert out, "%s: an output block before any block" % b
            out[-1].expect = b.text.rstrip("\n").split("\n")
        else:
            out.append(b)
        prev, i = None, j + 1
    return out


def all_blocks():
    return [b for d in DOCS for b in blocks_of(d)]


def check_output(where, expect, got):
    """Each expected line appears in got, in order; '...' = anything."""
    want = [w.rstrip() for w in expect if w.strip() and w.strip() != "..."]
    have = [h.rstrip() for h in got.split("\n")]
    k = 0
    for w in want:
        while k < len(have) and have[k] != w:
            k += 1
        assert k < len(have), "%s: expected line %r not found (in order) " \
            "in the output:\n%s" % (where, w, got)
        k += 1


@pytest.fixture(scope="module")
def env(broker, bin_dir):
    bin_addr = "%s:%d" % broker.binary_addr
    stomp_host, stomp_port = broker.stomp_addr
    e = dict(os.environ)
    e["PATH"] = bin_dir + os.pathsep + e.get("PATH", "")
    e["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
    e["SLUICE_BOOTSTRAP"] = bin_addr
    e["DOC_BIN_DIR"] = bin_dir

    def subst(text):
        text = text.replace("127.0.0.1:7410", bin_addr)
        text = text.replace("127.0.0.1:61613",
                            "%s:%d" % (stomp_host, stomp_port))
        text = text.replace('("127.0.0.1", 61613)',
                            '("%s", %d)' % (stomp_host, stomp_port))
        text = text.replace("./build/bin/", bin_dir + "/")
        # the suite built the bindings already (maybe with ASan): building
        # them in place again here would replace that build
        text = re.sub(r"^\(cd bindings/python && .*setup.py.*build_ext.*$",
                      ": bindings built by the test suite", text,
                      flags=re.M)
        return text
    return e, subst


def run_sh(script, env, timeout=180):
    p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c",
                        "shopt -s expand_aliases\n" + script],
                       cwd=ROOT, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout,
                       universal_newlines=True)
    return p.returncode, p.stdout


def console_commands(b, text):
    """[(command, expected output lines)] of a console block."""
    cmds, cur = [], None
    for line in text.split("\n"):
        if line.startswith("$ "):
            cur = [line[2:], []]
            cmds.append(cur)
        elif cur is not None:
            cur[1].append(line)
    assert cmds, "%s: a console block without '$ ' lines" % b
    return cmds


def run_block(b, env, subst):
    text = subst(b.text)
    if b.lang == "python":
        p = subprocess.run([sys.executable, "-"], input=text, cwd=ROOT,
                           env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=180,
                           universal_newlines=True)
        assert p.returncode == 0, "%s failed:\n%s\n---\n%s" % (b, text,
                                                               p.stdout)
        return p.stdout
    if b.lang == "console":
        out = ""
        for cmd, expect in console_commands(b, text):
            rc, got = run_sh(cmd, env)
            check_output("%s: %s" % (b, cmd), expect, got)
            out += got
        return out
    rc, got = run_sh(text, env)
    assert rc == 0, "%s exited %d:\n%s\n---\n%s" % (b, rc, text, got)
    return got


def test_docs_are_marked_and_parse():
    """Every block is runnable, marked, or plain text; no stray marks; a
    skip says why; an untagged block is no command."""
    lines = {}
    for b in [b for d in ALL_DOCS for b in blocks_of(d)]:
        assert b.mark in (None, "skip", "broker", "cluster"), \
            "%s: unknown mark %r" % (b, b.mark)
        if b.mark == "skip":
            if b.doc not in lines:
                lines[b.doc] = open(os.path.join(ROOT, b.doc),
                                    encoding="utf-8").read().split("\n")
            # the mark is the last non-blank line before the fence
            k = b.line - 2
            while not lines[b.doc][k].strip():
                k -= 1
            assert re.match(r"^<!--\s*doc-test:\s*skip\s*\(.+\)\s*-->",
                            lines[b.doc][k].strip()), \
                "%s: a skip without its reason: %r" % (b, lines[b.doc][k])
            continue
        if b.mark == "broker":
            assert b.doc in SESSION_DOCS and b.lang == "sh", b
            parse_sluiced(b.text)
            continue
        if b.mark == "cluster":  # tests/cluster/test_cluster_doc_examples.py
            assert b.lang == "sh", b
            continue
        assert b.lang in RUN_LANGS or b.lang in ("", "text", "c", "ini",
                                                 "conf", "json"), \
            "%s: fence language %r (run it or mark it)" % (b, b.lang)
        if b.lang in ("", "text"):
            first = [ln for ln in b.text.split("\n")
                     if ln.strip() and not ln.startswith("#")]
            # (a synopsis, `sluice [-b HOST:PORT] ...`, `group describe G`,
            # is text)
            assert not first or not COMMAND.match(first[0]) or \
                "[" in b.text or PLACEHOLDER.search(b.text), \
                "%s: an untagged block of commands (run it as sh, or " \
                "mark it skip with the reason)" % b


def test_ready_lines_shown_are_as_printed(broker):
    """A ready line a doc shows has the fields of the real one (this
    module's broker has the default listeners: binary, stomp, http)."""
    real = [f.split("=")[0] for f in broker.ready_line.split()[2:]]
    seen = 0
    for b in [b for d in ALL_DOCS for b in blocks_of(d)]:
        for line in b.text.split("\n"):
            if line.startswith("sluiced ready "):
                shown = [f.split("=")[0] for f in line.split()[2:]]
                assert shown == real, "%s: %r, but sluiced prints %r" % (
                    b, line, broker.ready_line)
                seen += 1
    assert seen >= 2


def test_every_doc_example_runs_in_order_on_one_broker(env):
    e, subst = env
    ran = []
    for b in all_blocks():
        if b.mark is not None or b.lang not in RUN_LANGS:
            continue
        out = run_block(b, e, subst)
        if b.expect:
            check_output(str(b), b.expect, out)
        ran.append(str(b))
    # the docs hold runnable examples, and the test saw them
    assert len(ran) >= 15, ran
    # the README invites running its Python snippet again: it must not
    # raise and gets only the new message
    readme = [b for b in all_blocks() if b.doc == "README.md" and
              "QueueConsumer" in b.text and b.mark != "skip"]
    assert len(readme) == 1
    out = run_block(readme[0], e, subst)
    check_output("README.md, second run", ["2 b'hello from Python' attempt 1"],
                 out)
    assert "b'hello, sluice'" not in out
    # then examples/, as docs/python.md runs them, on the same broker
    for ex in EXAMPLES:
        rc, out = run_sh("%s %s" % (shlex.quote(sys.executable),
                                    shlex.quote(os.path.join(ROOT, ex))), e)
        assert rc == 0 and out.rstrip().endswith("OK"), "%s:\n%s" % (ex,
                                                                     out)


# -- the other user docs: one shell session and one broker per doc ---------
#
# Each doc below runs as a user would run it in one terminal: exported
# variables, `cd` and files made by a block stay for the next block (the
# session's directory is a fresh temporary one). A block marked
#   <!-- doc-test: broker -->
# starts sluiced: the test starts it with the block's own flags and
# environment assignments; listen addresses become 127.0.0.1:0, --data a
# directory of the session (the same one at every start of the doc: a
# restart), a `...` stands for the flags of the broker started before. The
# doc's addresses (HOST:PORT of those listeners, HOST one of 127.0.0.1,
# localhost, 0.0.0.0, 10.x.y.z, broker.example.com) are then replaced by
# the real ones in the blocks that follow. A doc with no such block before
# its first example runs on a broker with the default listeners. A block
# marked <!-- doc-test: cluster --> is run on three nodes by
# tests/cluster/test_cluster_doc_examples.py.
SESSION_DOCS = ["docs/concepts.md", "docs/groups.md", "docs/stomp.md",
                "docs/security.md", "docs/http-api.md",
                "docs/operations.md", "docs/configuration.md",
                "docs/console.md", "docs/protocol.md"]
# docs/cluster.md: tests/cluster/test_cluster_doc_examples.py
ALL_DOCS = DOCS + SESSION_DOCS + ["docs/cluster.md"]
LISTEN_FLAGS = {"--listen": "binary", "--stomp-listen": "stomp",
                "--http-listen": "http", "--tls-listen": "tls",
                "--stomp-tls-listen": "stomp-tls",
                "--http-tls-listen": "http-tls",
                "--stomp-ws-listen": "stomp-ws"}
DEFAULT_PORTS = {"binary": 7410, "stomp": 61613, "http": 7480}
ADDR = re.compile(r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0|"
                  r"broker\.example\.com|10\.\d+\.\d+\.\d+):(\d+)\b")
# an untagged block that starts like this is a command: run it or mark it
COMMAND = re.compile(r"^(\$ )?(sluiced(?! ready)|sluice|curl|kill|export|printf|openssl|"
                     r"cmake|systemctl|useradd|tar|python3|/usr/bin/python3|"
                     r"SLUICE_\w+=)(\s|$)")


PLACEHOLDER = re.compile(r"\s[A-Z][A-Z/:_]*(\s|$)")


def command_words(text):
    """The words of a shell command, continuation lines joined."""
    return shlex.split(text.replace("\\\n", " "), comments=True)


def parse_sluiced(text):
    """(environment assignments, [(flag, value or None)]) of the sluiced
    command in text."""
    words = command_words(text)
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    assert words and words[0] == "sluiced", "not a sluiced command: %r" % (
        text,)
    flags, i = [], 1
    while i < len(words):
        w = words[i]
        if w == "...":
            flags.append(("...", None))
            i += 1
        elif i + 1 < len(words) and not words[i + 1].startswith("--") and \
                words[i + 1] != "...":
            flags.append((w, words[i + 1]))
            i += 2
        else:
            flags.append((w, None))
            i += 1
    return env, flags


class DocBroker(sluice_harness.Broker):
    """A harness broker started in the session's directory, with its own
    environment."""

    def __init__(self, cwd, env, **kw):
        super().__init__(**kw)
        self.cwd, self.env = cwd, env

    def spawn(self, extra=()):
        cmd = [sluice_harness.sluiced_path(), "--data", self.data_dir]
        cmd += self.args + list(extra)
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL, cwd=self.cwd,
                                    env=self.env)


class Session:
    """One doc's terminal: environment, directory, broker."""

    def __init__(self, tmp, bin_dir):
        self.tmp = tmp
        self.cwd = os.path.join(tmp, "work")
        os.makedirs(self.cwd)
        self.data = os.path.join(tmp, "data")
        self.state = os.path.join(tmp, "state")
        e = dict(os.environ)
        e["PATH"] = bin_dir + os.pathsep + e.get("PATH", "")
        e["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
        e["SLUICE_SOURCE_DIR"] = ROOT
        # "a CA the system already trusts": the doc's own CA stands in for
        # the system's (docs/security.md makes it in pki/)
        e["SSL_CERT_FILE"] = os.path.join(self.cwd, "pki", "ca.crt")
        self.env = e
        self.bin_dir = bin_dir
        self.broker = None
        self.flags = []      # the doc's flags of the running broker
        self.ports = {}      # doc port -> (real host, real port)

    def start_broker(self, text):
        env, flags = parse_sluiced(text)
        merged = []
        for f, v in flags:
            merged += self.flags if f == "..." else [(f, v)]
        # a flag given again replaces the earlier one
        last = {f: k for k, (f, _) in enumerate(merged)}
        merged = [fv for k, fv in enumerate(merged) if last[fv[0]] == k]
        self.stop_broker()
        args, doc_ports = [], dict((DEFAULT_PORTS[k], k)
                                   for k in DEFAULT_PORTS)
        for f, v in merged:
            if f == "--data":
                continue
            if f in LISTEN_FLAGS:
                doc_ports[int(v.rsplit(":", 1)[1])] = LISTEN_FLAGS[f]
                v = "127.0.0.1:0"
            elif v is not None and not os.path.isabs(v) and \
                    os.path.exists(os.path.join(self.cwd, v)):
                v = os.path.join(self.cwd, v)
            args += [f] + ([v] if v is not None else [])
        for f in ("--listen", "--stomp-listen", "--http-listen"):
            if f not in dict(merged):
                args += [f, "127.0.0.1:0"]
        benv = dict(self.env)
        benv.update(env)
        os.makedirs(self.data, exist_ok=True)
        self.broker = DocBroker(self.cwd, benv, data_dir=self.data,
                                args=args)
        self.broker.log_path = os.path.join(self.tmp, "sluiced.log")
        self.broker.start()
        self.flags = merged
        fields = dict(f.split("=", 1)
                      for f in self.broker.ready_line.split()[2:])
        self.ports = {}
        for port, name in doc_ports.items():
            # every listener asked for is named by the ready line
            assert name in fields, "%s: no %s= in %r" % (
                text, name, self.broker.ready_line)
            self.ports[port] = sluice_harness._parse_addr(fields[name])
        self.env["SLUICE_BOOTSTRAP"] = "%s:%d" % self.broker.binary_addr

    def stop_broker(self):
        if self.broker is not None:
            b, self.broker = self.broker, None
            rc = b.stop()
            assert rc == 0, "sluiced exited with %r; log:\n%s" % (rc, b.log())

    def subst(self, text):
        def addr(m):
            host, port = m.group(1), int(m.group(2))
            if port not in self.ports:
                return m.group(0)
            name = "localhost" if host in ("localhost",
                                           "broker.example.com") else \
                self.ports[port][0]
            return "%s:%d" % (name, self.ports[port][1])
        text = ADDR.sub(addr, text)
        return text.replace("./build/bin/", self.bin_dir + "/")

    def sh(self, script, timeout=180):
        """Run script in the session: its exports and cwd stay."""
        wrapped = ("trap 'env -0 > %s.env; pwd > %s.cwd' EXIT\n"
                   "shopt -s expand_aliases\n%s"
                   % (self.state, self.state, script))
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", wrapped],
                           cwd=self.cwd, env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=timeout,
                           universal_newlines=True)
        try:
            with open(self.state + ".env", "rb") as f:
                pairs = [kv.split(b"=", 1) for kv in f.read().split(b"\0")
                         if b"=" in kv]
            self.env = {k.decode(): v.decode() for k, v in pairs
                        if k not in (b"_", b"SHLVL", b"PWD", b"OLDPWD")}
            with open(self.state + ".cwd") as f:
                self.cwd = f.read().strip()
        except OSError:
            pass
        return p.returncode, p.stdout

    def run(self, b):
        if b.mark == "broker":
            self.start_broker(b.text)
            return ""
        if self.broker is None:
            self.start_broker("sluiced")
        text = self.subst(b.text)
        if b.lang == "python":
            p = subprocess.run([sys.executable, "-"], input=text,
                               cwd=self.cwd, env=self.env,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=180,
                               universal_newlines=True)
            assert p.returncode == 0, "%s failed:\n%s\n---\n%s" % (
                b, text, p.stdout)
            return p.stdout
        if b.lang == "console":
            out = ""
            for cmd, expect in console_commands(b, text):
                rc, got = self.sh(cmd)
                check_output("%s: %s" % (b, cmd), expect, got)
                out += got
            return out
        # an HTTP error is a failed example too (curl -s exits 0 on a 404)
        rc, got = self.sh(re.sub(r"^(\s*)curl ", r"\1curl --fail-with-body ",
                                 text, flags=re.M))
        assert rc == 0, "%s exited %d:\n%s\n---\n%s" % (b, rc, text, got)
        return got


def runnable(b):
    return b.mark == "broker" or (b.mark is None and b.lang in RUN_LANGS)


@pytest.mark.parametrize("doc", [d for d in SESSION_DOCS
                                 if any(runnable(b) for b in blocks_of(d))])
def test_user_doc_examples_run_in_order(doc, bin_dir, tmp_path):
    s = Session(str(tmp_path), bin_dir)
    ran = []
    try:
        for b in blocks_of(doc):
            if not runnable(b):
                continue
            out = s.run(b)
            if b.expect:
                check_output(str(b), b.expect, out)
            ran.append(str(b))
    except BaseException:
        if s.broker is not None:
            print("--- sluiced log ---\n" + s.broker.log())
        raise
    finally:
        s.stop_broker()
    assert ran
