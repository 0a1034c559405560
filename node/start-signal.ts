/**
 * Starts signaling with its control plane, serving the host page and the volunteer join page:
 * the same way whether `dcdn up` runs every part together, `dcdn signal` runs it alone, or a
 * program embeds it.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { bundleHostScript, bundleJoinScript, DEMO_APP, hostPageHtml, joinPageHtml } from '../browser-host/index.ts';
import { AppStore, createSignalingServer, openControlStore, SIGNAL_PATH, SqliteControlStore, type AppSummary, type AppVersion, type ControlStore, type IceConfig, type SignalingServer } from '../signaling/index.ts';
import { listenMetrics } from '../ingress/index.ts';
import { deployFile } from './deploy-file.ts';
import type { ClusterOptions } from '../signaling/index.ts';
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
  /**
   * An app module to bundle and deploy as `default` (unless that code is already active), marked
   * as a development app ({@link DEV_APP_MESSAGE}). Without it the demo app is deployed when
   * there is no `default`, or when the active one is a development app an earlier run left; a
   * `default` deployed otherwise (the control API) is kept.
   */
  app?: string;
  /** The app store's SQLite file; `:memory:` when not given. Ignored with `controlStore`. */
  db?: string;
  /**
   * The control store (apps, versions, secrets, bans, keys): `sqlite:PATH` (one signaling node,
   * as `db`), or `postgres://…` for a cluster of signaling nodes sharing it
   * (docs/cluster-control.md). Default: `sqlite:` + `db`.
   */
  controlStore?: string;
  /** The live signaling nodes and their applied control versions, for the deploy barrier (the cluster wiring's presence.nodes()). */
  clusterNodes?: () => Promise<Array<{ id: string; cv: number }>>;
  /** How long a deploy waits for every node to apply it. Default 5000. */
  deployBarrierMs?: number;
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
  /**
   * A pino logger for signaling's own lines (joins, leaves, refusals; requests at debug level),
   * so that one process writes one stream. Default: those lines are not logged.
   */
  logger?: FastifyBaseLogger;
  /** Cluster mode: presence and relay through this Redis (`--cluster`); absent, one machine. */
  cluster?: ClusterOptions;
  /** How many ingresses each host attaches to (`--attach`). Default 2. */
  attach?: number;
  /**
   * Scheduled handlers (docs/apps.md, "Cron triggers"): how long a run may take before it is
   * recorded as CRON_TIMEOUT (`--cron-run-timeout`, default 60000 ms) and how long a node
   * without an ingress lets others claim a tick (`--cron-claim-grace`, default 2000 ms).
   */
  cron?: { runTimeoutMs?: number; claimGraceMs?: number; enabled?: boolean };
  /** How often presence entries are renewed. Default 5000 ms. */
  renewIntervalMs?: number;
}

/** A running signaling service, its URL and its control store. */
export interface StartedSignal {
  server: SignalingServer;
  url: string;
  control: ControlStore;
  /** The SQLite app store under a `sqlite:` control store (`dcdn up` watches it); undefined with Postgres. */
  store: AppStore | undefined;
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
  // Apps and bans live in one file (bans in a table of their own), or in Postgres.
  const control = await openControlStore(opts.controlStore ?? `sqlite:${opts.db ?? ':memory:'}`, { log: (level, message, fields) => opts.log(level, message, fields) });
  try {
    const current = activeOf(await control.list(), 'default');
    // deployIfChanged: several nodes starting at once with one --app create one version.
    if (opts.app !== undefined) {
      await deployFile(control, 'default', opts.app, opts.log, {}, `${DEV_APP_MESSAGE}${opts.app}`);
    } else if (!current || current.message.startsWith(DEV_APP_MESSAGE)) {
      // Without an app the demo is served (as the README says): a development app an earlier run
      // left as the default does not stay it. One deployed through the control API does.
      if (current) opts.log('info', 'no app given: the demo app replaces the development app an earlier run left as the default', { was: current.message.slice(DEV_APP_MESSAGE.length), version: current.version });
      // The demo app has no secrets: volunteers may serve it (a network of volunteers alone works).
      await deployFile(control, 'default', DEMO_APP, opts.log, { volunteers: true }, DEMO_APP_MESSAGE);
    }
  } catch (err) {
    await control.close();
    throw err;
  }
  opts.log('info', 'bundled host and join pages', { ms: Math.round(performance.now() - started) });
  const server = createSignalingServer({
    secret: opts.secret,
    ...(opts.logger ? { logger: opts.logger } : {}),
    controlStore: control,
    ...(opts.clusterNodes ? { clusterNodes: opts.clusterNodes } : {}),
    ...(opts.deployBarrierMs !== undefined ? { deployBarrierMs: opts.deployBarrierMs } : {}),
    ...(opts.cron ? { cron: opts.cron } : {}),
    volunteers: { openJoin: opts.openJoin === true, ...(opts.inviteGraceMs !== undefined ? { inviteGraceMs: opts.inviteGraceMs } : {}) },
    ...(opts.ice ? { ice: opts.ice } : {}),
    ...(opts.metricsToken ? { metrics: { token: opts.metricsToken } } : {}),
    ...(opts.cluster ? { cluster: opts.cluster } : {}),
    ...(opts.attach !== undefined ? { attach: opts.attach } : {}),
    ...(opts.renewIntervalMs !== undefined ? { renewIntervalMs: opts.renewIntervalMs } : {}),
    routes: (scoped: FastifyInstance) => {
      scoped.get('/host', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html));
      scoped.get('/host.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-store').send(script));
      scoped.get('/join', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(joinHtml));
      scoped.get('/join.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-store').send(joinScript));
    },
  });
  server.app.addHook('onClose', async () => control.close());
  const url = await server.listen(opts.port, opts.host).catch(async (err: unknown) => {
    await server.close();
    throw err;
  });
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
  opts.log('info', 'signaling listening', { url, hostPage: `${url}/host`, joinPage: `${url}/join?invite=<host-token>`, apps: server.control.cache.manifest().map((a) => `${a.name}@${a.version}`).join(','), controlStore: control.kind });
  return { server, url, control, store: control instanceof SqliteControlStore ? control.apps : undefined };
}

/** The active version of app `name` in a listing. */
function activeOf(apps: AppSummary[], name: string): AppVersion | undefined {
  const app = apps.find((a) => a.name === name);
  return app?.versions.find((v) => v.version === app.activeVersion);
}

/** The message prefix of a `default` version deployed from `app` (a development file); the file follows. */
export const DEV_APP_MESSAGE = 'development app ';
/** The message of a `default` version that is the built-in demo app. */
export const DEMO_APP_MESSAGE = 'the demo app (built in)';

/** The active version of app `name` in `store`, with its message and time, or undefined. */
export function activeVersion(store: AppStore, name: string): AppVersion | undefined {
  const app = store.list().find((a) => a.name === name);
  return app?.versions.find((v) => v.version === app.activeVersion);
}
