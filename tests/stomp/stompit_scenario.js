// stompit_scenario.js - one STOMP scenario with stompit (npm, installed
// globally by scripts/deps.sh), run by tests/stomp/test_stomp_peers.py
// against Sluice, RabbitMQ and ActiveMQ alike:
//
//   node stompit_scenario.js PORT /queue/NAME
//
// Sends three messages with receipts, subscribes client-individual, acks
// "one" and "three", NACKs "two" (waiting for the NACK's receipt), then sends
// "four": the next message says whether the NACKed one came back first.
// Prints one JSON line; exits non-zero on an error or after the timeout.
"use strict";
const stompit = require("stompit");

const [port, queue] = process.argv.slice(2);
const timer = setTimeout(() => fail(new Error("timeout")), 40000);

function fail(err) {
  process.stderr.write(String(err && err.stack || err) + "\n");
  process.exit(1);
}

stompit.connect({
  host: "127.0.0.1", port: Number(port),
  connectHeaders: {host: "/", login: "guest", passcode: "guest",
                   "accept-version": "1.2", "heart-beat": "0,0"},
}, (err, client) => {
  if (err) return fail(err);
  client.on("error", fail);
  const bodies = ["one", "two", "three"];
  let receipts = 0;
  const received = [], headers = [];
  let redelivered = null;

  function onMessage(err, message) {
    if (err) return fail(err);
    message.readString("utf-8", (err, body) => {
      if (err) return fail(err);
      if (received.length < 3) {
        received.push(body);
        headers.push(message.headers.app);
        if (body === "two") {
          // the NACKed message may come back before the NACK's receipt
          // (Sluice answers it once the NACK is committed to disk)
          client.nack(message, {}, {onReceipt: () => {
            if (redelivered === null) {
              client.sendString({destination: queue, app: "4"}, "four");
            }
          }});
        } else {
          client.ack(message);
        }
        return;
      }
      client.ack(message);
      redelivered = body;
      client.disconnect(() => {
        clearTimeout(timer);
        console.log(JSON.stringify({received, redelivered, headers}));
      });
    });
  }

  bodies.forEach((b, i) => {
    const frame = client.send({destination: queue, app: String(i + 1)}, {
      onReceipt: () => {
        if (++receipts === bodies.length) {
          client.subscribe({destination: queue, ack: "client-individual"},
                           onMessage);
        }
      },
    });
    frame.write(b);
    frame.end();
  });
});
