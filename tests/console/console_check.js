// console_check.js - drive the web console in Debian's chromium (headless)
// with puppeteer-core. Used by tests/console/test_console.py:
//
//   node console_check.js BASE_URL TOPIC GROUP DLQ [SCREENSHOT_DIR]
//
// Prints one JSON line: the queue row's numbers as the console shows them,
// the DLQ's pending count before and after clicking its Redrive button.
// Exits non-zero (with the error) when a page does not load or the click
// has no effect within the timeout.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const puppeteer = require("puppeteer-core");

const [base, topic, group, dlq, shots] = process.argv.slice(2);
const TIMEOUT = 20000;

async function page_(page, name) {
  await page.goto(base + "/#" + name, {waitUntil: "load"});
  await page.waitForFunction((n) => document.body.dataset.loaded === n,
                             {timeout: TIMEOUT}, name);
}

// Click inside the page in one step: the console re-renders its tables
// every few seconds, so an element handle taken by page.click() can be
// detached before the click lands ("Node is detached from document").
async function click(page, sel) {
  await page.waitForSelector(sel, {timeout: TIMEOUT});
  await page.$eval(sel, (e) => e.click());
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run", "--user-data-dir=" + profile],
    headless: true,
  });
  const out = {};
  try {
    const page = await browser.newPage();
    await page.setViewport({width: 1280, height: 760});
    page.on("dialog", (d) => d.accept());
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));

    await page_(page, "overview");
    // a rate point on the charts needs two samples (one tick later)
    await page.waitForFunction(() => Number(document.body.dataset.samples) >= 1,
                               {timeout: TIMEOUT});
    out.cards = await page.$$eval(".card", (cs) => cs.map((c) => c.innerText));
    if (shots) await page.screenshot({path: path.join(shots, "console-overview.png")});

    await page_(page, "topics");
    await click(page, ".topic-link");
    await page.waitForSelector("#topic-detail table", {timeout: TIMEOUT});
    if (shots) await page.screenshot({path: path.join(shots, "console-topics.png")});

    await page_(page, "queues");
    const row = `#queues tbody tr[data-topic="${topic}"][data-group="${group}"]`;
    await page.waitForSelector(row, {timeout: TIMEOUT});
    out.queue = await page.$eval(row, (tr) => ({
      ready: tr.querySelector(".ready").innerText,
      in_flight: tr.querySelector(".inflight").innerText,
      dlq: tr.querySelector(".dlq").innerText,
    }));
    await click(page, row + " .peek");
    await page.waitForSelector("#peek table", {timeout: TIMEOUT});
    out.peeked = await page.$$eval("#peek tbody tr", (rs) => rs.length);
    if (shots) await page.screenshot({path: path.join(shots, "console-queues.png")});

    await page_(page, "dlq");
    const drow = `#dlqs tbody tr[data-dlq="${dlq}"]`;
    await page.waitForSelector(drow, {timeout: TIMEOUT});
    await page.waitForSelector("#dlq-detail table", {timeout: TIMEOUT});
    out.pending_before = await page.$eval(drow + " .pending", (e) => e.innerText);
    out.dlq_headers = await page.$$eval("#dlq-detail .headers span",
                                        (s) => s.map((x) => x.innerText));
    if (shots) await page.screenshot({path: path.join(shots, "console-dlq.png")});
    await click(page, drow + " .redrive");
    await page.waitForFunction(
        (sel) => { const e = document.querySelector(sel);
                   return e && e.innerText === "0"; },
        {timeout: TIMEOUT}, drow + " .pending");
    out.pending_after = await page.$eval(drow + " .pending", (e) => e.innerText);

    await page_(page, "connections");
    out.connections = await page.$$eval("#connections tbody tr", (rs) =>
        rs.map((r) => [...r.querySelectorAll("td")].map((td) => td.innerText)));
    out.connections_note = await page.$eval("#connections-note",
                                            (e) => e.innerText);
    if (shots) await page.screenshot({path: path.join(shots, "console-connections.png")});
    out.errors = errors;
  } finally {
    await browser.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
