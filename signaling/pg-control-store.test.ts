/**
 * PgControlStore against a real PostgreSQL (tools/postgres.ts): the conformance suite, then what
 * only a cluster has: NOTIFY reaching another node, a lost notification healed by the poll, and
 * Postgres killed and restarted under a running store and cache. One server for the file, a
 * database per test.
 */
import { createServer, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../tools/postgres.ts';
import { bundle, codeOf, controlStoreSuite, until, type ControlStoreHarness } from '../test/control-store-suite.ts';
import { cronStoreSuite } from '../test/cron-store-suite.ts';
import { ControlCache } from './control-cache.ts';
import type { ControlChange } from './control-store.ts';
import { PgControlStore, type PgControlStoreOptions } from './pg-control-store.ts';

let server: PostgresServer;
let databases = 0;
const opened: PgControlStore[] = [];

beforeAll(async () => {
  server = await startPostgres();
});
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});
afterAll(async () => {
  await server?.stop();
});

/** A fresh database; `open` gives stores on it (closed after the file). */
async function freshDatabase(): Promise<{ url: string; open(options?: PgControlStoreOptions): Promise<PgControlStore> }> {
  const name = `control_${++databases}`;
  await server.createDatabase(name);
  const url = server.urlFor(name);
  return {
    url,
    async open(options = {}) {
      const store = await PgControlStore.open(url, { timeoutMs: 2000, listenRetryMs: 100, ...options });
      opened.push(store);
      return store;
    },
  };
}

/** A store on a fresh database; `another` opens more stores on it, as other nodes would. */
const harness = async (): Promise<ControlStoreHarness> => {
  const db = await freshDatabase();
  const store = await db.open();
  const others: PgControlStore[] = [];
  return {
    store,
    async another() {
      const other = await db.open();
      others.push(other);
      return other;
    },
    async cleanup() {
      for (const s of [store, ...others]) await s.close();
    },
  };
};

controlStoreSuite('PgControlStore', harness);
cronStoreSuite('PgControlStore', harness);

describe('PgControlStore across nodes', () => {
  it('creates its schema once when several nodes open an empty database at once', async () => {
    const db = await freshDatabase();
    const stores = await Promise.all([db.open(), db.open(), db.open()]);
    await stores[0]!.deploy('a', bundle('x'), '', {});
    expect((await stores[2]!.list()).map((a) => a.name)).toEqual(['a']);
  });

  it('delivers every write to another node\'s watch by NOTIFY, in order', async () => {
    const db = await freshDatabase();
    const a = await db.open();
    // A poll an hour apart: what arrives here came by NOTIFY.
    const b = await db.open({ pollIntervalMs: 3_600_000 });
    const seen: ControlChange[] = [];
    b.watch((c) => seen.push(c));
    await until(() => seen.length > 0); // the listener is up once it read the version
    await a.deploy('n', bundle('1'), '', {});
    await a.addBan('host', 'tab', 'r');
    await until(() => seen.some((c) => c.what === 'bans' && c.version === 2));
    expect(seen.filter((c) => c.version > 0)).toEqual([
      { version: 1, what: 'apps' },
      { version: 2, what: 'bans' },
    ]);
  });

  it('heals a lost notification with the version poll', async () => {
    const db = await freshDatabase();
    const b = await db.open({ pollIntervalMs: 100 });
    const cache = new ControlCache(b);
    await cache.ready;
    // A write whose NOTIFY never arrived (sent while the listener was away): made by hand here.
    const raw = new pg.Client({ connectionString: db.url });
    await raw.connect();
    try {
      await raw.query('BEGIN');
      await raw.query("INSERT INTO dcdn_bans (id, kind, value, reason, created_at) VALUES ('lost0001', 'address', '10.9.9.9', 'healed', now())");
      await raw.query('UPDATE dcdn_control SET version = version + 1 WHERE id = 1');
      await raw.query('COMMIT');
    } finally {
      await raw.end();
    }
    await until(() => cache.banMatch({ address: '10.9.9.9' }) === 'healed');
    expect(cache.version).toBe(1);
    cache.close();
  });

  it('measures commit → NOTIFY → another node\'s cache (printed, not asserted)', async () => {
    const db = await freshDatabase();
    const a = await db.open();
    const b = await db.open({ pollIntervalMs: 3_600_000 });
    const cache = new ControlCache(b);
    await cache.ready;
    const writeMs: number[] = [];
    const appliedMs: number[] = [];
    for (let i = 0; i < 100; i++) {
      const started = performance.now();
      await a.addBan('host', `tab-${i}`, '');
      const committed = performance.now();
      writeMs.push(committed - started);
      const version = await a.version();
      await cache.waitForVersion(version, 10_000);
      appliedMs.push(performance.now() - committed);
    }
    const pct = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!.toFixed(1);
    console.log(`control propagation, 100 writes: write p50 ${pct(writeMs, 50)} ms p99 ${pct(writeMs, 99)} ms; commit → other node's cache applied p50 ${pct(appliedMs, 50)} ms p99 ${pct(appliedMs, 99)} ms`);
    expect(cache.banMatch({ hostId: 'tab-99' })).toBe('');
    cache.close();
  });
});

