/**
 * The parts `dcdn` runs, started the same way whether `dcdn up` runs them together or
 * `dcdn signal`, `dcdn ingress` and `dcdn launch` run them apart.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { bundleApp, bundleHostScript, bundleJoinScript, DEMO_APP, hostPageHtml, joinPageHtml } from '../browser-host/build/bundle.ts';
import { launchBrowser, type LaunchedBrowser } from '../browser-host/launcher/launch.ts';
import { resolveBrowser } from '../browser-host/launcher/resolve-browser.ts';
import { createIngress, type Ingress, type IngressOptions } from '../ingress/index.ts';
import { openKvStore } from '../ingress/kv/index.ts';
import { BanList } from '../signaling/bans.ts';
import { parseAppConfig, type AppConfig } from '../signaling/app-config.ts';
import { AppStore, checkBundle, createSignalingServer, mintToken, SIGNAL_PATH, type IceConfig, type SignalingServer } from '../signaling/index.ts';
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

/**
 * Starts signaling with the control plane (app store at `db`, `:memory:` when not given),
 * serving the host page, the volunteer join page and their scripts. With `app`, that module is bundled and deployed as the
 * `default` app unless the active `default` is already the same code.
 */
export async function startSignal(opts: {
  secret: string;
  port: number;
  host: string;
  app?: string;
  db?: string;
  /** STUN/TURN handed to every peer (`--stun`, `--turn`, `--turn-secret`, `--turn-ttl`). */
  ice?: IceConfig;
  /** Anyone may join as a volunteer from /join, without an invite (`--open-join`). */
  openJoin?: boolean;
  log: Log;
}): Promise<{ server: SignalingServer; url: string; store: AppStore }> {
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
    volunteers: { openJoin: opts.openJoin === true },
    ...(opts.ice ? { ice: opts.ice } : {}),
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
  if (opts.ice) {
    // URLs and lifetime only: the TURN secret never reaches a log.
    opts.log('info', 'ICE servers for peers', { stun: opts.ice.stun?.join(' ') || undefined, turn: opts.ice.turn?.join(' ') || undefined, turnTtlSeconds: opts.ice.turn?.length ? opts.ice.turnTtlSeconds : undefined });
  }
  opts.log('info', 'signaling listening', { url, hostPage: `${url}/host`, joinPage: `${url}/join?invite=<host-token>`, apps: store.manifest().map((a) => `${a.name}@${a.version}`).join(',') });
  return { server, url, store };
}

/** Bundles an app file and deploys it to `store` as `name`, unless that code is already active. */
export async function deployFile(store: AppStore, name: string, file: string, log: Log, config: Partial<AppConfig> = {}): Promise<void> {
  const code = await bundleApp(file);
  const sha = createHash('sha256').update(code).digest('hex');
  const current = store.manifest().find((a) => a.name === name);
  const same = current && store.code(name, current.version)?.sha256 === sha && JSON.stringify(current.config) === JSON.stringify(parseAppConfig(config));
  if (current && same) return log('info', 'app unchanged', { app: name, version: current.version });
  await checkBundle(code);
  const v = store.deploy(name, code, `from ${file}`, config);
  log('info', 'deployed', { app: name, version: v.version, file, kib: Math.round(v.size / 1024) });
}

/**
 * Starts an ingress that mints its own tokens from the secret (or uses the given token), with
 * the KV store `kvStore` names (`sqlite:PATH`, `redis://…`; 'none' for no KV).
 */
export async function startIngress(
  opts: Omit<IngressOptions, 'token' | 'log' | 'kv'> & { secret?: string; token?: string; kvStore?: string; log: Log },
): Promise<Ingress> {
  const { secret, token, kvStore, ...rest } = opts;
  if (!secret && !token) throw new Error('the ingress needs --secret or --token (or DCDN_SECRET / DCDN_TOKEN)');
  const kv = kvStore && kvStore !== 'none' ? await openKvStore(kvStore) : undefined;
  if (kv) opts.log('info', 'kv store open', { store: kv.kind, spec: redactSpec(kvStore!) });
  const ingress = createIngress({
    ...rest,
    ...(kv ? { kv } : {}),
    token: token ?? (() => mintToken(secret!, { role: 'ingress', sub: opts.name ?? 'ingress', ttlSeconds: 3600 })),
    log: opts.log,
  });
  try {
    await ingress.listen();
  } catch (err) {
    await kv?.close();
    throw err;
  }
  return ingress;
}

/** A store spec fit for logs: a Redis URL's password is hidden. */
export function redactSpec(spec: string): string {
  return spec.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

/** Launches Chromium with `count` host tabs and detaches puppeteer once they are up. */
export async function launchHosts(opts: {
  signalHttp: string;
  secret?: string;
  token?: string;
  count: number;
  browserPath?: string;
  namePrefix?: string;
  log: Log;
}): Promise<LaunchedBrowser> {
  const browser = resolveBrowser({ explicitPath: opts.browserPath });
  opts.log('info', 'launching Chromium', { path: browser.path, found: browser.source, tabs: opts.count });
  const launched = await launchBrowser({
    executablePath: browser.path,
    logger: {
      warn: (fields, message) => opts.log('warn', message, fields),
      error: (fields, message) => opts.log('error', message, fields),
    },
  });
  try {
    for (let i = 1; i <= opts.count; i++) {
      const name = `${opts.namePrefix ?? 'tab'}-${i}`;
      const token = opts.token ?? mintToken(opts.secret!, { role: 'host', sub: name, ttlSeconds: 7 * 24 * 3600 });
      const url = `${opts.signalHttp}/host?name=${encodeURIComponent(name)}&token=${encodeURIComponent(token)}`;
      await launched.openTabs(url, 1, { timeoutMs: 30_000 });
      opts.log('info', 'host tab up', { name });
    }
    await launched.detach();
  } catch (err) {
    await launched.close();
    throw err;
  }
  return launched;
}

/**
 * Runs `stop` on the first SIGINT or SIGTERM; a second signal exits at once.
 * Resolves when the shutdown finished.
 */
export function onShutdown(log: Log, stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const handler = (signal: string) => {
      if (stopping) {
        log('warn', `second ${signal}: exiting now`);
        process.exit(130);
      }
      stopping = true;
      log('info', `${signal}: shutting down (again to force)`);
      stop().then(resolve, (err: Error) => {
        log('error', 'shutdown failed', { err: err.message });
        resolve();
      });
    };
    process.on('SIGINT', () => handler('SIGINT'));
    process.on('SIGTERM', () => handler('SIGTERM'));
  });
}
