/**
 * Section 4, KV latency as a handler sees it: one host tab serving bench/kv-app.ts (binding
 * `CACHE`), with a WebRTC (werift) session to two ingresses, one per KV backend: SQLite in a
 * temp file and Redis on a unix socket (tools/redis.ts; skipped when redis-server is missing).
 * The app times each `put`, `get` and `list` with `performance.now()` inside the handler; this
 * process times a request to a handler that does nothing, over the same ingress and tab, for
 * the request latency the KV calls add to. Backends take turns within each repetition.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedis, type RedisServer } from '../tools/redis.ts';
import { spawnScript, stopChild } from './children.ts';
import { onCleanup } from './cleanup.ts';
import { progress } from './progress.ts';
import { liveStores } from './store-network-ready.ts';
import { latencySummary, round } from './stats.ts';
import { timedGet as get } from './timed-get.ts';

export interface KvConfig {
  reps: number;
  /** Sequential put+get pairs per value size per repetition (and no-op requests). */
  ops: number;
  /** Unrecorded put+get pairs per size (and no-op requests) per backend before the first repetition. */
  warmup: number;
  /** Value sizes in bytes. */
  sizes: number[];
  /** `list({ prefix, limit })` calls per repetition, over the small-value keys of that repetition. */
  listOps: number;
  listLimit: number;
}

export const KV_BACKENDS = ['sqlite', 'redis'] as const;
export type KvBackend = (typeof KV_BACKENDS)[number];
export const KV_BACKEND_LABELS: Record<KvBackend, string> = { sqlite: 'SQLite', redis: 'Redis' };

export type Latency = ReturnType<typeof latencySummary> & { mean: number | null };

export interface KvBackendRuns {
  skipped?: string;
  /** Request to `/noop` from this process and back, one summary per repetition. */
  http: Latency[];
  /** By operation (`put`, `get`, `list`) and then by value size (list: by limit), one summary per repetition. */
  ops: Record<string, Record<string, Latency[]>>;
}

export interface KvResults {
  config: KvConfig & { app: string; transport: string; redisStore: string; sqliteStore: string };
  backends: Record<KvBackend, KvBackendRuns>;
}

const APP = 'kv';
/** Operations per request to the app, so no request comes near the 30 s head timeout. */
const BATCH = 100;

export async function runKvSection(config: KvConfig): Promise<KvResults> {
  const backends = Object.fromEntries(KV_BACKENDS.map((b) => [b, { http: [], ops: {} }])) as unknown as Record<KvBackend, KvBackendRuns>;
  const results: KvResults = {
    config: { ...config, app: 'bench/kv-app.ts', transport: 'webrtc (werift), 1 tab', sqliteStore: 'sqlite: temp file (WAL, fsync on commit)', redisStore: 'redis+unix: redis-server on a unix socket, no persistence' },
    backends,
  };
  const dir = mkdtempSync(join(tmpdir(), 'dcdn-bench-kv-'));
  const unregisterDir = onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  let redis: RedisServer | undefined;
  let unregisterRedis = () => {};
  const killRedisOnExit = () => void redis?.stop();
  try {
    try {
      progress('kv: starting redis-server');
      redis = await startRedis();
      const r = redis;
      unregisterRedis = onCleanup(() => r.stop());
      process.once('exit', killRedisOnExit);
    } catch (err) {
      backends.redis.skipped = (err as Error).message.replace(/: the Redis KV tests need.*$/, '');
      progress(`kv: Redis skipped (${backends.redis.skipped})`);
    }
    const stores = [`--store`, `sqlite=sqlite:${join(dir, 'kv.db')}`, ...(redis ? ['--store', `redis=${redis.url}`] : [])];
    progress('kv: starting signaling, ingresses and a Chromium host tab');
    const child = spawnScript('kv', './servers/dcdn-kv.ts', [...stores, '--exit-with-parent'], { readyTimeoutMs: 90_000 });
    try {
      const { live, urls } = liveStores('kv', await child.ready, KV_BACKENDS, backends);
      progress(`kv: ${live.map((b) => `${KV_BACKEND_LABELS[b]} ${urls[b]}`).join(', ')}`);
      await measure(config, live, urls, backends);
    } finally {
      await stopChild(child);
    }
  } finally {
    if (redis) {
      await redis.stop();
      unregisterRedis();
      process.off('exit', killRedisOnExit);
    }
    rmSync(dir, { recursive: true, force: true });
    unregisterDir();
  }
  return results;
}

