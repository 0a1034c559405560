/**
 * A bounded GET loop: the traffic the cluster scenarios keep up while they break things. Rate
 * and duration are capped ({@link LOAD_MAX_RATE}, {@link LOAD_MAX_DURATION_MS}) and targets must
 * be loopback or test-namespace addresses, so a mistake cannot turn a test into a load generator
 * against anything else. Each request records its status, `dcdn-error`, `dcdn-host`, `dcdn-via`,
 * `dcdn-transport` and whether its head had arrived before a failure.
 */
import { httpCall, type HttpResult } from './http-call.ts';
import type { NsReach } from './ns-gateway.ts';
import { KV_ERROR_HEADER } from './echo-hosts.ts';

export const LOAD_MAX_RATE = 100;
export const LOAD_MAX_DURATION_MS = 60_000;
/** Requests in flight beyond which a tick is skipped (and counted), so a stalled target cannot pile up sockets. */
export const LOAD_MAX_IN_FLIGHT = 200;
/** Per-request bound. */
export const LOAD_REQUEST_TIMEOUT_MS = 10_000;

export interface LoadRecord {
  /** ms since the load started. */
  at: number;
  url: string;
  status: number;
  error: string | null;
  host: string | null;
  via: string | null;
  transport: string | null;
  headArrived: boolean;
  complete: boolean;
  failure: string | null;
  ms: number;
}

export interface LoadOptions {
  /** Targets, used in turn. */
  urls: string[];
  ratePerSecond: number;
  durationMs: number;
  reach?: NsReach;
  headers?: Record<string, string>;
  /** Whether a response counts as a success. Default: status 200 and complete. */
  ok?: (r: LoadRecord) => boolean;
}

export interface LoadSummary {
  total: number;
  ok: number;
  failed: number;
  /** Failures whose head had not arrived (a retryable request that was lost). */
  failedBeforeHead: number;
  /** Failures after the head (cut mid-body). */
  cutAfterHead: number;
  skipped: number;
  byStatus: Record<string, number>;
  byError: Record<string, number>;
  byHost: Record<string, number>;
  byVia: Record<string, number>;
  /** The first failures, for the assertion message. */
  firstFailures: LoadRecord[];
}

export interface Load {
  readonly records: LoadRecord[];
  /** `performance.now()` when it started: `at` of records counts from here. */
  readonly startedAt: number;
  /** ms since the start, for marking events (a kill) on the records' time line. */
  elapsed(): number;
  /** Resolves when the duration is over and every request has settled. */
  readonly done: Promise<LoadSummary>;
  /** Ends the loop early (requests in flight still settle). */
  stop(): void;
  summary(): LoadSummary;
}

const ALLOWED_HOST = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]|::1|10\.203\.0\.[0-3])$/;

function assertTestAddress(url: string): void {
  const host = new URL(url).hostname;
  if (!ALLOWED_HOST.test(host)) throw new Error(`load targets loopback and the test namespaces only, not ${host}`);
}

export function isOk(r: LoadRecord): boolean {
  return r.status === 200 && r.complete;
}

export function summarize(records: LoadRecord[], skipped = 0, ok: (r: LoadRecord) => boolean = isOk): LoadSummary {
  const count = (into: Record<string, number>, key: string | null) => {
    if (key !== null) into[key] = (into[key] ?? 0) + 1;
  };
  const s: LoadSummary = { total: records.length, ok: 0, failed: 0, failedBeforeHead: 0, cutAfterHead: 0, skipped, byStatus: {}, byError: {}, byHost: {}, byVia: {}, firstFailures: [] };
  for (const r of records) {
    count(s.byStatus, String(r.status));
    count(s.byError, r.error);
    count(s.byHost, r.host);
    count(s.byVia, r.via);
    if (ok(r)) s.ok++;
    else {
      s.failed++;
      if (r.headArrived && r.status === 200) s.cutAfterHead++;
      else s.failedBeforeHead++;
      if (s.firstFailures.length < 10) s.firstFailures.push(r);
    }
  }
  return s;
}

/** Requests that were in flight at `atMs` (on the load's time line). */
export function inFlightAt(records: LoadRecord[], atMs: number): number {
  return records.filter((r) => r.at <= atMs && r.at + r.ms >= atMs).length;
}

/** One line for an assertion message. */
export function describeLoad(s: LoadSummary): string {
  const fails = s.firstFailures.map((r) => `${r.url} → ${r.status} ${r.error ?? ''} ${r.failure ?? ''} at ${Math.round(r.at)} ms`).join('; ');
  return `${s.ok}/${s.total} ok, ${s.failed} failed (${s.failedBeforeHead} before head, ${s.cutAfterHead} cut after), ${s.skipped} skipped; errors ${JSON.stringify(s.byError)}; first failures: ${fails || 'none'}`;
}

function header(r: HttpResult, name: string): string | null {
  const v = r.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v.join(',') : v;
}

/** Starts the loop at once. */
export function startLoad(options: LoadOptions): Load {
  if (options.urls.length === 0) throw new Error('load needs at least one URL');
  options.urls.forEach(assertTestAddress);
  const rate = Math.min(options.ratePerSecond, LOAD_MAX_RATE);
  const duration = Math.min(options.durationMs, LOAD_MAX_DURATION_MS);
  const records: LoadRecord[] = [];
  const pending = new Set<Promise<void>>();
  let skipped = 0;
  let stopped = false;
  let i = 0;
  const started = performance.now();
  const intervalMs = 1000 / rate;

  const fire = () => {
    if (pending.size >= LOAD_MAX_IN_FLIGHT) {
      skipped++;
      return;
    }
    const url = options.urls[i++ % options.urls.length]!;
    const at = performance.now() - started;
    const p = httpCall(url, { reach: options.reach, headers: options.headers, timeoutMs: LOAD_REQUEST_TIMEOUT_MS }).then((r) => {
      records.push({
        at,
        url,
        status: r.status,
        // The ingress's code, else the one an echo host relays from a failed KV read.
        error: header(r, 'dcdn-error') ?? header(r, KV_ERROR_HEADER),
        host: header(r, 'dcdn-host'),
        via: header(r, 'dcdn-via'),
        transport: header(r, 'dcdn-transport'),
        headArrived: r.headArrived,
        complete: r.complete,
        failure: r.failure,
        ms: r.ms,
      });
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  const done = (async () => {
    // Scheduled by the clock, not by setInterval's drift: request n goes at n × interval.
    let n = 0;
    while (!stopped) {
      const elapsed = performance.now() - started;
      if (elapsed >= duration) break;
      const due = Math.floor(elapsed / intervalMs) + 1;
      while (n < due) {
        fire();
        n++;
      }
      await new Promise((r) => setTimeout(r, Math.max(1, intervalMs - ((performance.now() - started) % intervalMs))));
    }
    await Promise.all([...pending]);
    return summarize(records, skipped, options.ok);
  })();

  return {
    records,
    startedAt: started,
    elapsed: () => performance.now() - started,
    done,
    stop: () => void (stopped = true),
    summary: () => summarize(records, skipped, options.ok),
  };
}
