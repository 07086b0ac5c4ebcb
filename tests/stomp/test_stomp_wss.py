"""STOMP over WebSocket over TLS (--stomp-wss-listen): the WebSocket
transport (broker/ws.c) on a TLS socket (broker/tls.c), with
@stomp/stompjs in Node over wss:// and our own minimal client; a
certificate made by the test with openssl (tests/harness/sluice_tls.py).
"""
import json
import os
import socket
import ssl
import subprocess
import sys

import pytest

import test_stomp_ws as W
from conftest import Broker

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "harness"))
from sluice_tls import Pki  # noqa: E402


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(str(tmp_path_factory.mktemp("pki")))
    p.srv = p.server("server")
    return p


@pytest.fixture
def wssb(pki):
    b = Broker(args=["--stomp-ws-listen", "127.0.0.1:0",
                     "--stomp-wss-listen", "127.0.0.1:0",
                     "--tls-cert", pki.srv[0], "--tls-key", pki.srv[1]])
    b.start()
    yield b
    b.cleanup()


@pytest.fixture
def tls_ws(monkeypatch, pki):
    """W.WS connects over TLS (verifying the broker) while this is on."""
    ctx = ssl.create_default_context(cafile=pki.ca)
    plain = socket.create_connection

    def connect(addr, timeout=None):
        return ctx.wrap_socket(plain(addr, timeout=timeout),
                               server_hostname="localhost")

    monkeypatch.setattr(W.socket, "create_connection", connect)


def test_stompjs_over_wss(wssb, pki):
    root = subprocess.run(["npm", "root", "-g"], stdout=subprocess.PIPE,
                          check=True, timeout=60).stdout.decode().strip()
    env = dict(os.environ, NODE_PATH=root, NODE_EXTRA_CA_CERTS=pki.ca)
    url = "wss://localhost:%d/ws" % wssb.wss_port
    p = subprocess.run(["node", os.path.join(HERE, "ws_check.js"), "node",
                        url, "wss-node"], cwd=HERE, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=180)
    assert p.returncode == 0, p.stderr.decode() + wssb.log()
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert out["protocol"] == "v12.stomp" and out["version"] == "1.2"
    assert out["received"] == out["expected"]
    assert out["second"] == ["sentinel"]
    assert out.get("errors", []) == []


def test_own_client_over_wss_and_mismatches(wssb, tls_ws):
    ws = W.live_session(wssb.wss_port)
    W.assert_alive(ws, 1)
    # a client speaking plain WebSocket to the wss port is closed; the
    # session above goes on
    s = socket.socket()
    s.settimeout(10)
    s.connect(("127.0.0.1", wssb.wss_port))
    s.sendall(W.req().encode())
    try:
        assert s.recv(4096) == b""
    except ConnectionResetError:
        pass
    s.close()
    W.assert_alive(ws, 2)
    # and TLS spoken to the plain ws port is refused
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        W.WS(wssb.ws_port)
    W.assert_alive(ws, 3)
    ws.stomp("DISCONNECT", [("receipt", "bye")])
    _, cmd, hdrs, _ = ws.read_stomp()
    assert (cmd, hdrs.get("receipt-id")) == ("RECEIPT", "bye")
    ws.close()
