/**
 * The shared SQL store: a Postgres (or CockroachDB) every ingress points at. Each binding is its
 * own schema, owned by its own login role, and its statements run on connections that log in
 * as that role: the session user itself has rights on that schema alone, so no statement can
 * `SET ROLE` or `SET SESSION AUTHORIZATION` its way out (Postgres checks those against the
 * session user), read another schema (no USAGE on it), or read server files (not a superuser).
 *
 * The admin connection (the URL's user, which needs CREATEROLE and CREATE on the database)
 * creates a binding's role and schema on its first use and keeps each role's generated password
 * in `dcdn_sql_admin.bindings`, readable by the admin alone; every ingress on the same database
 * finds them there.
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
// pg's own URL parser (a dependency of pg): pg lets a connectionString override `user`, so the
// per-binding pools take the parsed URL with their role put in.
import { parse as parseUrl } from 'pg-connection-string';
import { DcdnError, type SqlWireRequest, type SqlWireResult } from '../../protocol/index.ts';
import { execute, sqlError, type SqlConnection } from './execute.ts';
import type { SqlNamespace, SqlRunLimits, SqlStore } from './store.ts';

export interface PgSqlStoreOptions {
  /** Connections per binding this node opens at most (also the role's CONNECTION LIMIT is 4× this). Default 4. */
  poolPerBinding?: number;
  /** Longest wait for a connection. Default 5000 ms. */
  connectTimeoutMs?: number;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

/** The values rules of docs/sql.md, the same as the embedded store's (pglite-worker.mjs). */
const TEXT_TYPES = new Set([1700, 1082, 1083, 1114, 1184, 1266, 1186]);
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20) return (v: string) => (Number.isSafeInteger(Number(v)) ? Number(v) : BigInt(v));
    if (TEXT_TYPES.has(oid)) return (v: string) => v;
    return pg.types.getTypeParser(oid, format ?? 'text');
  },
};

const ADMIN_SCHEMA = 'dcdn_sql_admin';

/** Schema and role name of a binding: a hash, as app + binding can pass Postgres' 63-byte names. */
export function pgNameOf(ns: SqlNamespace): string {
  return `dcdn_sql_${createHash('sha256').update(`${ns.app}:${ns.binding}`).digest('hex').slice(0, 24)}`;
}

export class PgSqlStore implements SqlStore {
  readonly kind = 'postgres' as const;
  readonly #url: string;
  readonly #admin: pg.Pool;
  readonly #pools = new Map<string, Promise<pg.Pool>>();
  readonly #opts: PgSqlStoreOptions;

  private constructor(url: string, admin: pg.Pool, options: PgSqlStoreOptions) {
    this.#url = url;
    this.#admin = admin;
    this.#opts = options;
  }

