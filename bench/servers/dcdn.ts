/**
 * A whole dcdn network in one process, as `dcdn up` runs it: signaling, one ingress and N
 * headless Chromium host tabs serving bench/bench-app.ts. Started by the benchmark as a child
 * so the load generator never shares this event loop.
 *
 *   node --import tsx bench/servers/dcdn.ts --hosts 1 --transport webrtc --rtc werift
 *
 * Prints one JSON line when every tab has a session over the asked transport:
 * `{"url", "pid", "browserPid", "transports"}`, or `{"skipped": reason}` when the backend
 * cannot run here. Stops on SIGTERM or SIGINT; with `--exit-with-parent` (as the benchmark
 * starts it) also when stdin closes, and a line `mem` on stdin prints
 * `{"mem": process.memoryUsage()}`.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launchHosts, newSecret, signalUrls, startIngress, startSignal } from '../../cli/parts.ts';
import { mintToken } from '../../signaling/index.ts';
import { offererFactory, type RtcBackend } from '../../ingress/rtc-backend.ts';

const APP = fileURLToPath(new URL('../bench-app.ts', import.meta.url));
const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '1' },
    transport: { type: 'string', default: 'webrtc' },
    rtc: { type: 'string', default: 'werift' },
    'exit-with-parent': { type: 'boolean', default: false },
    /** `off` builds the ingress without Prometheus metrics: the baseline of their cost. */
    metrics: { type: 'string', default: 'on' },
  },
});
const hosts = Number(values.hosts);
const transport = values.transport === 'websocket' ? 'websocket' : 'webrtc';
const rtcBackend = (values.rtc === 'node-datachannel' ? 'node-datachannel' : 'werift') satisfies RtcBackend;
const log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => {
  if (level !== 'info') process.stderr.write(`${level} ${msg} ${fields ? JSON.stringify(fields) : ''}\n`);
};
const print = (message: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(message)}\n`);

// The ingress falls back to WebSocket when a backend cannot make a peer connection: find out
// first, so a missing backend is reported as skipped rather than measured as WebSocket.
if (transport === 'webrtc') {
  try {
    const probe = await offererFactory(rtcBackend)({});
    await probe.close();
  } catch (err) {
    print({ skipped: `${rtcBackend}: ${(err as Error).message}` });
    process.exit(0);
  }
}

const secret = newSecret();
const signal = await startSignal({ secret, port: 0, host: '127.0.0.1', app: APP, log });
const urls = signalUrls(signal.url);
const ingress = await startIngress({ secret, signalUrl: urls.ws, port: 0, host: '127.0.0.1', name: 'bench-ingress', transport, rtcBackend, metrics: { enabled: values.metrics !== 'off' }, log });
let browser: Awaited<ReturnType<typeof launchHosts>> | null = null;
let stopping: Promise<void> | null = null;
const stop = () =>
  (stopping ??= (async () => {
    await ingress.close().catch(() => {});
    await browser?.close().catch(() => {});
    await signal.server.close().catch(() => {});
    // A normal exit, so `--cpu-prof` writes its profile.
    process.exit(0);
  })());
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (values['exit-with-parent']) {
  process.stdin.on('end', stop).resume();
  // `mem` on stdin: print this process's memory breakdown (the benchmark's memory section asks).
  process.stdin.setEncoding('utf8').on('data', (text: string) => {
    if (text.includes('mem')) print({ mem: process.memoryUsage() });
  });
}

browser = await launchHosts({ signalHttp: urls.http, secret, count: hosts, log });
const deadline = Date.now() + 30_000;
const connected = () => ingress.pool.list().filter((h) => h.transport === transport).length;
while (connected() < hosts && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
const transports = ingress.pool.list().map((h) => h.transport);
if (connected() < hosts) {
  print({ error: `only ${connected()}/${hosts} tabs connected over ${transport} (pool: ${transports.join(', ') || 'empty'})` });
  await stop();
}
// An operator token, for the benchmark to attach `dcdn tail`'s stream (/_dcdn/tail) and scrape.
print({ url: ingress.url, pid: process.pid, browserPid: browser.pid, transports, operatorToken: mintToken(secret, { role: 'operator', ttlSeconds: 24 * 3600, sub: 'bench' }) });
