import { intFlag, UsageError, type FlagSpec } from './args.ts';
import { RTC_BACKENDS, type RtcBackend } from '../ingress/index.ts';
import { mintToken, type AppStore } from '../signaling/index.ts';
import { INVITE_GRACE_MS } from '../signaling/index.ts';
import { control as deployVersion, type ControlTarget } from './app-commands.ts';
import { parseAppConfig } from '../protocol/index.ts';
import { createLog } from './log.ts';
import { launchHosts, newSecret, redactSpec, signalUrls, startIngress, startSignal } from '../node/index.ts';
import { onShutdown } from './shutdown.ts';
import { stateDir, writeState } from './state.ts';
import { iceConfigFromFlags, iceFlags } from './ice-flags.ts';
import { trafficFlags, trafficOptionsFromFlags } from './traffic-flags.ts';
import { metricsFlags, metricsOptionsFromFlags } from './metrics-flags.ts';
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { bundleAppWithInputs, DEFAULT_HEAP_LIMIT_MB, type AppBundle } from '../browser-host/index.ts';
import { buildErrorLines } from './bundle.ts';
import type { Log } from './log.ts';

export const upFlags = {
  port: { type: 'string', short: 'p', default: '8080', help: 'HTTP port of the ingress' },
  host: { type: 'string', default: '127.0.0.1', help: 'address the ingress and signaling listen on' },
  hosts: { type: 'string', short: 'n', default: '2', help: 'headless Chromium host tabs to launch (0 for none)' },
  transport: { type: 'string', short: 't', default: 'webrtc', help: 'how the ingress reaches hosts: webrtc or websocket' },
  rtc: { type: 'string', default: 'werift', help: 'WebRTC stack of the ingress: werift, or node-datachannel (native, optional dependency)' },
  app: { type: 'string', short: 'a', help: 'app module to serve as the default app, redeployed when it changes (default: the demo app)' },
  'signal-port': { type: 'string', default: '8787', help: 'port of the signaling service and host page' },
  browser: { type: 'string', help: 'Chromium/Chrome executable (else DCDN_BROWSER, system paths, puppeteer cache)' },
  'kv-store': { type: 'string', help: "handlers' KV store: sqlite:PATH, redis://HOST:PORT, or none (default: sqlite:$DCDN_HOME/kv.db)" },
  'kv-min-ttl': { type: 'string', default: '60', help: 'shortest KV expirationTtl accepted, in seconds' },
  'base-domain': { type: 'string', default: 'localhost', help: 'apps answer on NAME.<base-domain>' },
  'heap-limit': { type: 'string', default: String(DEFAULT_HEAP_LIMIT_MB), help: 'memory limit per app sandbox (and per tab) in MiB, JavaScript heap, array buffers and WebAssembly memory included: an app over it is stopped (HOST_SANDBOX_CRASHED) and restarted' },
  'no-watch': { type: 'boolean', default: false, help: "with --app: don't redeploy when a file the app is built from changes" },
  quiet: { type: 'boolean', short: 'q', default: false, help: 'log warnings only' },
  'open-join': { type: 'boolean', default: false, help: 'let anyone join as a volunteer host from /join, without an invite' },
  'invite-grace': { type: 'string', default: String(INVITE_GRACE_MS), help: "ms a volunteer keeps serving after its invite expired (requests in flight finish); then its sessions end" },
  ...iceFlags,
  ...trafficFlags,
  ...metricsFlags,
  help: { type: 'boolean', short: 'h', default: false, help: 'show this help' },
} satisfies FlagSpec;

export const upUsage = 'dcdn up [--port 8080] [--hosts 2] [--transport webrtc|websocket] [--rtc werift|node-datachannel] [--app FILE]';
export const upDescription =
  'Runs a whole dcdn network on this machine: signaling, an ingress and N headless Chromium host\n' +
  'tabs serving the app. Prints where everything is; Ctrl-C (or SIGTERM) shuts it down cleanly.';

