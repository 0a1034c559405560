import { intFlag, UsageError } from './args.ts';
import { RTC_BACKENDS, type RtcBackend } from '../ingress/index.ts';
import { mintToken, type AppStore } from '../signaling/index.ts';
import { control as deployVersion, type ControlTarget } from './app-commands.ts';
import { parseAppConfig } from '../protocol/index.ts';
import { createLog, createLogger } from './log.ts';
import { logOptionsFromFlags } from './log-flags.ts';
import { listening } from './listen-error.ts';
import { trapShutdown } from './shutdown.ts';
import { DEV_APP_MESSAGE, launchHosts, newSecret, redactSpec, signalUrls, startIngress, startSignal } from '../node/index.ts';
import { describeDefaultApp } from './default-app.ts';
import { clearState, stateDir, writeState } from './state.ts';
import { iceConfigFromFlags } from './ice-flags.ts';
import { trafficOptionsFromFlags } from './traffic-flags.ts';
import { sqlOptionsFromFlags } from './sql-flags.ts';
import { metricsOptionsFromFlags, otlpOptionsFromFlags, timingOptionsFromFlags } from './metrics-flags.ts';
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { bundleAppWithInputs, type AppBundle } from '../browser-host/index.ts';
import { buildErrorLines } from './bundle.ts';
import type { Log } from './log.ts';
import { upFlags } from './command-flags.ts';

export { upDescription, upFlags, upUsage } from './command-flags.ts';

/**
 * `dcdn up`: signaling, an ingress and Chromium host tabs in this process. Each part that fails
 * to start stops the ones started before it (nothing is left listening), and a port in use is
 * reported with the part and the flag that moves it. The first SIGINT/SIGTERM drains: the
 * ingress takes no new requests and lets those in flight finish within --shutdown-grace, then
 * the tabs and signaling stop and the command exits 0; a second signal exits at once.
 */
