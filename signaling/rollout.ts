import type { AppStatus } from '../protocol/index.ts';

/** How long `dcdn deploy`, `rollback` and `secret` wait for every host by default, in ms. */
export const DEFAULT_ROLLOUT_TIMEOUT_MS = 30_000;
/** The longest one `GET /v1/apps/:name/rollout?wait=` holds its request, in ms. */
export const MAX_ROLLOUT_WAIT_MS = 120_000;

/**
 * Where one host is with a deployment:
 * - `live`: it serves the target (new requests it gets run it);
 * - `loading`: it has not switched yet (it may still serve an older version, in `serving`);
 * - `failed`: the target failed to load there (the older version keeps serving, if any).
 */
export interface HostRollout {
  host: string;
  state: 'live' | 'loading' | 'failed';
  /** The version this host serves now, if any. */
  serving: number | null;
}

/** How far a deployment (an app's active version and deployment id) has got across the hosts. */
export interface Rollout {
  app: string;
  version: number;
  sha256: string;
  /** Hosts that serve the target / hosts that are sent the app. */
  live: number;
  total: number;
  /** Every host is live or failed: waiting longer changes nothing. */
  settled: boolean;
  hosts: HostRollout[];
}

/** What one connected host last reported, and whether it is sent this app at all. */
export interface HostReport {
  host: string;
  apps: readonly AppStatus[];
}

/**
 * The rollout of `target` over `hosts` (those that are sent the app: volunteers only for the
 * apps they may run). A host's entry matches the target by deployment id when it reports one,
 * else by version (hosts of older builds).
 */
export function rolloutOf(target: { name: string; version: number; sha256: string }, hosts: readonly HostReport[]): Rollout {
  const matches = (a: AppStatus) => a.name === target.name && (a.sha256 !== undefined ? a.sha256 === target.sha256 : a.version === target.version);
  const out: HostRollout[] = hosts.map(({ host, apps }) => {
    const mine = apps.filter((a) => a.name === target.name);
    const serving = mine.find((a) => a.state === 'serving')?.version ?? null;
    if (mine.some((a) => matches(a) && a.state === 'serving')) return { host, state: 'live', serving };
    if (mine.some((a) => matches(a) && a.state === 'failed')) return { host, state: 'failed', serving };
    return { host, state: 'loading', serving };
  });
  const live = out.filter((h) => h.state === 'live').length;
  return {
    app: target.name,
    version: target.version,
    sha256: target.sha256,
    live,
    total: out.length,
    settled: out.every((h) => h.state !== 'loading'),
    hosts: out,
  };
}

/**
 * "live on 2/2 hosts", or what lags: "live on 1/2 hosts; tab-2 failed (still serving v3)".
 * For the CLI and logs.
 */
export function describeRollout(r: Pick<Rollout, 'live' | 'total' | 'hosts'>): string {
  const head = `live on ${r.live}/${r.total} host${r.total === 1 ? '' : 's'}`;
  const lagging = r.hosts.filter((h) => h.state !== 'live');
  if (lagging.length === 0) return head;
  const shown = lagging.slice(0, 10).map((h) => `${h.host} ${h.state === 'failed' ? 'failed to load it' : 'still loading'}${h.serving !== null ? ` (serving v${h.serving})` : ''}`);
  return `${head}; ${shown.join(', ')}${lagging.length > 10 ? `, and ${lagging.length - 10} more` : ''}`;
}
