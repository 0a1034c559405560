/**
 * Entry point of the host page (`/host` on the signaling server). Query parameters:
 * `token` (a host token, required), `name` (shown to operators), `app` (module URL of the app,
 * default `/v1/app.js`), `signal` (signaling WebSocket URL, default this origin's `/v1/signal`).
 */
import { AppRunner, type AppModule } from './app-runner.ts';
import { HostAgent } from './host-agent.ts';
import { installResponseShim } from './web-compat.ts';

declare global {
  interface Window {
    __dcdnReady?: boolean;
    __dcdnHost?: { agent: HostAgent; runner: AppRunner };
  }
}

const params = new URLSearchParams(location.search);
const logLines: string[] = [];

function log(line: string): void {
  const stamped = `${new Date().toISOString().slice(11, 23)} ${line}`;
  console.log(`[dcdn] ${line}`);
  logLines.push(stamped);
  if (logLines.length > 50) logLines.shift();
  render();
}

let agent: HostAgent | null = null;
let runner: AppRunner | null = null;
let failure = '';

async function boot(): Promise<void> {
  const token = params.get('token');
  if (!token) throw new Error('this page needs a ?token= (ask the operator for a host link)');
  installResponseShim();
  const appUrl = new URL(params.get('app') ?? '/v1/app.js', location.href).href;
  const mod = (await import(/* @vite-ignore */ appUrl)) as { default?: AppModule };
  if (!mod.default || typeof mod.default.fetch !== 'function') throw new Error(`${appUrl} has no default export with a fetch() method`);
  runner = new AppRunner(mod.default, {}, log);
  const signalUrl = params.get('signal') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/signal`;
  agent = new HostAgent({ signalUrl, token, name: params.get('name') ?? `tab-${Math.random().toString(36).slice(2, 8)}`, runner, log });
  agent.onchange = render;
  agent.start();
  window.__dcdnHost = { agent, runner };
  window.__dcdnReady = true;
  log(`app loaded from ${appUrl}`);
}

function render(): void {
  const el = document.getElementById('status');
  if (!el) return;
  const s = runner?.stats;
  const rows: Array<[string, string]> = [
    ['host', agent ? `${params.get('name') ?? ''} (${agent.hostId.slice(0, 8)})` : '-'],
    ['signaling', agent?.signalingConnected ? 'connected' : 'connecting'],
    ['serving', agent?.connections.map((c) => `${c.transport}${c.rttMs !== undefined ? ` (rtt ${c.rttMs} ms)` : ''}`).join(', ') || 'no ingress yet'],
    ['requests', s ? `${s.requests} served, ${s.inFlight} in flight, ${s.errors} errors` : '-'],
    ['bytes', s ? `${fmt(s.bytesIn)} in, ${fmt(s.bytesOut)} out` : '-'],
  ];
  el.innerHTML = failure
    ? `<p class="error">${escape(failure)}</p>`
    : `<table>${rows.map(([k, v]) => `<tr><th>${k}</th><td>${escape(v)}</td></tr>`).join('')}</table>`;
  const logEl = document.getElementById('log');
  if (logEl) logEl.textContent = logLines.slice(-15).join('\n');
}

function fmt(n: number): string {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function escape(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

setInterval(render, 1000);
boot().catch((err: Error) => {
  failure = err.message;
  log(`failed to start: ${err.message}`);
  window.__dcdnReady = false;
});
