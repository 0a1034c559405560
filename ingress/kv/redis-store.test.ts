import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { openKvStore } from './index.ts';
import { KV_LIMITS } from './limits.ts';
import { RedisKvStore } from './redis-store.ts';
import { startRedis } from '../../tools/redis.ts';
import { kvStoreSuite, sharedStoreSuite, source } from '../../test/kv-store-suite.ts';
import { sharedServer } from '../../test/shared-server.ts';

// A real redis-server per test file, on a unix socket in a temp dir. CI installs Debian's
// redis-server (.ci/run); without it every test here fails with the reason, rather than being
// skipped, so the Redis backend is never silently untested.
const put = { maxValueBytes: KV_LIMITS.valueBytes };

const redis = sharedServer(startRedis, (s) => new Redis({ path: s.socket }), (r) => r.disconnect());
/** The shared server; fails the calling test when it could not be started. */
const server = () => redis.server;
let prefixes = 0;

/** A store on the shared server, under a prefix of its own so tests never see each other's keys. */
async function open(options: Parameters<typeof RedisKvStore.connect>[1] = {}) {
  const keyPrefix = `t${++prefixes}:`;
  return { keyPrefix, store: await RedisKvStore.connect(server().socket, { keyPrefix, ...options }) };
}

kvStoreSuite('RedisKvStore', async () => {
  const clock = { now: Date.now() };
  const { store } = await open({ now: () => clock.now });
  return { store, clock, cleanup: () => store.close() };
});

sharedStoreSuite('RedisKvStore', async () => {
  const keyPrefix = `t${++prefixes}:`;
  // One node by URL, the other by socket path: both spellings reach the same data.
  return [await RedisKvStore.connect(`redis+unix://${server().socket}?db=0`, { keyPrefix }), await RedisKvStore.connect(server().socket, { keyPrefix })];
});

