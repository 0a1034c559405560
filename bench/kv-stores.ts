/**
 * KV backends side by side, in one run on one machine: get and put latency (p50, p99) of the
 * SQLite, Redis and Postgres stores for small values, each against a real server started here
 * (tools/). A program, not a test: `npx tsx bench/kv-stores.ts [ops]`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KV_LIMITS, PgKvStore, RedisKvStore, SqliteKvStore, type KvStore } from '../ingress/index.ts';
import { startPostgres } from '../tools/postgres.ts';
import { startRedis } from '../tools/redis.ts';

/** Operations of each kind per store (after a warm-up of a tenth as many). */
const OPS = Number(process.argv[2] ?? 2000);
/** Bytes per value: a typical small JSON document. */
const VALUE_BYTES = 256;
/** Distinct keys the operations cycle over. */
const KEYS = 100;

const value = new Uint8Array(VALUE_BYTES).fill(0x61);
async function* once(): AsyncGenerator<Uint8Array> {
  yield value;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(store: KvStore): Promise<{ put: number[]; get: number[] }> {
  const put: number[] = [];
  const get: number[] = [];
  for (let i = 0; i < OPS + OPS / 10; i++) {
    const key = `k${i % KEYS}`;
    let t = performance.now();
    await store.put('bench', key, once(), { maxValueBytes: KV_LIMITS.valueBytes });
    const putMs = performance.now() - t;
    t = performance.now();
    const entry = await store.get('bench', key);
    for await (const _ of entry!.chunks());
    const getMs = performance.now() - t;
    if (i >= OPS / 10) {
      put.push(putMs);
      get.push(getMs);
    }
  }
  return { put: put.sort((a, b) => a - b), get: get.sort((a, b) => a - b) };
}

const dir = mkdtempSync(join(tmpdir(), 'dcdn-kv-bench-'));
const redis = await startRedis();
const postgres = await startPostgres();
const stores: Array<[string, () => Promise<KvStore>]> = [
  ['sqlite (file, WAL)', async () => new SqliteKvStore(join(dir, 'kv.db'))],
  ['redis (unix socket)', () => RedisKvStore.connect(redis.socket)],
  ['postgres (unix socket)', () => connectWhenReady(postgres.url)],
];

const rows: string[] = [];
for (const [name, open] of stores) {
  const store = await open();
  const { put, get } = await measure(store);
  await store.close();
  rows.push(`| ${name} | ${percentile(get, 50).toFixed(3)} | ${percentile(get, 99).toFixed(3)} | ${percentile(put, 50).toFixed(3)} | ${percentile(put, 99).toFixed(3)} |`);
}
console.log(`KV stores, ${OPS} gets and puts of ${VALUE_BYTES} B values each (ms)\n`);
console.log('| store | get p50 | get p99 | put p50 | put p99 |\n|---|---|---|---|---|');
console.log(rows.join('\n'));

await redis.stop();
await postgres.stop();
rmSync(dir, { recursive: true, force: true });

/** Postgres accepts on its socket a moment before it takes queries ("starting up"). */
async function connectWhenReady(url: string): Promise<KvStore> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await PgKvStore.connect(url);
    } catch (err) {
      if (attempt >= 50) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
