"""kill -9 during persistent STOMP sends with receipts: every receipted
message is there after a restart."""
import socket
import threading

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
