"""Every doc example runs, in order, on one broker, as written.

The fenced ``sh``/``console``/``python`` blocks of README.md,
docs/quickstart.md, docs/cli.md and docs/python.md are run in that order
against ONE broker (this module's, on ephemeral ports), followed by the
programs of examples/ with their default topic names, as a user following
the docs would run them. The addresses the docs show (127.0.0.1:7410,
127.0.0.1:61613) are replaced by the test broker's; ``./build/bin/`` by the
build under test; SLUICE_BOOTSTRAP names the broker for commands without
``-b``.

Markers, an HTML comment on the line before a fence:
  <!-- doc-test: skip (why) -->  the block is not run (installation steps,
                                 the broker start itself, fragments)
  <!-- doc-test: output -->      this block is the expected output of the
                                 block before it: each of its lines must
                                 appear in that output, in order ("..."
                                 lines stand for anything)
``console`` blocks hold ``$ command`` lines, each followed by its expected
output (same rule); their commands may fail (error examples). ``sh`` blocks
run under ``bash -e`` and must exit 0; ``python`` blocks under this
interpreter and must exit 0.
"""

import os
import re
import shlex
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("SLUICE_SOURCE_DIR") or os.path.normpath(
    os.path.join(HERE, "..", "..", ".."))
DOCS = ["README.md", "docs/quickstart.md", "docs/cli.md", "docs/python.md"]
EXAMPLES = ["examples/work_queue.py", "examples/fanout.py",
            "examples/event_sourcing.py"]
RUN_LANGS = {"sh", "bash", "shell", "console", "python"}
MARK = re.compile(r"^<!--\s*doc-test:\s*(\w+)")
FENCE = re.compile(r"^```\s*([\w-]*)\s*$")


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
        start, lang = i + 1, m.group(1)
        j = start
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        mk = MARK.match(prev or "")
        mark = mk.group(1) if mk else None
        b = Block(doc, start, lang, "\n".join(lines[start:j]) + "\n", mark)
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
        cmds, cur = [], None
        for line in text.split("\n"):
            if line.startswith("$ "):
                cur = [line[2:], []]
                cmds.append(cur)
            elif cur is not None:
                cur[1].append(line)
        assert cmds, "%s: a console block without '$ ' lines" % b
        out = ""
        for cmd, expect in cmds:
            rc, got = run_sh(cmd, env)
            check_output("%s: %s" % (b, cmd), expect, got)
            out += got
        return out
    rc, got = run_sh(text, env)
    assert rc == 0, "%s exited %d:\n%s\n---\n%s" % (b, rc, text, got)
    return got


def test_docs_are_marked_and_parse():
    """Every block is runnable, marked, or plain text; no stray marks."""
    for b in all_blocks():
        assert b.mark in (None, "skip"), "%s: unknown mark %r" % (b, b.mark)
        if b.mark == "skip":
            continue
        assert b.lang in RUN_LANGS or b.lang in ("", "text", "c", "ini",
                                                 "conf", "json"), \
            "%s: fence language %r (run it or mark it)" % (b, b.lang)


def test_every_doc_example_runs_in_order_on_one_broker(env):
    e, subst = env
    ran = []
    for b in all_blocks():
        if b.mark == "skip" or b.lang not in RUN_LANGS:
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
