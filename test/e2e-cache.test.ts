/**
 * The ingress cache end to end: a real handler in a real Chromium tab, deployed with the real
 * `dcdn deploy`, counting its own runs in a module global (test/fixtures/cache-app.ts); the
 * counts it reports are the proof that a hit never reached the tab.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { disconnectBrowser } from './browser.ts';
import { runDcdn } from './cli.ts';
import { startNetwork, until, type Network } from './network.ts';
import { httpReply, type Reply } from './http-reply.ts';

const CACHE_APP = fileURLToPath(new URL('./fixtures/cache-app.ts', import.meta.url));
const CACHE_SIZE = 1024 * 1024;

let net: Network;
let ingress: Ingress;
let env: NodeJS.ProcessEnv;
const work = mkdtempSync(join(tmpdir(), 'dcdn-cache-e2e-'));

beforeAll(async () => {
  net = await startNetwork();
  // Operator tokens of this network open /_dcdn/cache/purge (dcdn cache purge mints one from DCDN_SECRET).
  ingress = await net.addIngress({ transport: 'websocket', cache: { maxBytes: CACHE_SIZE, maxEntryBytes: 256 * 1024 }, authorizeOperator: net.isOperator });
  await net.addTab('cache-a');
  await until(() => ingress.pool.size === 1, 20_000, 'host');
  env = { ...process.env, DCDN_HOME: work, DCDN_SIGNAL: net.urls.http, DCDN_SECRET: net.secret };
  await deploy('v1');
}, 90_000);

afterAll(async () => {
  await net?.close();
  await disconnectBrowser();
  rmSync(work, { recursive: true, force: true });
});

/** Deploys `cacheApp(label)` as `cached` with the real CLI, and waits until the ingress serves it. */
async function deploy(label: string): Promise<void> {
  const file = join(work, `cached-${label}.ts`);
  writeFileSync(file, `import { cacheApp } from ${JSON.stringify(CACHE_APP)};\nexport default cacheApp(${JSON.stringify(label)});\n`);
  const r = await runDcdn(env, ['deploy', file, '--name', 'cached'], { timeoutMs: 60_000 });
  expect(r.code, r.stderr).toBe(0);
}

function get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return httpReply(`${ingress.url}/@cached${path}`, headers);
}

const text = async (path: string, headers?: Record<string, string>) => (await get(path, headers)).body.toString();
const runs = async (path: string) => Number(await text(`/count?k=${encodeURIComponent(path)}`));

