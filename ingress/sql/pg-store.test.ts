/** The Postgres SQL store against a real PostgreSQL (tools/postgres.ts): what two ingresses sharing it see. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../../tools/postgres.ts';
import type { SqlWireRequest } from '../../protocol/index.ts';
import { SQL_LIMITS } from './limits.ts';
import { pgNameOf, PgSqlStore } from './pg-store.ts';

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

const one = (sql: string, params: SqlWireRequest['statements'][number]['params'] = []): SqlWireRequest => ({ mode: 'batch', statements: [{ sql, params }] });

describe('PgSqlStore', () => {
  it('lets two ingresses create the same binding at once, and each reads what the other wrote', async () => {
    const [a, b] = await Promise.all([PgSqlStore.connect(server.url), PgSqlStore.connect(server.url)]);
    try {
      const ns = { app: 'race', binding: 'DB' };
      await Promise.all([a.run(ns, one('SELECT 1'), SQL_LIMITS), b.run(ns, one('SELECT 1'), SQL_LIMITS)]);
      await a.run(ns, { mode: 'exec', statements: [{ sql: 'CREATE TABLE t (v TEXT); INSERT INTO t VALUES (\'from a\')', params: [] }] }, SQL_LIMITS);
      const [r] = await b.run(ns, one('SELECT v FROM t'), SQL_LIMITS);
      expect(r!.rows).toEqual([['from a']]);
      expect(r!.meta.served_by).toBe('dcdn-postgres');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('drops a binding: its schema, its role and its record', async () => {
    const store = await PgSqlStore.connect(server.url);
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      const ns = { app: 'gone', binding: 'DB' };
      await store.run(ns, { mode: 'exec', statements: [{ sql: 'CREATE TABLE t (v INT)', params: [] }] }, SQL_LIMITS);
      const name = pgNameOf(ns);
      expect((await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rowCount).toBe(1);
      await store.drop(ns);
      expect((await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rowCount).toBe(0);
      expect((await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [name])).rowCount).toBe(0);
      // Used again, it starts empty.
      await expect(store.run(ns, one('SELECT * FROM t'), SQL_LIMITS)).rejects.toMatchObject({ code: 'SQL_ERROR' });
    } finally {
      await admin.end();
      await store.close();
    }
  });

  it('fails with SQL_STORE_UNAVAILABLE when Postgres is gone, and works again once it is back', async () => {
    const store = await PgSqlStore.connect(server.url);
    try {
      const ns = { app: 'crash', binding: 'DB' };
      await store.run(ns, { mode: 'exec', statements: [{ sql: 'CREATE TABLE kept (v INT); INSERT INTO kept VALUES (7)', params: [] }] }, SQL_LIMITS);
      await server.kill();
      await expect(store.run(ns, one('SELECT v FROM kept'), SQL_LIMITS)).rejects.toMatchObject({ code: 'SQL_STORE_UNAVAILABLE' });
      await server.restart();
      let rows: unknown;
      // Pooled connections broken by the crash are replaced on the next calls.
      for (let i = 0; i < 5 && rows === undefined; i++) rows = (await store.run(ns, one('SELECT v FROM kept'), SQL_LIMITS).catch(() => undefined))?.[0]?.rows;
      expect(rows).toEqual([[7]]);
    } finally {
      await store.close();
    }
  }, 60_000);
});
