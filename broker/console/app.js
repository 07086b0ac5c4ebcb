/* Sluice console: plain JavaScript over the JSON API (docs/http-api.md)
 * and /metrics. No build step, nothing fetched from elsewhere. */
"use strict";

const $ = (s, r = document) => r.querySelector(s);
const esc = (v) => String(v === null || v === undefined ? "" : v)
  .replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const num = (n) => (n === null || n === undefined) ? "-" : Number(n).toLocaleString("en-US");
const bytes = (n) => {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
};
const age = (ms) => {
  if (ms === null || ms === undefined) return "-";
  if (ms < 10000) return ms + " ms";
  if (ms < 600000) return Math.round(ms / 1000) + " s";
  if (ms < 36000000) return Math.round(ms / 60000) + " min";
  return Math.round(ms / 3600000) + " h";
};

async function api(path, opts) {
  const r = await fetch(path, opts);
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
}

async function post(path, form) {
  return api(path, {method: "POST", body: new URLSearchParams(form || {})});
}

/* Replace el's rows only when what they show changed: a refresh that
 * rewrote an unchanged table took the row a user (or a test) was about to
 * click out of the page under them. True when it rendered. */
function render(el, html) {
  if (el.dataset.src === html) return false;
  el.dataset.src = html;
  el.innerHTML = html;
  return true;
}

function toast(msg) {
  const t = $("#toast");
  t.textContent = msg;
  t.style.display = "block";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.style.display = "none"; }, 3000);
}

/* ---- overview: cards and rate charts from /metrics ---------------------- */

const series = {in: [], out: []};
let last = null;

function sumMetric(text, name) {
  let s = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(name + "{") || line.startsWith(name + " ")) {
      const v = parseFloat(line.slice(line.lastIndexOf(" ") + 1));
      if (!isNaN(v)) s += v;
    }
  }
  return s;
}

