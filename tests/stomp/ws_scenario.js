// ws_scenario.js - one STOMP-over-WebSocket round trip with @stomp/stompjs,
// run as is in Node (ws_check.js, WebSocket from the `ws` package) and in a
// page of headless Chromium (the browser's own WebSocket). Both from npm,
// installed globally by scripts/deps.sh.
//
// scenario(StompJs, url, queue, withBinary) resolves to a summary the pytest side
// asserts on: what the server chose (subprotocol, STOMP version), the
// bodies received in order, their headers, and what a second session sees
// after the first acked everything (the sentinel only: nothing
// redelivered).
"use strict";

// withBinary=false leaves out the binary message (sent as a binary
// WebSocket message): RabbitMQ 3.10's Web-STOMP ignores those
// (test_stomp_peers.py runs the scenario against it too).
function scenario(StompJs, url, queue, withBinary = true) {
  const N = 50;
  const big = "B".repeat(200 * 1024); // several WebSocket reads, one frame
  const bodies = [];
  for (let i = 0; i < N; i++) bodies.push("message " + i);
  bodies.push("héllo wörld ✓ 日本"); // UTF-8 in a text frame
  bodies.push(big);
  const binary = new Uint8Array([0, 1, 2, 0xff, 0xfe, 0x80, 10, 0]);

  function connect() {
    return new Promise((resolve, reject) => {
      const c = new StompJs.Client({
        brokerURL: url,
        connectHeaders: {login: "guest", passcode: "guest", host: "/"},
        reconnectDelay: 0,
        heartbeatIncoming: 0,
        heartbeatOutgoing: 0,
      });
      c.onConnect = (frame) => resolve({c, frame});
      c.onStompError = (f) => reject(new Error("STOMP ERROR " +
                                                f.headers.message + ": " + f.body));
      c.onWebSocketClose = (e) => reject(new Error("closed " + e.code));
      c.activate();
    });
  }

  function receipt(c, id) {
    return new Promise((resolve) => c.watchForReceipt(id, resolve));
  }

  return (async () => {
    const out = {};
    const a = await connect();
    out.version = a.frame.headers.version;
    out.protocol = a.c.webSocket.protocol;
    const got = [];
    let done;
    const all = new Promise((r) => { done = r; });
    a.c.subscribe("/queue/" + queue, (m) => {
      got.push({
        body: m.isBinaryBody && m.headers["content-type"] === "application/octet-stream"
          ? Array.from(m.binaryBody) : m.body,
        kind: m.headers.kind || "",
        len: m.binaryBody.length,
      });
      m.ack();
      if (got.length === bodies.length + (withBinary ? 1 : 0)) done();
    }, {ack: "client-individual", id: "s1"});
    for (let i = 0; i < bodies.length; i++) {
      const last = i === bodies.length - 1;
      const r = receipt(a.c, "r" + i);
      a.c.publish({destination: "/queue/" + queue, body: bodies[i],
                   headers: {kind: "text", receipt: "r" + i}});
      if (last || i % 10 === 0) await r;
    }
    if (withBinary) {
      const rb = receipt(a.c, "rbin");
      a.c.publish({destination: "/queue/" + queue, binaryBody: binary,
                   headers: {kind: "binary", receipt: "rbin",
                             "content-type": "application/octet-stream"}});
      await rb;
    }
    await all;
    out.received = got.map((g) => g.kind === "text" && g.body.length > 1000
      ? "big:" + g.len + ":" + (g.body === big) : g.body);
    out.kinds = got.map((g) => g.kind);
    // the acks are sent before the DISCONNECT's receipt comes back
    await a.c.deactivate();

    // a second session: only the sentinel, nothing redelivered
    const b = await connect();
    const second = [];
    let done2;
    const one = new Promise((r) => { done2 = r; });
    b.c.subscribe("/queue/" + queue, (m) => {
      second.push(m.body);
      m.ack();
      done2();
    }, {ack: "client-individual", id: "s2"});
    const rs = receipt(b.c, "rs");
    b.c.publish({destination: "/queue/" + queue, body: "sentinel",
                 headers: {receipt: "rs"}});
    await rs;
    await one;
    out.second = second;
    await b.c.deactivate();
    out.expected = bodies.map((s) => s.length > 1000
      ? "big:" + s.length + ":true" : s).concat(withBinary ? [Array.from(binary)] : []);
    return out;
  })();
}

if (typeof module !== "undefined") module.exports = {scenario};
