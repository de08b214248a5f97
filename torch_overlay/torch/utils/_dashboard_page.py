"""The self-contained HTML page served by :func:`torch.utils.dashboard.live_dashboard`.

Everything the page needs is inline (no external script, style, font or image),
and the ``Content-Security-Policy`` sent with it forbids loading anything else.
The script builds every row and label with ``textContent`` / SVG text nodes, so
a name is never interpreted as markup; the rows rendered by the server for the
first paint are escaped with :func:`html.escape`.
"""

from __future__ import annotations

import string


__all__: list[str] = []

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

PAGE = string.Template(
    r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>torch telemetry</title>
<style>
:root { --bg:#0f1419; --panel:#171d24; --line:#263040; --text:#d8dee9; --dim:#8391a5; --accent:#ee4c2c; --warn:#f0a020; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text); font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
header { display:flex; flex-wrap:wrap; align-items:baseline; gap:8px 16px; padding:14px 24px; border-bottom:1px solid var(--line); }
header h1 { margin:0; font-size:18px; font-weight:600; }
header h1 span { color:var(--accent); }
#status { color:var(--dim); font-size:12px; flex:1 1 200px; }
#status.stale { color:var(--warn); }
.controls { display:flex; gap:12px; align-items:center; color:var(--dim); font-size:12px; }
.controls select { background:var(--panel); color:var(--text); border:1px solid var(--line); border-radius:4px; font-size:12px; }
main { padding:16px 24px; display:grid; grid-template-columns:minmax(0,1fr) minmax(0,1fr); gap:16px; }
section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 16px; min-width:0; }
section.wide { grid-column: 1 / -1; }
h2 { margin:0 0 8px; font-size:13px; font-weight:600; color:var(--dim); text-transform:uppercase; letter-spacing:.06em; }
.scroll { overflow-x:auto; }
table { width:100%; border-collapse:collapse; font-variant-numeric: tabular-nums; }
th, td { padding:6px 10px; text-align:right; border-bottom:1px solid var(--line); white-space:nowrap; }
th { color:var(--dim); font-weight:500; font-size:12px; }
th:first-child, td:first-child { text-align:left; }
td.name { font-family: ui-monospace, Menlo, Consolas, monospace; max-width:380px; overflow:hidden; text-overflow:ellipsis; }
td.name input { margin:0 6px 0 0; vertical-align:middle; accent-color:var(--accent); }
tr.hidden td { opacity:.45; }
td.err { color:#ff6b6b; }
.straggler { display:inline-block; margin-left:8px; padding:0 6px; border-radius:8px; background:#5a2a12; color:#ffb27a; font:11px system-ui, sans-serif; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:8px; vertical-align:middle; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(170px, 1fr)); gap:12px; }
.card { border:1px solid var(--line); border-radius:6px; padding:8px 10px; min-width:0; }
.card .label { color:var(--dim); font-size:12px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.card .value { font-size:20px; font-weight:600; font-variant-numeric: tabular-nums; }
.card .sub { color:var(--dim); font-size:11px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.card .sub.err { color:var(--warn); }
.card svg { height:32px; margin-top:4px; }
svg { width:100%; height:240px; display:block; }
svg text { fill:var(--dim); font-size:11px; }
.empty { color:var(--dim); padding:24px 0; text-align:center; }
@media (max-width: 900px) { main { grid-template-columns: minmax(0,1fr); padding:12px; } header { padding:12px; } }
@media (max-width: 760px) { .opt { display:none; } th, td { padding:6px 6px; } }
</style>
</head>
<body>
<header><h1><span>torch</span>.utils.telemetry</h1><div id="status">refreshing every ${refresh} s</div>
<div class="controls"><label><input type="checkbox" id="log"> log scale</label>
<label>last <select id="span"><option value="300">5 min</option><option value="900">15 min</option><option value="3600">1 h</option><option value="0" selected>all kept</option></select></label></div></header>
<main>
<section class="wide"><h2>Host</h2><div class="cards" id="host"><div class="empty">waiting for the first sample&hellip;</div></div></section>
<section class="wide"><h2>Timed calls</h2><div class="scroll">
<table id="stats"><thead><tr><th>name</th><th class="opt">device</th><th>calls</th><th>calls/s</th><th>errors</th><th>mean</th><th>p50</th><th>p95</th><th class="opt">min</th><th class="opt">max</th><th class="opt">total</th><th>peak memory</th></tr></thead>
<tbody>${rows}</tbody></table></div>
</section>
<section><h2>Mean duration per interval</h2><svg id="latency" role="img" aria-label="mean duration over time"></svg></section>
<section><h2>Calls per second</h2><svg id="rate" role="img" aria-label="calls per second over time"></svg></section>
<section><h2>p50 (solid) / p95 (faded) by name</h2><svg id="quantiles" role="img" aria-label="quantile chart"></svg></section>
<section><h2>Peak device memory</h2><svg id="memory" role="img" aria-label="memory chart"></svg></section>
</main>
<script>
"use strict";
const REFRESH_MS = ${refresh_ms};
const SVGNS = "http://www.w3.org/2000/svg";
const NAME_FIELDS = {calls: 0, errors: 0, calls_per_s: 0, mean_ms: null, p50_ms: null, p95_ms: null};
const GPU_FIELDS = {utilization_percent: null, memory_used_bytes: null, memory_total_bytes: null, power_watts: null, temperature_c: null};
const PROCESS_FIELDS = {rss_bytes: null, cpu_percent: null};
// The history kept by the server, merged chunk by chunk (?since=): t, and per group one array per field.
const H = {t: [], interval: 1, window: 3600, names: {}, process: {process: {}}, gpus: {}};
let stats = [];
// The view (log scale, time span, hidden names) is kept in localStorage and can be set in the
// address: #log&span=300&hide=name1&hide=name2 (a link to that view).
const view = new URLSearchParams(window.location.hash.slice(1));
const hidden = new Set(view.has("hide") ? view.getAll("hide") : load("hidden", []));

function load(key, fallback) {
  try { const v = window.localStorage.getItem("torch-telemetry-" + key); return v === null ? fallback : JSON.parse(v); }
  catch (e) { return fallback; }
}
function save(key, value) {
  try { window.localStorage.setItem("torch-telemetry-" + key, JSON.stringify(value)); } catch (e) { /* storage off */ }
}
// A colour per name that stays the same across reloads: FNV-1a of its UTF-16 code units -> hue.
function color(name) {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) { h ^= name.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return "hsl(" + (h % 360) + ", 70%, 62%)";
}
function ms(v) {
  if (v === null || v === undefined) return "\u2013";
  if (v === 0) return "0";
  if (v >= 1000) return (v / 1000).toFixed(2) + " s";
  if (v >= 1) return v.toFixed(2) + " ms";
  return (v * 1000).toFixed(1) + " \u00b5s";
}
function bytes(n) {
  if (n === null || n === undefined) return "\u2013";
  const units = ["B","KiB","MiB","GiB","TiB"];
  let i = 0; while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(2) : n) + " " + units[i];
}
function rate(v) {
  if (v === null || v === undefined) return "\u2013";
  if (v === 0) return "0";
  return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2);
}
function plain(v) { return v === null || v === undefined ? "\u2013" : String(Math.round(v * 100) / 100); }
function clock(t) { return new Date(t * 1000).toLocaleTimeString([], {hour12: false}); }
function el(tag, attrs, text) {
  const html = ["td","tr","span","div","input","label"].includes(tag);
  const e = html ? document.createElement(tag) : document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function empty(svg, message) {
  clear(svg);
  svg.appendChild(el("text", {x: "50%", y: "50%", "text-anchor": "middle"}, message));
}

function mergeGroup(dst, src, n0, n1, fields) {
  for (const key of Object.keys(src)) {
    if (!dst[key]) { dst[key] = {}; for (const f in fields) dst[key][f] = new Array(n0).fill(fields[f]); }
  }
  for (const key of Object.keys(dst)) {
    const d = dst[key], s = src[key];
    for (const f in fields) {
      if (!d[f]) d[f] = new Array(n0).fill(fields[f]);
      d[f] = d[f].concat(s && s[f] ? s[f] : new Array(n1).fill(fields[f]));
    }
    if (s) for (const [k, v] of Object.entries(s)) if (!Array.isArray(v)) d[k] = v;  // name, uuid, error
  }
}
function trimGroup(group, cut) {
  for (const d of Object.values(group)) for (const v of Object.values(d)) if (Array.isArray(v)) v.splice(0, cut);
}
function merge(chunk) {
  H.interval = chunk.interval_s; H.window = chunk.window_s;
  const n0 = H.t.length, n1 = chunk.t.length;
  if (!n1) return;
  mergeGroup(H.names, chunk.names, n0, n1, NAME_FIELDS);
  mergeGroup(H.process, {process: chunk.process}, n0, n1, PROCESS_FIELDS);
  mergeGroup(H.gpus, chunk.gpus, n0, n1, GPU_FIELDS);
  H.t = H.t.concat(chunk.t);
  const last = H.t[H.t.length - 1];
  let cut = 0;
  while (cut < H.t.length && H.t[cut] < last - H.window) cut++;
  if (cut) { H.t.splice(0, cut); trimGroup(H.names, cut); trimGroup(H.process, cut); trimGroup(H.gpus, cut); }
}
// Calls per second of a name over the last few seconds of history.
function recentRate(name) {
  const s = H.names[name], n = H.t.length;
  if (!s || !n) return null;
  const k = Math.max(1, Math.min(n - 1, Math.round(5 / H.interval)));
  let calls = 0;
  for (let i = n - k; i < n; i++) calls += s.calls[i];
  const span = n > k ? H.t[n - 1] - H.t[n - 1 - k] : H.interval * k;
  return span > 0 ? calls / span : null;
}

function renderTable() {
  const body = document.querySelector("#stats tbody");
  clear(body);
  for (const [name, s] of stats) {
    const tr = el("tr", hidden.has(name) ? {class: "hidden"} : {});
    const first = el("td", {class: "name", title: name});
    const box = el("input", {type: "checkbox", "aria-label": "show " + name});
    box.checked = !hidden.has(name);
    box.addEventListener("change", () => {
      if (box.checked) hidden.delete(name); else hidden.add(name);
      save("hidden", Array.from(hidden));
      saveView();
      render();
    });
    const sw = el("span", {class: "swatch"}); sw.style.background = color(name);
    first.appendChild(box); first.appendChild(sw); first.appendChild(document.createTextNode(name));
    if (s.ranks && s.slowest_rank !== undefined && s.slowest_rank !== null) {
      const slow = s.ranks[s.slowest_rank] || s.ranks[String(s.slowest_rank)];
      const badge = el("span", {class: "straggler", title: "slowest rank of " + Object.keys(s.ranks).length +
        (slow ? ": mean " + ms(slow.mean_ms) + ", p95 " + ms(slow.p95_ms) : "")}, "slowest: rank " + s.slowest_rank);
      first.appendChild(badge);
    }
    tr.appendChild(first);
    const cells = [[s.device, "opt"], [String(s.count)], [rate(recentRate(name))], [String(s.errors), s.errors > 0 ? "err" : ""],
      [ms(s.mean_ms)], [ms(s.p50_ms)], [ms(s.p95_ms)], [ms(s.min_ms), "opt"], [ms(s.max_ms), "opt"], [ms(s.total_ms), "opt"],
      [bytes(s.peak_memory_bytes)]];
    for (const [text, cls] of cells) tr.appendChild(el("td", cls ? {class: cls} : {}, text));
    body.appendChild(tr);
  }
}

function visibleRange() {
  const n = H.t.length;
  if (!n) return null;
  const span = Number(document.getElementById("span").value) || H.window;
  const tmax = H.t[n - 1];
  return [Math.max(H.t[0], tmax - span), tmax];
}
// A chart over time: series = [{label, color, values}] aligned with H.t; null values and
// intervals without samples are gaps; a lone point is drawn as a dot.
function timeChart(svg, series, fmt, message, logScale) {
  const w = svg.clientWidth || 600, h = svg.clientHeight || 240, pad = {l: 64, r: 12, t: 10, b: 22};
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  const range = visibleRange();
  const valid = v => v !== null && v !== undefined && (!logScale || v > 0);
  const shown = series.filter(s => s.values.some((v, i) => valid(v) && range && H.t[i] >= range[0]));
  if (!range || !shown.length) return empty(svg, message);
  clear(svg);
  const [t0, t1] = range[1] > range[0] ? range : [range[0] - H.interval, range[1]];
  let lo = Infinity, hi = 0;
  for (const s of shown) s.values.forEach((v, i) => { if (valid(v) && H.t[i] >= t0) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
  let y, ticks;
  if (logScale) {
    const a = Math.floor(Math.log10(lo)), b = Math.max(a + 1, Math.ceil(Math.log10(hi)));
    y = v => pad.t + (h - pad.t - pad.b) * (1 - (Math.log10(v) - a) / (b - a));
    ticks = []; for (let e = a; e <= b; e++) ticks.push(Math.pow(10, e));
    if (ticks.length > 7) ticks = ticks.filter((_, i) => i % Math.ceil(ticks.length / 6) === 0);
  } else {
    // Round steps (1, 2 or 5 times a power of ten), four or five of them.
    const raw = Math.max(hi, 1e-9) / 4, p10 = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map(m => m * p10).find(v => v >= raw);
    const top = step * Math.max(1, Math.ceil(hi / step - 1e-9));
    y = v => pad.t + (h - pad.t - pad.b) * (1 - v / top);
    ticks = []; for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  }
  const x = t => pad.l + (w - pad.l - pad.r) * (t - t0) / (t1 - t0);
  for (const v of ticks) {
    svg.appendChild(el("line", {x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v), stroke: "#263040"}));
    svg.appendChild(el("text", {x: pad.l - 6, y: y(v) + 4, "text-anchor": "end"}, fmt(v)));
  }
  const nticks = Math.max(2, Math.min(6, Math.floor((w - pad.l - pad.r) / 90)));
  let previous = "";
  for (let i = 0; i < nticks; i++) {
    const t = t0 + (t1 - t0) * i / (nticks - 1);
    if (clock(t) === previous) continue;  // a span of a few seconds
    previous = clock(t);
    svg.appendChild(el("text", {x: x(t), y: h - 6, "text-anchor": i === 0 ? "start" : i === nticks - 1 ? "end" : "middle", class: "tick"}, clock(t)));
  }
  const maxGap = 2.5 * H.interval;
  for (const s of shown) {
    const segments = [];
    let current = [];
    s.values.forEach((v, i) => {
      const t = H.t[i];
      if (t < t0) return;
      const broken = !valid(v) || (current.length && t - current[current.length - 1][0] > maxGap);
      if (broken && current.length) { segments.push(current); current = []; }
      if (valid(v)) current.push([t, v]);
    });
    if (current.length) segments.push(current);
    const g = el("g", {"data-name": s.label});
    g.appendChild(el("title", {}, s.label));
    for (const seg of segments) {
      if (seg.length === 1) {
        g.appendChild(el("circle", {cx: x(seg[0][0]).toFixed(1), cy: y(seg[0][1]).toFixed(1), r: 2.5, fill: s.color}));
      } else {
        const d = seg.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" ");
        g.appendChild(el("path", {d: d, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round"}));
      }
    }
    svg.appendChild(g);
  }
}
function sparkline(values, colour) {
  const svg = el("svg", {viewBox: "0 0 100 32", preserveAspectRatio: "none"});
  const range = visibleRange();
  const pts = values.map((v, i) => [H.t[i], v]).filter(([t, v]) => v !== null && v !== undefined && range && t >= range[0]);
  if (pts.length < 2) return svg;
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0], top = Math.max(1e-9, ...pts.map(p => p[1]));
  const d = pts.map((p, i) => (i ? "L" : "M") + (100 * (p[0] - t0) / (t1 - t0 || 1)).toFixed(1) + " " + (30 - 28 * p[1] / top).toFixed(1)).join(" ");
  svg.appendChild(el("path", {d: d, fill: "none", stroke: colour, "stroke-width": 1.5, "vector-effect": "non-scaling-stroke"}));
  return svg;
}
function last(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
}
function card(label, value, sub, values, colour, error) {
  const c = el("div", {class: "card"});
  c.appendChild(el("div", {class: "label", title: label}, label));
  c.appendChild(el("div", {class: "value"}, value));
  c.appendChild(el("div", {class: error ? "sub err" : "sub", title: error || sub}, error || sub));
  if (values) c.appendChild(sparkline(values, colour));
  return c;
}
function renderHost() {
  const host = document.getElementById("host");
  if (!H.t.length) return;
  clear(host);
  const p = H.process.process;
  host.appendChild(card("process memory (RSS)", bytes(last(p.rss_bytes)), "resident set size", p.rss_bytes, "#4c9aff"));
  const cpu = last(p.cpu_percent);
  host.appendChild(card("process CPU", cpu === null ? "\u2013" : cpu.toFixed(0) + " %", "of one core, per interval", p.cpu_percent, "#36c28b"));
  const gpus = Object.entries(H.gpus).sort((a, b) => Number(a[0]) - Number(b[0]));
  if (!gpus.length) host.appendChild(card("GPUs", "none", "no NVIDIA GPU seen through NVML"));
  for (const [index, g] of gpus) {
    const util = last(g.utilization_percent), used = last(g.memory_used_bytes), total = last(g.memory_total_bytes);
    const power = last(g.power_watts), temp = last(g.temperature_c);
    const sub = bytes(used) + " / " + bytes(total) + " \u00b7 " + (power === null ? "\u2013" : power.toFixed(0)) + " W \u00b7 " + plain(temp) + " \u00b0C";
    host.appendChild(card("GPU " + index + (g.name ? " \u00b7 " + g.name : ""), util === null ? "\u2013" : util + " %", sub,
      g.utilization_percent, color("GPU " + index), g.error));
  }
}
function renderBars(svgId, entries, values, fmt, message) {
  const svg = document.getElementById(svgId);
  const count = entries.filter(([, s]) => values(s).some(x => x !== null && x !== undefined)).length;
  svg.style.height = Math.max(120, Math.min(360, 16 + 36 * count)) + "px";  // as tall as its rows
  const w = svg.clientWidth || 600, h = svg.clientHeight || 240;
  const side = Math.min(150, Math.max(80, w * 0.22)), pad = {l: side, r: 150, t: 8, b: 8};
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  const rows = entries.map(([name, s]) => [name, values(s)]).filter(([, v]) => v.some(x => x !== null && x !== undefined));
  if (!rows.length) return empty(svg, message);
  clear(svg);
  const vmax = Math.max(1e-9, ...rows.flatMap(([, v]) => v));
  const band = Math.min(36, (h - pad.t - pad.b) / rows.length);
  rows.forEach(([name, v], i) => {
    const y0 = pad.t + i * band;
    const chars = Math.max(6, Math.floor(side / 7));
    const label = el("text", {x: pad.l - 8, y: y0 + band / 2 + 4, "text-anchor": "end"}, name.length > chars ? name.slice(0, chars - 1) + "\u2026" : name);
    label.appendChild(el("title", {}, name));
    svg.appendChild(label);
    v.forEach((val, j) => {
      const bw = (w - pad.l - pad.r) * val / vmax;
      const bh = (band - 6) / v.length;
      const rect = el("rect", {x: pad.l, y: y0 + 3 + j * bh, width: Math.max(1, bw), height: Math.max(1, bh - 1), rx: 2, fill: color(name), "fill-opacity": j ? 0.45 : 0.95});
      rect.appendChild(el("title", {}, name + ": " + fmt(val)));
      svg.appendChild(rect);
    });
    svg.appendChild(el("text", {x: pad.l + (w - pad.l - pad.r) * Math.max(...v) / vmax + 6, y: y0 + band / 2 + 4}, v.map(fmt).join(" / ")));
  });
}
function render() {
  const logScale = document.getElementById("log").checked;
  const visible = stats.filter(([name]) => !hidden.has(name));
  const names = Object.keys(H.names).filter(n => !hidden.has(n)).sort();
  renderTable();
  renderHost();
  timeChart(document.getElementById("latency"), names.map(n => ({label: n, color: color(n), values: H.names[n].mean_ms})),
    ms, H.t.length ? "no calls in this time span" : "waiting for the history\u2026", logScale);
  timeChart(document.getElementById("rate"), names.map(n => ({label: n, color: color(n), values: H.names[n].calls_per_s})),
    rate, H.t.length ? "no calls in this time span" : "waiting for the history\u2026", logScale);
  renderBars("quantiles", visible, s => [s.p50_ms, s.p95_ms], ms, "waiting for timed calls\u2026");
  renderBars("memory", visible, s => [s.peak_memory_bytes], bytes, "no device memory recorded (CPU timings have no peak-memory counter)");
}
async function fetchJSON(url) {
  const response = await fetch(url, {cache: "no-store"});
  if (!response.ok) throw new Error("HTTP " + response.status);
  return response.json();
}
async function refresh() {
  const status = document.getElementById("status");
  try {
    const since = H.t.length ? "?since=" + H.t[H.t.length - 1] : "";
    const [current, chunk] = await Promise.all([fetchJSON("api/stats"), fetchJSON("api/history" + since)]);
    merge(chunk);
    stats = Object.entries(current).sort((a, b) => b[1].total_ms - a[1].total_ms);
    render();
    const minutes = H.t.length > 1 ? " over " + ((H.t[H.t.length - 1] - H.t[0]) / 60).toFixed(1) + " min" : "";
    status.textContent = stats.length + " names \u00b7 " + H.t.length + " samples" + minutes + " \u00b7 updated " + clock(Date.now() / 1000);
    status.className = "";
  } catch (e) {
    status.textContent = "cannot reach the server (" + e.message + ") \u2013 retrying";
    status.className = "stale";
  }
}
const logBox = document.getElementById("log"), spanBox = document.getElementById("span");
logBox.checked = view.has("log") ? view.get("log") !== "0" : load("log", false);
spanBox.value = String(view.has("span") ? view.get("span") : load("span", "0"));
if (!spanBox.value) spanBox.value = "0";
function saveView() {
  const v = new URLSearchParams();
  if (logBox.checked) v.set("log", "1");
  if (spanBox.value !== "0") v.set("span", spanBox.value);
  for (const name of hidden) v.append("hide", name);
  const hash = v.toString();
  window.history.replaceState(null, "", hash ? "#" + hash : window.location.pathname);
}
logBox.addEventListener("change", () => { save("log", logBox.checked); saveView(); render(); });
spanBox.addEventListener("change", () => { save("span", spanBox.value); saveView(); render(); });
refresh();
setInterval(refresh, REFRESH_MS);
</script>
</body>
</html>
"""  # noqa: B950
)