function drawChart(canvas, data) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...data);
  ctx.strokeStyle = "#d9e0e7";
  ctx.fillStyle = "#5b6b7c";
  ctx.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + (h - pad) * i / 4;
    ctx.beginPath(); ctx.moveTo(pad + 20, y); ctx.lineTo(w - 4, y); ctx.stroke();
    const v = max * (4 - i) / 4;
    ctx.fillText(max >= 10 ? Math.round(v) : v.toFixed(2), 2, y + 4);
  }
  if (data.length < 2) return;
  ctx.strokeStyle = "#1769aa";
  ctx.lineWidth = 2;
  ctx.beginPath();
  data.forEach((v, i) => {
    const x = pad + 20 + (w - pad - 24) * i / 59;
    const y = pad / 2 + (h - pad) * (1 - v / max);
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();
}

async function refreshOverview() {
  const s = await api("/api/overview");
  $("#broker").textContent = "sluiced " + s.version + " on " + s.node.hostname +
    " · up " + age(s.uptime_s * 1000) + " · data " + s.data_dir;
  const q = (await api("/api/queues")).queues;
  const ready = q.reduce((a, r) => a + r.ready, 0);
  const inflight = q.reduce((a, r) => a + r.in_flight, 0);
  const dlq = q.reduce((a, r) => a + r.dlq_pending, 0);
  const text = await (await fetch("/metrics")).text();
  const now = Date.now();
  const rin = sumMetric(text, "sluice_partition_records_in_total");
  const rout = sumMetric(text, "sluice_partition_records_out_total") +
    sumMetric(text, "sluice_queue_deliveries_total");
  if (last) {
    const dt = (now - last.t) / 1000;
    series.in.push(Math.max(0, (rin - last.rin) / dt));
    series.out.push(Math.max(0, (rout - last.rout) / dt));
    if (series.in.length > 60) { series.in.shift(); series.out.shift(); }
  }
  last = {t: now, rin, rout};
  document.body.dataset.samples = String(series.in.length);
  const cards = [
    ["Topics", s.topics], ["Connections", s.connections], ["Ready", ready],
    ["In flight", inflight], ["Dead letters pending", dlq],
    ["In / s", series.in.length ? Math.round(series.in[series.in.length - 1]) : 0],
    ["Out / s", series.out.length ? Math.round(series.out[series.out.length - 1]) : 0],
  ];
  $("#cards").innerHTML = cards.map(([k, v]) =>
    `<div class="card"><div class="v">${num(v)}</div><div class="k">${esc(k)}</div></div>`).join("");
  drawChart($("#chart-in"), series.in);
  drawChart($("#chart-out"), series.out);
}

/* ---- topics ---------------------------------------------------------------- */

async function refreshTopics() {
  const t = (await api("/api/topics")).topics;
  if (!render($("#topics tbody"), t.map((x) => `<tr data-topic="${esc(x.name)}">
    <td><a href="#topics" class="topic-link">${esc(x.name)}</a></td>
    <td class="num">${x.partition_count}</td><td class="num">${num(x.records)}</td>
    <td class="num">${bytes(x.bytes)}</td>
    <td>${Object.entries(x.configs).map(([k, v]) => esc(k + "=" + v)).join(", ")}</td></tr>`).join("")))
    return;
  for (const a of document.querySelectorAll(".topic-link"))
    a.onclick = (e) => { e.preventDefault(); showTopic(a.textContent); };
}

async function showTopic(name) {
  const t = await api("/api/topics/" + encodeURIComponent(name));
  $("#topic-detail").innerHTML = `<h2>${esc(t.name)}: partitions</h2><table><thead><tr>
    <th>Partition</th><th>Start</th><th>End</th><th>Durable</th><th>Records</th><th>Size</th><th>Segments</th></tr></thead><tbody>` +
    t.partitions.map((p) => `<tr><td class="num">${p.partition}</td><td class="num">${num(p.start_offset)}</td>
      <td class="num">${num(p.end_offset)}</td><td class="num">${num(p.durable_offset)}</td>
      <td class="num">${num(p.records)}</td><td class="num">${bytes(p.bytes)}</td><td class="num">${p.segments}</td></tr>`).join("") +
    "</tbody></table>";
}

/* ---- queues ------------------------------------------------------------------ */

async function refreshQueues() {
  const q = (await api("/api/queues")).queues;
  if (!render($("#queues tbody"), q.map((r) => `<tr class="${r.dlq_pending ? "bad" : ""}"
      data-topic="${esc(r.topic)}" data-group="${esc(r.group)}">
    <td>${esc(r.topic)}</td><td>${esc(r.group)}</td>
    <td class="num ready">${num(r.ready)}</td><td class="num inflight">${num(r.in_flight)}</td>
    <td class="num">${num(r.delayed)}</td>
    <td class="num dlq">${num(r.dlq_pending)} / ${num(r.dlq_total)}</td>
    <td class="num">${num(r.consumers)}</td><td class="num">${age(r.oldest_ready_age_ms)}</td>
    <td><button class="peek">Peek</button> <button class="danger purge">Purge</button></td></tr>`).join("")))
    return;
  for (const tr of document.querySelectorAll("#queues tbody tr")) {
    const t = tr.dataset.topic, g = tr.dataset.group;
    const path = "/api/queues/" + encodeURIComponent(t) + "/" + encodeURIComponent(g);
    $(".peek", tr).onclick = async () => {
      const r = await api(path + "/peek?count=20");
      $("#peek").innerHTML = `<h2>Next ready records of ${esc(g)} on ${esc(t)} (nothing changes)</h2>` +
        recordsTable(r.records, true);
    };
    $(".purge", tr).onclick = async () => {
      if (!confirm(`Drop every record group ${g} has not consumed on ${t}?`)) return;
      const r = await post(path + "/purge");
      toast(`purged ${r.purged} records`);
      refreshQueues();
    };
  }
}

function recordsTable(recs, attempts) {
  return `<table class="records"><thead><tr><th>Partition</th><th>Offset</th><th>Time</th><th>Key</th>
    <th>Value</th><th>Headers</th>${attempts ? "<th>Attempts</th>" : ""}</tr></thead><tbody>` +
    recs.map((m) => `<tr><td class="num">${m.partition}</td><td class="num">${m.offset}</td>
      <td>${esc(new Date(m.timestamp).toISOString())}</td><td><pre>${esc(m.key)}</pre></td>
      <td><pre>${esc(m.value)}</pre></td>
      <td class="headers">${Object.entries(m.headers).map(([k, v]) => `<span>${esc(k)}=${esc(v)}</span>`).join("")}</td>
      ${attempts ? `<td class="num">${m.attempts}</td>` : ""}</tr>`).join("") + "</tbody></table>";
}

/* ---- dead letters -------------------------------------------------------- */

let openDlq = null;

async function refreshDlqs() {
  const d = (await api("/api/dlqs")).dlqs;
  const changed = render($("#dlqs tbody"), d.map((x) => `<tr data-dlq="${esc(x.dlq_topic)}" class="${x.pending ? "bad" : ""}">
    <td><a href="#dlq" class="dlq-link">${esc(x.dlq_topic)}</a></td><td>${esc(x.source_topic)}</td>
    <td>${esc(x.group)}</td><td class="num dlq pending">${num(x.pending)}</td><td class="num">${num(x.total)}</td>
    <td><button class="redrive" ${x.pending ? "" : "disabled"}>Redrive</button>
        <button class="danger dlqpurge" ${x.pending ? "" : "disabled"}>Mark handled</button></td></tr>`).join(""));
  for (const tr of changed ? document.querySelectorAll("#dlqs tbody tr") : []) {
    const name = tr.dataset.dlq;
    const path = "/api/dlqs/" + encodeURIComponent(name);
    $(".dlq-link", tr).onclick = (e) => { e.preventDefault(); showDlq(name); };
    $(".redrive", tr).onclick = async () => {
      const r = await post(path + "/redrive");
      toast(`redrove ${r.moved} records from ${name}`);
      await refreshDlqs();
      if (openDlq === name) showDlq(name);
    };
    $(".dlqpurge", tr).onclick = async () => {
      if (!confirm(`Mark every pending record of ${name} handled?`)) return;
      const r = await post(path + "/purge");
      toast(`marked ${r.purged} records handled`);
      await refreshDlqs();
      if (openDlq === name) showDlq(name);
    };
  }
  if (openDlq === null && d.length) showDlq(d[0].dlq_topic);
}

async function showDlq(name) {
  openDlq = name;
  let r;
  try {
    r = await api("/api/dlqs/" + encodeURIComponent(name) + "?count=100");
  } catch (e) {
    $("#dlq-detail").innerHTML = `<p class="hint">${esc(name)}: no dead letter yet.</p>`;
    return;
  }
  $("#dlq-detail").innerHTML = `<h2>Pending in ${esc(name)}</h2>` +
    (r.records.length ? recordsTable(r.records, false) : `<p class="hint">Nothing pending.</p>`);
}

/* ---- connections ----------------------------------------------------------- */

async function refreshConnections() {
  try {
    const c = (await api("/api/connections")).connections;
    $("#connections tbody").innerHTML = c.map((x) => `<tr><td class="num">${x.id}</td><td>${esc(x.protocol)}</td>
      <td>${esc(x.peer)}</td><td>${esc(x.user || "-")}</td><td class="num">${age(x.age_ms)}</td>
      <td class="num">${num(x.bytes_in)}</td><td class="num">${num(x.bytes_out)}</td>
      <td class="num">${num(x.in_flight || 0)}</td>
      <td>${esc((x.subscriptions || []).map((s) => s.destination).concat(
        (x.groups || []).map((g) => g.group + "/" + g.topic)).join(", ") || "-")}</td></tr>`).join("");
    $("#connections-note").textContent = "";
  } catch (e) {
    $("#connections-note").textContent = "Connections: " + e.message;
  }
}

/* ---- routing ----------------------------------------------------------------- */

const pages = {
  overview: refreshOverview, topics: refreshTopics, queues: refreshQueues,
  dlq: refreshDlqs, connections: refreshConnections,
};

function current() {
  const p = location.hash.replace("#", "");
  return pages[p] ? p : "overview";
}

async function tick() {
  const p = current();
  try {
    await pages[p]();
    document.body.dataset.loaded = p;
  } catch (e) {
    toast(e.message);
  }
}

function show() {
  const p = current();
  for (const s of document.querySelectorAll(".page"))
    s.classList.toggle("active", s.id === "page-" + p);
  for (const a of document.querySelectorAll("nav a"))
    a.classList.toggle("active", a.dataset.page === p);
  document.body.dataset.loaded = "";
  tick();
}

window.addEventListener("hashchange", show);
show();
setInterval(() => { if (current() === "overview") tick(); }, 2000);
setInterval(() => { if (current() !== "overview") tick(); }, 5000);
