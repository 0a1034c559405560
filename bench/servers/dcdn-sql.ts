/**
 * The network of the benchmark's sql section in one process (bench/servers/dcdn-kv.ts's twin):
 * signaling, one ingress (WebRTC over werift) per SQL store, one headless Chromium host tab with
 * a session to every ingress, serving bench/sql-app.ts as the app `sql` with the binding `DB`.
 *
 *   node --import tsx bench/servers/dcdn-sql.ts --store embedded=pglite:/tmp/sql --store postgres=postgres://…
 *
 * Prints one JSON line when the tab has a WebRTC session to every ingress:
 * `{"ingresses": {NAME: url}, "skipped": {NAME: reason}, "pid", "browserPid"}`; a store that
 * cannot be opened is reported under `skipped`, not as a failure. `{"error": …}` when the tab
 * does not connect. Stops on SIGTERM or SIGINT; with `--exit-with-parent` also when stdin closes.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleApp } from '../../browser-host/index.ts';
import { launchHosts, newSecret, signalUrls, startIngress, startSignal } from '../../node/index.ts';
import type { Ingress } from '../../ingress/index.ts';
import { checkBundle } from '../../signaling/index.ts';

const APP = fileURLToPath(new URL('../sql-app.ts', import.meta.url));
const SQL_APP_NAME = 'sql';

const { values } = parseArgs({
  options: {
    store: { type: 'string', multiple: true, default: [] },
    'exit-with-parent': { type: 'boolean', default: false },
  },
});
const stores = values.store.map((s) => {
  const eq = s.indexOf('=');
  if (eq < 1) throw new Error(`--store takes NAME=SPEC, got ${s}`);
  return { name: s.slice(0, eq), spec: s.slice(eq + 1) };
});
const log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => {
  if (level !== 'info') process.stderr.write(`${level} ${msg} ${fields ? JSON.stringify(fields) : ''}\n`);
};
const print = (message: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(message)}\n`);

const secret = newSecret();
const signal = await startSignal({ secret, port: 0, host: '127.0.0.1', app: APP, log });
// `dcdn deploy bench/sql-app.ts --name sql --sql DB`.
const code = await bundleApp(APP);
await checkBundle(code);
await signal.control.deploy(SQL_APP_NAME, code, 'dcdn bench sql', { kv: [], sql: ['DB'] });
const urls = signalUrls(signal.url);

const ingresses = new Map<string, Ingress>();
const skipped: Record<string, string> = {};
let browser: Awaited<ReturnType<typeof launchHosts>> | null = null;
let stopping: Promise<void> | null = null;
const stop = () =>
  (stopping ??= (async () => {
    await Promise.all([...ingresses.values()].map((i) => i.close().catch(() => {})));
    await browser?.close().catch(() => {});
    await signal.server.close().catch(() => {});
    process.exit(0);
  })());
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (values['exit-with-parent']) process.stdin.on('end', stop).resume();

for (const { name, spec } of stores) {
  try {
    const ingress = await startIngress({ secret, signalUrl: urls.ws, port: 0, host: '127.0.0.1', name: `bench-sql-${name}`, transport: 'webrtc', rtcBackend: 'werift', sqlStore: spec, sqlLimits: { statementTimeoutMs: 60_000 }, log });
    ingresses.set(name, ingress);
  } catch (err) {
    skipped[name] = `cannot open ${name} store: ${(err as Error).message}`;
  }
}

browser = await launchHosts({ signalHttp: urls.http, secret, count: 1, namePrefix: 'sql-tab', log });
const deadline = Date.now() + 30_000;
const connected = (i: Ingress) => i.pool.list().some((h) => h.transport === 'webrtc');
while (![...ingresses.values()].every(connected) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
const missing = [...ingresses].filter(([, i]) => !connected(i)).map(([name]) => name);
if (missing.length) {
  print({ error: `the tab has no WebRTC session to the ${missing.join(', ')} ingress after 30 s` });
  await stop();
}
print({ ingresses: Object.fromEntries([...ingresses].map(([name, i]) => [name, i.url])), skipped, pid: process.pid, browserPid: browser.pid });