export async function up(values: Record<keyof typeof upFlags, unknown>): Promise<number> {
  const quiet = values.quiet === true;
  const port = intFlag(values.port, 'port');
  const hosts = intFlag(values.hosts, 'hosts');
  const transport = String(values.transport);
  if (transport !== 'webrtc' && transport !== 'websocket') throw new UsageError(`--transport must be webrtc or websocket, got ${transport}`);
  const rtcBackend = String(values.rtc) as RtcBackend;
  if (!RTC_BACKENDS.includes(rtcBackend)) throw new UsageError(`--rtc must be ${RTC_BACKENDS.join(' or ')}, got ${rtcBackend}`);
  // Fail now, saying the optional dependency is missing, rather than once per host later.
  if (rtcBackend === 'node-datachannel') await (await import('../ingress/index.ts')).loadNodeDatachannel();
  const listenHost = String(values.host);
  const ice = iceConfigFromFlags(values);
  // --metrics-listen goes to the ingress; signaling's /metrics takes the operator token from
  // `dcdn up`'s state file, or --metrics-token.
  const metrics = metricsOptionsFromFlags(values);
  const secret = process.env.DCDN_SECRET ?? newSecret();
  const sigLog = createLog('signal', { quiet });
  const ingLog = createLog('ingress', { quiet });
  const hostLog = createLog('hosts', { quiet });

  const appFile = values.app === undefined ? undefined : resolve(String(values.app));
  const baseDomain = String(values['base-domain']);
  const signal = await startSignal({
    secret,
    port: intFlag(values['signal-port'], 'signal-port'),
    host: listenHost,
    app: appFile,
    db: join(stateDir(), 'apps.db'),
    ...(ice ? { ice } : {}),
    openJoin: values['open-join'] === true,
    inviteGraceMs: intFlag(values['invite-grace'], 'invite-grace', 0),
    ...(metrics.metricsToken ? { metricsToken: metrics.metricsToken } : {}),
    log: sigLog,
  });
  const urls = signalUrls(signal.url);
  const kvStore = (values['kv-store'] as string | undefined) ?? process.env.DCDN_KV_STORE ?? `sqlite:${join(stateDir(), 'kv.db')}`;
  const ingress = await startIngress({
    secret,
    signalUrl: urls.ws,
    port,
    host: listenHost,
    name: 'ingress-1',
    transport,
    rtcBackend,
    ...trafficOptionsFromFlags(values),
    routing: { baseDomain },
    kvStore,
    kvLimits: { minTtlSeconds: intFlag(values['kv-min-ttl'], 'kv-min-ttl', 1) },
    ...metrics,
    log: ingLog,
  });
  const stateFile = writeState({
    signal: signal.url,
    ingress: ingress.url,
    operatorToken: mintToken(secret, { role: 'operator', sub: 'local', ttlSeconds: 30 * 24 * 3600 }),
    baseDomain,
    pathPrefix: '/@',
    kvStore,
    pid: process.pid,
    updatedAt: new Date().toISOString(),
  });
  // Local development: the --app module is redeployed whenever a file it is built from changes.
  // Reloads go through the control API like `dcdn deploy`, so a tab loads each one before it is live.
  const control = { base: urls.http, token: mintToken(secret, { role: 'operator', sub: 'watch', ttlSeconds: 30 * 24 * 3600 }), pathPrefix: '/@' };
  const watcher = appFile && !values['no-watch'] ? watchApp(appFile, signal.store, control, createLog('watch', { quiet })) : null;
  let browser: Awaited<ReturnType<typeof launchHosts>> | null = null;
  try {
    if (hosts > 0) {
      browser = await launchHosts({ signalHttp: urls.http, secret, count: hosts, browserPath: values.browser as string | undefined, heapLimitMb: intFlag(values['heap-limit'], 'heap-limit', 64), log: hostLog });
    }
  } catch (err) {
    await watcher?.stop();
    await ingress.close();
    await signal.server.close();
    throw err;
  }

  await watcher?.ready;
  // Wait until the ingress has a session with every tab, so the printed URL works at once.
  const deadline = Date.now() + 30_000;
  while (ingress.pool.size < hosts && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const ready = ingress.pool.size;
  const summary = [
    '',
    `dcdn is up: ${ready}/${hosts} host tab(s) connected over ${transport}`,
    `  ingress:    ${ingress.url}    try: curl ${ingress.url}/`,
    `  health:     ${ingress.url}/_dcdn/health`,
    `  signaling:  ${signal.url}   (control API; state in ${stateFile})`,
    `  apps:       ${signal.store.manifest().map((a) => `${a.name}@${a.version}`).join(', ')}   deploy more: dcdn deploy FILE --name NAME`,
    `  host page:  ${urls.http}/host?name=extra&token=${mintToken(secret, { role: 'host', sub: 'extra', ttlSeconds: 24 * 3600 })}`,
    '              (open it in any browser on this machine to add a host; valid 24 h)',
    values['open-join'] ? `  volunteers: ${urls.http}/join   (open to anyone; apps deployed with --volunteers)` : `  volunteers: dcdn invite [--apps NAME] [--ttl 24h] prints a join link; apps need --volunteers`,
    `  kv:         ${redactSpec(kvStore)}   (dcdn kv list --app NAME --binding B)`,
    '  Ctrl-C to stop.',
    '',
  ].join('\n');
  process.stdout.write(summary + '\n');
  if (ready < hosts) ingLog('warn', 'not every host connected within 30 s; check the log above', { ready, expected: hosts });

  await onShutdown(ingLog, async () => {
    await watcher?.stop();
    await ingress.close();
    await browser?.close();
    await signal.server.close();
  });
  return 0;
}

/** How long a burst of file events settles before a rebuild (an editor's save is several). */
const RELOAD_DEBOUNCE_MS = 100;

/**
 * Rebuilds the default app when one of the files its bundle was made from changes, and deploys
 * the result unless it is byte for byte the running version.
 *
 * Only the bundle's inputs (esbuild's metafile of the last build) are watched, through their
 * folders, one non-recursive watch per folder: a big node_modules costs a watch per folder the
 * bundle actually reads, not one per file in the tree, and editors that save by renaming a temp
 * file over the original are still seen. The set is re-derived after every build. After a failed
 * build, files appearing in or leaving those folders trigger a rebuild too (the fix may be a new
 * module).
 * A build that fails, or a bundle the control plane would refuse, keeps the running version.
 */
function watchApp(file: string, store: AppStore, target: ControlTarget, log: Log): { ready: Promise<void>; stop(): Promise<void> } {
  const shown = relative(process.cwd(), file) || file;
  const watchers = new Map<string, FSWatcher>();
  let inputs = new Set<string>([file]);
  let failed = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | null = null;
  let again = false;

  const watchFolders = (files: Iterable<string>) => {
    const folders = new Set([dirname(file)]);
    for (const f of files) folders.add(dirname(f));
    for (const [folder, w] of watchers) {
      if (folders.has(folder)) continue;
      w.close();
      watchers.delete(folder);
    }
    for (const folder of folders) {
      if (watchers.has(folder)) continue;
      try {
        const w = watch(folder, (event, name) => {
          // After a failed build, a file appearing or going may be the fix (a new module, an npm
          // install); mere writes to other files (a log beside the app) are not.
          if (name === null || inputs.has(join(folder, name.toString())) || (failed && event === 'rename')) schedule();
        });
        // A folder that disappears (a package removed) is dropped; the next build re-adds what is needed.
        w.on('error', () => {
          w.close();
          if (watchers.get(folder) === w) watchers.delete(folder);
          schedule();
        });
        watchers.set(folder, w);
      } catch {
        // Gone since the build read it: the rebuild it causes will say what is missing.
      }
    }
  };

  const schedule = () => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (running) again = true;
      else running = rebuild();
    }, RELOAD_DEBOUNCE_MS);
  };

  const rebuild = async (): Promise<void> => {
    try {
      await reload();
    } finally {
      running = null;
      if (again && !stopped) {
        again = false;
        running = rebuild();
      }
    }
  };

  const active = () => store.manifest().find((a) => a.name === 'default');

  let first = true;
  const reload = async (): Promise<void> => {
    const quietIfSame = first;
    first = false;
    const started = performance.now();
    let bundle: AppBundle;
    try {
      bundle = await bundleAppWithInputs(file);
    } catch (err) {
      failed = true;
      const current = active();
      log('warn', `build failed: ${current ? `version ${current.version} keeps serving` : 'nothing deployed'}\n${buildErrorLines(err).map((l) => `  ${l}`).join('\n')}`);
      return;
    }
    failed = false;
    if (stopped) return;
    inputs = new Set(bundle.inputs);
    watchFolders(inputs);
    const sha = createHash('sha256').update(bundle.code).digest('hex');
    const current = active();
    const plain = JSON.stringify(parseAppConfig({}));
    if (current && store.code('default', current.version)?.sha256 === sha && JSON.stringify(current.config) === plain) {
      if (!quietIfSame) log('info', `${shown} unchanged: version ${current.version} keeps serving`);
      return;
    }
    try {
      const v = await deployVersion<{ version: number; size: number; check?: { status: string; host?: string } }>(target, 'PUT', '/v1/apps/default', { code: bundle.code, message: `from ${file}` });
      const checked = v.check?.status === 'ok' ? `loaded on ${v.check.host}` : 'no host checked it';
      log('info', `reloaded ${shown}: version ${v.version}`, { ms: Math.round(performance.now() - started), kib: Math.round(v.size / 1024), check: checked });
    } catch (err) {
      const e = err as Error & { code?: string };
      log('warn', `reload refused: ${e.code ? `[${e.code}] ` : ''}${e.message}${current ? `; version ${current.version} keeps serving` : ''}`);
    }
  };

  // A first build finds the inputs to watch (and deploys the file if it changed since startup).
  const ready = (running = rebuild()).then(() => {
    log('info', 'watching the app for changes', { file: shown, files: inputs.size, folders: watchers.size });
  });
  return {
    ready,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      for (const w of watchers.values()) w.close();
      watchers.clear();
      await running;
    },
  };
}
