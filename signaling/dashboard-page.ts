/**
 * The dashboard's page: one HTML document with its script inline (no build step), charts drawn
 * by uPlot from `/dashboard/uplot.js`. Everything it shows comes from `/v1/dashboard`, polled
 * every 2 s, and from each ingress's `/_dcdn/tail` for the log pane. Names coming from hosts are
 * set as text, never as HTML.
 */

/** How often the page polls, and how many points its charts keep (5 minutes). */
const POLL_MS = 2000;
const POINTS = 150;

export function dashboardHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dcdn dashboard</title>
<link rel="stylesheet" href="/dashboard/uplot.css">
<style>
  :root { --bg:#0f1419; --panel:#171d24; --line:#26303b; --text:#d8dee6; --dim:#8b97a5; --accent:#4fb3ff; --bad:#ff6b6b; --ok:#5ad18b; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; flex-wrap:wrap; align-items:baseline; gap:.5rem 1.5rem; padding:12px 16px; border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; }
  header .status { color:var(--dim); font-size:12px; }
  main { padding:12px 16px; display:grid; gap:12px; grid-template-columns:repeat(auto-fit, minmax(min(100%, 460px), 1fr)); }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:10px 12px; min-width:0; }
  section h2 { font-size:13px; font-weight:600; margin:0 0 8px; color:var(--dim); text-transform:uppercase; letter-spacing:.04em; }
  .tiles { grid-column:1/-1; display:grid; grid-template-columns:repeat(auto-fit, minmax(120px, 1fr)); gap:12px; background:none; border:none; padding:0; }
  .tile { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
  .tile b { display:block; font-size:22px; font-variant-numeric:tabular-nums; }
  .tile span { color:var(--dim); font-size:12px; }
  .chart { width:100%; min-height:180px; }
  .wide { grid-column:1/-1; }
  table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
  th, td { text-align:left; padding:4px 6px; border-bottom:1px solid var(--line); white-space:nowrap; overflow:hidden; text-overflow:ellipsis; max-width:16em; }
  th { color:var(--dim); font-weight:500; font-size:12px; }
  td.n, th.n { text-align:right; }
  .scroll { overflow-x:auto; }
  .tag { font-size:11px; padding:1px 6px; border-radius:9px; background:#233040; color:var(--dim); }
  .tag.vol { background:#3b2f12; color:#f3c969; }
  .bad { color:var(--bad); }
  #log { height:260px; overflow-y:auto; font:12px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; background:#0b0f13; border-radius:6px; padding:6px 8px; }
  #log div { white-space:pre; overflow:hidden; text-overflow:ellipsis; }
  #log div.c { color:var(--dim); padding-left:2ch; }
  #log div.c.warn { color:#f3c969; }
  #log div.c.error, #log div.c.exception { color:var(--bad); }
  #log .lv { display:inline-block; width:10ch; }
  .empty { color:var(--dim); font-style:italic; }
  .u-legend { font-size:12px; color:var(--text); }
  .u-legend .u-marker { width:10px; height:10px; }
</style>
</head>
<body>
<header><h1>dcdn</h1><span class="status" id="status">connecting…</span></header>
<main>
  <div class="tiles">
    <div class="tile"><b id="t-rps">–</b><span>requests/s</span></div>
    <div class="tile"><b id="t-p99">–</b><span>p99 latency</span></div>
    <div class="tile"><b id="t-err">–</b><span>5xx/s</span></div>
    <div class="tile"><b id="t-hosts">–</b><span>hosts</span></div>
    <div class="tile"><b id="t-ingresses">–</b><span>ingresses</span></div>
    <div class="tile"><b id="t-inflight">–</b><span>in flight</span></div>
  </div>
  <section><h2>Requests/s per app</h2><div class="chart" id="c-rps"></div></section>
  <section><h2>Latency p50 / p99 (ms)</h2><div class="chart" id="c-lat"></div></section>
  <section><h2>5xx errors/s per app</h2><div class="chart" id="c-err"></div></section>
  <section><h2>Apps</h2><div class="scroll"><table id="apps"><thead><tr><th>app</th><th class="n">version</th><th class="n">hosts</th><th class="n">req/s</th><th class="n">requests</th><th class="n">5xx</th></tr></thead><tbody></tbody></table></div></section>
  <section class="wide"><h2>Hosts</h2><div class="scroll"><table id="hosts"><thead><tr><th>host</th><th>kind</th><th>transport</th><th class="n">RTT ms</th><th class="n">in flight</th><th class="n">served</th><th>ingress</th><th>browser</th></tr></thead><tbody></tbody></table></div></section>
  <section class="wide"><h2>Live requests and console output</h2><div id="log"><div class="empty">waiting for requests…</div></div></section>
</main>
<script src="/dashboard/uplot.js"></script>
<script>
${pageScript()}
</script>
</body>
</html>`;
}

function pageScript(): string {
  return `'use strict';
const token = new URLSearchParams(location.search).get('token') || '';
const POLL_MS = ${POLL_MS}, POINTS = ${POINTS};
const COLORS = ['#4fb3ff', '#5ad18b', '#f3c969', '#c792ea', '#ff8a65', '#4dd0e1', '#f06292', '#aed581'];
const $ = (id) => document.getElementById(id);
const history = { t: [], apps: {} };
let previous = null;
let charts = {};
let chartApps = '';

function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0, lowerCount = 0;
  for (const [le, n] of buckets) {
    if (n >= rank) {
      if (le === Infinity) return lowerBound * 1000;
      return (lowerBound + (le - lowerBound) * ((rank - lowerCount) / Math.max(1e-9, n - lowerCount))) * 1000;
    }
    lowerBound = le; lowerCount = n;
  }
  return lowerBound * 1000;
}
const bucketsOf = (f) => (f ? f.buckets.map(([le, n]) => [le === null ? Infinity : le, n]) : []);
function delta(now, before) {
  const b = new Map(bucketsOf(before).map(([le, n]) => [le, n]));
  return bucketsOf(now).map(([le, n]) => [le, n - (b.get(le) || 0)]);
}
const fmt = (v, d = 0) => (v == null || !isFinite(v) ? '–' : v.toFixed(d));
function text(el, value) { el.textContent = value; return el; }
function cell(row, value, cls) { const td = document.createElement('td'); if (cls) td.className = cls; text(td, value); row.appendChild(td); return td; }

function makeChart(el, title, series) {
  const width = Math.max(240, el.clientWidth);
  return new uPlot({ width, height: 180, legend: { show: true }, cursor: { drag: { x: false, y: false } },
    // From the first point (at least the last minute, at most 5): one point must not stretch
    // the axis over years, and a fresh page should not squeeze its data into a corner.
    scales: { x: { time: true, range: (u, min, max) => { const end = max == null ? Date.now() / 1000 : max; const start = Math.max(end - (POINTS * POLL_MS) / 1000, Math.min(min == null ? end : min, end - 60)); return [start, end]; } }, y: { range: (u, min, max) => [0, Math.max(1, max == null ? 1 : max * 1.1)] } },
    axes: [{ space: 80, stroke: '#8b97a5', grid: { stroke: '#26303b' }, ticks: { stroke: '#26303b' } }, { stroke: '#8b97a5', grid: { stroke: '#26303b' }, ticks: { stroke: '#26303b' }, size: 50 }],
    series: [{}, ...series] }, [[], ...series.map(() => [])], el);
}
function rebuildCharts(apps) {
  for (const c of Object.values(charts)) c.destroy();
  for (const id of ['c-rps', 'c-lat', 'c-err']) $(id).textContent = '';
  const per = (suffix, dash) => apps.map((a, i) => ({ label: a + suffix, stroke: COLORS[i % COLORS.length], width: 2, dash, spanGaps: true }));
  charts = {
    rps: makeChart($('c-rps'), 'req/s', per('')),
    lat: makeChart($('c-lat'), 'ms', [...per(' p50', [4, 4]), ...per(' p99').map((s) => ({ ...s, width: 2.5 }))]),
    err: makeChart($('c-err'), '5xx/s', per('')),
  };
  chartApps = apps.join(',');
}
function resize() {
  for (const [id, c] of [['c-rps', charts.rps], ['c-lat', charts.lat], ['c-err', charts.err]]) if (c) c.setSize({ width: Math.max(240, $(id).clientWidth), height: 180 });
}
window.addEventListener('resize', resize);

async function poll() {
  let data;
  try {
    const res = await fetch('/v1/dashboard?token=' + encodeURIComponent(token), { cache: 'no-store' });
    if (!res.ok) throw new Error(res.status + ' ' + (res.headers.get('dcdn-error') || ''));
    data = await res.json();
  } catch (err) {
    text($('status'), 'cannot read /v1/dashboard: ' + err.message);
    return;
  }
  const down = data.ingresses.filter((i) => !i.ok);
  text($('status'), 'updated ' + new Date(data.time).toLocaleTimeString() + (down.length ? ' · ' + down.length + ' ingress(es) not answering: ' + down.map((i) => i.name + ' (' + i.error + ')').join(', ') : ''));
  const names = [...new Set([...data.deployed.map((a) => a.name), ...Object.keys(data.apps)])].sort();
  const dt = previous ? (data.time - previous.time) / 1000 : 0;
  const now = {};
  let totalRps = 0, totalErr = 0;
  const all = [];
  for (const name of names) {
    const f = data.apps[name], p = previous && previous.apps[name];
    const rps = previous && f && dt > 0 ? Math.max(0, (f.requests - (p ? p.requests : 0)) / dt) : null;
    const err = previous && f && dt > 0 ? Math.max(0, (f.errors - (p ? p.errors : 0)) / dt) : null;
    const d = previous && f ? delta(f, p) : [];
    now[name] = { rps, err, p50: quantile(d, 0.5), p99: quantile(d, 0.99) };
    totalRps += rps || 0; totalErr += err || 0;
    if (d.length) all.push(d);
  }
  const merged = all.length ? all[0].map(([le], i) => [le, all.reduce((s, d) => s + (d[i] ? d[i][1] : 0), 0)]) : [];
  if (previous) {
    text($('t-rps'), fmt(totalRps, totalRps < 10 ? 1 : 0));
    const p99 = quantile(merged, 0.99);
    text($('t-p99'), p99 == null ? '–' : fmt(p99, p99 < 10 ? 1 : 0) + ' ms');
    text($('t-err'), fmt(totalErr, 1)).classList.toggle('bad', totalErr > 0);
  }
  const hostRows = [];
  for (const ing of data.ingresses) for (const h of ing.hosts) hostRows.push({ ...h, ingress: ing.name });
  const signalingHosts = new Map(data.hosts.map((h) => [h.name, h]));
  text($('t-hosts'), String(data.hosts.length));
  text($('t-ingresses'), String(data.ingresses.length));
  text($('t-inflight'), String(data.ingresses.reduce((s, i) => s + i.inFlight, 0)));

  const apps = names.filter((n) => n !== '-' || (data.apps[n] && data.apps[n].requests > 0));
  if (apps.join(',') !== chartApps) { rebuildCharts(apps); history.t = []; history.apps = {}; }
  if (previous) {
    history.t.push(data.time / 1000);
    for (const a of apps) {
      const h = (history.apps[a] = history.apps[a] || { rps: [], p50: [], p99: [], err: [] });
      while (h.rps.length < history.t.length - 1) { h.rps.push(null); h.p50.push(null); h.p99.push(null); h.err.push(null); }
      h.rps.push(now[a] ? now[a].rps : null); h.p50.push(now[a] ? now[a].p50 : null); h.p99.push(now[a] ? now[a].p99 : null); h.err.push(now[a] ? now[a].err : null);
    }
    if (history.t.length > POINTS) { history.t.shift(); for (const h of Object.values(history.apps)) for (const k of ['rps', 'p50', 'p99', 'err']) h[k].shift(); }
    const col = (k) => apps.map((a) => history.apps[a][k]);
    charts.rps.setData([history.t, ...col('rps')]);
    charts.lat.setData([history.t, ...col('p50'), ...col('p99')]);
    charts.err.setData([history.t, ...col('err')]);
  }

  const appBody = $('apps').tBodies[0];
  appBody.textContent = '';
  for (const name of names) {
    const f = data.apps[name], dep = data.deployed.find((a) => a.name === name);
    const row = appBody.insertRow();
    row.dataset.app = name;
    cell(row, name === '-' ? '(no app)' : name);
    cell(row, dep ? 'v' + dep.version : '–', 'n');
    cell(row, dep ? String(dep.hosts.filter((h) => h.version === dep.version && h.state === 'serving').length) : '–', 'n');
    cell(row, fmt(now[name] && now[name].rps, 1), 'n');
    cell(row, f ? String(f.requests) : '0', 'n requests');
    cell(row, f ? String(f.errors) : '0', 'n' + (f && f.errors ? ' bad' : ''));
  }
  if (!names.length) { const row = appBody.insertRow(); const td = cell(row, 'no apps deployed', 'empty'); td.colSpan = 6; }

  const hostBody = $('hosts').tBodies[0];
  hostBody.textContent = '';
  for (const h of hostRows) {
    const s = signalingHosts.get(h.name);
    const row = hostBody.insertRow();
    cell(row, h.name);
    const kind = cell(row, '');
    const tag = document.createElement('span');
    tag.className = 'tag' + (s && s.volunteer ? ' vol' : '');
    text(tag, s && s.volunteer ? 'volunteer' : 'operator');
    kind.appendChild(tag);
    if (h.penalised) kind.appendChild(text(document.createElement('span'), ' penalised')).className = 'bad';
    cell(row, h.transport);
    cell(row, h.rttMs == null ? '–' : String(h.rttMs), 'n');
    cell(row, String(h.inFlight), 'n');
    cell(row, String(h.served), 'n');
    cell(row, h.ingress);
    cell(row, s && s.userAgent ? browserName(s.userAgent) : '–');
  }
  if (!hostRows.length) { const row = hostBody.insertRow(); const td = cell(row, 'no host connected to an ingress', 'empty'); td.colSpan = 8; }
  connectTails(data.ingresses);
  previous = data;
}
function browserName(ua) {
  const m = /(HeadlessChrome|Chrome|Firefox|Safari)\\/(\\d+)/.exec(ua);
  return m ? m[1] + ' ' + m[2] : ua.slice(0, 30);
}

const tails = new Map();
const logEl = $('log');
function connectTails(ingresses) {
  for (const ing of ingresses) {
    if (tails.has(ing.url)) continue;
    const ws = new WebSocket(ing.url.replace(/^http/, 'ws') + '/_dcdn/tail?token=' + encodeURIComponent(token));
    tails.set(ing.url, ws);
    ws.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (e.type === 'request') logLine(e);
      else if (e.type === 'log') lateLine(e);
      else if (e.type === 'dropped') logText('(' + e.count + ' requests not shown: the page fell behind)');
    };
    ws.onclose = () => setTimeout(() => tails.delete(ing.url), 2000);
  }
}
function logText(t, bad, div) {
  if (logEl.firstChild && logEl.firstChild.className === 'empty') logEl.textContent = '';
  const atBottom = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
  if (!div) {
    div = text(document.createElement('div'), t);
    if (bad) div.className = 'bad';
  }
  logEl.appendChild(div);
  while (logEl.childElementCount > 300) logEl.firstChild.remove();
  if (atBottom) logEl.scrollTop = logEl.scrollHeight;
}
function logLine(e) {
  const app = e.app ? e.app + (e.version != null ? '@' + e.version : '') : '-';
  const host = e.host ? e.host + (e.volunteer ? ' [volunteer]' : '') : 'no host';
  logText([e.time.slice(11, 23), e.method, e.url, e.status || 'client gone', e.ms + 'ms', app, host, e.transport || '-', e.code || '', e.requestId.slice(0, 8)].filter(Boolean).join(' '), e.status >= 500 || e.status === 0);
  for (const l of e.logs || []) consoleLine(l.level, l.text, '');
  if (e.logsCut) consoleLine('cut', '(' + e.logsCut.lines + ' console lines, ' + e.logsCut.bytes + ' bytes, cut: over the per-request limit)', '');
}
/** A console line of the handler's, indented under its request; text only (it is the app's). */
function consoleLine(level, t, suffix) {
  const div = document.createElement('div');
  div.className = 'c ' + level;
  div.appendChild(text(document.createElement('span'), level)).className = 'lv';
  div.appendChild(document.createTextNode(t + suffix));
  div.title = t;
  logText('', false, div);
}
/** A line written after its request's response (ctx.waitUntil work). */
function lateLine(e) {
  const about = '  ← ' + e.requestId.slice(0, 8) + ' ' + (e.host || '') + (e.volunteer ? ' [volunteer]' : '') + ', after the response';
  if (e.line) consoleLine(e.line.level, e.line.text, about);
  else if (e.cut) consoleLine('cut', '(' + e.cut.lines + ' console lines cut)', about);
}

poll();
setInterval(poll, POLL_MS);
`;
}
