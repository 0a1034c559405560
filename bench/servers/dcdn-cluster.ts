/**
 * One part of the benchmark's cluster network, each in a process of its own (so a forwarding
 * ingress and the ingress it forwards to do not share an event loop, as on two machines), started
 * by bench/cluster.ts in this order:
 *
 *   dcdn-cluster.ts --part signal --redis URL --secret S      two signaling nodes `a`, `b` in cluster mode, K = 1
 *   dcdn-cluster.ts --part ingress --signal WS --name N --secret S   an ingress (werift) with a peer port
 *   dcdn-cluster.ts --part tab --signal HTTP --secret S        one headless Chromium host tab
 *
 * Each prints one JSON line when ready: `{"signals": {"a": url, "b": url}}`, `{"url"}`, or
 * `{"browserPid"}` (with `pid`). Stops on SIGTERM or SIGINT; with `--exit-with-parent` also when
 * stdin closes.
 */
import { parseArgs } from 'node:util';
import { launchHosts, signalUrls, startIngress, startSignal, type StartedSignal } from '../../node/index.ts';

const { values } = parseArgs({
  options: {
    part: { type: 'string' },
    redis: { type: 'string' },
    secret: { type: 'string' },
    signal: { type: 'string' },
    name: { type: 'string' },
    'exit-with-parent': { type: 'boolean', default: false },
  },
});
const need = (key: 'redis' | 'secret' | 'signal' | 'name'): string => {
  const v = values[key];
  if (!v) throw new Error(`--part ${values.part} needs --${key}`);
  return v;
};
const log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => {
  if (level !== 'info') process.stderr.write(`${level} ${msg} ${fields ? JSON.stringify(fields) : ''}\n`);
};
const print = (message: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(message)}\n`);

const closers: Array<() => Promise<unknown>> = [];
let stopping: Promise<void> | null = null;
const stop = () =>
  (stopping ??= (async () => {
    await Promise.all(closers.map((c) => c().catch(() => {})));
    process.exit(0);
  })());
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (values['exit-with-parent']) process.stdin.on('end', stop).resume();

const secret = need('secret');
switch (values.part) {
  case 'signal': {
    // A cluster name of its own per run: a Redis shared with another run never mixes their peers.
    const cluster = { url: need('redis'), clusterName: `bench-${process.pid}`, region: 'default' };
    const signals: StartedSignal[] = [];
    for (const nodeId of ['a', 'b']) {
      const s = await startSignal({ secret, port: 0, host: '127.0.0.1', log, attach: 1, cluster: { ...cluster, nodeId } });
      signals.push(s);
      closers.push(() => s.server.close());
    }
    print({ signals: { a: signals[0]!.url, b: signals[1]!.url }, pid: process.pid });
    break;
  }
  case 'ingress': {
    const ingress = await startIngress({ secret, signalUrl: need('signal'), port: 0, host: '127.0.0.1', name: need('name'), transport: 'webrtc', rtcBackend: 'werift', peerListen: { host: '127.0.0.1', port: 0 }, log });
    closers.push(() => ingress.close());
    print({ url: ingress.url, pid: process.pid });
    break;
  }
  case 'tab': {
    const browser = await launchHosts({ signalHttp: signalUrls(need('signal')).http, secret, count: 1, namePrefix: 'cluster-tab', log });
    closers.push(() => browser.close());
    print({ pid: process.pid, browserPid: browser.pid });
    break;
  }
  default:
    throw new Error('--part must be signal, ingress or tab');
}
