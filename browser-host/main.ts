/**
 * Entry point of the host page (`/host` on the signaling server). Query parameters:
 * `token` (a host token, required), `name` (shown to operators), `signal` (signaling
 * WebSocket URL, default this origin's `/v1/signal`), `wallMs` / `cpuMs` (per-request limits,
 * default 30000 / 5000), `sandbox=0` (run apps in the page itself: no isolation, for
 * measurements only), `pcBudget` / `pcReload` (peer connections after which offers are refused /
 * the idle tab reloads, default 400 / 450; small values are for tests). The apps come from the control plane on the same origin, as signaling
 * announces them, each in its own sandbox (docs/sandbox.md).
 */
import type { AppRegistry } from './app-registry.ts';
import type { AppRunner } from './app-runner.ts';
import { PC_BUDGET, type HostAgent } from './host-agent.ts';
import { bootHost, DEFAULT_LIMITS } from './host-boot.ts';

declare global {
  interface Window {
    __dcdnReady?: boolean;
    __dcdnHost?: { agent: HostAgent; runner: AppRunner; registry: AppRegistry };
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
let registry: AppRegistry | null = null;
let failure = '';

async function boot(): Promise<void> {
  const token = params.get('token');
  if (!token) throw new Error('this page needs a ?token= (ask the operator for a host link)');
  const limits = { wallMs: numberParam('wallMs', DEFAULT_LIMITS.wallMs), cpuMs: numberParam('cpuMs', DEFAULT_LIMITS.cpuMs) };
  const signalUrl = params.get('signal');
  ({ agent, runner, registry } = bootHost({
    token,
    name: params.get('name') ?? `tab-${Math.random().toString(36).slice(2, 8)}`,
    ...(signalUrl ? { signalUrl } : {}),
    limits,
    sandbox: params.get('sandbox') !== '0',
    log,
    onchange: render,
    pcBudget: { refuseAt: numberParam('pcBudget', PC_BUDGET.refuseAt), reloadAt: numberParam('pcReload', PC_BUDGET.reloadAt) },
  }));
  // A /host tab's id is random per load, so a reload costs nothing but the reconnects, and gives
  // the tab a fresh budget of Chrome peer connections.
  agent.onpcexhausted = () => location.reload();
  agent.start();
  window.__dcdnHost = { agent, runner, registry };
  window.__dcdnReady = true;
}

function numberParam(name: string, fallback: number): number {
  const n = Number(params.get(name));
  return params.has(name) && Number.isFinite(n) && n > 0 ? n : fallback;
}

function render(): void {
  const el = document.getElementById('status');
  if (!el) return;
  const s = runner?.stats;
  const rows: Array<[string, string]> = [
    ['host', agent ? `${params.get('name') ?? ''} (${agent.hostId.slice(0, 8)})` : '-'],
    ['signaling', agent?.signalingConnected ? 'connected' : 'connecting'],
    ['apps', registry?.status().map((a) => `${a.app}@${a.version ?? '…'}${a.loading ? ' (loading)' : ''}${a.error ? ` (error: ${a.error})` : ''}`).join(', ') || 'none yet'],
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
