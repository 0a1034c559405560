/**
 * `dcdn signal`, `dcdn ingress`, `dcdn launch` and `dcdn token`: each part of a network run on
 * its own. Loaded only when one of them runs (cli/main.ts), since it pulls in every part.
 */
import { join, resolve } from 'node:path';
import { intFlag, UsageError } from './args.ts';
import { createLog, createLogger } from './log.ts';
import { logOptionsFromFlags } from './log-flags.ts';
import { listening } from './listen-error.ts';
import { trapShutdown } from './shutdown.ts';
import { drainTabs } from './drain-tabs.ts';
import { launchHosts, newSecret, signalUrls, startIngress, startSignal } from '../node/index.ts';
import { ingressOptionsFromFlags, launchAllowHosts } from './part-flags.ts';
import { metricsOptionsFromFlags } from './metrics-flags.ts';
import { iceConfigFromFlags } from './ice-flags.ts';
import { clusterOptionsFromFlags } from './cluster-flags.ts';
import { mintToken } from '../signaling/index.ts';
import { stateDir } from './state.ts';

/** `dcdn signal`: signaling, the control plane and the host and join pages. */
export async function signal(v: Record<string, unknown>): Promise<number> {
  const ice = iceConfigFromFlags(v);
  const metrics = metricsOptionsFromFlags(v);
  const { cluster, attach } = clusterOptionsFromFlags(v);
  const log = createLog('signal', createLogger(logOptionsFromFlags(v)));
  const shutdown = trapShutdown(log);
  let secret = (v.secret as string | undefined) ?? process.env.DCDN_SECRET;
  if (!secret) {
    secret = newSecret();
    process.stdout.write(`No secret given; generated one. Give it to ingresses and launchers:\n  DCDN_SECRET=${secret}\n`);
  }
  const { server, url } = await listening('signaling', '--port', () => startSignal({
    secret,
    port: intFlag(v.port, 'port'),
    host: String(v.host),
    app: v.app === undefined ? undefined : resolve(String(v.app)),
    db: (v.db as string | undefined) ?? join(stateDir(), 'apps.db'),
    ...controlStoreFromFlags(v),
    ...(ice ? { ice } : {}),
    openJoin: v['open-join'] === true,
    inviteGraceMs: intFlag(v['invite-grace'], 'invite-grace', 0),
    cron: { runTimeoutMs: intFlag(v['cron-run-timeout'] ?? 60000, 'cron-run-timeout', 1), claimGraceMs: intFlag(v['cron-claim-grace'] ?? 2000, 'cron-claim-grace', 0) },
    ...(cluster ? { cluster } : {}),
    attach,
    ...metrics,
    logger: log.pino,
    log,
  }), metrics.metricsListen);
  process.stdout.write(`signaling listening on ${url}\n`);
  await shutdown.untilStopped(() => server.close());
  return 0;
}

/**
 * `--control-store` (else DCDN_CONTROL_STORE): `sqlite:PATH` or `postgres://…`. Absent, the
 * SQLite file at `--db` (default $DCDN_HOME/apps.db) is used, as before.
 */
export function controlStoreFromFlags(v: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): { controlStore?: string } {
  const spec = (v['control-store'] as string | undefined) ?? env.DCDN_CONTROL_STORE;
  if (spec === undefined || spec === '') return {};
  if (!/^(sqlite:.+|postgres(ql)?:\/\/.+)$/.test(spec)) throw new UsageError(`--control-store must be sqlite:PATH or postgres://…, got ${JSON.stringify(spec.replace(/:\/\/[^@/]*@/, '://…@').slice(0, 80))}`);
  if (v.db !== undefined) throw new UsageError('give --db or --control-store, not both (--db PATH is --control-store sqlite:PATH)');
  return { controlStore: spec };
}

/** `dcdn ingress`: an ingress joining signaling at --signal. */
export async function ingress(v: Record<string, unknown>): Promise<number> {
  const opts = ingressOptionsFromFlags(v);
  const log = createLog('ingress', createLogger(logOptionsFromFlags(v)));
  const shutdown = trapShutdown(log);
  if (opts.rtcBackend === 'node-datachannel') await (await import('../ingress/index.ts')).loadNodeDatachannel();
  const ingress = await listening('ingress', '--port', () => startIngress({ ...opts, log }), opts.metricsListen);
  if (opts.publicWsBase === undefined && !/^(127\.|localhost$|::1$|\[::1\]$)/.test(opts.host ?? '127.0.0.1')) {
    log('warn', 'hosts on other machines dial the WebSocket fallback at this address; give --public-ws with one they can reach', { wsUrl: `${ingress.url.replace(/^http/, 'ws')}/_dcdn/host-ws` });
  }
  process.stdout.write(`ingress listening on ${ingress.url}\n`);
  await shutdown.untilStopped(() => ingress.close());
  return 0;
}

/** `dcdn launch`: headless Chromium with host tabs joining signaling at --signal. */
export async function launch(v: Record<string, unknown>): Promise<number> {
  if (!v.signal) throw new UsageError('--signal URL is required');
  const secret = (v.secret as string | undefined) ?? process.env.DCDN_SECRET;
  const token = (v.token as string | undefined) ?? process.env.DCDN_TOKEN;
  if (!secret && !token) throw new UsageError('--secret or --token is required (or DCDN_SECRET / DCDN_TOKEN)');
  const count = intFlag(v.count, 'count', 1);
  const graceMs = intFlag(v['shutdown-grace'], 'shutdown-grace');
  let signalHttp: string;
  try {
    signalHttp = signalUrls(String(v.signal)).http;
  } catch {
    throw new UsageError(`--signal must be a URL such as http://signal.example.net:8787, got ${JSON.stringify(v.signal)}`);
  }
  const allowHosts = (v['allow-host'] as string[] | undefined) ?? [];
  launchAllowHosts(signalHttp, allowHosts); // a bad --allow-host is a usage error before Chromium starts
  const log = createLog('hosts', createLogger(logOptionsFromFlags(v)));
  const shutdown = trapShutdown(log);
  const browser = await launchHosts({
    signalHttp,
    secret,
    token,
    count,
    browserPath: v.browser as string | undefined,
    namePrefix: String(v.name),
    allowHosts,
    heapLimitMb: intFlag(v['heap-limit'], 'heap-limit', 64),
    log,
  });
  process.stdout.write(`${count} host tab(s) running (pid ${browser.pid}); Ctrl-C to stop\n`);
  await shutdown.untilStopped(async () => {
    await drainTabs(browser, { signalHttp, ...(secret ? { secret } : {}), graceMs, log });
    await browser.close();
  });
  return 0;
}

/** `dcdn token`: a signed token for a part on another machine, or for an operator. */
export async function token(v: Record<string, unknown>): Promise<number> {
  const secret = (v.secret as string | undefined) ?? process.env.DCDN_SECRET;
  if (!secret) throw new UsageError('--secret or DCDN_SECRET is required');
  const role = String(v.role);
  if (role !== 'host' && role !== 'ingress' && role !== 'operator') throw new UsageError('--role must be host, ingress or operator');
  process.stdout.write(mintToken(secret, { role, ttlSeconds: intFlag(v.ttl, 'ttl', 1), ...(v.sub ? { sub: String(v.sub) } : {}) }) + '\n');
  return 0;
}
