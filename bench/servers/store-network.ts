/**
 * What bench/servers/dcdn-kv.ts and dcdn-sql.ts share: signaling serving one app, one ingress
 * (WebRTC over werift) per `--store NAME=SPEC`, one headless Chromium host tab with a session to
 * every ingress, and the one JSON line the benchmark reads. Only the app, its bindings and the
 * ingress's store option differ between the two, so those are what a caller passes.
 *
 * Prints `{"ingresses": {NAME: url}, "skipped": {NAME: reason}, "pid", "browserPid"}` when the tab
 * has a WebRTC session to every ingress; a store that cannot be opened goes under `skipped`.
 * `{"error": …}` when the tab does not connect. Stops on SIGTERM or SIGINT; with
 * `--exit-with-parent` also when stdin closes.
 */
import { parseArgs } from 'node:util';
import { bundleApp } from '../../browser-host/index.ts';
import { launchHosts, newSecret, signalUrls, startIngress, startSignal, type StartIngressOptions } from '../../node/index.ts';
import type { Ingress } from '../../ingress/index.ts';
import { checkBundle, type ControlStore } from '../../signaling/index.ts';

export interface StoreNetworkOptions {
  /** Path of the app module, bundled and deployed as `appName`. */
  app: string;
  appName: string;
  /** The deploy message and config (bindings), as `dcdn deploy` would send them. */
  deployMessage: string;
  deployConfig: Parameters<ControlStore['deploy']>[3];
  /** Prefix of the ingress names (`${prefix}-${store}`) and of the tab's name (`${prefix}-tab`). */
  ingressPrefix: string;
  tabPrefix: string;
  /** The ingress options that open the store named by SPEC. */
  storeOptions: (spec: string) => Partial<StartIngressOptions>;
}

/** Runs the network until SIGTERM/SIGINT (or stdin's end with `--exit-with-parent`). */
export async function runStoreNetwork(opts: StoreNetworkOptions): Promise<void> {
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
  const signal = await startSignal({ secret, port: 0, host: '127.0.0.1', app: opts.app, log });
  const code = await bundleApp(opts.app);
  await checkBundle(code);
  await signal.control.deploy(opts.appName, code, opts.deployMessage, opts.deployConfig);
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
      const ingress = await startIngress({ secret, signalUrl: urls.ws, port: 0, host: '127.0.0.1', name: `${opts.ingressPrefix}-${name}`, transport: 'webrtc', rtcBackend: 'werift', ...opts.storeOptions(spec), log });
      ingresses.set(name, ingress);
    } catch (err) {
      skipped[name] = `cannot open ${name} store: ${(err as Error).message}`;
    }
  }

  browser = await launchHosts({ signalHttp: urls.http, secret, count: 1, namePrefix: opts.tabPrefix, log });
  const deadline = Date.now() + 30_000;
  const connected = (i: Ingress) => i.pool.list().some((h) => h.transport === 'webrtc');
  while (![...ingresses.values()].every(connected) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const missing = [...ingresses].filter(([, i]) => !connected(i)).map(([name]) => name);
  if (missing.length) {
    print({ error: `the tab has no WebRTC session to the ${missing.join(', ')} ingress after 30 s` });
    await stop();
  }
  print({ ingresses: Object.fromEntries([...ingresses].map(([name, i]) => [name, i.url])), skipped, pid: process.pid, browserPid: browser.pid });
}
