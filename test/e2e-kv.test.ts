/**
 * KV end to end, against both backends: handlers in real Chromium tabs use `env.CACHE`, each
 * operation travels as a stream the tab opens on its data channel to the ingress, which serves
 * it from SQLite (embedded, durable) or Redis (shared by ingress nodes).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress, IngressOptions } from '../ingress/index.ts';
import { openKvStore } from '../ingress/kv/index.ts';
import { disconnectBrowser } from './browser.ts';
import { runDcdn, type CliResult } from './cli.ts';
import { startNetwork, until, type Network } from './network.ts';
import { startRedis, type RedisServer } from '../tools/redis.ts';

const KV_APP = fileURLToPath(new URL('./fixtures/kv-app.ts', import.meta.url));
const FORGER_APP = fileURLToPath(new URL('./fixtures/kv-forger-app.ts', import.meta.url));

let net: Network;
let redis: RedisServer;
let env: NodeJS.ProcessEnv;
const work = mkdtempSync(join(tmpdir(), 'dcdn-kv-e2e-'));

async function dcdn(...args: string[]): Promise<CliResult> {
  return runDcdn(env, args, { timeoutMs: 60_000 });
}

beforeAll(async () => {
  redis = await startRedis();
  net = await startNetwork();
  env = { ...process.env, DCDN_HOME: work, DCDN_SIGNAL: net.urls.http, DCDN_SECRET: net.secret };
  for (const [name, file] of [['kva', KV_APP], ['kvb', KV_APP], ['forger', FORGER_APP]] as const) {
    const deployed = await dcdn('deploy', file, '--name', name, '--kv', 'CACHE');
    expect(deployed.stderr + deployed.stdout).toContain(`deployed ${name} version 1`);
  }
  // The handler stores a whole body before it answers (below): on a loaded 2-core machine a
  // 20 MiB one took longer than the default 30 s wall time (HOST_HANDLER_TIMEOUT), which is not
  // what these tests are about.
  await Promise.all([net.addTab('kv-a', 'wallMs=120000'), net.addTab('kv-b', 'wallMs=120000')]);
}, 90_000);

afterAll(async () => {
  await net?.close();
  await redis?.stop();
  await disconnectBrowser();
});

interface Reply {
  status: number;
  body: Buffer;
  headers: Record<string, string | string[] | undefined>;
}

/** A request to app `app` through `ingress`, with an optional streamed body. */
function call(ingress: Ingress, app: string, path: string, init: { method?: string; body?: AsyncIterable<Uint8Array> | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${ingress.url}/@${app}${path}`, { method: init.method ?? 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = init.body;
    if (!body) return void req.end();
    if (Buffer.isBuffer(body)) return void req.end(body);
    void (async () => {
      for await (const chunk of body) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
      req.end();
    })().catch(reject);
  });
}

async function text(ingress: Ingress, app: string, path: string): Promise<string> {
  const r = await call(ingress, app, path);
  return r.body.toString();
}

/** Pseudo-random bytes, `total` of them in 64 KiB chunks, and their hash when done. */
function bytes(total: number): { chunks: AsyncIterable<Uint8Array>; sha256: () => string } {
  const hash = createHash('sha256');
  let seed = 12345;
  return {
    chunks: (async function* () {
      for (let sent = 0; sent < total; ) {
        const chunk = Buffer.alloc(Math.min(65536, total - sent));
        for (let i = 0; i < chunk.length; i += 4) {
          seed = (seed * 1103515245 + 12345) >>> 0;
          chunk.writeUInt32LE(seed, i);
        }
        hash.update(chunk);
        sent += chunk.length;
        yield chunk;
      }
    })(),
    sha256: () => hash.digest('hex'),
  };
}

const backends: Array<[string, () => string]> = [
  ['SQLite', () => `sqlite:${join(work, 'kv.db')}`],
  ['Redis', () => redis.url],
];

describe.each(backends)('KV over %s', (kind, spec) => {
  let ingress: Ingress;
  const options = (): Partial<IngressOptions> => ({ kvLimits: { minTtlSeconds: 1 } });

  async function startIngress(): Promise<Ingress> {
    const started = await net.addIngress({ ...options(), kv: await openKvStore(spec()) });
    await until(() => started.pool.size === 2, 20_000, 'both tabs connected');
    return started;
  }

  beforeAll(async () => {
    ingress = await startIngress();
  }, 60_000);

  afterAll(async () => {
    await ingress?.close();
  });

  it('counts visits across requests and across a restart of the ingress', async () => {
    const first = Number(await text(ingress, 'kva', '/count'));
    expect(await text(ingress, 'kva', '/count')).toBe(String(first + 1));
    expect(await text(ingress, 'kva', '/count')).toBe(String(first + 2));
    await ingress.close();
    net.ingresses.splice(net.ingresses.indexOf(ingress), 1);
    ingress = await startIngress();
    expect(await text(ingress, 'kva', '/count')).toBe(String(first + 3));
  }, 60_000);

  it('keeps apps in their own namespaces, even when an app forges its messages', async () => {
    await call(ingress, 'kva', `/put?key=private&value=${kind}-a-only`);
    expect(await text(ingress, 'kva', '/get?key=private')).toBe(`${kind}-a-only`);
    // Same binding name, other app: other data.
    expect((await call(ingress, 'kvb', '/get?key=private')).status).toBe(404);
    // An app rewriting its own KV messages to name another binding is refused by the tab.
    const forged = JSON.parse(await text(ingress, 'forger', '/steal?binding=OTHER&key=private')) as { code: string };
    expect(forged.code).toBe('KV_UNKNOWN_BINDING');
    expect(JSON.parse(await text(ingress, 'kva', '/bindings'))).toEqual(['CACHE']);
  });

  it('expires keys after their TTL', async () => {
    await call(ingress, 'kva', `/put?key=brief&value=soon-gone&ttl=1`);
    expect(await text(ingress, 'kva', '/get?key=brief')).toBe('soon-gone');
    // expirationTtl is rounded up to whole seconds: gone within 2 s.
    await new Promise((r) => setTimeout(r, 2500));
    expect((await call(ingress, 'kva', '/get?key=brief')).status).toBe(404);
  });

  it('round-trips metadata and reports limits with their codes', async () => {
    await call(ingress, 'kva', `/put?key=meta&value=v&metadata=${encodeURIComponent(JSON.stringify({ owner: 'me', n: 1 }))}`);
    const got = await call(ingress, 'kva', '/get?key=meta');
    expect(JSON.parse(String(got.headers['x-metadata']))).toEqual({ owner: 'me', n: 1 });
    const longKey = JSON.parse(await text(ingress, 'kva', `/put?key=${'k'.repeat(513)}&value=x`)) as { code: string };
    expect(longKey.code).toBe('KV_BAD_KEY');
    const bigMeta = JSON.parse(await text(ingress, 'kva', `/put?key=m&value=x&metadata=${encodeURIComponent(JSON.stringify({ pad: 'x'.repeat(1100) }))}`)) as { code: string };
    expect(bigMeta.code).toBe('KV_METADATA_TOO_LARGE');
    const shortTtl = JSON.parse(await text(ingress, 'kva', `/put?key=m&value=x&ttl=0`)) as { code: string };
    expect(shortTtl.code).toBe('KV_BAD_EXPIRATION');
  });

  it('lists a few thousand keys by prefix, in pages with a cursor', async () => {
    expect(await text(ingress, 'kvb', '/fill?n=2500&prefix=item:')).toBe('filled 2500');
    await text(ingress, 'kvb', '/fill?n=10&prefix=other:');
    const names: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = JSON.parse(await text(ingress, 'kvb', `/list?prefix=item:&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)) as { keys: Array<{ name: string }>; list_complete: boolean; cursor?: string };
      names.push(...page.keys.map((k) => k.name));
      cursor = page.list_complete ? undefined : page.cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(names).toHaveLength(2500);
    expect(names[0]).toBe('item:00000');
    expect(names.at(-1)).toBe('item:02499');
    expect([...names].sort()).toEqual(names);
  }, 60_000);

  it('streams a 6 MiB value in and out byte for byte', async () => {
    // 96 of the stores' 64 KiB chunks and 24 stream windows: as much a test of streaming as
    // 20 MiB was, which took 55-90 s per backend on a loaded machine.
    const n = 6 * 1024 * 1024;
    const source = bytes(n);
    const put = await call(ingress, 'kva', '/put?key=big', { method: 'POST', body: source.chunks });
    expect(put.body.toString()).toBe('stored');
    const got = await call(ingress, 'kva', '/get?key=big&type=stream');
    expect(got.status).toBe(200);
    expect(got.body.length).toBe(n);
    expect(createHash('sha256').update(got.body).digest('hex')).toBe(source.sha256());
  }, 120_000);

  it('refuses a value over the limit and keeps the old one', async () => {
    const small = await net.addIngress({ ...options(), kv: await openKvStore(spec()), kvLimits: { minTtlSeconds: 1, valueBytes: 1024 * 1024 } });
    await until(() => small.pool.size === 2, 20_000, 'tabs on the small ingress');
    try {
      await call(small, 'kva', '/put?key=capped&value=old');
      const tooBig = await call(small, 'kva', '/put?key=capped', { method: 'POST', body: bytes(3 * 1024 * 1024).chunks });
      expect(JSON.parse(tooBig.body.toString())).toMatchObject({ code: 'KV_VALUE_TOO_LARGE' });
      expect(await text(small, 'kva', '/get?key=capped')).toBe('old');
    } finally {
      await small.close();
      net.ingresses.splice(net.ingresses.indexOf(small), 1);
    }
  }, 60_000);

  it('lets operators read and write the same data with dcdn kv', async () => {
    await call(ingress, 'kva', '/put?key=shared&value=from-a-handler');
    const got = await dcdn('kv', 'get', 'shared', '--app', 'kva', '--binding', 'CACHE', '--store', spec());
    expect(got.stdout).toBe('from-a-handler');
    const put = await dcdn('kv', 'put', 'shared', 'from-the-cli', '--app', 'kva', '--binding', 'CACHE', '--store', spec());
    expect(put.code).toBe(0);
    expect(await text(ingress, 'kva', '/get?key=shared')).toBe('from-the-cli');
    const listed = await dcdn('kv', 'list', '--prefix', 'sha', '--app', 'kva', '--binding', 'CACHE', '--store', spec());
    expect(listed.stdout.trim().split('\n')).toEqual(['shared']);
    const bad = await dcdn('kv', 'put', 'x'.repeat(600), 'v', '--app', 'kva', '--binding', 'CACHE', '--store', spec());
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('KV_BAD_KEY');
  }, 60_000);
});
