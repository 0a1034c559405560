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
import { startNetwork, type Network } from '../../node/index.ts';
import { offererFactory, type RtcBackend } from '../../ingress/index.ts';
import { mintToken } from '../../signaling/index.ts';

const APP = fileURLToPath(new URL('../bench-app.ts', import.meta.url));
/** `--cached`: the hello world says `public, max-age=60`, so the ingress cache answers it. */
const CACHED_APP = fileURLToPath(new URL('../cached-app.ts', import.meta.url));
const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '1' },
    transport: { type: 'string', default: 'webrtc' },
    rtc: { type: 'string', default: 'werift' },
    'exit-with-parent': { type: 'boolean', default: false },
    /** `off` builds the ingress without Prometheus metrics: the baseline of their cost. */
    metrics: { type: 'string', default: 'on' },
    cached: { type: 'boolean', default: false },
    /** More host page parameters, e.g. `sandbox=0` (apps in the page: a measurement of the sandbox hop only). */
    'host-query': { type: 'string', default: '' },
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

// Signals may arrive while the tabs start: stop then closes whatever is up.
let network: Network | null = null;
let stopping: Promise<void> | null = null;
const stop = () =>
  (stopping ??= (async () => {
    await network?.close().catch(() => {});
    process.exit(0);
  })());
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (values['exit-with-parent']) {
  process.stdin.on('end', stop).resume();
  process.stdin.setEncoding('utf8').on('data', (text: string) => {
    if (text.includes('mem')) print({ mem: process.memoryUsage() });
  });
}

network = await startNetwork({ hosts, app: values.cached ? CACHED_APP : APP, ...(values['host-query'] ? { launch: { hostQuery: values['host-query'] } } : {}), ingress: { name: 'bench-ingress', transport, rtcBackend, metrics: { enabled: values.metrics !== 'off' } }, log });
const { ingress, browser } = network;
const connected = () => ingress.pool.list().filter((h) => h.transport === transport).length;
const transports = ingress.pool.list().map((h) => h.transport);
if (connected() < hosts) {
  print({ error: `only ${connected()}/${hosts} tabs connected over ${transport} (pool: ${transports.join(', ') || 'empty'})` });
  await stop();
}
// An operator token, for the benchmark to attach `dcdn tail`'s stream (/_dcdn/tail) and scrape.
print({ url: ingress.url, pid: process.pid, browserPid: browser?.pid, transports, operatorToken: mintToken(network.secret, { role: 'operator', ttlSeconds: 24 * 3600, sub: 'bench' }) });
