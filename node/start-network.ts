/**
 * A whole dcdn network in one process, as `dcdn up` and the benchmark run it: signaling, one
 * ingress and N headless Chromium host tabs, all sharing one fresh secret.
 */
import type { LaunchedBrowser } from '../browser-host/index.ts';
import type { Ingress } from '../ingress/index.ts';
import { launchHosts, type LaunchHostsOptions } from './launch-hosts.ts';
import type { Log } from './log.ts';
import { startIngress, type StartIngressOptions } from './start-ingress.ts';
import { newSecret, signalUrls, startSignal, type StartedSignal, type StartSignalOptions } from './start-signal.ts';

/** What {@link startNetwork} takes; every part's own options may be overridden. */
export interface StartNetworkOptions {
  /** Host tabs to launch (0 for none). Default 2. */
  hosts?: number;
  /** Address signaling and the ingress listen on. Default 127.0.0.1. */
  host?: string;
  /** The ingress's HTTP port. Default 0 (any free port). */
  port?: number;
  /** Signaling's port. Default 0. */
  signalPort?: number;
  /** The network's signing secret. Default a fresh one. */
  secret?: string;
  /** An app module to serve as `default`; the demo app when not given. */
  app?: string;
  /** More options for signaling (db, ice, openJoin). */
  signal?: Partial<Omit<StartSignalOptions, 'secret' | 'port' | 'host' | 'app' | 'log'>>;
  /** More options for the ingress (transport, rtcBackend, kvStore, limits...). */
  ingress?: Partial<Omit<StartIngressOptions, 'secret' | 'token' | 'signalUrl' | 'port' | 'host' | 'log'>>;
  /** More options for the host tabs (browserPath, heapLimitMb...). */
  launch?: Partial<Omit<LaunchHostsOptions, 'signalHttp' | 'secret' | 'token' | 'count' | 'log'>>;
  /** How long to wait for every tab to have a session with the ingress. Default 30000 ms. */
  hostsTimeoutMs?: number;
  log: Log;
}

/** A running network; `close()` stops every part, ingress first so requests drain. */
export interface Network {
  secret: string;
  signal: StartedSignal;
  /** Signaling's page base (http) and WebSocket endpoint. */
  urls: { http: string; ws: string };
  ingress: Ingress;
  /** The Chromium holding the host tabs; null with `hosts: 0`. */
  browser: LaunchedBrowser | null;
  /** How many tabs had a session with the ingress when `startNetwork` returned. */
  connected: number;
  close(): Promise<void>;
}

/** How often {@link startNetwork} looks at the ingress's pool while tabs join. */
const POOL_POLL_MS = 50;

/**
 * Starts signaling, an ingress and `hosts` tabs, and waits (up to `hostsTimeoutMs`) until the
 * ingress has a session with every tab, so the first request is answered. Fewer tabs than asked
 * is not an error: `connected` says how many made it, for the caller to report.
 *
 * @example
 * ```ts
 * const net = await startNetwork({ hosts: 1, log: silentLog });
 * await fetch(net.ingress.url); // answered by a Chromium tab
 * await net.close();
 * ```
 */
export async function startNetwork(opts: StartNetworkOptions): Promise<Network> {
  const secret = opts.secret ?? newSecret();
  const host = opts.host ?? '127.0.0.1';
  const hosts = opts.hosts ?? 2;
  const signal = await startSignal({ ...opts.signal, secret, port: opts.signalPort ?? 0, host, ...(opts.app !== undefined ? { app: opts.app } : {}), log: opts.log });
  const urls = signalUrls(signal.url);
  let ingress: Ingress | null = null;
  let browser: LaunchedBrowser | null = null;
  const close = async () => {
    await ingress?.close();
    await browser?.close();
    await signal.server.close();
  };
  try {
    ingress = await startIngress({ ...opts.ingress, secret, signalUrl: urls.ws, port: opts.port ?? 0, host, log: opts.log });
    if (hosts > 0) browser = await launchHosts({ ...opts.launch, signalHttp: urls.http, secret, count: hosts, log: opts.log });
  } catch (err) {
    await close();
    throw err;
  }
  const deadline = Date.now() + (opts.hostsTimeoutMs ?? 30_000);
  while (ingress.pool.size < hosts && Date.now() < deadline) await new Promise((r) => setTimeout(r, POOL_POLL_MS));
  return { secret, signal, urls, ingress, browser, connected: ingress.pool.size, close };
}
