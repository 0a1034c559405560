/**
 * The SQL end-to-end cases, run by e2e-sql.test.ts against each store in turn, one network per
 * store (embedded PGlite, then a real Postgres): handlers in a real
 * Chromium tab use `env.DB` (D1's API), each call travels as a stream the tab opens on its data
 * channel to the ingress, which runs it in PGlite (one database per binding) or in Postgres (a
 * schema and a login role per binding). One network per store, many cases.
 */
import { mkdtempSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { openSqlStore, SQL_LIMITS } from '../ingress/sql/index.ts';
import { disconnectBrowser } from './browser.ts';
import { runDcdn, type CliResult } from './cli.ts';
import { startNetwork, until, type Network } from './network.ts';
import { startPostgres, type PostgresServer } from '../tools/postgres.ts';
import { mkdirSync, writeFileSync } from 'node:fs';

const SQL_APP = fileURLToPath(new URL('./fixtures/sql-app.ts', import.meta.url));

export function sqlE2eSuite(which: 'embedded' | 'postgres'): void {
  const kind = which === 'embedded' ? 'embedded PGlite' : 'Postgres';
  const spec = () => (which === 'embedded' ? `pglite:${join(work, 'sql')}` : pg!.url);
  let net: Network;
  let pg: PostgresServer | undefined;
  let env: NodeJS.ProcessEnv;
  const work = mkdtempSync(join(tmpdir(), 'dcdn-sql-e2e-'));

  async function dcdn(...args: string[]): Promise<CliResult> {
    return runDcdn(env, args, { timeoutMs: 60_000 });
  }

  describe(`SQL over ${kind}`, () => {
  beforeAll(async () => {
    [pg, net] = await Promise.all([which === 'postgres' ? startPostgres() : Promise.resolve(undefined), startNetwork()]);
    env = { ...process.env, DCDN_HOME: work, DCDN_SIGNAL: net.urls.http, DCDN_SECRET: net.secret };
    for (const name of ['sqla', 'sqlb']) {
      const deployed = await dcdn('deploy', SQL_APP, '--name', name, '--sql', 'DB', '--skip-check');
      expect(deployed.stderr + deployed.stdout).toContain(`deployed ${name} version 1`);
    }
    await net.addTab('sql-tab', 'wallMs=120000');
  }, 240_000);

  afterAll(async () => {
    await net?.close();
    await pg?.stop();
    await disconnectBrowser();
  });

  interface Answer {
    ok: boolean;
    result?: any;
    code?: string;
    message?: string;
    sqlState?: string | null;
  }

  function post(ingress: Ingress, app: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${ingress.url}/@${app}${path}`, { method: body === undefined ? 'GET' : 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  async function sql(ingress: Ingress, app: string, call: Record<string, unknown>): Promise<Answer> {
    const r = await post(ingress, app, '/call', call);
    const body = JSON.parse(r.text) as Answer & { error?: { code: string; message: string } };
    // An error of the ingress's own (a head timeout) rather than the handler's answer.
    return body.error ? { ok: false, code: body.error.code, message: body.error.message } : body;
  }

    let ingress: Ingress;

    async function startIngress(): Promise<Ingress> {
      const store = await openSqlStore(spec());
      // A new embedded database runs initdb first (5 s quiet, 30 s on a loaded machine), past the
      // ingress's head timeout: open both apps' databases before the ingress serves them.
      for (const app of ['sqla', 'sqlb']) await store.run({ app, binding: 'DB' }, { mode: 'batch', statements: [{ sql: 'SELECT 1', params: [] }] }, SQL_LIMITS);
      const started = await net.addIngress({ sql: store, sqlLimits: { statementTimeoutMs: 3000 }, authorizeOperator: net.isOperator });
      await until(() => started.pool.size === 1, 20_000, 'the tab connected');
      return started;
    }

    beforeAll(async () => {
      ingress = await startIngress();
    }, 240_000);

    afterAll(async () => {
      await ingress?.close();
    });

    it("runs the Worker of Cloudflare's D1 guide unchanged", async () => {
      const setup = await sql(ingress, 'sqla', {
        op: 'exec',
        sql: `DROP TABLE IF EXISTS Customers;
  CREATE TABLE IF NOT EXISTS Customers (CustomerId INTEGER PRIMARY KEY, CompanyName TEXT, ContactName TEXT);
  INSERT INTO Customers (CustomerID, CompanyName, ContactName) VALUES (1, 'Alfreds Futterkiste', 'Maria Anders'), (4, 'Around the Horn', 'Thomas Hardy'), (11, 'Bs Beverages', 'Victoria Ashworth'), (13, 'Bs Beverages', 'Random Name');`,
      });
      expect(setup).toMatchObject({ ok: true, result: { count: 3 } });
      const r = await post(ingress, 'sqla', '/api/beverages');
      expect(r.status).toBe(200);
      // Postgres folds unquoted names to lower case (docs/sql.md).
      expect(JSON.parse(r.text)).toEqual([
        { customerid: 11, companyname: 'Bs Beverages', contactname: 'Victoria Ashworth' },
        { customerid: 13, companyname: 'Bs Beverages', contactname: 'Random Name' },
      ]);
    }, 60_000);

    it('creates, inserts and selects with ? and $1 placeholders, typed values both ways', async () => {
      expect((await sql(ingress, 'sqla', { op: 'exec', sql: 'CREATE TABLE notes (id SERIAL PRIMARY KEY, body TEXT NOT NULL, big BIGINT, data BYTEA, doc JSONB, flag BOOLEAN, price NUMERIC(10,2), at TIMESTAMPTZ)' })).ok).toBe(true);
      const inserted = await sql(ingress, 'sqla', { op: 'run', sql: 'INSERT INTO notes (body, big, data, doc, flag, price, at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id', params: ["it's ?", '9007199254740993', [0, 1, 255], { a: [1, 'x'] }, true, '12.50', '2026-01-02T03:04:05Z'], blobs: [2] });
      expect(inserted.ok).toBe(true);
      expect(inserted.result.meta).toMatchObject({ changes: 1, rows_written: 1, last_row_id: 1, changed_db: true });
      await sql(ingress, 'sqla', { op: 'run', sql: 'INSERT INTO notes (body) VALUES ($1), ($2)', params: ['second', 'third'] });
      const row = await sql(ingress, 'sqla', { op: 'first', sql: 'SELECT * FROM notes WHERE body = ?', params: ["it's ?"] });
      expect(row.result).toEqual({ id: 1, body: "it's ?", big: '9007199254740993n', data: { blob: [0, 1, 255] }, doc: { a: [1, 'x'] }, flag: true, price: '12.50', at: expect.stringMatching(/^2026-01-02 03:04:05\+00/) });
      expect((await sql(ingress, 'sqla', { op: 'first', sql: 'SELECT count(*) AS n FROM notes WHERE id > $1', params: [1], column: 'n' })).result).toBe(2);
      const raw = await sql(ingress, 'sqla', { op: 'raw', sql: 'SELECT id, body FROM notes WHERE id >= ?1 ORDER BY id LIMIT ?2', params: [2, 5], columnNames: true });
      expect(raw.result).toEqual([['id', 'body'], [2, 'second'], [3, 'third']]);
      const all = await sql(ingress, 'sqla', { op: 'all', sql: 'SELECT body FROM notes ORDER BY id' });
      expect(all.result.results.map((r: { body: string }) => r.body)).toEqual(["it's ?", 'second', 'third']);
      expect(all.result.meta).toMatchObject({ rows_read: 3, changes: 0 });
      const missing = await sql(ingress, 'sqla', { op: 'all', sql: 'SELECT * FROM nowhere' });
      expect(missing).toMatchObject({ ok: false, code: 'SQL_ERROR', sqlState: '42P01' });
      expect(missing.message).toMatch(/^D1_ERROR: relation "nowhere" does not exist/);
    }, 60_000);

    it('rolls a failing batch back whole', async () => {
      await sql(ingress, 'sqla', { op: 'exec', sql: 'CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INT NOT NULL CHECK (balance >= 0))' });
      const ok = await sql(ingress, 'sqla', { op: 'batch', statements: [{ sql: 'INSERT INTO accounts VALUES (?, ?)', params: ['a', 10] }, { sql: 'INSERT INTO accounts VALUES (?, ?)', params: ['b', 0] }] });
      expect(ok.ok).toBe(true);
      const failed = await sql(ingress, 'sqla', {
        op: 'batch',
        statements: [
          { sql: 'UPDATE accounts SET balance = balance + 5 WHERE name = ?', params: ['b'] },
          { sql: 'INSERT INTO accounts VALUES (?, ?)', params: ['c', 1] },
          { sql: 'UPDATE accounts SET balance = balance - 20 WHERE name = ?', params: ['a'] },
        ],
      });
      expect(failed).toMatchObject({ ok: false, code: 'SQL_ERROR', sqlState: '23514' });
      const after = await sql(ingress, 'sqla', { op: 'raw', sql: 'SELECT name, balance FROM accounts ORDER BY name' });
      expect(after.result).toEqual([['a', 10], ['b', 0]]);
    }, 60_000);

    it('pages 10,000 rows correctly', async () => {
      await sql(ingress, 'sqla', { op: 'exec', sql: 'CREATE TABLE items (n INT PRIMARY KEY, label TEXT); INSERT INTO items SELECT g, \'item \' || g FROM generate_series(1, 10000) g' });
      const seen: number[] = [];
      for (let after = 0; ; ) {
        const page = await sql(ingress, 'sqla', { op: 'raw', sql: 'SELECT n FROM items WHERE n > ? ORDER BY n LIMIT 1000', params: [after] });
        if (page.result.length === 0) break;
        seen.push(...page.result.map((r: number[]) => r[0]));
        after = seen.at(-1)!;
      }
      expect(seen).toHaveLength(10000);
      expect(seen.every((n, i) => n === i + 1)).toBe(true);
      // And all at once, through the cursor's pages.
      const whole = await sql(ingress, 'sqla', { op: 'all', sql: 'SELECT * FROM items ORDER BY n' });
      expect(whole.result.results).toHaveLength(10000);
      expect(whole.result.results[9999]).toEqual({ n: 10000, label: 'item 10000' });
    }, 60_000);

    it('refuses a 20 MiB result with SQL_RESULT_TOO_LARGE', async () => {
      const big = await sql(ingress, 'sqla', { op: 'all', sql: "SELECT repeat('x', 1048576) AS mb FROM generate_series(1, 20)" });
      expect(big).toMatchObject({ ok: false, code: 'SQL_RESULT_TOO_LARGE' });
      expect(big.message).toMatch(/^D1_ERROR: /);
    }, 60_000);

    it('cuts a runaway query at the statement timeout, and serves the next call', async () => {
      const slow = await sql(ingress, 'sqla', { op: 'all', sql: 'SELECT pg_sleep(10)' });
      expect(slow).toMatchObject({ ok: false, code: 'SQL_TIMEOUT' });
      expect(slow.message).toMatch(/^D1_ERROR: canceling statement due to statement timeout/);
      expect((await sql(ingress, 'sqla', { op: 'first', sql: 'SELECT count(*) AS n FROM accounts', column: 'n' })).result).toBe(2);
      // Turning the timeout off from inside the transaction does not escape it.
      expect(await sql(ingress, 'sqla', { op: 'exec', sql: 'SET statement_timeout = 0; SELECT pg_sleep(10)' })).toMatchObject({ ok: false, code: 'SQL_TIMEOUT' });
    }, 60_000);

    it('refuses more statements per request than the limit', async () => {
      const statements = Array.from({ length: 1001 }, () => ({ sql: 'SELECT 1' }));
      expect(await sql(ingress, 'sqla', { op: 'batch', statements })).toMatchObject({ ok: false, code: 'SQL_TOO_MANY_STATEMENTS' });
    }, 60_000);

    it("keeps each app's database apart, whatever SQL it sends", async () => {
      await sql(ingress, 'sqla', { op: 'exec', sql: "CREATE TABLE secrets (v TEXT); INSERT INTO secrets VALUES ('a-only'); ANALYZE secrets" });
      const schema = (await sql(ingress, 'sqla', { op: 'first', sql: 'SELECT current_schema() AS s', column: 's' })).result as string;
      // What Postgres answers each attempt with (the embedded store has no roles to refuse with).
      const attempts: Array<[string, string, string]> = [
        ['SELECT * FROM secrets', 'plain name', 'SQL_ERROR'],
        [`SELECT * FROM ${schema}.secrets`, 'schema-qualified name', 'SQL_PERMISSION_DENIED'],
        [`SET search_path = ${schema}; SELECT * FROM secrets`, 'search_path', 'SQL_ERROR'],
        [`SELECT * FROM pg_catalog.pg_statistic`, 'pg_statistic', 'SQL_PERMISSION_DENIED'],
        [`SET ROLE postgres`, 'SET ROLE', 'SQL_PERMISSION_DENIED'],
        [`SET SESSION AUTHORIZATION postgres`, 'SET SESSION AUTHORIZATION', 'SQL_PERMISSION_DENIED'],
        [`SELECT pg_read_file('PG_VERSION')`, 'server files', 'SQL_PERMISSION_DENIED'],
      ];
      for (const [text, what, code] of attempts) {
        const r = await sql(ingress, 'sqlb', { op: 'exec', sql: text });
        if (kind === 'Postgres') expect({ what, code: r.code }).toEqual({ what, code });
        else if (r.ok === false) expect(r.code, what).toMatch(/^SQL_(ERROR|PERMISSION_DENIED)$/);
        else {
          // Embedded: B is superuser of its own PGlite, which holds no data of A's.
          expect(JSON.stringify(r.result), what).not.toContain('a-only');
        }
      }
      // Statistics views show no other binding's values either.
      const stats = await sql(ingress, 'sqlb', { op: 'all', sql: "SELECT * FROM pg_stats WHERE tablename = 'secrets'" });
      expect(JSON.stringify(stats.result ?? null)).not.toContain('a-only');
      expect((await sql(ingress, 'sqla', { op: 'first', sql: 'SELECT v FROM secrets', column: 'v' })).result).toBe('a-only');
    }, 60_000);

    // The CLI path is the same for both stores (the ingress runs the calls); once is enough.
    it.runIf(kind === 'embedded PGlite')('lets operators query, migrate, export and import with dcdn sql', async () => {
      const at = ['--binding', 'DB', '--ingress', ingress.url];
      const table = await dcdn('sql', 'sqla', ...at, 'SELECT name, balance FROM accounts ORDER BY name');
      expect(table.stdout).toBe('name | balance\n-----+--------\na    | 10\nb    | 0\n(2 rows)\n');
      const dir = join(work, `migrations-${kind.replace(/\W/g, '')}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, '1_users.sql'), 'CREATE TABLE users (id SERIAL PRIMARY KEY, email TEXT UNIQUE NOT NULL);');
      writeFileSync(join(dir, '2_seed.sql'), "INSERT INTO users (email) VALUES ('a@example.net'), ('b@example.net');");
      writeFileSync(join(dir, '10_name.sql'), 'ALTER TABLE users ADD COLUMN name TEXT;');
      const first = await dcdn('sql', 'migrate', 'sqlb', ...at, dir);
      expect(first.stdout).toBe('applied 1_users.sql\napplied 2_seed.sql\napplied 10_name.sql\n3 applied, 0 already there\n');
      writeFileSync(join(dir, '11_bad.sql'), "UPDATE users SET name = 'x'; INSERT INTO users (email) VALUES ('a@example.net');");
      const again = await dcdn('sql', 'migrate', 'sqlb', ...at, dir);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('SQL_ERROR');
      // The failed file left nothing: not its UPDATE, not its record.
      expect((await sql(ingress, 'sqlb', { op: 'first', sql: 'SELECT count(*) AS n FROM users WHERE name IS NOT NULL', column: 'n' })).result).toBe(0);
      expect((await sql(ingress, 'sqlb', { op: 'raw', sql: 'SELECT name FROM dcdn_migrations ORDER BY name' })).result).toEqual([['10_name.sql'], ['1_users.sql'], ['2_seed.sql']]);
      const exported = await dcdn('sql', 'export', 'sqlb', ...at);
      expect(exported.stdout.trim().split('\n').filter((l) => l.includes('"users"'))).toHaveLength(2);
      writeFileSync(join(dir, 'users.jsonl'), exported.stdout);
      await sql(ingress, 'sqlb', { op: 'run', sql: 'DELETE FROM users' });
      expect((await dcdn('sql', 'import', 'sqlb', ...at, join(dir, 'users.jsonl'))).stdout).toMatch(/^imported \d+ row\(s\)/);
      expect((await sql(ingress, 'sqlb', { op: 'raw', sql: 'SELECT id, email FROM users ORDER BY id' })).result).toEqual([[1, 'a@example.net'], [2, 'b@example.net']]);
    }, 90_000);

    it('keeps the data across a restart of the ingress', async () => {
      await sql(ingress, 'sqla', { op: 'exec', sql: "CREATE TABLE durable (v TEXT); INSERT INTO durable VALUES ('kept')" });
      await ingress.close();
      net.ingresses.splice(net.ingresses.indexOf(ingress), 1);
      ingress = await startIngress();
      expect((await sql(ingress, 'sqla', { op: 'first', sql: 'SELECT v FROM durable', column: 'v' })).result).toBe('kept');
    }, 90_000);
  });
}
