/**
 * The parts `dcdn` runs, started the same way whether `dcdn up` runs them together or
 * `dcdn signal`, `dcdn ingress` and `dcdn launch` run them apart.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { bundleApp, bundleHostScript, hostPageHtml } from '../browser-host/build/bundle.ts';
import { launchBrowser, type LaunchedBrowser } from '../browser-host/launcher/launch.ts';
import { resolveBrowser } from '../browser-host/launcher/resolve-browser.ts';
import { createIngress, type Ingress, type IngressOptions } from '../ingress/index.ts';
import { createSignalingServer, mintToken, SIGNAL_PATH, type SignalingServer } from '../signaling/index.ts';
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

/** Starts signaling, serving the host page, its script and the app bundle. */
export async function startSignal(opts: { secret: string; port: number; host: string; app?: string; log: Log }): Promise<{ server: SignalingServer; url: string }> {
  const started = performance.now();
  const [script, app] = await Promise.all([bundleHostScript(), bundleApp(opts.app)]);
  opts.log('info', 'bundled host page and app', { app: opts.app ?? 'demo', appKiB: Math.round(app.length / 1024), ms: Math.round(performance.now() - started) });
  const html = hostPageHtml();
  const server = createSignalingServer({
    secret: opts.secret,
    routes: (scoped: FastifyInstance) => {
      scoped.get('/host', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html));
      scoped.get('/host.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-store').send(script));
      scoped.get('/v1/app.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-store').send(app));
    },
  });
  const url = await server.listen(opts.port, opts.host);
  opts.log('info', 'signaling listening', { url, hostPage: `${url}/host` });
  return { server, url };
}

/** Starts an ingress that mints its own tokens from the secret (or uses the given token). */
export async function startIngress(
  opts: Omit<IngressOptions, 'token' | 'log'> & { secret?: string; token?: string; log: Log },
): Promise<Ingress> {
  const { secret, token } = opts;
  if (!secret && !token) throw new Error('the ingress needs --secret or --token (or DCDN_SECRET / DCDN_TOKEN)');
  const ingress = createIngress({
    ...opts,
    token: token ?? (() => mintToken(secret!, { role: 'ingress', sub: opts.name ?? 'ingress', ttlSeconds: 3600 })),
    log: opts.log,
  });
  await ingress.listen();
  return ingress;
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
