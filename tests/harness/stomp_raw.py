"""A raw STOMP 1.0-1.2 client over a socket for tests: bytes out, parsed
frames in (shared by the STOMP and cluster suites)."""
import socket


def stomp_frame(cmd, headers=(), body=b""):
    """One frame's bytes, headers as given (no escaping)."""
    h = "".join("%s:%s\n" % kv for kv in headers)
    return ("%s\n%s\n" % (cmd, h)).encode() + body + b"\0"


def read_frame(s):
    """The next frame's bytes from any socket (plain or TLS), up to its NUL;
    simple: what came after the NUL in the same read is dropped."""
    buf = b""
    while b"\0" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed; got %r" % buf)
        buf += chunk
    return buf.split(b"\0", 1)[0].lstrip(b"\n")


def esc12(s):
    return (s.replace("\\", "\\\\").replace("\r", "\\r")
            .replace("\n", "\\n").replace(":", "\\c"))


def unesc(s, version):
    if version == "1.0":
        return s
    out, i = [], 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            nx = s[i + 1]
            out.append({"n": "\n", "c": ":", "\\": "\\", "r": "\r"}[nx])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Frame:
    def __init__(self, command, headers, body):
        self.command = command
        self.headers = headers  # first occurrence wins
        self.all_headers = []
        self.body = body

    def __repr__(self):
        return "Frame(%s, %r, %r)" % (self.command, self.headers,
                                      self.body[:80])


class Raw:
    """A raw STOMP connection: bytes out, frames in."""

    def __init__(self, port, timeout=10, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.version = "1.0"
        self.eols = 0

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, command, headers=(), body=b"", escape=None):
        if isinstance(body, str):
            body = body.encode()
        if escape is None:
            escape = self.version != "1.0" and command not in (
                "CONNECT", "STOMP")
        lines = [command]
        for k, v in (headers.items() if isinstance(headers, dict)
                     else headers):
            if escape:
                k, v = esc12(k), esc12(v)
            lines.append("%s:%s" % (k, v))
        self.send_raw(("\n".join(lines) + "\n\n").encode() + body + b"\0")

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def read_frame(self):
        # skip heart-beat EOLs
        while True:
            while not self.buf:
                self._fill()
            if self.buf[:1] == b"\n":
                self.buf = self.buf[1:]
                self.eols += 1
                continue
            if self.buf[:2] == b"\r\n":
                self.buf = self.buf[2:]
                self.eols += 1
                continue
            if self.buf[:1] == b"\r":
                self._fill()
                continue
            break
        while b"\n\n" not in self.buf:
            self._fill()
        head, rest = self.buf.split(b"\n\n", 1)
        lines = head.decode().split("\n")
        command = lines[0]
        headers = {}
        allh = []
        raw_unesc = command in ("CONNECTED",) or self.version == "1.0"
        for l in lines[1:]:
            k, v = l.split(":", 1)
            if not raw_unesc:
                k, v = unesc(k, self.version), unesc(v, self.version)
            allh.append((k, v))
            headers.setdefault(k, v)
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(rest) < n + 1:
                self._fill()
                head2, rest = self.buf.split(b"\n\n", 1)
            body, tail = rest[:n], rest[n:]
            assert tail[:1] == b"\0", "no NUL after content-length body"
            self.buf = tail[1:]
        else:
            while b"\0" not in rest:
                self._fill()
                _, rest = self.buf.split(b"\n\n", 1)
            body, self.buf = rest.split(b"\0", 1)
        f = Frame(command, headers, body)
        f.all_headers = allh
        return f

    def expect(self, command):
        f = self.read_frame()
        assert f.command == command, "expected %s, got %r" % (command, f)
        return f

    def call(self, command, headers, body=b""):
        """Send a frame that asks for a receipt (headers hold "receipt")
        and check that the next frame is that RECEIPT; return it."""
        self.send(command, headers, body)
        f = self.expect("RECEIPT")
        assert f.headers.get("receipt-id") == headers["receipt"], f
        return f

    def expect_closed(self):
        """Read until EOF; return the frames read before it."""
        frames = []
        while True:
            try:
                frames.append(self.read_frame())
            except EOFError:
                return frames
            except ConnectionResetError:
                return frames

    def connect(self, version="1.2", headers=None, heart_beat=None):
        h = {"accept-version": version, "host": "whatever.example"}
        if heart_beat:
            h["heart-beat"] = heart_beat
        h.update(headers or {})
        if version is None:
            del h["accept-version"]
        self.send("CONNECT", h)
        f = self.read_frame()
        if f.command == "CONNECTED":
            self.version = f.headers.get("version", "1.0")
        return f