describe('the ingress cache in front of a handler in Chromium', () => {
  it('runs a handler answering public, max-age=60 once for 1000 requests', async () => {
    const labels: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      for (const r of await Promise.all(Array.from({ length: 50 }, () => get('/public')))) {
        expect(r.body.toString()).toBe('v1 hello');
        const label = String(r.headers['dcdn-cache']);
        labels[label] = (labels[label] ?? 0) + 1;
      }
    }
    expect(await runs('/public')).toBe(1);
    expect(labels.HIT).toBeGreaterThanOrEqual(999);
  });

  it('keeps Vary variants apart', async () => {
    for (let i = 0; i < 3; i++) {
      expect(await text('/vary', { 'accept-language': 'fr' })).toBe('lang fr');
      expect(await text('/vary', { 'accept-language': 'de' })).toBe('lang de');
    }
    expect(await runs('/vary')).toBe(2);
  });

  it('never answers no-store or private responses from memory', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await get('/no-store')).headers['dcdn-cache']).toBe('MISS');
      expect((await get('/private')).headers['dcdn-cache']).toBe('MISS');
    }
    expect([await runs('/no-store'), await runs('/private')]).toEqual([5, 5]);
  });

  it('runs one handler for N concurrent misses of one URL', async () => {
    const before = ingress.cache.stats.coalesced;
    const replies = Promise.all(Array.from({ length: 30 }, () => get('/slow')));
    await until(() => ingress.cache.stats.coalesced - before === 29, 15_000, 'followers waiting');
    await get('/release');
    for (const r of await replies) expect(r.body.toString()).toBe('slow');
    expect(await runs('/slow')).toBe(1);
  });

  it('serves a stale-while-revalidate answer stale while exactly one revalidation runs', async () => {
    expect((await get('/swr')).headers['dcdn-cache']).toBe('MISS');
    for (const r of await Promise.all(Array.from({ length: 20 }, () => get('/swr')))) expect([r.body.toString(), r.headers['dcdn-cache']]).toEqual(['swr 1', 'STALE']);
    // The revalidation reached the handler and waits there for /release.
    await until(() => ingress.cache.stats.revalidations >= 1);
    for (const r of await Promise.all(Array.from({ length: 20 }, () => get('/swr')))) expect(r.headers['dcdn-cache']).toBe('STALE');
    expect(await runs('/swr')).toBe(2);
    const stores = ingress.cache.stats.stores;
    await get('/release');
    await until(() => ingress.cache.stats.stores > stores, 15_000, 'the revalidated answer stored');
    expect(await text('/swr')).toBe('swr 2');
  });

  it("gives handlers caches.default and caches.open with Workers' refusals", async () => {
    expect(await text('/api?op=match')).toBe('miss');
    expect(await text('/api?op=put')).toBe('put');
    expect(await text('/api?op=match')).toBe('hit 200 yes stored body');
    expect(await text('/api?op=named')).toBe('miss named body');
    expect(await text('/api?op=delete')).toBe('true');
    expect(await text('/api?op=match')).toBe('miss');
    expect(await text('/api?op=delete')).toBe('false');
    expect(JSON.parse(await text('/api?op=refusals'))).toEqual({
      putPost: 'TypeError',
      put206: 'TypeError',
      putVaryStar: 'TypeError',
      putNoStore: 'undefined',
      matchNoStore: 'undefined',
      putPrivate: 'undefined',
      matchPrivate: 'undefined',
      matchPost: 'undefined',
    });
  });

  it('stays under --cache-size while 10,000 distinct objects pass through', async () => {
    let peak = 0;
    for (let i = 0; i < 10_000; i += 50) {
      const replies = await Promise.all(Array.from({ length: 50 }, (_, j) => get(`/obj/${i + j}?kib=16`)));
      for (const r of replies) expect(r.body.length).toBe(16 * 1024);
      peak = Math.max(peak, ingress.cache.store.bytes);
    }
    expect(peak).toBeLessThanOrEqual(CACHE_SIZE);
    expect(ingress.cache.store.evictions).toBeGreaterThan(9000);
    expect(await runs('/obj')).toBe(10_000);
  }, 120_000);

  it('purges a prefix of the app on every ingress with dcdn cache purge', async () => {
    // Stored again (the 10,000 objects above evicted everything).
    await get('/vary', { 'accept-language': 'fr' });
    await get('/public');
    expect((await get('/public')).headers['dcdn-cache']).toBe('HIT');
    expect((await get('/vary', { 'accept-language': 'fr' })).headers['dcdn-cache']).toBe('HIT');
    const r = await runDcdn(env, ['cache', 'purge', 'cached', '--prefix', '/vary'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${ingress.url}: purged 1 responses`);
    expect((await get('/vary', { 'accept-language': 'fr' })).headers['dcdn-cache']).toBe('MISS');
    expect((await get('/public')).headers['dcdn-cache']).toBe('HIT');
  });

  it('purges the app when a new version is deployed', async () => {
    expect(await text('/public')).toBe('v1 hello');
    await deploy('v2');
    await until(() => ingress.cache.stats.purged > 0, 30_000, 'purge');
    let served = '';
    // The new version reaches the tab and the ingress's app list around the same time: the
    // first answer after the purge is v2's, and it is not the stored v1 one.
    for (const end = Date.now() + 20_000; Date.now() < end && served !== 'v2 hello'; ) served = await text('/public');
    expect(served).toBe('v2 hello');
  }, 90_000);
});
