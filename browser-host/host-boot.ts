/**
 * Builds a tab's host (registry, runner, agent) the same way for every page that serves apps:
 * the operators' host page (main.ts) and the volunteers' join page (join.ts).
 */
import { AppRegistry, type AppRef } from './app-registry.ts';
import type { AppSource, KvRouter } from './app-runtime.ts';
import { sessionKvTransport } from './kv/session-transport.ts';
import { AppRunner } from './app-runner.ts';
import { HostAgent, type PcBudget } from './host-agent.ts';
import { createModuleRuntime } from './module-runtime.ts';
import { sandboxRuntimes, type SandboxLimits } from './sandbox/index.ts';
import { installResponseShim } from './web-compat.ts';

export interface HostBootOptions {
  /** A host token: it joins signaling and fetches the apps' code from the control plane. */
  token: string;
  /** Shown to operators (`dcdn-host` header, health). */
  name: string;
  /** Signaling WebSocket URL. Default this origin's `/v1/signal`. */
  signalUrl?: string;
  /** Per-request limits of the sandbox. Default {@link DEFAULT_LIMITS}. */
  limits?: Partial<SandboxLimits>;
  /** False runs apps in the page itself: no isolation, for measurements only. Default true. */
  sandbox?: boolean;
  log: (line: string) => void;
  /** The tab's stable id; default a fresh one per page load. */
  hostId?: string;
  /** Called when the connection state or the loaded apps change. */
  onchange?: () => void;
  /** Chrome's peer-connection budget; default the agent's. */
  pcBudget?: Partial<PcBudget>;
}

/** Per-request limits of a host tab unless its page says otherwise. */
export const DEFAULT_LIMITS: Readonly<Required<Pick<SandboxLimits, 'wallMs' | 'cpuMs'>>> = { wallMs: 30_000, cpuMs: 5_000 };

/** A tab's host, not yet started. */
export interface BootedHost {
  agent: HostAgent;
  runner: AppRunner;
  registry: AppRegistry;
  /**
   * The apps signaling last said this tab may run (a volunteer hears only of those its invite
   * and their deploys allow); null until it said anything.
   */
  readonly announcedApps: string[] | null;
  /** Leaves signaling, ends every session and unloads the apps. */
  stop(): void;
}

/**
 * Creates the host parts and wires them; call `agent.start()` to join. The apps come from the
 * control plane on the page's own origin, as signaling announces them.
 *
 * @example
 * ```ts
 * const host = bootHost({ token, name: 'tab-1', log: console.log, onchange: render });
 * host.agent.start();
 * // later
 * host.stop();
 * ```
 */
export function bootHost(options: HostBootOptions): BootedHost {
  const { token, log } = options;
  installResponseShim();
  // KV calls go back over the session of the request that made them, else over any (docs/kv.md).
  let agent: HostAgent | null = null;
  const kv = (app: string): KvRouter => (call, via) => sessionKvTransport(app, () => (via?.isOpen ? via : (agent?.kvSession() ?? null)))(call);
  const createRuntime =
    options.sandbox === false
      ? (source: AppSource) => createModuleRuntime(source, log, kv)
      : sandboxRuntimes({ limits: options.limits ?? DEFAULT_LIMITS, log, kv });
  // What the tab has loaded goes to signaling at most every 100 ms (it shows in `dcdn apps`).
  let reportTimer: ReturnType<typeof setTimeout> | null = null;
  const reportApps = () => {
    reportTimer ??= setTimeout(() => {
      reportTimer = null;
      agent?.reportApps(registry.report());
    }, 100);
  };
  const registry = new AppRegistry({ loadSource: (ref) => loadSource(ref, token), createRuntime, log, onchange: reportApps });
  const runner = new AppRunner(registry, log);
  agent = new HostAgent({
    signalUrl: options.signalUrl ?? defaultSignalUrl(),
    token,
    name: options.name,
    runner,
    log,
    ...(options.hostId ? { hostId: options.hostId } : {}),
    ...(options.pcBudget ? { pcBudget: options.pcBudget } : {}),
  });
  agent.onchange = () => options.onchange?.();
  let announced: string[] | null = null;
  agent.onapps = (apps) => {
    announced = apps.map((a) => a.name);
    registry.update(apps);
    options.onchange?.();
  };
  agent.oncheck = (check) => {
    void checkCandidate(check.id, token, createRuntime).then(({ ok, error, ms }) => {
      log(`check of ${check.app} (a deploy): ${ok ? `loaded in ${Math.round(ms)} ms` : `failed: ${error}`}`);
      agent?.checked(check.id, ok, error, ms);
    });
  };
  return {
    agent,
    runner,
    registry,
    get announcedApps() {
      return announced;
    },
    stop() {
      agent.stop();
      registry.close();
      options.onchange?.();
    },
  };
}

/** This origin's signaling endpoint. */
export function defaultSignalUrl(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/signal`;
}

/**
 * Loads a deploy's candidate the way a live version would be loaded (same runtime, same
 * sandbox), then unloads it: whether it loads is what `dcdn deploy` waits for.
 */
async function checkCandidate(id: string, token: string, createRuntime: (source: AppSource) => Promise<{ close(): void }>): Promise<{ ok: boolean; error: string; ms: number }> {
  const started = performance.now();
  try {
    const res = await fetch(`/v1/checks/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`fetching the candidate: HTTP ${res.status}`);
    const candidate = (await res.json()) as { app: string; code: string; env: Record<string, unknown>; kv: string[] };
    const runtime = await createRuntime({ app: candidate.app, version: 0, code: candidate.code, env: candidate.env, kv: candidate.kv });
    runtime.close();
    return { ok: true, error: '', ms: performance.now() - started };
  } catch (err) {
    return { ok: false, error: (err as Error)?.message ?? String(err), ms: performance.now() - started };
  }
}

/** Fetches a version's code (cached by the browser: versions never change) and its env. */
async function loadSource(ref: AppRef, token: string): Promise<AppSource> {
  const auth = { headers: { authorization: `Bearer ${token}` } };
  const base = `/v1/apps/${encodeURIComponent(ref.name)}`;
  const [code, env] = await Promise.all([
    fetch(`${base}/versions/${ref.version}/code`, auth).then((r) => (r.ok ? r.text() : Promise.reject(new Error(`code: HTTP ${r.status}`)))),
    fetch(`${base}/env`, auth).then((r) => (r.ok ? (r.json() as Promise<{ env: Record<string, string> }>) : Promise.reject(new Error(`env: HTTP ${r.status}`)))),
  ]);
  // Plain vars travel with the version (volunteers get them too); secrets only from /env.
  return { app: ref.name, version: ref.version, code, env: { ...ref.config?.vars, ...env.env }, kv: ref.config?.kv ?? [], sql: ref.config?.sql ?? [] };
}
