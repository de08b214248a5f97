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
:root { --bg:#0f1419; --panel:#171d24; --line:#263040; --text:#d8dee9; --dim:#8391a5; --accent:#ee4c2c; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text); font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
header { display:flex; align-items:baseline; gap:16px; padding:16px 24px; border-bottom:1px solid var(--line); }
header h1 { margin:0; font-size:18px; font-weight:600; }
header h1 span { color:var(--accent); }
#status { color:var(--dim); font-size:12px; }
#status.stale { color:#f0a020; }
main { padding:16px 24px; display:grid; grid-template-columns: 1fr 1fr; gap:16px; }
section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 16px; min-width:0; }
section.wide { grid-column: 1 / -1; }
h2 { margin:0 0 8px; font-size:13px; font-weight:600; color:var(--dim); text-transform:uppercase; letter-spacing:.06em; }
table { width:100%; border-collapse:collapse; font-variant-numeric: tabular-nums; }
th, td { padding:6px 10px; text-align:right; border-bottom:1px solid var(--line); white-space:nowrap; }
th { color:var(--dim); font-weight:500; font-size:12px; }
th:first-child, td:first-child { text-align:left; }
td.name { font-family: ui-monospace, Menlo, Consolas, monospace; max-width:380px; overflow:hidden; text-overflow:ellipsis; }
td.err { color:#ff6b6b; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:8px; vertical-align:middle; }
svg { width:100%; height:240px; display:block; }
svg#memory { height:160px; }
svg text { fill:var(--dim); font-size:11px; }
.empty { color:var(--dim); padding:24px 0; text-align:center; }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header><h1><span>torch</span>.utils.telemetry</h1><div id="status">refreshing every ${refresh} s</div></header>
<main>
<section class="wide"><h2>Timed calls</h2>
<table id="stats"><thead><tr><th>name</th><th>device</th><th>calls</th><th>errors</th><th>mean</th><th>p50</th><th>p95</th><th>min</th><th>max</th><th>total</th><th>peak memory</th></tr></thead>
<tbody>${rows}</tbody></table>
</section>
<section><h2>Latency over time (mean per refresh, ms)</h2><svg id="latency" role="img" aria-label="latency chart"></svg></section>
<section><h2>p50 (solid) / p95 (faded) by name</h2><svg id="quantiles" role="img" aria-label="quantile chart"></svg></section>
<section class="wide"><h2>Peak device memory</h2><svg id="memory" role="img" aria-label="memory chart"></svg></section>
</main>
<script>
"use strict";
const REFRESH_MS = ${refresh_ms};
const HISTORY = 120;
const COLORS = ["#ee4c2c","#4c9aff","#36c28b","#f5b942","#b07cff","#ff7ab8","#3fd0d4","#c0ca33","#ff8a3d","#8d9bff"];
const SVGNS = "http://www.w3.org/2000/svg";
const history = new Map();  // name -> [{t, mean}]
const colorOf = new Map();
let previous = new Map();   // name -> {count, total_ms}

function color(name) {
  if (!colorOf.has(name)) colorOf.set(name, COLORS[colorOf.size % COLORS.length]);
  return colorOf.get(name);
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
function el(tag, attrs, text) {
  const e = tag === "td" || tag === "tr" || tag === "span" ? document.createElement(tag) : document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function empty(svg, message) {
  clear(svg);
  svg.appendChild(el("text", {x: "50%", y: "50%", "text-anchor": "middle"}, message));
}
function renderTable(entries) {
  const body = document.querySelector("#stats tbody");
  clear(body);
  for (const [name, s] of entries) {
    const tr = el("tr");
    const first = el("td", {class: "name", title: name});
    const sw = el("span", {class: "swatch"}); sw.style.background = color(name);
    first.appendChild(sw); first.appendChild(document.createTextNode(name));
    tr.appendChild(first);
    const cells = [s.device, String(s.count), String(s.errors), ms(s.mean_ms), ms(s.p50_ms), ms(s.p95_ms), ms(s.min_ms), ms(s.max_ms), ms(s.total_ms), bytes(s.peak_memory_bytes)];
    cells.forEach((c, i) => tr.appendChild(el("td", i === 2 && s.errors > 0 ? {class: "err"} : {}, c)));
    body.appendChild(tr);
  }
}
function axes(svg, w, h, pad, ymax, fmt) {
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + (h - pad.t - pad.b) * (1 - i / 4);
    svg.appendChild(el("line", {x1: pad.l, x2: w - pad.r, y1: y, y2: y, stroke: "#263040"}));
    svg.appendChild(el("text", {x: pad.l - 6, y: y + 4, "text-anchor": "end"}, fmt(ymax * i / 4)));
  }
}
function renderLatency(names) {
  const svg = document.getElementById("latency");
  const w = svg.clientWidth || 600, h = svg.clientHeight || 240, pad = {l: 64, r: 12, t: 10, b: 20};
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  const series = names.map(n => [n, history.get(n) || []]).filter(([, pts]) => pts.length);
  if (!series.length) return empty(svg, "waiting for timed calls\u2026");
  clear(svg);
  const ymax = Math.max(1e-6, ...series.flatMap(([, pts]) => pts.map(p => p.mean))) * 1.1;
  axes(svg, w, h, pad, ymax, ms);
  const x = i => pad.l + (w - pad.l - pad.r) * i / (HISTORY - 1);
  const y = v => pad.t + (h - pad.t - pad.b) * (1 - v / ymax);
  for (const [name, pts] of series) {
    const off = HISTORY - pts.length;
    const d = pts.map((p, i) => (i ? "L" : "M") + x(off + i).toFixed(1) + " " + y(p.mean).toFixed(1)).join(" ");
    const path = el("path", {d: d, fill: "none", stroke: color(name), "stroke-width": 2});
    path.appendChild(el("title", {}, name));
    svg.appendChild(path);
  }
}
function renderBars(svgId, entries, values, fmt, message) {
  const svg = document.getElementById(svgId);
  const w = svg.clientWidth || 600, h = svg.clientHeight || 240, pad = {l: 150, r: 150, t: 8, b: 8};
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  const rows = entries.map(([name, s]) => [name, values(s)]).filter(([, v]) => v.some(x => x !== null && x !== undefined));
  if (!rows.length) return empty(svg, message);
  clear(svg);
  const vmax = Math.max(1e-9, ...rows.flatMap(([, v]) => v));
  const band = Math.min(36, (h - pad.t - pad.b) / rows.length);
  rows.forEach(([name, v], i) => {
    const y0 = pad.t + i * band;
    const label = el("text", {x: pad.l - 8, y: y0 + band / 2 + 4, "text-anchor": "end"}, name.length > 22 ? name.slice(0, 21) + "\u2026" : name);
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
async function refresh() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("api/stats", {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    const stats = await response.json();
    const entries = Object.entries(stats).sort((a, b) => b[1].total_ms - a[1].total_ms);
    const now = Date.now();
    for (const [name, s] of entries) {
      const prev = previous.get(name);
      const calls = prev ? s.count - prev.count : s.count;
      const mean = calls > 0 ? (s.total_ms - (prev ? prev.total_ms : 0)) / calls : (prev ? prev.mean : s.mean_ms);
      const pts = history.get(name) || [];
      pts.push({t: now, mean: Math.max(0, mean)});
      if (pts.length > HISTORY) pts.shift();
      history.set(name, pts);
      previous.set(name, {count: s.count, total_ms: s.total_ms, mean: mean});
    }
    renderTable(entries);
    renderLatency(entries.map(([n]) => n));
    renderBars("quantiles", entries, s => [s.p50_ms, s.p95_ms], ms, "waiting for timed calls\u2026");
    renderBars("memory", entries, s => [s.peak_memory_bytes], bytes, "no device memory recorded (CPU timings have no peak-memory counter)");
    status.textContent = entries.length + " names \u00b7 updated " + new Date(now).toLocaleTimeString();
    status.className = "";
  } catch (e) {
    status.textContent = "cannot reach the server (" + e.message + ") \u2013 retrying";
    status.className = "stale";
  }
}
refresh();
setInterval(refresh, REFRESH_MS);
</script>
</body>
</html>
"""  # noqa: B950
)
