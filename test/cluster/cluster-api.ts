/**
 * What the scenarios read from a running cluster, and the checks that turn a missing feature
 * into a clear failure instead of a timeout: a flag the CLI does not know, a health body without
 * the cluster's fields, a module not written yet. Every message names the feature and the
 * deliverable of issue #11 it belongs to.
 */
import { httpJson } from './http-call.ts';
import type { NsReach } from './ns-gateway.ts';

/** CLI flags of the cluster contract, and the feature each one belongs to. */
const FLAG_FEATURES: Record<string, string> = {
  '--cluster': 'cluster mode for signaling (`dcdn signal --cluster redis://…`, issue #11 deliverable 1)',
  '--control-store': 'the Postgres control store (`dcdn signal --control-store postgres://…`, deliverable 2)',
  '--cluster-name': 'cluster mode for signaling (`--cluster-name`, deliverable 1)',
  '--node-id': 'cluster mode for signaling (`--node-id`, deliverable 1)',
  '--region': 'regions for signaling and ingress (`--region`, deliverables 1 and 3)',
  '--attach': 'K-of-N placement (`dcdn signal --attach K`, deliverable 3)',
  '--peer-listen': 'ingress-to-ingress forwarding (`dcdn ingress --peer-listen`, deliverable 3)',
  '--peer-url': 'ingress-to-ingress forwarding (`dcdn ingress --peer-url`, deliverable 3)',
};

/**
 * Rewrites a process's failure to start into the missing feature it shows, when it shows one
 * (`dcdn signal: unknown option --cluster`); otherwise returns the error unchanged.
 */
export function explainStartFailure(err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  const m = /unknown option (--[\w-]+)/.exec(e.message);
  if (m) {
    const feature = FLAG_FEATURES[m[1]!] ?? `the CLI flag ${m[1]}`;
    return new Error(`MISSING FEATURE: ${feature} — the CLI answered "unknown option ${m[1]}".\n${e.message}`);
  }
  if (/postgres:\/\/|unsupported.*kv|unknown KV store/i.test(e.message) && /kv/i.test(e.message)) {
    return new Error(`MISSING FEATURE: the Postgres KV store (\`--kv-store postgres://…\`, deliverable 4).\n${e.message}`);
  }
  return e;
}

/** Fails with a MISSING FEATURE message. */
export function missing(feature: string, detail: string): never {
  throw new Error(`MISSING FEATURE: ${feature} — ${detail}`);
}

export interface HealthPeer {
  id: string;
  role: 'host' | 'ingress';
  info?: Record<string, unknown>;
  node?: string;
  region?: string;
  since?: number;
}

export interface HealthNode {
  id: string;
  region?: string;
  peers?: number;
}

export interface SignalHealth {
  ok?: boolean;
  hosts?: number;
  ingresses?: number;
  nodes?: HealthNode[];
  peers: HealthPeer[];
}

/** `GET /v1/health` of one signaling node, as the operator sees it. Null when it does not answer 200. */
export async function signalHealth(baseUrl: string, operatorToken: string, reach?: NsReach): Promise<SignalHealth | null> {
  const { status, json } = await httpJson<SignalHealth>(`${baseUrl}/v1/health`, { headers: { authorization: `Bearer ${operatorToken}` }, reach, timeoutMs: 5000 });
  return status === 200 && json ? json : null;
}

/**
 * Asserts the health body is a cluster's: `nodes` listed, peers carrying `node` and `region`.
 * Run once a cluster is up, so every scenario fails on this line, not on a timeout, until the
 * feature exists.
 */
export function assertClusterHealth(health: SignalHealth | null, where: string): asserts health is SignalHealth & { nodes: HealthNode[] } {
  if (health === null) missing('cluster health (deliverable 5)', `${where} GET /v1/health did not answer 200`);
  if (!Array.isArray(health.nodes)) missing('cluster health (`nodes` in GET /v1/health, deliverable 5)', `${where} answered ${JSON.stringify(health).slice(0, 300)}`);
  const unplaced = health.peers.filter((p) => typeof p.node !== 'string');
  if (unplaced.length > 0) missing('cluster presence (PeerInfo.node in health, deliverable 1)', `${where} lists ${unplaced.length} peer(s) without \`node\``);
}

/** Host names in one node's cluster-wide view. */
export function hostNames(health: SignalHealth): string[] {
  return health.peers.filter((p) => p.role === 'host').map((p) => String(p.info?.name ?? p.info?.hostId ?? p.id)).sort();
}

export interface IngressHealthHost {
  id: string;
  name?: string;
  transport?: string;
}

export interface IngressHealth {
  ok: boolean;
  signaling: boolean;
  apps: string[] | null;
  hosts: IngressHealthHost[];
  kv?: unknown;
}

/** `GET /_dcdn/health` of one ingress; null when it does not answer JSON. */
export async function ingressHealth(baseUrl: string, reach?: NsReach): Promise<IngressHealth | null> {
  const { json } = await httpJson<IngressHealth>(`${baseUrl}/_dcdn/health`, { reach, timeoutMs: 5000 });
  return json && Array.isArray(json.hosts) ? json : null;
}

/** Polls `probe` until it returns a non-null value; throws `message()` after `ms`. */
export async function waitFor<T>(probe: () => Promise<T | null | undefined | false>, ms: number, message: () => string, pollMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`${message()} (waited ${ms} ms)`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** The placement function of deliverable 3 (weighted rendezvous hashing), loaded if it exists (a clear failure if not). */
export type AssignFn = (hostKey: string, hostRegion: string, ingresses: Array<{ name: string; region: string; weight: number; draining: boolean }>, k: number) => string[];

/** Where the placement function may live: protocol/ (shared by signaling and ingress), or signaling/cluster/ as SCALE-OUT §3.7 first placed it. */
const PLACEMENT_MODULES = ['../../protocol/placement.ts', '../../signaling/cluster/placement.ts'];

export async function loadAssign(): Promise<AssignFn> {
  const errors: string[] = [];
  for (const path of PLACEMENT_MODULES) {
    // A variable specifier: the module may not exist yet, and the typecheck must not depend on it.
    const specifier = new URL(path, import.meta.url).href;
    try {
      const mod = (await import(/* @vite-ignore */ specifier)) as { assign?: AssignFn };
      if (typeof mod.assign === 'function') return mod.assign;
      errors.push(`${path} exports no \`assign\``);
    } catch (err) {
      errors.push(`${path}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return missing('placement (`assign()` in protocol/placement.ts, deliverable 3)', errors.join('; '));
}
