/**
 * The join page's live figures in plain words: connection, apps, counters and rates. Pure
 * functions of a snapshot, so the page only copies strings into the DOM (as text, never HTML).
 * A number and its unit are joined by a no-break space, so a narrow screen never splits them.
 */
import type { RunnerStats } from './app-runner.ts';

const NBSP = '\u00a0';

/** What the page reads from its host once a second. */
export interface HostSnapshot {
  /** The name operators see (a volunteer's is `vol-`-prefixed by signaling). */
  name: string;
  /** The ID `dcdn hosts list` shows: the tab's current signaling id; null before the welcome. */
  hostId: string | null;
  signalingConnected: boolean;
  connections: ReadonlyArray<{ ingress: string; transport: string; rttMs: number | undefined }>;
  apps: ReadonlyArray<{ app: string; version: number | null; loading: boolean; error: string | null }>;
  stats: Readonly<RunnerStats>;
}

/**
 * Requests and bytes per second over the last few samples, from the differences between
 * cumulative counters (one sample a second, so a burst shows for `windowSamples` seconds).
 */
export class RateMeter {
  readonly #window: number;
  #samples: Array<{ at: number; requests: number; bytes: number }> = [];

  constructor(windowSamples = 3) {
    this.#window = windowSamples;
  }

  /** Records the counters at time `at` (ms). */
  add(at: number, requests: number, bytes: number): void {
    this.#samples.push({ at, requests, bytes });
    if (this.#samples.length > this.#window + 1) this.#samples.shift();
  }

  /** Starts over (a new host, whose counters start at zero). */
  reset(): void {
    this.#samples = [];
  }

  get rate(): { requestsPerSecond: number; bytesPerSecond: number } {
    const first = this.#samples[0];
    const last = this.#samples[this.#samples.length - 1];
    if (!first || !last || last.at <= first.at) return { requestsPerSecond: 0, bytesPerSecond: 0 };
    const seconds = (last.at - first.at) / 1000;
    return {
      requestsPerSecond: Math.max(0, last.requests - first.requests) / seconds,
      bytesPerSecond: Math.max(0, last.bytes - first.bytes) / seconds,
    };
  }
}

/** The status rows, as text. */
export interface StatusText {
  connection: string;
  /** One line per ingress this tab serves (ids shortened: they are per-connection UUIDs). */
  ingresses: string[];
  apps: string[];
  requests: string;
  traffic: string;
  rate: string;
  host: string;
}

/** Describes a snapshot (null before the first Join). */
export function statusText(s: HostSnapshot | null, rate: { requestsPerSecond: number; bytesPerSecond: number }, joined: boolean): StatusText {
  if (s === null) return { connection: 'Not joined', ingresses: [], apps: [], requests: '–', traffic: '–', rate: '–', host: '–' };
  const { stats } = s;
  return {
    connection: !joined ? 'Not joined' : s.signalingConnected ? 'Connected to signaling' : 'Not connected to signaling',
    ingresses: s.connections.map((c) => `ingress ${c.ingress.slice(0, 8)} · ${c.transport}${c.rttMs === undefined ? '' : ` · RTT${NBSP}${Math.round(c.rttMs)}${NBSP}ms`}`),
    apps: s.apps.map((a) => `${a.app}${a.version === null ? '' : ` v${a.version}`}${a.loading ? ' (loading)' : ''}${a.error ? ` (failed: ${a.error})` : ''}`),
    requests: `${stats.requests} served · ${stats.inFlight} in flight · ${stats.errors} ${stats.errors === 1 ? 'error' : 'errors'}`,
    traffic: `${formatBytes(stats.bytesIn)} in · ${formatBytes(stats.bytesOut)} out`,
    rate: `${formatNumber(rate.requestsPerSecond)}${NBSP}req/s · ${formatBytes(rate.bytesPerSecond)}/s`,
    host: `${s.name} (id${NBSP}${s.hostId === null ? '–' : s.hostId.slice(0, 8)})`,
  };
}

/** Bytes in binary units, one decimal from KiB up. */
export function formatBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return `${Math.round(n)}${NBSP}B`;
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)}${NBSP}${units[unit]}`;
}

function formatNumber(n: number): string {
  return n >= 100 ? String(Math.round(n)) : n.toFixed(1);
}

/**
 * What the volunteer's tab cannot serve, in plain words, once signaling has said what it may
 * run (`announced`; null before): each app its invite names (`app:NAME` scope items) that is
 * missing from the announcement (deployed without `--volunteers`, or not deployed), or, for an
 * invite naming no app, that nothing is open to volunteers. Empty when all is well.
 */
export function unservableApps(scope: readonly string[] | null, announced: readonly string[] | null): string[] {
  if (announced === null) return [];
  const named = (scope ?? []).filter((s) => s.startsWith('app:')).map((s) => s.slice(4));
  if (named.length === 0) return announced.length === 0 ? ['No app on this network is open to volunteers yet: there is nothing to serve.'] : [];
  return named.filter((a) => !announced.includes(a)).map((a) => `Cannot serve ${a}: the operator has not deployed it for volunteers (--volunteers).`);
}
