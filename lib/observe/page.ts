/**
 * The live page served at `/`: per-queue rates, drops and notifications of every socket, updated every
 * second from /stats.json, with a small chart per queue. Plain HTML, CSS and inline JavaScript in one
 * string, so the package needs no build step for it and the browser no CDN. The script runs in the
 * browser, not in Node: it is kept to plain ES2020 and builds every element with textContent, never
 * innerHTML, since socket paths are text from the command line.
 */

/** The script of the page (browser JavaScript, as a string). */
const SCRIPT = String.raw`
'use strict';
const HISTORY = 60; // seconds of chart
// Which counter plays which role: today's names first, DPDK's names where the record uses them.
const ROLES = {
  packets: ['packets', 'good_packets'],
  bytes: ['bytes', 'good_bytes'],
  drops: ['drops', 'missed_pkts'],
  notifications: ['calls', 'guest_notifications'],
  kicks: ['kicks'],
};
const SIDE = { rx: 'from the guest', tx: 'to the guest' };
const devices = new Map(); // socket -> { section, signature, queues: Map(name -> card state) }
let previousTime = 0;

function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children || []) e.append(c);
  return e;
}

function pick(counters, role) {
  for (const name of ROLES[role]) if (name in counters) return name;
  return null;
}

/** 1234567 -> "1.23 M"; a slow rate keeps its decimals so that it does not read as 0. */
function si(v) {
  if (!Number.isFinite(v)) return '–';
  const units = ['', ' k', ' M', ' G', ' T'];
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return (i === 0 && Number.isInteger(v) ? String(v) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)) + units[i];
}

function figure(role, unit) {
  const value = el('b', { 'data-field': role + '_rate', 'data-value': '' }, ['–']);
  return { box: el('span', { class: 'fig ' + role }, [value, ' ' + unit]), value };
}

function makeCard(device, q) {
  const figs = {
    packets: figure('packets', 'pkt/s'),
    bytes: figure('bytes', 'B/s'),
    drops: figure('drops', 'drops/s'),
    notifications: figure('notifications', 'notifications/s'),
    kicks: figure('kicks', 'kicks/s'),
  };
  const dropsTotal = el('span', { 'data-field': 'drops_total' }, ['0']);
  const canvas = el('canvas', { height: 70 });
  const table = el('tbody');
  const title = el('h3', {}, [q.name + ' ', el('small', {}, [SIDE[q.direction] + ' · virtqueue ' + q.virtqueue])]);
  const card = el('div', { class: 'card', 'data-socket': device.socket, 'data-queue': q.name }, [
    title,
    el('div', { class: 'figs' }, Object.values(figs).map((f) => f.box)),
    el('div', { class: 'total' }, ['drops in all: ', dropsTotal]),
    canvas,
    el('details', {}, [el('summary', {}, ['every counter']), el('table', {}, [el('thead', {}, [el('tr', {}, [el('th', {}, ['counter']), el('th', {}, ['total']), el('th', {}, ['per second'])])]), table])]),
  ]);
  return { card, figs, dropsTotal, canvas, table, rows: new Map(), previous: null, history: [] };
}

function makeDevice(d) {
  const state = el('span', { class: 'state' });
  const summary = el('span', { class: 'summary' });
  const grid = el('div', { class: 'grid' });
  const section = el('section', { 'data-socket': d.socket }, [el('h2', {}, [d.socket]), el('p', {}, [state, summary]), grid]);
  const queues = new Map();
  // One row per pair: what the guest sends (rx_qP), then what it is given (tx_qP).
  const ordered = d.queues.slice().sort((a, b) => a.pair - b.pair || (a.direction === 'rx' ? -1 : 1));
  for (const q of ordered) {
    const c = makeCard(d, q);
    queues.set(q.name, c);
    grid.append(c.card);
  }
  return { section, state, summary, queues, signature: d.queues.map((q) => q.name).join(',') };
}

function updateTable(c, counters, rates) {
  for (const [name, total] of Object.entries(counters)) {
    let row = c.rows.get(name);
    if (!row) {
      row = { total: el('td'), rate: el('td') };
      c.rows.set(name, row);
      c.table.append(el('tr', {}, [el('th', {}, [name]), row.total, row.rate]));
    }
    row.total.textContent = String(total);
    row.rate.textContent = rates ? si(rates[name]) : '–';
  }
}

function updateCard(c, q, seconds) {
  const counters = q.counters;
  let rates = null;
  if (c.previous && seconds > 0) {
    rates = {};
    // A counter that went down was reset (the front-end reconnected): no rate for this second.
    for (const name of Object.keys(counters)) rates[name] = Math.max(0, (counters[name] - (c.previous[name] || 0)) / seconds);
  }
  c.previous = counters;
  for (const role of Object.keys(c.figs)) {
    const name = pick(counters, role);
    const f = c.figs[role];
    f.box.hidden = name === null;
    if (name === null || !rates) continue;
    f.value.textContent = si(rates[name]);
    f.value.dataset.value = String(rates[name]);
  }
  const dropsName = pick(counters, 'drops');
  c.dropsTotal.textContent = dropsName ? String(counters[dropsName]) : '–';
  c.dropsTotal.parentElement.classList.toggle('some', !!dropsName && counters[dropsName] > 0);
  c.card.classList.toggle('dropping', !!(rates && dropsName && rates[dropsName] > 0));
  updateTable(c, counters, rates);
  if (rates) {
    const p = pick(counters, 'packets');
    const d = pick(counters, 'drops');
    c.history.push({ packets: p ? rates[p] : 0, drops: d ? rates[d] : 0 });
    if (c.history.length > HISTORY) c.history.shift();
  }
  drawChart(c.canvas, c.history);
}

/** packets/s as a filled area, drops/s as a red line on the same scale; newest at the right. */
function drawChart(canvas, history) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300;
  const h = canvas.clientHeight || 70;
  if (canvas.width !== Math.round(w * ratio)) canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const max = Math.max(1, ...history.map((s) => Math.max(s.packets, s.drops)));
  const x = (i) => w - (history.length - 1 - i) * (w / (HISTORY - 1));
  const y = (v) => h - 2 - (v / max) * (h - 16);
  const line = (key) => {
    g.beginPath();
    history.forEach((s, i) => (i ? g.lineTo(x(i), y(s[key])) : g.moveTo(x(i), y(s[key]))));
  };
  if (history.length > 1) {
    line('packets');
    g.lineTo(x(history.length - 1), h);
    g.lineTo(x(0), h);
    g.closePath();
    g.fillStyle = 'rgba(47, 111, 235, 0.25)';
    g.fill();
    line('packets');
    g.strokeStyle = '#2f6feb';
    g.lineWidth = 1.5;
    g.stroke();
    if (history.some((s) => s.drops > 0)) {
      line('drops');
      g.strokeStyle = '#d1242f';
      g.stroke();
    }
  }
  g.fillStyle = '#57606a';
  g.font = '11px sans-serif';
  g.fillText('max ' + si(max) + ' pkt/s, last ' + HISTORY + ' s', 4, 11);
}

function render(data) {
  const root = document.getElementById('devices');
  const seconds = previousTime ? (data.time - previousTime) / 1000 : 0;
  previousTime = data.time;
  const seen = new Set();
  for (const d of data.devices) {
    seen.add(d.socket);
    let dev = devices.get(d.socket);
    if (!dev || dev.signature !== d.queues.map((q) => q.name).join(',')) {
      const fresh = makeDevice(d);
      if (dev) dev.section.replaceWith(fresh.section);
      else root.append(fresh.section);
      devices.set(d.socket, (dev = fresh));
    }
    dev.state.textContent = d.connected ? 'connected' : 'waiting for a front-end';
    dev.state.className = 'state ' + (d.connected ? 'up' : 'down');
    dev.summary.textContent = ' · ' + d.port + ' port · ' + d.queuePairs + ' queue pair' + (d.queuePairs > 1 ? 's' : '');
    for (const q of d.queues) updateCard(dev.queues.get(q.name), q, seconds);
  }
  for (const [socket, dev] of devices) {
    if (seen.has(socket)) continue;
    dev.section.remove();
    devices.delete(socket);
  }
  document.getElementById('empty').hidden = data.devices.length > 0;
}

async function tick() {
  const started = Date.now();
  const status = document.getElementById('status');
  try {
    const response = await fetch('stats.json', { cache: 'no-store' });
    if (!response.ok) throw new Error('HTTP ' + response.status);
    render(await response.json());
    status.textContent = 'updated ' + new Date().toLocaleTimeString();
    status.className = '';
  } catch (err) {
    status.textContent = 'statistics unavailable (' + err.message + '); retrying';
    status.className = 'error';
  }
  setTimeout(tick, Math.max(0, 1000 - (Date.now() - started)));
}
tick();
`;

