"""kill -9 during persistent STOMP sends with receipts: every receipted
message is there after a restart."""
import threading

import pytest

from conftest import Broker, Raw


def test_kill9_loses_nothing_receipted():
    b = Broker().start()
    try:
        r = Raw(b.stomp_port)
        r.connect("1.2")
        n = 200000
        receipted = set()
        killed = threading.Event()

        def reader():
            # kill -9 the broker from here, while the main thread is still
            # pipelining sends: some are receipted, some in flight
            try:
                while True:
                    f = r.read_frame()
                    if f.command == "RECEIPT":
                        receipted.add(int(f.headers["receipt-id"]))
                        if len(receipted) == 2000 and not killed.is_set():
                            b.kill9()
                            killed.set()
            except (EOFError, OSError, ValueError, AssertionError):
                pass

        t = threading.Thread(target=reader)
        t.start()
        sent = 0
        try:
            for i in range(n):
                r.send("SEND", {"destination": "/queue/crash",
                                "persistent": "true", "receipt": str(i)},
                       "msg-%d" % i)
                sent += 1
        except OSError:
            pass
        t.join(60)
        r.close()
        assert killed.is_set(), "broker was not killed mid-stream"
        assert len(receipted) >= 300
        assert sent > len(receipted)
        b.start()  # same data directory
        c = Raw(b.stomp_port)
        c.connect("1.2")
        c.send("SUBSCRIBE", {"destination": "/queue/crash", "id": "s",
                             "ack": "client-individual",
                             "prefetch-count": "100000"})
        seen = set()
        need = set(receipted)
        c.sock.settimeout(20)
        while not need <= seen:
            f = c.expect("MESSAGE")
            i = int(f.body.decode().split("-")[1])
            assert f.body == b"msg-%d" % i
            seen.add(i)
        missing = need - seen
        assert not missing, "receipted but lost: %r" % sorted(missing)[:20]
        c.close()
    finally:
        b.cleanup()


def test_kill9_receipted_acks_stay_acked():
    b = Broker().start()
    try:
        p = Raw(b.stomp_port)
        p.connect("1.2")
        n = 100
        for i in range(n):
            p.send("SEND", {"destination": "/queue/acked",
                            "persistent": "true", "receipt": str(i)},
                   "a-%d" % i)
        for i in range(n):
            p.expect("RECEIPT")
        c = Raw(b.stomp_port)
        c.connect("1.2")
        c.send("SUBSCRIBE", {"destination": "/queue/acked", "id": "s",
                             "ack": "client-individual"})
        msgs = [c.expect("MESSAGE") for _ in range(n)]
        acked = set()
        for m in msgs[::2]:
            c.send("ACK", {"id": m.headers["ack"],
                           "receipt": m.body.decode()})
            acked.add(m.body.decode())
        got = set()
        while got != acked:
            got.add(c.expect("RECEIPT").headers["receipt-id"])
        b.kill9()
        p.close()
        c.close()
        b.start()
        c = Raw(b.stomp_port)
        c.connect("1.2")
        c.send("SUBSCRIBE", {"destination": "/queue/acked", "id": "s",
                             "ack": "auto"})
        back = set()
        for _ in range(n - len(acked)):
            m = c.expect("MESSAGE")
            back.add(m.body.decode())
            assert m.headers["redelivered"] == "true"
        assert back == {"a-%d" % i for i in range(n)} - acked
        # nothing acked comes back: a marker sent now is the next message
        c.send("SEND", {"destination": "/queue/acked"}, "marker")
        assert c.expect("MESSAGE").body == b"marker"
        c.close()
    finally:
        b.cleanup()


@pytest.mark.parametrize("dispatch", ["written", "durable"])
def test_kill9_while_consuming(dispatch):
    """A consumer acks (with receipts) while a producer streams persistent
    SENDs (with receipts), and the broker is killed mid-stream. With
    queue-dispatch written the consumer gets messages before their
    fdatasync; either way, after a restart every receipted SEND not yet
    delivered is delivered again, and no receipted ACK's message comes
    back."""
    b = Broker(args=["--queue-dispatch", dispatch]).start()
    try:
        p = Raw(b.stomp_port)
        p.connect("1.2")
        c = Raw(b.stomp_port)
        c.connect("1.2")
        c.send("SUBSCRIBE", {"destination": "/queue/live", "id": "s",
                             "ack": "client-individual",
                             "prefetch-count": "1000"})
        sent_ok = set()    # receipted SENDs
        acked_ok = set()   # receipted ACKs
        got = []           # every MESSAGE before the kill
        killed = threading.Event()

        def producer_reader():
            try:
                while True:
                    f = p.read_frame()
                    if f.command == "RECEIPT":
                        sent_ok.add(int(f.headers["receipt-id"]))
            except (EOFError, OSError, ValueError, AssertionError):
                pass

        def consumer():
            try:
                while True:
                    f = c.read_frame()
                    if f.command == "MESSAGE":
                        i = int(f.body.decode().split("-")[1])
                        got.append(i)
                        c.send("ACK", {"id": f.headers["ack"],
                                       "receipt": "a%d" % i})
                    elif f.command == "RECEIPT":
                        acked_ok.add(int(f.headers["receipt-id"][1:]))
                        if len(acked_ok) >= 3000 and not killed.is_set():
                            b.kill9()
                            killed.set()
            except (EOFError, OSError, ValueError, AssertionError):
                pass

        threads = [threading.Thread(target=producer_reader),
                   threading.Thread(target=consumer)]
        for t in threads:
            t.start()
        sent = 0
        try:
            for i in range(200000):
                p.send("SEND", {"destination": "/queue/live",
                                "persistent": "true", "receipt": str(i)},
                       "m-%d" % i)
                sent += 1
        except OSError:
            pass
        for t in threads:
            t.join(60)
        p.close()
        c.close()
        assert killed.is_set(), "broker was not killed mid-stream"
        assert acked_ok <= sent_ok | set(got)
        assert len(got) == len(set(got)), "a message delivered twice"
        b.start()
        r = Raw(b.stomp_port)
        r.connect("1.2")
        r.send("SEND", {"destination": "/queue/live", "persistent": "true",
                        "receipt": "marker"}, "m-marker")
        r.expect("RECEIPT")
        r.send("SUBSCRIBE", {"destination": "/queue/live", "id": "s",
                             "ack": "auto"})
        r.sock.settimeout(20)
        back = []
        while True:
            f = r.expect("MESSAGE")
            if f.body == b"m-marker":
                break
            back.append(int(f.body.decode().split("-")[1]))
        again = acked_ok & set(back)
        assert not again, "receipted ACK redelivered: %r" % sorted(again)[:20]
        # a message acked without a receipt yet may be either acked or back
        lost = sent_ok - set(got) - set(back)
        assert not lost, "receipted SEND lost: %r" % sorted(lost)[:20]
        assert len(back) == len(set(back))
        print("dispatch=%s receipted sends %d, delivered %d, receipted acks "
              "%d, back after restart %d" % (dispatch, len(sent_ok), len(got),
                                             len(acked_ok), len(back)))
        r.close()
    finally:
        b.cleanup()
