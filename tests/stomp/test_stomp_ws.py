"""STOMP over WebSocket (--stomp-ws-listen, broker/ws.c).

@stomp/stompjs round trips in Node and in headless Chromium (ws_check.js),
and a small WebSocket client of our own for what a library would not send:
handshakes that must be refused, a plain STOMP client on the WebSocket
port, an oversize message, fragments, pings, an unmasked frame. Each bad
connection gets a clear answer and only it is closed: a session opened
before it keeps working.
"""
import base64
import hashlib
import json
import os
import socket
import struct
import subprocess

import pytest

from conftest import Broker

HERE = os.path.dirname(os.path.abspath(__file__))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_broker(*args):
    b = Broker(args=["--stomp-ws-listen", "127.0.0.1:0"] + list(args))
    b.start()
    return b


@pytest.fixture
def wsb():
    b = ws_broker()
    yield b
    b.cleanup()


def key_accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class WS:
    """A minimal RFC 6455 client: masked frames out, frames in."""

    def __init__(self, port, path="/ws", protocols="v12.stomp, v11.stomp",
                 request=None, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.buf = b""
        self.key = base64.b64encode(os.urandom(16)).decode()
        if request is None:
            request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                       % (path, self.key))
            if protocols:
                request += "Sec-WebSocket-Protocol: %s\r\n" % protocols
            request += "\r\n"
        self.sock.sendall(request.encode() if isinstance(request, str)
                          else request)

    def response(self):
        """(status, headers dict lower-cased, body) of the HTTP answer."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        body = b""
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body

    def open(self):
        status, hdrs, _ = self.response()
        assert status == 101, status
        assert hdrs["sec-websocket-accept"] == key_accept(self.key)
        return hdrs

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def _need(self, n):
        while len(self.buf) < n:
            self._fill()

    def send_frame(self, opcode, payload, fin=True, mask=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        m = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, m | 126, n)
        else:
            head = struct.pack("!BBQ", b0, m | 127, n)
        if mask:
            k = os.urandom(4)
            payload = bytes(c ^ k[i % 4] for i, c in enumerate(payload))
            head += k
        self.sock.sendall(head + payload)

    def recv_frame(self):
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not (b1 & 0x80), "server frames are not masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload, bool(b0 & 0x80)

    def stomp(self, command, headers=(), body=b"", opcode=1):
        lines = [command] + ["%s:%s" % kv for kv in headers]
        self.send_frame(opcode, ("\n".join(lines) + "\n\n").encode() + body +
                        b"\0")

    def read_stomp(self):
        """The next STOMP frame: (opcode, command, headers, body)."""
        while True:
            op, p, fin = self.recv_frame()
            assert fin
            if op in (1, 2) and p.strip(b"\r\n"):
                break
            assert op in (1, 2), "unexpected opcode %d %r" % (op, p)
        head, _, body = p.partition(b"\n\n")
        lines = head.decode().split("\n")
        hdrs = dict(ln.split(":", 1) for ln in lines[1:])
        assert body.endswith(b"\0"), p
        return op, lines[0], hdrs, body[:-1]

    def connect(self):
        self.stomp("CONNECT", [("accept-version", "1.2"), ("host", "/")])
        _, cmd, hdrs, _ = self.read_stomp()
        assert cmd == "CONNECTED", (cmd, hdrs)
        return hdrs

    def close_frame(self):
        """The next frame must be a Close: its code."""
        op, p, _ = self.recv_frame()
        assert op == 8, (op, p)
        return struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None

    def expect_eof(self):
        while True:
            try:
                d = self.sock.recv(65536)
            except ConnectionResetError:
                return
            if not d:
                return

    def close(self):
        self.sock.close()


def live_session(port, dest="/queue/alive"):
    """A WebSocket STOMP session that is opened first and must survive."""
    ws = WS(port)
    ws.open()
    ws.connect()
    return ws


def assert_alive(ws, n=1, dest="/queue/alive"):
    ws.stomp("SEND", [("destination", dest), ("receipt", "alive-%d" % n)],
             b"still here")
    _, cmd, hdrs, _ = ws.read_stomp()
    assert (cmd, hdrs.get("receipt-id")) == ("RECEIPT", "alive-%d" % n)


# ---- @stomp/stompjs ------------------------------------------------------------


def run_check(where, broker, queue):
    root = subprocess.run(["npm", "root", "-g"], stdout=subprocess.PIPE,
                          check=True, timeout=60).stdout.decode().strip()
    env = dict(os.environ, NODE_PATH=root)
    url = "ws://127.0.0.1:%d/ws" % broker.ws_port
    p = subprocess.run(["node", os.path.join(HERE, "ws_check.js"), where,
                        url, queue], cwd=HERE, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=180)
    assert p.returncode == 0, p.stderr.decode() + broker.log()
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("where", ["node", "browser"])
def test_stompjs_send_subscribe_ack_round_trip(wsb, where):
    out = run_check(where, wsb, "ws-" + where)
    assert out["protocol"] == "v12.stomp"
    assert out["version"] == "1.2"
    # every body, in order, the 200 KiB one and the binary one whole
    assert out["received"] == out["expected"]
    assert out["kinds"] == ["text"] * 52 + ["binary"]
    # acked in the first session: the second gets only its sentinel
    assert out["second"] == ["sentinel"]
    assert out.get("errors", []) == []


# ---- handshake ---------------------------------------------------------------------


def req(path="/ws", key=None, version="13", upgrade="websocket",
        connection="Upgrade", protocols=None, method="GET"):
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    r = "%s %s HTTP/1.1\r\nHost: x\r\n" % (method, path)
    if upgrade:
        r += "Upgrade: %s\r\n" % upgrade
    if connection:
        r += "Connection: %s\r\n" % connection
    if key:
        r += "Sec-WebSocket-Key: %s\r\n" % key
    if version:
        r += "Sec-WebSocket-Version: %s\r\n" % version
    if protocols:
        r += "Sec-WebSocket-Protocol: %s\r\n" % protocols
    return r + "\r\n"


@pytest.mark.parametrize("request_,status,says", [
    (req(path="/nope"), 404, "no WebSocket endpoint at /nope"),
    (req(upgrade=None), 400, "not a WebSocket upgrade"),
    (req(connection="keep-alive"), 400, "not a WebSocket upgrade"),
    (req(key=""), 400, "Sec-WebSocket-Key"),
    (req(key="c2hvcnQ="), 400, "Sec-WebSocket-Key"),
    (req(version="8"), 426, "Sec-WebSocket-Version"),
    (req(protocols="mqtt, v13.stomp"), 400, "v12.stomp, v11.stomp, v10.stomp"),
    (req(method="POST"), 400, "expected an HTTP GET"),
    ("GET /ws HTTP/1.1\r\n" + "X-Pad: %s\r\n" % ("a" * 9000), 431,
     "over 8192 bytes"),
])
def test_bad_handshake_is_refused_with_a_reason(wsb, request_, status, says):
    alive = live_session(wsb.ws_port)
    ws = WS(wsb.ws_port, request=request_)
    st, hdrs, body = ws.response()
    assert st == status, (st, body)
    assert says in body.decode(), body
    if status == 426:
        assert hdrs["sec-websocket-version"] == "13"
    ws.expect_eof()
    assert_alive(alive)
    alive.close()
    assert "WebSocket handshake refused" in wsb.log()


def test_subprotocols_and_paths(wsb):
    # the first of the client's list spoken here; none offered is fine
    for protos, want in [("v10.stomp, v12.stomp", "v10.stomp"),
                         ("foo, v11.stomp", "v11.stomp"), (None, None)]:
        for path in ("/ws", "/stomp", "/ws?x=1"):
            ws = WS(wsb.ws_port, path=path, protocols=protos)
            hdrs = ws.open()
            assert hdrs.get("sec-websocket-protocol") == want
            ws.connect()
            ws.close()


def test_plain_stomp_client_on_the_websocket_port(wsb):
    alive = live_session(wsb.ws_port)
    s = socket.create_connection(("127.0.0.1", wsb.ws_port), timeout=10)
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    assert got.startswith(b"HTTP/1.1 400 Bad Request\r\n"), got
    assert b"this port speaks STOMP over WebSocket at /ws" in got
    assert_alive(alive)
    alive.close()


# ---- frames ------------------------------------------------------------------------


def test_oversize_message_closes_with_1009(tmp_path):
    b = ws_broker("--stomp-max-frame", "1024")
    try:
        alive = live_session(b.ws_port)
        ws = WS(b.ws_port)
        ws.open()
        ws.connect()
        # one message over stomp-max-frame + 4096: refused before it is
        # buffered, whatever the STOMP frame inside
        ws.send_frame(1, b"x" * 6000)
        assert ws.close_frame() == 1009
        ws.expect_eof()
        # a STOMP frame over stomp-max-frame in a message that fits: the
        # STOMP adapter's own ERROR, then a Close
        ws2 = WS(b.ws_port)
        ws2.open()
        ws2.connect()
        ws2.stomp("SEND", [("destination", "/queue/big")], b"y" * 3000)
        _, cmd, hdrs, _ = ws2.read_stomp()
        assert cmd == "ERROR", (cmd, hdrs)
        assert ws2.close_frame() == 1000
        ws2.expect_eof()
        assert_alive(alive)
        alive.close()
        assert "WebSocket message over 5120 bytes" in b.log()
    finally:
        b.cleanup()


def test_fragments_pings_and_a_frame_split_across_messages(wsb):
    ws = WS(wsb.ws_port)
    ws.open()
    # CONNECT in three fragments, a ping between two of them
    connect = b"CONNECT\naccept-version:1.2\nhost:/\n\n\0"
    ws.send_frame(1, connect[:5], fin=False)
    ws.send_frame(9, b"ping-1")
    ws.send_frame(0, connect[5:20], fin=False)
    ws.send_frame(0, connect[20:], fin=True)
    op, p, _ = ws.recv_frame()
    assert (op, p) == (10, b"ping-1")
    _, cmd, _, _ = ws.read_stomp()
    assert cmd == "CONNECTED"
    ws.stomp("SUBSCRIBE", [("destination", "/queue/frag"), ("id", "0"),
                           ("ack", "client-individual")])
    # one SEND cut across two messages, then two SENDs in one message
    send = (b"SEND\ndestination:/queue/frag\ncontent-length:5\n\nfirst\0")
    ws.send_frame(2, send[:17])
    ws.send_frame(1, send[17:])
    ws.send_frame(1, b"SEND\ndestination:/queue/frag\n\nsecond\0"
                     b"SEND\ndestination:/queue/frag\n\nthird\0")
    bodies = []
    while len(bodies) < 3:
        op, cmd, hdrs, body = ws.read_stomp()
        assert cmd == "MESSAGE", (cmd, hdrs)
        assert op == 1  # UTF-8 frames go as text messages
        bodies.append(body)
        ws.stomp("ACK", [("id", hdrs["ack"])])
    assert bodies == [b"first", b"second", b"third"]
    # a body that is not UTF-8 comes back in a binary message
    ws.stomp("SEND", [("destination", "/queue/frag"),
                      ("content-length", "4")], b"\xff\x00\xfe\n",
             opcode=2)
    op, cmd, hdrs, body = ws.read_stomp()
    assert (op, cmd, body) == (2, "MESSAGE", b"\xff\x00\xfe\n")
    ws.stomp("ACK", [("id", hdrs["ack"])])
    # DISCONNECT: the receipt, then a Close 1000, then EOF
    ws.stomp("DISCONNECT", [("receipt", "bye")])
    _, cmd, hdrs, _ = ws.read_stomp()
    assert (cmd, hdrs["receipt-id"]) == ("RECEIPT", "bye")
    assert ws.close_frame() == 1000
    ws.expect_eof()


def test_client_close_is_answered(wsb):
    ws = WS(wsb.ws_port)
    ws.open()
    ws.connect()
    ws.send_frame(8, struct.pack("!H", 1000) + b"done")
    assert ws.close_frame() == 1000
    ws.expect_eof()


@pytest.mark.parametrize("what,send,code", [
    ("unmasked", lambda ws: ws.send_frame(1, b"CONNECT\n\n\0", mask=False),
     1002),
    ("bad utf-8", lambda ws: ws.send_frame(1, b"SEND\n\n\xff\xfe\0"), 1007),
    ("reserved opcode", lambda ws: ws.send_frame(3, b"x"), 1002),
])
def test_protocol_errors_close_only_that_connection(wsb, what, send, code):
    alive = live_session(wsb.ws_port)
    ws = WS(wsb.ws_port)
    ws.open()
    send(ws)
    assert ws.close_frame() == code, what
    ws.expect_eof()
    assert_alive(alive)
    alive.close()
    assert "WebSocket protocol error" in wsb.log()


def test_stomp_ws_listen_off_by_default(broker):
    assert broker.ws_port is None
