#!/usr/bin/env python3
"""Login rate of a running sluiced (issue 16), docs/benchmarks.md.

    bench/login_rate.py scram HOST:PORT USER PASSWORD [SECONDS] [CLIENTS]
    bench/login_rate.py stomp HOST:PORT USER PASSWORD [SECONDS] [CLIENTS]
    bench/login_rate.py stomp-during-bad HOST:PORT USER PASSWORD [BAD [BADUSER]]

scram: CLIENTS threads each open a connection, log in with SCRAM-SHA-256
over the binary protocol (SASL_HANDSHAKE + two SASL_AUTHENTICATE), close,
and again, for SECONDS. The client's PBKDF2 is computed once per thread and
reused (a real client may cache it too): what is measured is the broker.
stomp: the same with STOMP CONNECT login/passcode (the broker runs the
PBKDF2). Prints logins/s. stomp-during-bad: BAD wrong-password CONNECTs in
flight (as BADUSER, default mallory), then one good one: prints the good
one's wait in ms.
Only talks to the address given (use loopback).
"""
import base64
import hashlib
import hmac
import os
import socket
import struct
import sys
import threading
import time


def frame(api, corr, body=b""):
    return struct.pack("<IHHI", 8 + len(body), api, 1, corr) + body


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise ConnectionError("closed")
        b += c
    return b


def resp(s):
    (n,) = struct.unpack("<I", recv_exact(s, 4))
    body = recv_exact(s, n)
    _, err = struct.unpack("<Ii", body[:8])
    if err:
        raise RuntimeError("error %d" % err)
    return body[8:]


def auth_msg(s, corr, data):
    s.sendall(frame(32, corr, struct.pack("<I", len(data)) + data))
    r = resp(s)
    (n,) = struct.unpack("<I", r[:4])
    return r[4:4 + n], r[4 + n]


def attrs(m):
    return dict(a.split("=", 1) for a in m.decode().split(","))


def scram_login(addr, user, cache):
    s = socket.create_connection(addr)
    try:
        mech = b"SCRAM-SHA-256"
        s.sendall(frame(31, 1, struct.pack("<H", len(mech)) + mech))
        resp(s)
        cnonce = base64.b64encode(os.urandom(18)).decode()
        bare = "n=%s,r=%s" % (user, cnonce)
        sfirst, _ = auth_msg(s, 2, ("n,," + bare).encode())
        a = attrs(sfirst)
        key = (a["s"], a["i"])
        if key not in cache:
            cache[key] = hashlib.pbkdf2_hmac(
                "sha256", cache["pw"], base64.b64decode(a["s"]), int(a["i"]))
        salted = cache[key]
        ck = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(ck).digest()
        wo = "c=biws,r=" + a["r"]
        am = ",".join([bare, sfirst.decode(), wo]).encode()
        sig = hmac.new(stored, am, "sha256").digest()
        proof = bytes(x ^ y for x, y in zip(ck, sig))
        final = wo + ",p=" + base64.b64encode(proof).decode()
        v, complete = auth_msg(s, 3, final.encode())
        assert complete == 1 and v.startswith(b"v=")
    finally:
        s.close()


def stomp_connect(addr, user, pw):
    s = socket.create_connection(addr)
    try:
        s.sendall(("CONNECT\naccept-version:1.2\nhost:/\nlogin:%s\n"
                   "passcode:%s\n\n\0" % (user, pw)).encode())
        buf = b""
        while b"\0" not in buf:
            c = s.recv(4096)
            if not c:
                break
            buf += c
        return buf.startswith(b"CONNECTED")
    finally:
        s.close()


def rate(mode, addr, user, pw, seconds, clients):
    count = [0] * clients
    stop = time.monotonic() + seconds

    def run(i):
        cache = {"pw": pw.encode()}
        while time.monotonic() < stop:
            if mode == "scram":
                scram_login(addr, user, cache)
            else:
                assert stomp_connect(addr, user, pw)
            count[i] += 1

    ts = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(count) / (time.monotonic() - t0)


def good_during_bad(addr, user, pw, bad, bad_user):
    socks = []
    for _ in range(bad):
        s = socket.create_connection(addr)
        s.sendall(("CONNECT\naccept-version:1.2\nhost:/\nlogin:%s\n"
                   "passcode:wrong\n\n\0" % bad_user).encode())
        socks.append(s)
    t0 = time.monotonic()
    ok = stomp_connect(addr, user, pw)
    ms = (time.monotonic() - t0) * 1000
    for s in socks:
        s.close()
    assert ok
    return ms


def main():
    mode, hp, user, pw = sys.argv[1:5]
    host, port = hp.rsplit(":", 1)
    addr = (host, int(port))
    if mode == "stomp-during-bad":
        bad = int(sys.argv[5]) if len(sys.argv) > 5 else 40
        bad_user = sys.argv[6] if len(sys.argv) > 6 else "mallory"
        print("good STOMP login behind %d bad ones (as %s): %.0f ms"
              % (bad, bad_user, good_during_bad(addr, user, pw, bad,
                                                bad_user)))
        return
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 5
    clients = int(sys.argv[6]) if len(sys.argv) > 6 else 4
    print("%s logins/s: %.0f (%d clients, %.0f s)"
          % (mode, rate(mode, addr, user, pw, seconds, clients), clients,
             seconds))


if __name__ == "__main__":
    main()