export async function up(values: Record<keyof typeof upFlags, unknown>): Promise<number> {
  const logOptions = logOptionsFromFlags(values);
  const root = createLogger({ ...logOptions, level: values.quiet === true && values['log-level'] === undefined ? 'warn' : logOptions.level });
  const port = intFlag(values.port, 'port');
  const signalPort = intFlag(values['signal-port'], 'signal-port');
  const hosts = intFlag(values.hosts, 'hosts');
  const shutdownGraceMs = intFlag(values['shutdown-grace'], 'shutdown-grace');
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
  const otlp = otlpOptionsFromFlags(values);
  const timing = timingOptionsFromFlags(values);
  const secret = process.env.DCDN_SECRET ?? newSecret();
  const sigLog = createLog('signal', root);
  const ingLog = createLog('ingress', root);
  const hostLog = createLog('hosts', root);
  const upLog = createLog('up', root);
  const shutdown = trapShutdown(upLog);

  const appFile = values.app === undefined ? undefined : resolve(String(values.app));
  const baseDomain = String(values['base-domain']);
  // What has started, stopped in reverse order on a failed start or on shutdown.
  const started: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of started.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        upLog('error', 'stopping a part failed', { err: (err as Error).message });
      }
    }
  };
  try {
    const signal = await listening('signaling', '--signal-port', () =>
      startSignal({
        secret,
        port: signalPort,
        host: listenHost,
        app: appFile,
        db: join(stateDir(), 'apps.db'),
        ...(ice ? { ice } : {}),
        openJoin: values['open-join'] === true,
        inviteGraceMs: intFlag(values['invite-grace'], 'invite-grace', 0),
        ...(metrics.metricsToken ? { metricsToken: metrics.metricsToken } : {}),
        logger: sigLog.pino,
        log: sigLog,
      }),
    );
    started.push(() => signal.server.close());
    // dcdn up always keeps its apps in SQLite ($DCDN_HOME/apps.db): one machine, no service.
    const appStore = signal.store;
    if (!appStore) throw new Error('dcdn up runs on a SQLite control store');
    const urls = signalUrls(signal.url);
    const kvStore = (values['kv-store'] as string | undefined) ?? process.env.DCDN_KV_STORE ?? `sqlite:${join(stateDir(), 'kv.db')}`;
    const sql = sqlOptionsFromFlags(values, stateDir());
    const ingress = await listening('ingress', '--port', () =>
      startIngress({
        secret,
        signalUrl: urls.ws,
        port,
        host: listenHost,
        name: 'ingress-1',
        transport,
        rtcBackend,
        ...trafficOptionsFromFlags(values),
        shutdownGraceMs,
        routing: { baseDomain },
        kvStore,
        kvLimits: { minTtlSeconds: intFlag(values['kv-min-ttl'], 'kv-min-ttl', 1) },
        ...sql,
        ...metrics,
        ...otlp,
        ...timing,
        log: ingLog,
      }),
      metrics.metricsListen,
    );
    const stopIngress = () => ingress.close();
    started.push(stopIngress);
    const stateFile = writeState({
      signal: signal.url,
      ingress: ingress.url,
      operatorToken: mintToken(secret, { role: 'operator', sub: 'local', ttlSeconds: 30 * 24 * 3600 }),
      baseDomain,
      pathPrefix: '/@',
      kvStore,
      sqlStore: sql.sqlStore,
      pid: process.pid,
      updatedAt: new Date().toISOString(),
    });
    // Commands run after this one stops say "no dcdn up is running" instead of trying it.
    started.unshift(async () => clearState(process.pid));
    // Local development: the --app module is redeployed whenever a file it is built from changes.
    // Reloads go through the control API like `dcdn deploy`, so a tab loads each one before it is live.
    const control = { base: urls.http, token: mintToken(secret, { role: 'operator', sub: 'watch', ttlSeconds: 30 * 24 * 3600 }), pathPrefix: '/@' };
    const watcher = appFile && !values['no-watch'] ? watchApp(appFile, appStore, control, createLog('watch', root)) : null;
    if (watcher) started.push(() => watcher.stop());
    if (hosts > 0) {
      const browser = await launchHosts({ signalHttp: urls.http, secret, count: hosts, browserPath: values.browser as string | undefined, heapLimitMb: intFlag(values['heap-limit'], 'heap-limit', 64), log: hostLog });
      // Closed after the ingress has drained: in-flight requests need their tabs.
      started.splice(started.indexOf(stopIngress), 0, () => browser.close());
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
      `  serving:    ${describeDefaultApp(appStore)}`,
      `  health:     ${ingress.url}/_dcdn/health`,
      `  signaling:  ${signal.url}   (control API; state in ${stateFile})`,
      `  apps:       ${appStore.manifest().map((a) => `${a.name}@${a.version}`).join(', ')}   deploy more: dcdn deploy FILE --name NAME`,
      `  host page:  ${urls.http}/host?name=extra&token=${mintToken(secret, { role: 'host', sub: 'extra', ttlSeconds: 24 * 3600 })}`,
      '              (open it in any browser on this machine to add a host; valid 24 h)',
      values['open-join'] ? `  volunteers: ${urls.http}/join   (open to anyone; apps deployed with --volunteers)` : `  volunteers: dcdn invite [--apps NAME] [--ttl 24h] prints a join link; apps need --volunteers`,
      `  kv:         ${redactSpec(kvStore)}   (dcdn kv list --app NAME --binding B)`,
      `  sql:        ${redactSpec(sql.sqlStore)}   (dcdn sql APP --binding B "SELECT …")`,
      '  Ctrl-C to stop (requests in flight finish first; Ctrl-C again to stop at once).',
      '',
    ].join('\n');
    process.stdout.write(summary + '\n');
    if (ready < hosts) ingLog('warn', 'not every host connected within 30 s; check the log above', { ready, expected: hosts });
  } catch (err) {
    await stopAll();
    throw err;
  }
  await shutdown.untilStopped(stopAll);
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
      const v = await deployVersion<{ version: number; size: number; check?: { status: string; host?: string } }>(target, 'PUT', '/v1/apps/default', { code: bundle.code, message: `${DEV_APP_MESSAGE}${file}` });
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
