"""The web console in a real browser: Debian's chromium, headless, driven
by puppeteer-core (tests/console/console_check.js). After real traffic the
console shows the queue's depth, and its Redrive button empties a DLQ.
SLUICE_SCREENSHOTS=DIR also saves a screenshot of each page (docs/)."""
import json
import os
import socket
import subprocess
import urllib.request

from sluice_harness import bin_dir

HERE = os.path.dirname(os.path.abspath(__file__))


def cli(broker, *args, stdin=None):
    p = subprocess.run([os.path.join(bin_dir(), "sluice"), "-b",
                        "%s:%d" % broker.binary_addr] + list(args),
                       input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


def get(broker, path):
    with urllib.request.urlopen("http://%s:%d%s" % (broker.http_addr +
                                                      (path,)),
                                timeout=30) as r:
        return json.loads(r.read())


def test_console_shows_depth_and_redrive_empties_the_dlq(broker):
    cli(broker, "topic", "create", "orders", "--partitions", "2")
    cli(broker, "produce", "orders", "--header", "source=web",
        stdin=b"".join(b"order %d\n" % i for i in range(12)))
    cli(broker, "group", "config", "workers", "--topic", "orders",
        "max_deliveries=5")
    # three done, two rejected into orders.DLQ, seven left ready
    assert cli(broker, "queue", "consume", "orders", "--group", "workers",
               "--count", "3").count(b"\n") == 3
    exe = os.path.join(bin_dir(), "test_client_integration")
    r = subprocess.run([exe, "reject", "%s:%d" % broker.binary_addr,
                        "orders", "workers", "2"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    (q,) = get(broker, "/api/queues")["queues"]
    assert (q["ready"], q["dlq_pending"]) == (7, 2)

    # a STOMP client stays connected while the browser looks: the
    # Connections page lists it (a topic subscription takes nothing from
    # the queue above)
    st = socket.create_connection(broker.stomp_addr, timeout=30)
    st.sendall(b"CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\n"
               b"\n\0"
               b"SUBSCRIBE\nid:1\ndestination:/topic/news\nreceipt:r\n\n\0")
    got = b""
    while got.count(b"\0") < 2:  # CONNECTED, RECEIPT
        d = st.recv(4096)
        assert d, got
        got += d

    # puppeteer-core: installed globally by scripts/deps.sh
    root = subprocess.run(["npm", "root", "-g"], stdout=subprocess.PIPE,
                          check=True, timeout=60).stdout.decode().strip()
    env = dict(os.environ, NODE_PATH=root)
    shots = env.get("SLUICE_SCREENSHOTS")
    args = ["node", os.path.join(HERE, "console_check.js"),
            "http://%s:%d" % broker.http_addr, "orders", "workers",
            "orders.DLQ"] + ([shots] if shots else [])
    p = subprocess.run(args, cwd=HERE, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=180)
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert out["errors"] == []
    assert out["connections_note"] == ""
    stomp_rows = [r for r in out["connections"] if r[1] == "stomp"]
    assert len(stomp_rows) == 1, out["connections"]
    assert stomp_rows[0][2] == "%s:%d" % st.getsockname()
    assert stomp_rows[0][3] == "guest"
    assert stomp_rows[0][-1] == "/topic/news"
    st.close()
    assert out["queue"] == {"ready": "7", "in_flight": "0", "dlq": "2 / 2"}
    assert out["peeked"] == 7
    assert "Ready" in " ".join(out["cards"])
    assert out["pending_before"] == "2" and out["pending_after"] == "0"
    assert "source=web" in out["dlq_headers"]
    assert "dlq.reason=rejected" in out["dlq_headers"]
    # the broker agrees: nothing pending, the two records are back
    (d,) = get(broker, "/api/dlqs")["dlqs"]
    assert (d["pending"], d["total"]) == (0, 2)
    (q,) = get(broker, "/api/queues")["queues"]
    assert q["ready"] == 9 and q["dlq_pending"] == 0