describe('PgControlStore and a Postgres that never answers', () => {
  it('gives up with APP_STORE_UNAVAILABLE after its timeout when the network is silent (no refusal, no reset)', async () => {
    // A black hole: accepts TCP connections and never says a word, as a partitioned network does.
    const sockets: Socket[] = [];
    const hole = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    const { port } = hole.address() as { port: number };
    try {
      const started = performance.now();
      expect(await codeOf(PgControlStore.open(`postgres://dcdn@127.0.0.1:${port}/dcdn`, { timeoutMs: 300 }))).toBe('APP_STORE_UNAVAILABLE');
      // Bounded by the timeout, never hanging (a wide margin for a busy machine).
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => hole.close(r));
    }
  });
});

// Last in the file: it kills the one server every other test uses.
describe('PgControlStore when Postgres dies', () => {
  it('fails writes with APP_STORE_UNAVAILABLE within its timeout while the cache serves; after a restart writes work and watch resumes', async () => {
    const db = await freshDatabase();
    const timeoutMs = 1500;
    const a = await db.open({ timeoutMs });
    const b = await db.open({ timeoutMs, pollIntervalMs: 3_600_000 });
    await a.deploy('live', bundle('v1'), '', {});
    await a.addBan('address', '10.6.6.6', 'abuse');
    const cache = new ControlCache(b, { refreshRetryMs: 100 });
    await cache.ready;
    expect((await cache.code('live', 1))?.code).toBe(bundle('v1'));
    const seen: ControlChange[] = [];
    b.watch((c) => seen.push(c));

    await server.kill();
    const started = performance.now();
    expect(await codeOf(a.deploy('live', bundle('v2'), '', {}))).toBe('APP_STORE_UNAVAILABLE');
    expect(await codeOf(a.addBan('host', 'x', ''))).toBe('APP_STORE_UNAVAILABLE');
    expect(await codeOf(b.secrets('live'))).toBe('APP_STORE_UNAVAILABLE');
    // Bounded by the timeout (a wide margin for this busy machine), never hanging.
    expect(performance.now() - started).toBeLessThan(2 * (timeoutMs + 2000));
    // Serving goes on from the cache: manifest, bans, code already fetched.
    expect(cache.manifest().map((a) => `${a.name}@${a.version}`)).toEqual(['live@1']);
    expect(cache.banMatch({ address: '10.6.6.6' })).toBe('abuse');
    expect((await cache.code('live', 1))?.code).toBe(bundle('v1'));
    expect(await codeOf(cache.code('live', 2))).toBe('APP_STORE_UNAVAILABLE');

    await server.restart();
    let last: string | undefined;
    await until(async () => (last = await codeOf(a.deploy('live', bundle('v2'), 'after', {}))) === undefined, 20_000).catch((err) => {
      throw new Error(`writes still fail after the restart: ${last}`, { cause: err });
    });
    // The listener reconnected and LISTENs again: the write reaches the other node and its cache.
    await until(() => seen.some((c) => c.version >= 3), 20_000);
    await until(() => cache.manifest()[0]?.version === 2, 20_000);
    cache.close();
  });
});

describe('PgControlStore cron state on a database from before cron triggers', () => {
  it('adds dcdn_cron at open and keeps every app and version', async () => {
    const db = await freshDatabase();
    const old = await db.open();
    await old.deploy('hello', bundle('v1'), 'first', { kv: ['CACHE'] });
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    await client.query('DROP TABLE dcdn_cron');
    await client.end();
    const store = await db.open();
    expect(await store.list()).toMatchObject([{ name: 'hello', activeVersion: 1, versions: [{ message: 'first', config: { kv: ['CACHE'] } }] }]);
    expect(await store.cronStates()).toEqual([]);
    expect(await store.claimCronTick('hello', 60_000)).toBe(true);
    expect(await old.claimCronTick('hello', 60_000)).toBe(false);
  });
});
