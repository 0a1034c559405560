/**
 * The parts `dcdn` runs, started the same way whether `dcdn up` runs them together or
 * `dcdn signal`, `dcdn ingress` and `dcdn launch` run them apart.
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { bundleApp, bundleHostScript, bundleJoinScript, DEMO_APP, hostPageHtml, joinPageHtml } from '../browser-host/build/bundle.ts';
import { allowHostPattern, DEFAULT_HEAP_LIMIT_MB, isSecureOrigin, launchBrowser, type LaunchedBrowser } from '../browser-host/launcher/launch.ts';
import { resolveBrowser } from '../browser-host/launcher/resolve-browser.ts';
import { createIngress, type Ingress, type IngressOptions } from '../ingress/index.ts';
import { openKvStore } from '../ingress/kv/index.ts';
import { BanList } from '../signaling/bans.ts';
import { parseAppConfig, type AppConfig } from '../signaling/app-config.ts';
import { AppStore, checkBundle, createSignalingServer, mintToken, SIGNAL_PATH, type IceConfig, type SignalingServer } from '../signaling/index.ts';
import type { OffererOptions } from '../ingress/offerer.ts';
import { RTC_BACKENDS, type RtcBackend } from '../ingress/rtc-backend.ts';
import { intFlag, UsageError, type FlagSpec } from './args.ts';
import { ingressIceFlags, ingressRtcFromFlags } from './ice-flags.ts';
import { trafficFlags, trafficOptionsFromFlags } from './traffic-flags.ts';
import type { Log } from './log.ts';
import { stateDir } from './state.ts';

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
  /** How long a volunteer stays connected past its invite's expiry (`--invite-grace`, ms). */
  inviteGraceMs?: number;
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
    volunteers: { openJoin: opts.openJoin === true, ...(opts.inviteGraceMs !== undefined ? { inviteGraceMs: opts.inviteGraceMs } : {}) },
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

/** What {@link startIngress} takes: the ingress's options, with a secret or token and a KV store spec. */
export type StartIngressOptions = Omit<IngressOptions, 'token' | 'log' | 'kv'> & { secret?: string; token?: string; kvStore?: string; log: Log };

const secretFlag = { type: 'string', help: 'signing secret shared by the network (else DCDN_SECRET)' } as const;

/** `dcdn ingress`'s flags (all but --help). */
export const ingressFlags = {
  signal: { type: 'string', short: 's', help: 'signaling address, e.g. http://127.0.0.1:8787' },
  port: { type: 'string', short: 'p', default: '8080', help: 'HTTP port' },
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on (0.0.0.0 for every interface)' },
  name: { type: 'string', default: 'ingress', help: 'name in signaling and logs' },
  transport: { type: 'string', short: 't', default: 'webrtc', help: 'webrtc or websocket' },
  rtc: { type: 'string', default: 'werift', help: 'WebRTC stack: werift, or node-datachannel (native, optional dependency)' },
  secret: secretFlag,
  token: { type: 'string', help: 'an ingress token instead of the secret (else DCDN_TOKEN)' },
  'shutdown-grace': { type: 'string', default: '10000', help: 'on SIGTERM/SIGINT, ms in-flight requests get to finish before they are cut (a second signal exits at once)' },
  'kv-store': { type: 'string', help: "handlers' KV store: sqlite:PATH, redis://HOST:PORT (shared by several ingresses), or none (default: sqlite:$DCDN_HOME/kv.db; env DCDN_KV_STORE)" },
  'kv-min-ttl': { type: 'string', default: '60', help: 'shortest KV expirationTtl accepted, in seconds' },
  'base-domain': { type: 'string', default: 'localhost', help: 'apps answer on NAME.<base-domain> (and on /@NAME/ under any name)' },
  'public-ws': { type: 'string', help: 'base URL hosts dial for the WebSocket transport and fallback, e.g. wss://ingress.example.net (default ws://<host>:<port>)' },
  ...ingressIceFlags,
  ...trafficFlags,
} satisfies FlagSpec;

/**
 * Turns `dcdn ingress`'s flags (and DCDN_SECRET, DCDN_TOKEN, DCDN_KV_STORE, DCDN_TURN_SECRET,
 * DCDN_HOME) into {@link startIngress}'s options. Every bad value is a usage error naming its flag.
 */