const STYLE = `
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #1f2328; background: #f6f8fa; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
h2 { font-size: 1.05em; margin: 1.2em 0 .2em; font-family: ui-monospace, monospace; }
h3 { font-size: 1em; margin: 0 0 .4em; } h3 small { color: #57606a; font-weight: normal; }
#status { color: #57606a; } #status.error { color: #d1242f; }
.state.up { color: #1a7f37; } .state.down { color: #9a6700; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(280px, 1fr)); gap: .8em; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: .7em .9em; }
.card.dropping { border-color: #d1242f; }
.figs { display: flex; flex-wrap: wrap; gap: .2em 1em; }
.fig b { font-variant-numeric: tabular-nums; font-size: 1.15em; }
.total { font-size: .85em; margin: .2em 0; color: #57606a; }
.dropping .fig.drops b, .total.some { color: #d1242f; }
canvas { width: 100%; height: 70px; display: block; margin-top: .3em; }
details { font-size: .85em; margin-top: .3em; } table { border-collapse: collapse; }
th, td { text-align: right; padding: 0 .6em; font-variant-numeric: tabular-nums; } th:first-child { text-align: left; font-weight: normal; }
`;

export const LIVE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vhost-user: live statistics</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<h1>vhost-user: live statistics</h1>
<p>Per queue, every second. <b>rx_q<i>P</i></b>: frames the guest sent on pair <i>P</i>; <b>tx_q<i>P</i></b>: frames it was given.
Prometheus: <a href="metrics">/metrics</a>. <span id="status">loading…</span></p>
<p id="empty" hidden>No device is served.</p>
<div id="devices"></div>
<script>${SCRIPT}</script>
</body>
</html>
`;

/** Only this page's own inline script and style, and requests back to this server. */
export const LIVE_PAGE_POLICY =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'";
