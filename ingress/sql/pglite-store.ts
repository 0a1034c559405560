/**
 * The embedded SQL store: one PGlite (Postgres in WASM) per binding, each in its own directory
 * under `dir` (default `$DCDN_HOME/sql/APP/BINDING`) and its own worker thread.
 *
 * Why one per binding: PGlite has one user, a superuser, so schemas and roles inside one
 * instance cannot keep apps apart (a statement could `SET ROLE` back); separate instances can,
 * and PGlite's file system is confined to its own directory. Why a thread each: PGlite runs a
 * query synchronously and cannot be interrupted, so the statement timeout ends the thread (the
 * transaction is lost as in a crash; Postgres' WAL recovers the directory on the next open).
 * PGlite is single-connection: calls on one binding run one after another, in arrival order.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DcdnError, type SqlWireRequest, type SqlWireResult } from '../../protocol/index.ts';
import { execute, sqlError, type RawResult, type SqlConnection } from './execute.ts';
import type { SqlNamespace, SqlRunLimits, SqlStore } from './store.ts';

export interface PgliteSqlStoreOptions {
  /** Databases kept open at once (each costs several hundred MB of RSS: docs/sql.md); the least recently used idle one closes first. Default 4. */
  maxOpen?: number;
  /** A database unused this long is closed (its thread ends). Default 300000 ms. */
  idleCloseMs?: number;
  /** Longest wait for a database to open (a new one runs initdb: seconds). Default 60000 ms. */
  openTimeoutMs?: number;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

const WORKER = new URL('./pglite-worker.mjs', import.meta.url);

type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void };

/** One binding's open database: its thread, its queue of calls. */
class Db {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #tail: Promise<unknown> = Promise.resolve();
  busy = 0;
  lastUsed = Date.now();
  dead: Error | null = null;
  ondead: () => void = () => {};

  constructor(dir: string, openTimeoutMs: number) {
    this.worker = new Worker(WORKER, { workerData: { dir } });
    this.worker.unref();
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DcdnError('SQL_STORE_UNAVAILABLE', `D1_ERROR: the embedded database did not open within ${openTimeoutMs} ms`)), openTimeoutMs);
      this.worker.once('message', (m: { ready: boolean; error?: { message: string } }) => {
        clearTimeout(timer);
        if (m.ready) resolve();
        else reject(new DcdnError('SQL_STORE_UNAVAILABLE', `D1_ERROR: the embedded database failed to open: ${m.error?.message}`));
      });
    });
    this.ready.then(
      () => this.worker.on('message', (m: { id: number; result?: unknown; results?: unknown; error?: { message: string; code?: string } }) => {
        const p = this.#pending.get(m.id);
        if (!p) return;
        this.#pending.delete(m.id);
        if (m.error) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
        else p.resolve(m.results ?? m.result);
      }),
      () => void this.worker.terminate(),
    );
    this.worker.on('error', (err) => this.#die(err));
    this.worker.on('exit', () => this.#die(new Error('the embedded database thread exited')));
  }

  #die(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    for (const p of this.#pending.values()) p.reject(new DcdnError('SQL_STORE_UNAVAILABLE', `D1_ERROR: ${err.message}`));
    this.#pending.clear();
    this.ondead();
  }

  /** One round trip to the thread; past `timeoutMs` the thread is ended and SQL_TIMEOUT thrown. */
  call(message: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    if (this.dead) return Promise.reject(new DcdnError('SQL_STORE_UNAVAILABLE', `D1_ERROR: ${this.dead.message}`));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new DcdnError('SQL_TIMEOUT', `D1_ERROR: canceling statement due to statement timeout (${timeoutMs} ms) (SQLSTATE 57014)`));
        this.dead ??= new Error('the embedded database was stopped at a statement timeout');
        this.ondead();
        void this.worker.terminate();
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.worker.postMessage({ id, ...message });
    });
  }

  /** Runs `work` after every call queued before it (PGlite has one connection). */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    this.busy++;
    const run = this.#tail.then(work, work);
    this.#tail = run.catch(() => {});
    return run.finally(() => {
      this.busy--;
      this.lastUsed = Date.now();
    });
  }
}