export function ingressOptionsFromFlags(v: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Omit<StartIngressOptions, 'log'> & { rtc: OffererOptions } {
  if (!v.signal) throw new UsageError('--signal URL is required');
  const transport = String(v.transport ?? 'webrtc');
  if (transport !== 'webrtc' && transport !== 'websocket') throw new UsageError(`--transport must be webrtc or websocket, got ${transport}`);
  const rtcBackend = String(v.rtc ?? 'werift') as RtcBackend;
  if (!RTC_BACKENDS.includes(rtcBackend)) throw new UsageError(`--rtc must be ${RTC_BACKENDS.join(' or ')}, got ${rtcBackend}`);
  let signalUrl: string;
  try {
    signalUrl = signalUrls(String(v.signal)).ws;
  } catch {
    throw new UsageError(`--signal must be a URL such as http://signal.example.net:8787, got ${JSON.stringify(v.signal)}`);
  }
  const publicWs = v['public-ws'] as string | undefined;
  if (publicWs !== undefined && !/^wss?:\/\/[^/\s?#]+(\/[^\s?#]*)?$/.test(publicWs)) {
    throw new UsageError(`--public-ws must be ws://HOST[:PORT][/PATH] or wss://…, got ${JSON.stringify(publicWs)}`);
  }
  const baseDomain = String(v['base-domain'] ?? 'localhost');
  if (!/^[A-Za-z0-9.-]+$/.test(baseDomain)) throw new UsageError(`--base-domain must be a DNS name, got ${JSON.stringify(baseDomain)}`);
  const name = String(v.name ?? 'ingress');
  const { rtc, rtcOpenTimeoutMs } = ingressRtcFromFlags(v, name, env);
  const secret = (v.secret as string | undefined) ?? env.DCDN_SECRET;
  const token = (v.token as string | undefined) ?? env.DCDN_TOKEN;
  return {
    signalUrl,
    ...(secret !== undefined ? { secret } : {}),
    ...(token !== undefined ? { token } : {}),
    port: intFlag(v.port ?? 8080, 'port'),
    host: String(v.host ?? '127.0.0.1'),
    name,
    transport,
    rtcBackend,
    rtc,
    rtcOpenTimeoutMs,
    ...(publicWs !== undefined ? { publicWsBase: publicWs.replace(/\/$/, '') } : {}),
    routing: { baseDomain },
    ...trafficOptionsFromFlags(v),
    shutdownGraceMs: intFlag(v['shutdown-grace'] ?? 10000, 'shutdown-grace'),
    kvStore: (v['kv-store'] as string | undefined) ?? env.DCDN_KV_STORE ?? `sqlite:${join(stateDir(env), 'kv.db')}`,
    kvLimits: { minTtlSeconds: intFlag(v['kv-min-ttl'] ?? 60, 'kv-min-ttl', 1) },
  };
}

/**
 * Starts an ingress that mints its own tokens from the secret (or uses the given token), with
 * the KV store `kvStore` names (`sqlite:PATH`, `redis://…`; 'none' for no KV).
 */
export async function startIngress(opts: StartIngressOptions): Promise<Ingress> {
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

/** `dcdn launch`'s flags (all but --help). */
export const launchFlags = {
  signal: { type: 'string', short: 's', help: 'signaling address, e.g. http://signal.example.net:8787 (Chromium may always resolve its host)' },
  count: { type: 'string', short: 'n', default: '2', help: 'tabs to open' },
  name: { type: 'string', default: 'tab', help: 'tab name prefix (tabs are PREFIX-1, PREFIX-2, …)' },
  secret: secretFlag,
  token: { type: 'string', help: 'a host token instead of the secret (else DCDN_TOKEN)' },
  browser: { type: 'string', help: 'Chromium/Chrome executable (else DCDN_BROWSER, system paths, puppeteer cache)' },
  'heap-limit': { type: 'string', default: String(DEFAULT_HEAP_LIMIT_MB), help: "JavaScript heap limit per app sandbox (and per tab), in MiB: an app that allocates past it is recycled" },
  'allow-host': {
    type: 'string',
    multiple: true,
    help: "another host name or address Chromium may resolve, e.g. each ingress's --public-ws host (WebSocket fallback), STUN/TURN servers named by host, or what apps fetch; globs like *.example.net, * for any (repeatable; default: loopback and the --signal host only)",
  },
} satisfies FlagSpec;

/**
 * The host patterns Chromium may resolve for tabs joining `signalHttp`: the signaling host (its
 * page, script and WebSocket), then `extra` (names, globs, or URLs whose host is meant).
 */
export function launchAllowHosts(signalHttp: string, extra: readonly string[] = []): string[] {
  const patterns = [signalHttp, ...extra].flatMap((entry) => {
    try {
      return allowHostPattern(entry);
    } catch (err) {
      throw new UsageError(`--allow-host: ${(err as Error).message}`);
    }
  });
  return [...new Set(patterns)];
}

/** Launches Chromium with `count` host tabs and detaches puppeteer once they are up. */
export async function launchHosts(opts: {
  signalHttp: string;
  secret?: string;
  token?: string;
  count: number;
  browserPath?: string;
  namePrefix?: string;
  /** More hosts Chromium may resolve besides loopback and the signaling host ({@link launchAllowHosts}). */
  allowHosts?: readonly string[];
  /** Heap limit per isolate in MiB (launch.ts `heapLimitMb`). */
  heapLimitMb?: number;
  log: Log;
}): Promise<LaunchedBrowser> {
  const browser = resolveBrowser({ explicitPath: opts.browserPath });
  const allowHosts = launchAllowHosts(opts.signalHttp, opts.allowHosts);
  // The host page needs a secure context; plain http by a name other than loopback is not one.
  const secureOrigins = isSecureOrigin(opts.signalHttp) ? [] : [new URL(opts.signalHttp).origin];
  if (secureOrigins.length > 0) {
    opts.log('warn', 'signaling is plain http on another host: tokens and app code travel unencrypted (serve it over https); treating it as a secure context', { origin: secureOrigins[0] });
  }
  opts.log('info', 'launching Chromium', { path: browser.path, found: browser.source, tabs: opts.count, resolves: ['loopback', ...allowHosts].join(',') });
  const launched = await launchBrowser({
    executablePath: browser.path,
    allowHosts,
    secureOrigins,
    ...(opts.heapLimitMb !== undefined ? { heapLimitMb: opts.heapLimitMb } : {}),
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
