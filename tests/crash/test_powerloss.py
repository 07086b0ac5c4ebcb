"""Power loss at random I/O operations (tests/crash/powerloss.py): a few
dozen rounds here; scripts/powerloss.sh --rounds 1000 is the long mode."""
import os
import select
import signal
import socket
import struct
import time

import powerloss
import sluice_wire as sw
import sluice_wire_groups as swg
from sluice_harness import Broker

# storage/powerloss.h: with signal=1 this signal cuts at the next operation
SL_POWERLOSS_ARM_SIG = signal.SIGRTMIN + 5
DURABLE = [b"durable-%d" % i for i in range(3)]
UNSYNCED = b"written, not synced, sent before the cut|" + b"x" * 200


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


def test_nothing_answers_after_the_cut(tmp_path):
    """Reads (sendfile, pread) do not go through the fault layer: before the
    layer parked the other threads, the event loop kept answering queue
    acquires from files the cut was rewriting, and one reply carried the
    zeros of undone preallocated space (docs/benchmarks.md, "round 462").
    Here the cut holds the process 300 ms before it exits while a consumer
    re-acquires the newest records as fast as it can: every reply it gets
    must decode, and the invariants must hold after each restart.
    (stop=0 in the layer brings the old behaviour back: this test then
    fails with a BadReply in most runs. With the stop but files rewritten
    in place, inplace=1, it failed rarely, when the consumer read a reply
    sent just before the cut only after the rewrite: see the next test.)"""
    s = powerloss.run_during_cut(10, seed=20261208, hold_ms=300,
                                 workdir=str(tmp_path))
    assert s["rounds"] == 10
    assert s["cut"] >= 4, s
    assert s["acked"] > 100, s


def _wait_frame_queued(sock, timeout=30.0):
    """Block until one whole response frame waits in sock's receive queue,
    without reading it (MSG_PEEK)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no whole reply queued within %.0f s" % timeout
        select.select([sock], [], [], left)
        head = sock.recv(4, socket.MSG_PEEK)
        assert head, "connection closed before the reply"
        if len(head) == 4:
            n = 4 + struct.unpack("<I", head)[0]
            if len(sock.recv(n, socket.MSG_PEEK)) == n:
                return


def reply_read_after_the_cut(data, inplace):
    """A queue acquire answered (by sendfile) before the cut and read by
    the client only after it: the values the client reads."""
    powerloss.setup(data)
    b = Broker(data, args=powerloss.BROKER_ARGS + [
        # the unsynced record stays unsynced until the cut
        "--flush-lazy-ms", "60000", "--group-commit-interval-ms", "60000"])
    os.environ["SLUICE_POWERLOSS"] = "signal=1,tear=0,inplace=%d" % inplace
    try:
        b.start()
    finally:
        del os.environ["SLUICE_POWERLOSS"]
    prod, cons = b.client(timeout=60), b.client(timeout=60)
    try:
        for i in range(3):
            r = sw.decode_produce(prod.call(sw.API_PRODUCE, sw.produce_body(
                sw.ACKS_DURABLE, {powerloss.TOPIC: {
                    0: sw.encode_batch([DURABLE[i]])}})))
            assert r[(powerloss.TOPIC, 0)]["error"] == 0, r
        # the group's first state commit happens now; the next one waits
        # for --group-commit-interval-ms (its round would sync the record)
        q = swg.Queue(cons, powerloss.QGROUP, powerloss.TOPIC, "c")
        assert [x["value"] for x in q.acquire(100)] == DURABLE
        r = sw.decode_produce(prod.call(sw.API_PRODUCE, sw.produce_body(
            sw.ACKS_WRITTEN, {powerloss.TOPIC: {
                0: sw.encode_batch([UNSYNCED])}})))
        assert r[(powerloss.TOPIC, 0)]["error"] == 0, r
        cons.send(swg.API_QUEUE_ACQUIRE, swg.acquire_body(
            powerloss.QGROUP, powerloss.TOPIC, "c", 100))
        _wait_frame_queued(cons.sock)
        # the reply is in the client's receive queue; now the power goes
        os.kill(b.pid, SL_POWERLOSS_ARM_SIG)
        try:  # any next file operation cuts: the broker may be gone already
            prod.send(sw.API_PRODUCE, sw.produce_body(sw.ACKS_DURABLE, {
                powerloss.TOPIC: {1: sw.encode_batch([b"after"])}}))
        except (ConnectionResetError, BrokenPipeError):
            pass
        assert b.proc.wait(60) == powerloss.PL_EXIT, b.log()
        assert "cut at operation" in b.log()
        _, body = cons.recv()
    finally:
        b.stop()
        prod.close()
        cons.close()
    try:
        return [x["value"] for x in swg.decode_acquire(body)]
    except Exception as e:  # struct.error, ValueError: bytes changed
        return "undecodable (%s: %s), zeros: %d of %d bytes" % (
            type(e).__name__, e, body.count(0), len(body))


def test_a_reply_sent_before_the_cut_keeps_its_bytes(tmp_path):
    """A reply sent before the power went keeps the bytes it was sent
    with. sendfile queues references to the segment's page cache pages,
    and on loopback they reach the client's receive queue: when the cut
    rewrote and truncated files in place, a client that read its acquire
    reply after the cut read zeros (crash_powerloss failed so in a landing
    at load ~20, docs/operations.md "A reply of zeros"). The cut now
    truncates each changed file to 0 and writes it back, so the pages a
    reply refers to leave the file unchanged. inplace=1 (the old cut)
    shows the zeros, so this test sees the case it guards."""
    got = reply_read_after_the_cut(str(tmp_path / "new"), 0)
    assert got == [UNSYNCED], got
    old = reply_read_after_the_cut(str(tmp_path / "old"), 1)
    assert old != got, "the in-place cut no longer changes a reply in " \
        "flight: this test no longer tests anything"