export class PgliteSqlStore implements SqlStore {
  readonly kind = 'pglite' as const;
  readonly #dir: string;
  readonly #open = new Map<string, Db>();
  readonly #maxOpen: number;
  readonly #idleMs: number;
  readonly #openMs: number;
  readonly #sweep: ReturnType<typeof setInterval>;
  readonly #opts: PgliteSqlStoreOptions;

  /** Databases live under `dir`/APP/BINDING; `dir` is created owner-only. */
  constructor(dir: string, options: PgliteSqlStoreOptions = {}) {
    this.#dir = dir;
    this.#opts = options;
    this.#maxOpen = options.maxOpen ?? 4;
    this.#idleMs = options.idleCloseMs ?? 300_000;
    this.#openMs = options.openTimeoutMs ?? 60_000;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.#sweep = setInterval(() => this.#closeIdle(), Math.min(this.#idleMs, 60_000));
    this.#sweep.unref();
  }

  async run(ns: SqlNamespace, request: SqlWireRequest, limits: SqlRunLimits): Promise<SqlWireResult[]> {
    const db = this.#db(ns);
    return db.exclusive(async () => {
      await db.ready;
      const t = limits.statementTimeoutMs;
      const conn: SqlConnection = {
        query: async (sql, params) => (await db.call({ op: 'query', sql, params }, t)) as RawResult,
        exec: async (sql) => (await db.call({ op: 'exec', sql }, t)) as RawResult[],
      };
      try {
        await conn.query('BEGIN', []);
        const results = await execute(conn, request, limits, 'dcdn-pglite');
        await conn.query('COMMIT', []);
        return results;
      } catch (err) {
        if (!db.dead) await conn.query('ROLLBACK', []).catch(() => {});
        throw sqlError(err);
      }
    });
  }

  async drop(ns: SqlNamespace): Promise<void> {
    const key = keyOf(ns);
    const db = this.#open.get(key);
    this.#open.delete(key);
    if (db) await db.worker.terminate();
    rmSync(join(this.#dir, ns.app, ns.binding), { recursive: true, force: true });
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
    const dbs = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(dbs.map((db) => this.#shut(db)));
  }

  #db(ns: SqlNamespace): Db {
    const key = keyOf(ns);
    let db = this.#open.get(key);
    if (db && !db.dead) return db;
    if (this.#open.size >= this.#maxOpen) this.#evict();
    const dir = join(this.#dir, ns.app, ns.binding);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    db = new Db(dir, this.#openMs);
    const opened = db;
    db.ondead = () => {
      if (this.#open.get(key) === opened) this.#open.delete(key);
    };
    db.ready.catch(() => opened.ondead());
    this.#open.set(key, db);
    this.#opts.log?.('info', 'sql database open', { app: ns.app, binding: ns.binding });
    return db;
  }

  /** Closes the least recently used database that has no call running or queued. */
  #evict(): void {
    const idle = [...this.#open.entries()].filter(([, db]) => db.busy === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed)[0];
    if (!idle) throw new DcdnError('SQL_STORE_UNAVAILABLE', `D1_ERROR: ${this.#maxOpen} embedded databases are busy; try again`);
    this.#open.delete(idle[0]);
    void this.#shut(idle[1]);
  }

  #closeIdle(): void {
    const now = Date.now();
    for (const [key, db] of this.#open) {
      if (db.busy === 0 && now - db.lastUsed >= this.#idleMs) {
        this.#open.delete(key);
        void this.#shut(db);
      }
    }
  }

  /** Closes cleanly (a checkpoint) when it can, else ends the thread. */
  async #shut(db: Db): Promise<void> {
    try {
      await db.ready;
      await db.exclusive(() => db.call({ op: 'close' }, 30_000));
    } catch {
      // ended below
    }
    await db.worker.terminate();
  }
}

function keyOf(ns: SqlNamespace): string {
  return `${ns.app}\n${ns.binding}`;
}
