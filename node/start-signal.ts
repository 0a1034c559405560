/**
 * Starts signaling with its control plane, serving the host page and the volunteer join page:
 * the same way whether `dcdn up` runs every part together, `dcdn signal` runs it alone, or a
 * program embeds it.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { bundleHostScript, bundleJoinScript, DEMO_APP, hostPageHtml, joinPageHtml } from '../browser-host/index.ts';
import { AppStore, BanList, createSignalingServer, SIGNAL_PATH, type IceConfig, type SignalingServer } from '../signaling/index.ts';
import { listenMetrics } from '../ingress/index.ts';
import { deployFile } from './deploy-file.ts';
import type { Log } from './log.ts';

/** A fresh signing secret for a network whose parts share one process or one operator. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** Splits a signaling address into its page base (http) and WebSocket endpoint (ws). */
export function signalUrls(base: string): { http: string; ws: string } {
  const u = new URL(base);
  if (u.protocol === 'ws:' || u.protocol === 'wss:') u.protocol = u.protocol === 'ws:' ? 'http:' : 'https:';
  const http = `${u.protocol}//${u.host}`;
  return { http, ws: `${http.replace(/^http/, 'ws')}${SIGNAL_PATH}` };
}

/** What {@link startSignal} takes. */
export interface StartSignalOptions {
  secret: string;
  port: number;
  host: string;
  /** An app module to bundle and deploy as `default` (unless that code is already active). */
  app?: string;
  /** The app store's SQLite file; `:memory:` when not given. */
  db?: string;
  /** STUN/TURN handed to every peer. */
  ice?: IceConfig;
  /** Anyone may join as a volunteer from /join, without an invite. */
  openJoin?: boolean;
  /** How long a volunteer stays connected past its invite's expiry (`--invite-grace`, ms). */
  inviteGraceMs?: number;
  /** A fixed bearer token Prometheus may scrape `/metrics` with, besides operator tokens. */
  metricsToken?: string;
  /** Also serve `/metrics`, without a token, on this address. */
  metricsListen?: { host: string; port: number };
  log: Log;
}

/** A running signaling service, its URL and its app store. */
export interface StartedSignal {
  server: SignalingServer;
  url: string;
  store: AppStore;
}

/**
 * Starts signaling with the control plane (app store at `db`, `:memory:` when not given),
 * serving the host page, the volunteer join page and their scripts. With `app`, that module is
 * bundled and deployed as the `default` app unless the active `default` is already the same code.
 *
 * @example
 * ```ts
 * const signal = await startSignal({ secret: newSecret(), port: 0, host: '127.0.0.1', log: silentLog });
 * const { ws } = signalUrls(signal.url); // what ingresses and tabs dial
 * ```
 */
export async function startSignal(opts: StartSignalOptions): Promise<StartedSignal> {
  const started = performance.now();
  const [script, joinScript] = await Promise.all([bundleHostScript(), bundleJoinScript()]);
  const html = hostPageHtml();
  const joinHtml = joinPageHtml();
  const store = new AppStore(opts.db ?? ':memory:');
  // Bans live beside the apps, in the same file (a table of their own).
  const bans = new BanList(opts.db ?? ':memory:');
  if (opts.app !== undefined || !store.manifest().some((a) => a.name === 'default')) {
    // The demo app has no secrets: volunteers may serve it (a network of volunteers alone works).
    await deployFile(store, 'default', opts.app ?? DEMO_APP, opts.log, opts.app === undefined ? { volunteers: true } : {});
  }
  opts.log('info', 'bundled host and join pages', { ms: Math.round(performance.now() - started) });
  const server = createSignalingServer({
    secret: opts.secret,
    apps: store,
    bans,
    volunteers: { openJoin: opts.openJoin === true, ...(opts.inviteGraceMs !== undefined ? { inviteGraceMs: opts.inviteGraceMs } : {}) },
    ...(opts.ice ? { ice: opts.ice } : {}),
    ...(opts.metricsToken ? { metrics: { token: opts.metricsToken } } : {}),
    routes: (scoped: FastifyInstance) => {
      scoped.get('/host', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html));
      scoped.get('/host.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-store').send(script));
      scoped.get('/join', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(joinHtml));
      scoped.get('/join.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-store').send(joinScript));
    },
  });
  server.app.addHook('onClose', async () => {
    store.close();
    bans.close();
  });
  const url = await server.listen(opts.port, opts.host);
  if (opts.metricsListen && server.metrics) {
    const metrics = await listenMetrics(server.metrics, opts.metricsListen).catch(async (err: Error) => {
      await server.close();
      throw err;
    });
    server.app.addHook('onClose', () => metrics.close());
    opts.log('info', 'metrics listening', { url: metrics.url });
  }
  if (opts.ice) {
    // URLs and lifetime only: the TURN secret never reaches a log.
    opts.log('info', 'ICE servers for peers', { stun: opts.ice.stun?.join(' ') || undefined, turn: opts.ice.turn?.join(' ') || undefined, turnTtlSeconds: opts.ice.turn?.length ? opts.ice.turnTtlSeconds : undefined });
  }
  opts.log('info', 'signaling listening', { url, hostPage: `${url}/host`, joinPage: `${url}/join?invite=<host-token>`, apps: store.manifest().map((a) => `${a.name}@${a.version}`).join(',') });
  return { server, url, store };
}