  /** Connects as the URL's user and creates the admin schema if it is missing. Rejects with SQL_STORE_UNAVAILABLE. */
  static async connect(url: string, options: PgSqlStoreOptions = {}): Promise<PgSqlStore> {
    const admin = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: options.connectTimeoutMs ?? 5000 });
    admin.on('error', () => {}); // an idle connection's loss; the next query reports it
    try {
      await admin.query(`CREATE SCHEMA IF NOT EXISTS ${ADMIN_SCHEMA}`);
      await admin.query(`REVOKE ALL ON SCHEMA ${ADMIN_SCHEMA} FROM PUBLIC`);
      await admin.query(`CREATE TABLE IF NOT EXISTS ${ADMIN_SCHEMA}.bindings (app TEXT NOT NULL, binding TEXT NOT NULL, name TEXT NOT NULL UNIQUE, password TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (app, binding))`);
    } catch (err) {
      await admin.end().catch(() => {});
      if ((err as { code?: string }).code === '23505' || (err as { code?: string }).code === '42P07') return PgSqlStore.connect(url, options); // a concurrent start made them
      throw new DcdnError('SQL_STORE_UNAVAILABLE', `D1_ERROR: the SQL store could not be opened: ${(err as Error).message}`);
    }
    return new PgSqlStore(url, admin, options);
  }

  async run(ns: SqlNamespace, request: SqlWireRequest, limits: SqlRunLimits): Promise<SqlWireResult[]> {
    let client: pg.PoolClient;
    try {
      client = await (await this.#pool(ns)).connect();
    } catch (err) {
      throw err instanceof DcdnError ? err : new DcdnError('SQL_STORE_UNAVAILABLE', `D1_ERROR: the database is unavailable: ${(err as Error).message}`);
    }
    // A connection lost while checked out also emits 'error' on the client: the failed query
    // reports it; without a listener the event would take the ingress down.
    const ignore = () => {};
    client.on('error', ignore);
    const timeout = limits.statementTimeoutMs;
    // The statement timeout is Postgres' own; a statement may SET it away in its transaction, so
    // past it (and a second's grace) the admin cancels the backend from outside.
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const pid = (client as unknown as { processID: number }).processID;
    const conn: SqlConnection = {
      query: async (text, values) => {
        watchdog = setTimeout(() => void this.#admin.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => {}), timeout + 1000);
        try {
          const r = await client.query({ text, values, rowMode: 'array', types });
          return { fields: r.fields.map((f) => f.name), rows: r.rows as unknown[][], affected: r.rowCount };
        } finally {
          clearTimeout(watchdog);
        }
      },
      exec: async (script) => {
        watchdog = setTimeout(() => void this.#admin.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => {}), timeout + 1000);
        try {
          const r = (await client.query({ text: script, rowMode: 'array', types } as pg.QueryConfig)) as unknown as pg.QueryResult | pg.QueryResult[];
          return (Array.isArray(r) ? r : [r]).map((x) => ({ fields: (x.fields ?? []).map((f) => f.name), rows: (x.rows ?? []) as unknown[][], affected: x.rowCount }));
        } finally {
          clearTimeout(watchdog);
        }
      },
    };
    let broken = false;
    try {
      await client.query(`BEGIN; SET LOCAL statement_timeout = ${Math.max(1, Math.floor(timeout))}`);
      const results = await execute(conn, request, limits, 'dcdn-postgres');
      await client.query('COMMIT');
      return results;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw sqlError(err);
    } finally {
      // A session a statement changed (a plain SET) stays with its own binding's pool: harmless.
      client.off('error', ignore);
      client.release(broken ? true : undefined);
    }
  }

  async drop(ns: SqlNamespace): Promise<void> {
    const name = pgNameOf(ns);
    const pool = this.#pools.get(name);
    this.#pools.delete(name);
    if (pool) await (await pool.catch(() => null))?.end();
    await this.#admin.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
    await this.#admin.query(`DROP ROLE IF EXISTS ${name}`);
    await this.#admin.query(`DELETE FROM ${ADMIN_SCHEMA}.bindings WHERE name = $1`, [name]);
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map(async (p) => (await p.catch(() => null))?.end()));
    await this.#admin.end();
  }

  /** The pool of connections that log in as the binding's role, made on first use. */
  #pool(ns: SqlNamespace): Promise<pg.Pool> {
    const name = pgNameOf(ns);
    let pool = this.#pools.get(name);
    if (!pool) {
      pool = this.#provision(ns, name).then((password) => {
        const p = new pg.Pool({
          ...(parseUrl(this.#url) as pg.PoolConfig),
          user: name,
          password,
          max: this.#opts.poolPerBinding ?? 4,
          connectionTimeoutMillis: this.#opts.connectTimeoutMs ?? 5000,
          idleTimeoutMillis: 30_000,
        });
        p.on('error', () => {});
        return p;
      });
      pool.catch(() => this.#pools.delete(name));
      this.#pools.set(name, pool);
    }
    return pool;
  }

  /** The binding's role password; creates the role and schema when they are missing (once, under a lock). */
  async #provision(ns: SqlNamespace, name: string): Promise<string> {
    const client = await this.#admin.connect().catch((err: Error) => {
      throw new DcdnError('SQL_STORE_UNAVAILABLE', `D1_ERROR: the database is unavailable: ${err.message}`);
    });
    try {
      await client.query('BEGIN');
      // One ingress creates a binding at a time (CockroachDB has no advisory locks: see docs/sql.md).
      await client.query(`LOCK TABLE ${ADMIN_SCHEMA}.bindings IN SHARE ROW EXCLUSIVE MODE`);
      const found = await client.query<{ password: string }>(`SELECT password FROM ${ADMIN_SCHEMA}.bindings WHERE name = $1`, [name]);
      if (found.rows[0]) {
        await client.query('COMMIT');
        return found.rows[0].password;
      }
      const password = randomBytes(24).toString('hex');
      const limit = (this.#opts.poolPerBinding ?? 4) * 4;
      await client.query(`CREATE ROLE ${name} LOGIN NOINHERIT NOCREATEDB NOCREATEROLE CONNECTION LIMIT ${limit} PASSWORD '${password}'`);
      // The admin must be a member to make the role a schema's owner (PG ≥ 16 no longer implies it).
      await client.query(`GRANT ${name} TO CURRENT_USER`);
      await client.query(`CREATE SCHEMA ${name} AUTHORIZATION ${name}`);
      await client.query(`ALTER ROLE ${name} SET search_path = ${name}`);
      await client.query(`INSERT INTO ${ADMIN_SCHEMA}.bindings (app, binding, name, password) VALUES ($1, $2, $3, $4)`, [ns.app, ns.binding, name, password]);
      await client.query('COMMIT');
      this.#opts.log?.('info', 'sql binding created', { app: ns.app, binding: ns.binding, schema: name });
      return password;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw sqlError(err);
    } finally {
      client.release();
    }
  }
}