async function measure(config: KvConfig, live: KvBackend[], urls: Record<KvBackend, string>, backends: Record<KvBackend, KvBackendRuns>): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const base = (b: KvBackend) => `${urls[b]}/@${APP}`;
    // Warm up: JIT on both ends, the app's sandbox, the store's statements and connections.
    for (const b of live) {
      for (let i = 0; i < config.warmup; i++) await get(agent, `${base(b)}/noop`);
      for (const size of config.sizes) await putGet(agent, base(b), size, config.warmup, `warm:${size}:`);
      await list(agent, base(b), Math.min(config.warmup, 20), 'warm:', config.listLimit);
    }
    progress(`kv: warmed up ${live.length} backend(s)`);
    for (let rep = 0; rep < config.reps; rep++) {
      const turn = live.map((_, i) => live[(i + rep) % live.length]!);
      for (const b of turn) {
        const runs = backends[b];
        const noop: number[] = [];
        for (let i = 0; i < config.ops; i++) noop.push((await get(agent, `${base(b)}/noop`)).ms);
        runs.http.push(summary(noop));
        const line: string[] = [`http ${fmt(runs.http.at(-1)!.p50)}`];
        for (const size of config.sizes) {
          const { put, get: got } = await putGet(agent, base(b), size, config.ops, `r${rep}:${size}:`);
          push(runs, 'put', String(size), summary(put));
          push(runs, 'get', String(size), summary(got));
          line.push(`${sizeLabel(size)} put ${fmt(runs.ops.put![String(size)]!.at(-1)!.p50)} get ${fmt(runs.ops.get![String(size)]!.at(-1)!.p50)}`);
        }
        const listed = await list(agent, base(b), config.listOps, `r${rep}:${config.sizes[0]}:`, config.listLimit);
        push(runs, 'list', String(config.listLimit), summary(listed));
        line.push(`list ${fmt(runs.ops.list![String(config.listLimit)]!.at(-1)!.p50)}`);
        progress(`kv rep ${rep + 1}/${config.reps} ${KV_BACKEND_LABELS[b]}: p50 ms ${line.join(', ')}`);
      }
    }
  } finally {
    agent.destroy();
  }
}

function push(runs: KvBackendRuns, op: string, key: string, value: Latency): void {
  ((runs.ops[op] ??= {})[key] ??= []).push(value);
}

function summary(samples: number[]): Latency {
  const s = latencySummary(samples);
  const mean = samples.length ? samples.reduce((a, x) => a + x, 0) / samples.length : null;
  return { p50: round(s.p50), p90: round(s.p90), p99: round(s.p99), n: s.n, mean: round(mean) };
}

const fmt = (v: number | null) => (v === null ? '-' : v.toFixed(2));

export function sizeLabel(size: number): string {
  return size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
}

/** `n` put+get pairs of fresh keys `prefix<i>`, in requests of at most BATCH pairs. */
async function putGet(agent: Agent, base: string, size: number, n: number, prefix: string): Promise<{ put: number[]; get: number[] }> {
  const put: number[] = [];
  const got: number[] = [];
  for (let done = 0; done < n; done += BATCH) {
    const count = Math.min(BATCH, n - done);
    const r = await get(agent, `${base}/putget?size=${size}&n=${count}&prefix=${encodeURIComponent(`${prefix}${done}:`)}`);
    const body = JSON.parse(r.body) as { put: number[]; get: number[] };
    put.push(...body.put);
    got.push(...body.get);
  }
  return { put, get: got };
}

async function list(agent: Agent, base: string, n: number, prefix: string, limit: number): Promise<number[]> {
  const out: number[] = [];
  for (let done = 0; done < n; done += BATCH) {
    const count = Math.min(BATCH, n - done);
    const r = await get(agent, `${base}/list?n=${count}&limit=${limit}&prefix=${encodeURIComponent(prefix)}`);
    const body = JSON.parse(r.body) as { list: number[]; keys: number };
    if (body.keys === 0) throw new Error(`kv: list of ${prefix} returned no keys`);
    out.push(...body.list);
  }
  return out;
}
