/**
 * The sql section: SQL latency as a handler sees it. One host tab serving bench/sql-app.ts
 * (binding `DB`) with a WebRTC (werift) session to two ingresses, one per SQL store: embedded
 * PGlite in a temp directory, and a real Postgres (tools/postgres.ts; skipped when it is not
 * installed). The app times each call inside the handler; this process times a request to a
 * handler that does nothing, over the same ingress and tab. Stores take turns within each
 * repetition.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres, type PostgresServer } from '../tools/postgres.ts';
import { spawnScript, stopChild } from './children.ts';
import { onCleanup } from './cleanup.ts';
import { progress } from './progress.ts';
import { liveStores } from './store-network-ready.ts';
import { latencySummary, round } from './stats.ts';
import { timedGet as get } from './timed-get.ts';

export interface SqlConfig {
  reps: number;
  /** Calls of each kind per repetition (and no-op requests). */
  ops: number;
  warmup: number;
}

export const SQL_STORES = ['embedded', 'postgres'] as const;
export type SqlStoreKind = (typeof SQL_STORES)[number];
const LABELS: Record<SqlStoreKind, string> = { embedded: 'embedded (PGlite)', postgres: 'Postgres' };
export const SQL_OPS = ['point', 'insert', 'select100', 'batch10'] as const;
const OP_LABELS: Record<(typeof SQL_OPS)[number], string> = { point: 'point select', insert: 'insert', select100: '100-row select', batch10: '10-statement batch' };

type Latency = ReturnType<typeof latencySummary>;

export interface SqlResults {
  config: SqlConfig & { app: string; transport: string };
  stores: Record<SqlStoreKind, { skipped?: string; http: Latency[]; ops: Record<string, Latency[]> }>;
}

const APP = 'sql';
const BATCH = 100;

export async function runSqlSection(config: SqlConfig): Promise<SqlResults> {
  const stores = Object.fromEntries(SQL_STORES.map((s) => [s, { http: [], ops: {} }])) as unknown as SqlResults['stores'];
  const results: SqlResults = { config: { ...config, app: 'bench/sql-app.ts', transport: 'webrtc (werift), 1 tab' }, stores };
  const dir = mkdtempSync(join(tmpdir(), 'dcdn-bench-sql-'));
  const unregisterDir = onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  let pg: PostgresServer | undefined;
  let unregisterPg = () => {};
  try {
    try {
      progress('sql: starting postgres');
      pg = await startPostgres();
      const p = pg;
      unregisterPg = onCleanup(() => p.stop());
    } catch (err) {
      stores.postgres.skipped = (err as Error).message;
      progress(`sql: Postgres skipped (${stores.postgres.skipped})`);
    }
    const specs = ['--store', `embedded=pglite:${join(dir, 'sql')}`, ...(pg ? ['--store', `postgres=${pg.url}`] : [])];
    progress('sql: starting signaling, ingresses and a Chromium host tab');
    const child = spawnScript('sql', './servers/dcdn-sql.ts', [...specs, '--exit-with-parent'], { readyTimeoutMs: 120_000 });
    try {
      const { live, urls } = liveStores('sql', await child.ready, SQL_STORES, stores);
      await measure(config, live, urls, stores);
    } finally {
      await stopChild(child);
    }
  } finally {
    await pg?.stop();
    unregisterPg();
    rmSync(dir, { recursive: true, force: true });
    unregisterDir();
  }
  return results;
}

async function measure(config: SqlConfig, live: SqlStoreKind[], urls: Record<SqlStoreKind, string>, stores: SqlResults['stores']): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const base = (s: SqlStoreKind) => `${urls[s]}/@${APP}`;
    for (const s of live) {
      // The first call opens the database (PGlite: initdb, seconds): not part of any figure.
      await get(agent, `${base(s)}/setup`, 300_000);
      for (let i = 0; i < config.warmup; i++) await get(agent, `${base(s)}/noop`);
      for (const op of SQL_OPS) await calls(agent, base(s), op, config.warmup);
    }
    progress(`sql: warmed up ${live.length} store(s)`);
    for (let rep = 0; rep < config.reps; rep++) {
      for (const s of live.map((_, i) => live[(i + rep) % live.length]!)) {
        const noop: number[] = [];
        for (let i = 0; i < config.ops; i++) noop.push((await get(agent, `${base(s)}/noop`)).ms);
        stores[s].http.push(summary(noop));
        const line = [`no-op ${fmt(stores[s].http.at(-1)!.p50)}`];
        for (const op of SQL_OPS) {
          (stores[s].ops[op] ??= []).push(summary(await calls(agent, base(s), op, config.ops)));
          line.push(`${op} ${fmt(stores[s].ops[op]!.at(-1)!.p50)}`);
        }
        progress(`sql rep ${rep + 1}/${config.reps} ${LABELS[s]}: p50 ms ${line.join(', ')}`);
      }
    }
  } finally {
    agent.destroy();
  }
}

/** The table `dcdn bench` prints: medians over repetitions of each repetition's p50 and p99. */
export function renderSqlTable(r: SqlResults): string {
  const med = (xs: Array<number | null>) => {
    const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
    return v.length ? v[Math.floor(v.length / 2)]! : null;
  };
  const rows = [`SQL from a handler (${r.config.transport}; ms, median of ${r.config.reps} repetitions)`, '| store | call | p50 | p99 | p50 / no-op request p50 |', '|---|---|---|---|---|'];
  for (const s of SQL_STORES) {
    const runs = r.stores[s];
    if (runs.skipped) {
      rows.push(`| ${LABELS[s]} | skipped: ${runs.skipped.slice(0, 80)} | | | |`);
      continue;
    }
    const noop = med(runs.http.map((l) => l.p50));
    rows.push(`| ${LABELS[s]} | no-op request (from the client) | ${fmt(noop)} | ${fmt(med(runs.http.map((l) => l.p99)))} | |`);
    for (const op of SQL_OPS) {
      const p50 = med((runs.ops[op] ?? []).map((l) => l.p50));
      rows.push(`| ${LABELS[s]} | ${OP_LABELS[op]} | ${fmt(p50)} | ${fmt(med((runs.ops[op] ?? []).map((l) => l.p99)))} | ${p50 !== null && noop !== null ? fmt(p50 / noop) + '×' : '-'} |`);
    }
  }
  return rows.join('\n');
}

function summary(samples: number[]): Latency {
  const s = latencySummary(samples);
  return { ...s, p50: round(s.p50), p90: round(s.p90), p99: round(s.p99) };
}

const fmt = (v: number | null) => (v === null ? '-' : v.toFixed(2));

async function calls(agent: Agent, base: string, op: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let done = 0; done < n; done += BATCH) {
    const r = await get(agent, `${base}/run?op=${op}&n=${Math.min(BATCH, n - done)}`);
    out.push(...(JSON.parse(r.body) as { ms: number[] }).ms);
  }
  return out;
}
