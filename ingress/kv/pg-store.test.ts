import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openKvStore } from './index.ts';
import { KV_LIMITS } from './limits.ts';
import { PgKvStore } from './pg-store.ts';
import { startPostgres, type PostgresServer } from '../../tools/postgres.ts';
import { kvStoreSuite, read, sharedStoreSuite, source } from '../../test/kv-store-suite.ts';
import { sharedServer } from '../../test/shared-server.ts';

// A real PostgreSQL per test file (Debian's, started by tools/postgres.ts). Without it every test
// here fails with the reason rather than being skipped, so the backend is never silently untested.
const put = { maxValueBytes: KV_LIMITS.valueBytes };

const pgServer = sharedServer(startPostgres, async (s) => {
  const client = new pg.Client({ connectionString: s.url });
  await client.connect();
  return client;
}, (c) => c.end());
/** The shared server; fails the calling test when it could not be started. */
const server = () => pgServer.server;
let prefixes = 0;

/** A store on the shared server, under tables of its own so tests never see each other's rows. */
async function open(options: Parameters<typeof PgKvStore.connect>[1] = {}) {
  const tablePrefix = `t${++prefixes}_`;
  return { tablePrefix, store: await PgKvStore.connect(server().url, { tablePrefix, ...options }) };
}

kvStoreSuite('PgKvStore', async () => {
  const clock = { now: Date.now() };
  const { store } = await open({ now: () => clock.now });
  return { store, clock, cleanup: () => store.close() };
});

sharedStoreSuite('PgKvStore', async () => {
  const tablePrefix = `t${++prefixes}_`;
  const a = await openKvStore(server().url, { tablePrefix });
  expect(a.kind).toBe('postgres');
  return [a, await PgKvStore.connect(server().url, { tablePrefix })];
});

describe('PgKvStore on a shared database', () => {
  it('lets two nodes create the tables at once', async () => {
    const tablePrefix = `t${++prefixes}_`;
    const stores = await Promise.all([1, 2, 3].map(() => PgKvStore.connect(server().url, { tablePrefix })));
    await stores[0]!.put('ns', 'k', source(['v']), put);
    expect(await stores[2]!.count('ns')).toBe(1);
    await Promise.all(stores.map((s) => s.close()));
  });

  it('keeps the last of many concurrent puts to one key, and reclaims the values it replaced', async () => {
    const { tablePrefix, store } = await open({ readGraceMs: 0 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.put('ns', 'k', source([`v${i}`]), put)));
    const value = (await read((await store.get('ns', 'k'))!)).toString();
    expect(value).toMatch(/^v\d+$/);
    await store.sweep();
    const { rows } = await pgServer.raw.query(`SELECT count(*)::int AS n FROM ${tablePrefix}chunks`);
    expect(rows[0].n).toBe(1);
    await store.close();
  });

  it('gives a replaced value readGraceMs on the database clock before its chunks go', async () => {
    const { tablePrefix, store } = await open({ readGraceMs: 30_000 });
    await store.put('ns', 'k', source(['old']), put);
    await store.put('ns', 'k', source(['new']), put);
    const { rows } = await pgServer.raw.query(
      `SELECT reclaim_at - (extract(epoch from now()) * 1000)::bigint AS left FROM ${tablePrefix}values WHERE reclaim_at IS NOT NULL`,
    );
    expect(rows).toHaveLength(1);
    expect(Number(rows[0].left)).toBeGreaterThan(25_000);
    expect(Number(rows[0].left)).toBeLessThanOrEqual(30_000);
    await store.sweep();
    expect((await pgServer.raw.query(`SELECT count(*)::int AS n FROM ${tablePrefix}chunks`)).rows[0].n).toBe(2);
    await store.close();
  });

  it('stores a value as rows of at most 32 KiB whatever the caller chunks', async () => {
    const { tablePrefix, store } = await open();
    await store.put('ns', 'k', source([Buffer.alloc(3), Buffer.alloc(200 * 1024), Buffer.alloc(5)]), put);
    const { rows } = await pgServer.raw.query(`SELECT seq, length(bytes) AS n FROM ${tablePrefix}chunks ORDER BY seq`);
    expect(rows.map((r) => Number(r.n))).toEqual([...Array(6).fill(32_768), 8_200]);
    await store.close();
  });

  it('removes expired entries in the sweep', async () => {
    const clock = { now: Date.now() };
    const { tablePrefix, store } = await open({ now: () => clock.now, readGraceMs: 0 });
    await store.put('ns', 'brief', source(['v']), { ...put, expiration: Math.floor(clock.now / 1000) + 10 });
    await store.put('ns', 'lasting', source(['v']), put);
    clock.now += 11_000;
    await store.sweep();
    const names = (await pgServer.raw.query(`SELECT convert_from(key, 'UTF8') AS k FROM ${tablePrefix}entries`)).rows.map((r) => r.k);
    expect(names).toEqual(['lasting']);
    await store.sweep();
    expect((await pgServer.raw.query(`SELECT count(*)::int AS n FROM ${tablePrefix}values`)).rows[0].n).toBe(1);
    await store.close();
  });
});

