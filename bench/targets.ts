/**
 * The end-to-end targets, each a server in its own process: the plain Node floor, workerd, and
 * dcdn over werift, node-datachannel and WebSocket with 1 and 2 host tabs.
 */
import { spawnScript, stopChild, type Child } from './children.ts';
import { startWorkerd } from './servers/workerd.ts';

export interface TargetSpec {
  key: string;
  label: string;
  kind: 'node' | 'workerd' | 'dcdn';
  transport?: 'webrtc' | 'websocket';
  rtc?: 'werift' | 'node-datachannel';
  hosts?: number;
  /** false: the ingress without Prometheus metrics (bench/observe.ts). Default on. */
  metrics?: boolean;
  /** The app's hello world is cacheable: the ingress cache answers it (bench/cached-app.ts). */
  cached?: boolean;
  /** More host page parameters (browser-host/main.ts), e.g. `sandbox=0`, for A/B measurements. */
  hostQuery?: string;
}

export const TARGETS: readonly TargetSpec[] = [
  { key: 'node', label: 'Node http (floor)', kind: 'node' },
  { key: 'workerd', label: 'workerd', kind: 'workerd' },
  // The hello world answered from the ingress's cache: a hit never reaches the tab.
  { key: 'cached', label: 'dcdn cached (ingress cache HIT)', kind: 'dcdn', transport: 'webrtc', rtc: 'werift', hosts: 1, cached: true },
  ...[1, 2].flatMap((hosts) => [
    { key: `werift-${hosts}`, label: `dcdn werift, ${hosts} tab${hosts > 1 ? 's' : ''}`, kind: 'dcdn', transport: 'webrtc', rtc: 'werift', hosts } as const,
    { key: `ndc-${hosts}`, label: `dcdn node-datachannel, ${hosts} tab${hosts > 1 ? 's' : ''}`, kind: 'dcdn', transport: 'webrtc', rtc: 'node-datachannel', hosts } as const,
    { key: `ws-${hosts}`, label: `dcdn WebSocket, ${hosts} tab${hosts > 1 ? 's' : ''}`, kind: 'dcdn', transport: 'websocket', hosts } as const,
  ]),
];

/** Targets for A/B work only (bench/waterfall-only.ts), never in a bench run. */
export const AB_TARGETS: readonly TargetSpec[] = [
  { key: 'werift-1-nosandbox', label: 'dcdn werift, 1 tab, apps in the page (sandbox=0)', kind: 'dcdn', transport: 'webrtc', rtc: 'werift', hosts: 1, hostQuery: 'sandbox=0' },
  { key: 'ws-1-nosandbox', label: 'dcdn WebSocket, 1 tab, apps in the page (sandbox=0)', kind: 'dcdn', transport: 'websocket', hosts: 1, hostQuery: 'sandbox=0' },
];

export type Target = { spec: TargetSpec } & ({ skipped: string } | { url: string; pid: number; child: Child; stop(): Promise<void>; operatorToken?: string });

/** Starts one target; a backend that cannot run here comes back as `skipped`, not as an error. */
export async function startTarget(spec: TargetSpec, options: { cpuProfDir?: string } = {}): Promise<Target> {
  if (spec.kind === 'workerd') {
    const w = await startWorkerd();
    return { spec, url: w.url, pid: w.child.proc.pid!, child: w.child, stop: () => stopChild(w.child).then(w.cleanup) };
  }
  const nodeArgs = options.cpuProfDir && spec.kind === 'dcdn' ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`, `--cpu-prof-name=ingress-${spec.key}-${Date.now()}.cpuprofile`] : [];
  const child =
    spec.kind === 'node'
      ? spawnScript(spec.key, './servers/node-http.ts', ['--exit-with-parent'])
      : spawnScript(spec.key, './servers/dcdn.ts', ['--hosts', String(spec.hosts), '--transport', spec.transport!, '--rtc', spec.rtc ?? 'werift', '--metrics', spec.metrics === false ? 'off' : 'on', ...(spec.cached ? ['--cached'] : []), ...(spec.hostQuery ? ['--host-query', spec.hostQuery] : []), '--exit-with-parent'], { nodeArgs, readyTimeoutMs: 90_000 });
  let ready: Record<string, unknown>;
  try {
    ready = await child.ready;
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  if (typeof ready.skipped === 'string') {
    await stopChild(child);
    return { spec, skipped: ready.skipped };
  }
  if (typeof ready.error === 'string') {
    await stopChild(child);
    throw new Error(`${spec.label}: ${ready.error}`);
  }
  return { spec, url: String(ready.url), pid: Number(ready.pid), child, stop: () => stopChild(child), ...(typeof ready.operatorToken === 'string' ? { operatorToken: ready.operatorToken } : {}) };
}
