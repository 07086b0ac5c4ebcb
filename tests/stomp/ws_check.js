// ws_check.js - run ws_scenario.js with @stomp/stompjs against sluiced's
// STOMP-over-WebSocket listener, in Node or in headless Chromium (Debian's,
// driven by puppeteer-core). Used by tests/stomp/test_stomp_ws.py:
//
//   node ws_check.js node|browser ws://HOST:PORT/ws QUEUE [text-only]
//
// Prints the scenario's summary as one JSON line; exits non-zero with the
// error when the scenario fails or does not finish within the timeout.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");

// a 4th argument "text-only" leaves out the binary message
const [where, url, queue, only] = process.argv.slice(2);
const withBinary = only !== "text-only";
const TIMEOUT = 60000;

async function inNode() {
  const StompJs = require("@stomp/stompjs");
  Object.assign(global, {WebSocket: require("ws")});
  return require("./ws_scenario.js").scenario(StompJs, url, queue, withBinary);
}

async function inBrowser() {
  const puppeteer = require("puppeteer-core");
  // the UMD bundle is not in the package's exports: find it on NODE_PATH
  const bundle = (process.env.NODE_PATH || "").split(path.delimiter)
    .map((d) => path.join(d, "@stomp/stompjs/bundles/stomp.umd.min.js"))
    .find((f) => fs.existsSync(f));
  if (!bundle) throw new Error("@stomp/stompjs's bundle not found on NODE_PATH");
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run", "--user-data-dir=" + profile],
    headless: true,
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.setContent("<html><body>stomp-ws</body></html>");
    await page.addScriptTag({content: fs.readFileSync(bundle, "utf8")});
    await page.addScriptTag({
      content: fs.readFileSync(path.join(__dirname, "ws_scenario.js"), "utf8")});
    const out = await page.evaluate(
      (u, q, b) => scenario(window.StompJs, u, q, b), url, queue, withBinary);
    out.errors = errors;
    out.userAgent = await browser.userAgent();
    return out;
  } finally {
    await browser.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
}

const timer = setTimeout(() => {
  console.error("timed out after " + TIMEOUT + " ms");
  process.exit(2);
}, TIMEOUT);
(where === "browser" ? inBrowser() : inNode()).then((out) => {
  clearTimeout(timer);
  console.log(JSON.stringify(out));
  process.exit(0);
}, (e) => {
  console.error(String(e && e.stack || e));
  process.exit(1);
});