describe('PgKvStore when Postgres is down', () => {
  it('rejects connecting to nothing with KV_STORE_UNAVAILABLE', async () => {
    const url = `postgres://postgres@localhost/postgres?host=/nonexistent-dir&port=1`;
    await expect(PgKvStore.connect(url, { connectTimeoutMs: 500 })).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
    // Not taken for a SQLite file named 'postgres:/…'.
    await expect(openKvStore('postgres:/no-slashes')).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
  });

  it('fails calls with KV_STORE_UNAVAILABLE within the timeout once Postgres is killed, and works again after a restart', async () => {
    // A server of its own: this test kills it.
    const own = await startPostgres();
    const errors: string[] = [];
    const store = await eventually(() => PgKvStore.connect(own.url, {
      connectTimeoutMs: 1000,
      commandTimeoutMs: 1000,
      log: (level, msg) => {
        if (level === 'error') errors.push(msg);
      },
    }));
    try {
      await store.put('ns', 'k', source(['before']), put);
      // The test server runs with synchronous_commit=off: make what it has durable before the crash.
      await checkpoint(own);
      await own.kill();
      // Every kind of call, with pooled connections now dead.
      for (const call of [
        () => store.get('ns', 'k'),
        () => store.put('ns', 'k', source(['during']), put),
        () => store.delete('ns', 'k'),
        () => store.list('ns', { prefix: '', limit: 10 }),
        () => store.count('ns'),
      ]) {
        await expect(call()).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
      }
      expect(errors.filter((m) => m.includes('lost the Postgres connection'))).toHaveLength(1);
      await restart(own);
      // Postgres accepts on its socket a moment before it takes queries (57P03, "starting up"):
      // until then calls fail with the same code, and then they work on fresh connections.
      expect((await read((await eventually(() => store.get('ns', 'k')))!)).toString()).toBe('before');
    } finally {
      await store.close();
      await own.stop();
    }
  }, 60_000);
});

/**
 * Starts a killed server again. Its killed postmaster can linger as a zombie for a moment (this
 * machine's init reaps late) and a new postmaster refuses to start while that pid exists.
 */
async function restart(server: PostgresServer): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await server.restart();
    } catch (err) {
      if (attempt === 20 || !String(err).includes('postmaster.pid')) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** The first result of `call` that does not fail with KV_STORE_UNAVAILABLE, trying for up to 10 s. */
async function eventually<T>(call: () => Promise<T>): Promise<T> {
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if ((err as { code?: string }).code !== 'KV_STORE_UNAVAILABLE' || Date.now() > until) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function checkpoint(server: PostgresServer): Promise<void> {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  await client.query('CHECKPOINT');
  await client.end();
}