describe('RedisKvStore on a shared Redis', () => {
  it('keeps a replaced value readable for readGraceMs by giving it a TTL, not deleting it', async () => {
    const { keyPrefix, store } = await open({ readGraceMs: 30_000 });
    await store.put('ns', 'k', source(['old']), put);
    const [oldKey] = await redis.raw.keys(`${keyPrefix}*v:*`);
    expect(await redis.raw.pttl(oldKey!)).toBe(-1);
    await store.put('ns', 'k', source(['new']), put);
    const ttl = await redis.raw.pttl(oldKey!);
    expect(ttl).toBeGreaterThan(25_000);
    expect(ttl).toBeLessThanOrEqual(30_000);
    await store.close();
  });

  it('leaves no value key behind from a put that failed', async () => {
    const { keyPrefix, store } = await open();
    await store.put('ns', 'k', source(['kept']), put);
    await expect(store.put('ns', 'k', source([Buffer.alloc(300 * 1024)]), { maxValueBytes: 200 * 1024 })).rejects.toMatchObject({
      code: 'KV_VALUE_TOO_LARGE',
    });
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(100);
      throw new Error('cut off');
    }
    await expect(store.put('ns', 'k', failing(), put)).rejects.toThrow('cut off');
    expect(await redis.raw.keys(`${keyPrefix}*v:*`)).toHaveLength(1);
    await store.close();
  });

  it('lets Redis expire an expiring entry after its expiration plus the grace period, and sweeps its index', async () => {
    const clock = { now: Date.now() };
    const { keyPrefix, store } = await open({ now: () => clock.now, readGraceMs: 5000 });
    const expiration = Math.floor(clock.now / 1000) + 60;
    await store.put('ns', 'brief', source(['v']), { ...put, expiration });
    await store.put('ns', 'lasting', source(['v']), put);
    const [entryKey] = await redis.raw.keys(`${keyPrefix}*e:brief`);
    expect(await redis.raw.pexpiretime(entryKey!)).toBe(expiration * 1000 + 5000);

    clock.now = expiration * 1000;
    await store.sweep();
    expect(await redis.raw.exists(entryKey!)).toBe(0);
    expect(await redis.raw.zrange(`${keyPrefix}2:ns:i`, '0', '-1')).toEqual(['lasting']);
    expect(await redis.raw.zcard(`${keyPrefix}2:ns:x`)).toBe(0);
    expect(await redis.raw.zcard(`${keyPrefix}expiring`)).toBe(0);
    await store.close();
  });

  it('pages past a long run of expired index members instead of walking them all in one script', async () => {
    const { keyPrefix, store } = await open();
    // 12 000 expired entries the sweep has not reached yet, written directly in the store's layout.
    const ns = `${keyPrefix}2:ns:`;
    const pipeline = redis.raw.pipeline();
    for (let i = 0; i < 12_000; i++) {
      const key = `old${String(i).padStart(5, '0')}`;
      pipeline.hset(`${ns}e:${key}`, 'v', 'gone', 's', '0', 'x', '1').zadd(`${ns}i`, 0, key).zadd(`${ns}x`, 1000, key);
    }
    await pipeline.exec();
    for (const key of ['zz1', 'zz2', 'zz3']) await store.put('ns', key, source(['v']), put);

    const pages: string[][] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await store.list('ns', { prefix: '', limit: 10, ...(cursor !== undefined && { cursor }) });
      pages.push(page.keys.map((k) => k.name));
      if (page.listComplete) break;
      cursor = page.cursor;
    }
    expect(pages).toEqual([[], ['zz1', 'zz2', 'zz3']]);
    expect(await store.count('ns')).toBe(3);
    await store.close();
  });

  it('is what openKvStore opens for redis+unix:// specs, in the database the URL names', async () => {
    const keyPrefix = `t${++prefixes}:`;
    const store = await openKvStore(`redis+unix://${server().socket}?db=1`, { keyPrefix });
    expect(store.kind).toBe('redis');
    await store.put('ns', 'k', source(['v']), put);
    const db1 = new Redis({ path: server().socket, db: 1 });
    expect(await db1.keys(`${keyPrefix}*e:k`)).toHaveLength(1);
    expect(await redis.raw.keys(`${keyPrefix}*`)).toEqual([]);
    db1.disconnect();
    await store.close();
  });

  it('fails connect with KV_STORE_UNAVAILABLE when nothing listens', async () => {
    const started = performance.now();
    await expect(RedisKvStore.connect(join(tmpdir(), 'no-such-redis.sock'))).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
    await expect(RedisKvStore.connect('redis://127.0.0.1:1/0')).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('logs losing the connection once (not once per retry), instead of swallowing it', async () => {
    const doomed = await startRedis();
    const lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
    let logged!: () => void;
    const firstError = new Promise<void>((resolve) => (logged = resolve));
    const store = await RedisKvStore.connect(doomed.socket, {
      log: (level, msg, fields) => {
        lines.push({ level, msg, ...(fields ? { fields } : {}) });
        if (level === 'error') logged();
      },
    });
    try {
      await doomed.stop();
      await firstError;
      // Calls go on failing with their code while the client retries; the log says it once.
      await expect(store.get('ns', 'k')).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
      await expect(store.count('ns')).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
      const errors = lines.filter((l) => l.level === 'error');
      expect(errors).toHaveLength(1);
      expect(errors[0]!.msg).toContain('lost the Redis connection');
      expect(errors[0]!.fields).toMatchObject({ store: 'redis' });
    } finally {
      await store.close();
    }
  });

  it('rejects operations with KV_STORE_UNAVAILABLE within a couple of seconds once redis-server dies', async () => {
    const doomed = await startRedis();
    const store = await RedisKvStore.connect(doomed.socket);
    await store.put('ns', 'k', source([Buffer.alloc(300 * 1024, 1)]), put);
    const reader = (await store.get('ns', 'k'))!.chunks()[Symbol.asyncIterator]();
    await reader.next();
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(1000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      yield Buffer.alloc(1000);
    }
    const midPut = store.put('ns', 'other', slow(), put);
    midPut.catch(() => {});

    await doomed.stop();
    const started = performance.now();
    const failures = await Promise.allSettled([
      midPut,
      reader.next(),
      store.get('ns', 'k'),
      store.put('ns', 'k', source(['v']), put),
      store.delete('ns', 'k'),
      store.list('ns', { prefix: '', limit: 10 }),
      store.count('ns'),
    ]);
    const elapsed = performance.now() - started;
    for (const failure of failures) {
      expect(failure.status).toBe('rejected');
      expect((failure as PromiseRejectedResult).reason).toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
    }
    expect(elapsed).toBeLessThan(2000);
    await store.close();
  });
});
