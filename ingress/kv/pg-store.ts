import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { DcdnError, errorCodeOf } from '../../protocol/index.ts';
import type { KvEntry, KvListOptions, KvListResult, KvPutOptions, KvStore, KvStoreOptions } from './store.ts';
import { decodeCursor, encodeCursor, prefixEnd } from './key-range.ts';

/**
 * Bytes per stored chunk row, and so per chunk a reader gets. 32 KiB, not the other stores'
 * 64 KiB: node-pg reads BYTEA as text, and a row's reply must fit one 64 KiB socket read (44 KiB
 * in base64) or its parser merges reads into doubling buffers, several times the value's bytes
 * of garbage per chunk (the conformance suite's memory bound caught it).
 */
const CHUNK_BYTES = 32 * 1024;
/** How long a put may stream before its unfinished value counts as abandoned (a crash). */
const UNFINISHED_MS = 60 * 60 * 1000;
/** Rows one sweep or drop statement handles, so no statement holds locks for long. */
const BATCH = 1000;
/** Attempts at a statement that lost a serialization race before it fails. */
const SERIALIZATION_RETRIES = 10;

export interface PgKvStoreOptions extends KvStoreOptions {
  /** Prefix of the three tables this store uses. Default 'dcdn_kv_'. Letters, digits and '_' only. */
  tablePrefix?: string;
  /** Default 2000 ms. */
  connectTimeoutMs?: number;
  /** A statement with no reply after this fails with KV_STORE_UNAVAILABLE. Default 5000 ms. */
  commandTimeoutMs?: number;
  /** Most connections this node opens. Default 10. */
  maxConnections?: number;
  /** How often expired entries and replaced values are reclaimed. Default 60 000 ms. */
  sweepIntervalMs?: number;
  /** Where connection trouble and failed background work are reported. Default: nothing is logged. */
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * KV in PostgreSQL (or CockroachDB), shared by every ingress pointed at the same database.
 *
 * Tables, with P the table prefix:
 * - `P entries (ns, key BYTEA, value_id, size, expiration, metadata)`: one row per live key;
 *   keys are BYTEA so ORDER BY compares UTF-8 bytes whatever the database's collation;
 * - `P values (id, reclaim_at)`: every value written; `reclaim_at` (ms, database clock) is NULL
 *   while an entry points at it, else the time its chunks may go;
 * - `P chunks (value_id, seq, bytes)`: the value's bytes in rows of at most 32 KiB.
 * A put inserts its chunks under a fresh value id as they arrive (one short statement each),
 * then one statement swaps the entry to the new id and gives the old id `readGraceMs`, so readers
 * see the old value or the new one and a reader that started on the old one finishes. Grace and
 * abandonment use the database's clock (one clock for every node); expiry uses the store's clock,
 * as the other backends do.
 *
 * SQL: plain tables, BYTEA, INSERT … ON CONFLICT, data-modifying CTEs and row-value IN, all of
 * which CockroachDB (v21+) also runs; no large objects, LISTEN, advisory locks or extensions.
 *
 * @example
 * ```ts
 * const store = await PgKvStore.connect('postgres://dcdn@db.internal/dcdn');
 * ```
 */
export class PgKvStore implements KvStore {
  readonly kind = 'postgres';
  readonly #pool: pg.Pool;
  readonly #t: { entries: string; values: string; chunks: string };
  readonly #graceMs: number;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  readonly #log: PgKvStoreOptions['log'];
  #down = false;

  private constructor(pool: pg.Pool, options: PgKvStoreOptions) {
    this.#pool = pool;
    this.#t = tables(options.tablePrefix ?? 'dcdn_kv_');
    this.#graceMs = options.readGraceMs ?? 60_000;
    this.#now = options.now ?? Date.now;
    this.#log = options.log;
    // An idle connection that dies (Postgres restarted) is reported here, not thrown: callers see
    // failures through their own calls.
    pool.on('error', (err) => this.#lost(err));
    this.#timer = setInterval(() => {
      this.sweep().catch((err: Error) => this.#log?.('warn', 'kv: sweeping expired keys failed; retried next interval', { store: 'postgres', err: err.message }));
    }, options.sweepIntervalMs ?? 60_000).unref();
  }

  /**
   * Connects to a `postgres://` or `postgresql://` URL (a unix socket as `?host=/dir`), creates
   * the tables if missing, and rejects with KV_STORE_UNAVAILABLE if the database does not
   * answer within the connect timeout.
   */
  static async connect(url: string, options: PgKvStoreOptions = {}): Promise<PgKvStore> {
    if (!/^postgres(ql)?:\/\//i.test(url)) throw new DcdnError('KV_STORE_UNAVAILABLE', `not a Postgres URL: ${JSON.stringify(url)}`);
    const prefix = options.tablePrefix ?? 'dcdn_kv_';
    if (!/^[a-z_][a-z0-9_]*$/i.test(prefix)) throw new TypeError(`tablePrefix must be letters, digits and '_': ${JSON.stringify(prefix)}`);
    const timeout = options.commandTimeoutMs ?? 5000;
    const pool = new pg.Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 2000,
      // Client-side: a frozen or partitioned server cannot hold a caller past the timeout.
      query_timeout: timeout,
      idleTimeoutMillis: 30_000,
      application_name: 'dcdn-kv',
      // Each statement is one serializable transaction: what CockroachDB always does, and what
      // put's read-then-write needs in Postgres (see put).
      options: '-c default_transaction_isolation=serializable',
    });
    pool.on('error', () => {});
    try {
      const t = tables(prefix);
      await createSchema(pool, t);
    } catch (err) {
      await pool.end().catch(() => {});
      throw storeError(err);
    }
    return new PgKvStore(pool, options);
  }

  async get(namespace: string, key: string): Promise<KvEntry | null> {
    const t = this.#t;
    // A value of one row comes with its entry: a small get is one round trip.
    const { rows } = await this.#query<{ value_id: string; size: string; expiration: string | null; metadata: string | null; whole: string | null }>(
      `SELECT value_id, size, expiration, metadata,
              CASE WHEN size > 0 AND size <= ${CHUNK_BYTES}
                THEN (SELECT encode(bytes, 'base64') FROM ${t.chunks} c WHERE c.value_id = e.value_id AND c.seq = 0) END AS whole
       FROM ${t.entries} e WHERE ns = $1 AND key = $2`,
      [namespace, Buffer.from(key, 'utf8')],
    );
    const row = rows[0];
    if (!row || (row.expiration !== null && Number(row.expiration) * 1000 <= this.#now())) return null;
    const size = Number(row.size);
    const whole = row.whole;
    return {
      size,
      ...(row.expiration !== null && { expiration: Number(row.expiration) }),
      ...(row.metadata !== null && { metadata: row.metadata }),
      chunks: () => (whole !== null ? single(Buffer.from(whole, 'base64')) : this.#chunks(row.value_id, size)),
    };
  }

  async put(namespace: string, key: string, value: AsyncIterable<Uint8Array>, options: KvPutOptions): Promise<void> {
    const t = this.#t;
    const id = randomBytes(12).toString('base64url');
    let size = 0;
    let seq = 0;
    /** Whether the value row exists (a value larger than one chunk is written as it arrives). */
    let started = false;
    // Incoming chunks come in any size; rows are cut at CHUNK_BYTES so reads hand out at most that.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (final: boolean): Promise<void> => {
      if (pendingBytes < CHUNK_BYTES && !(final && pendingBytes > 0)) return;
      // Buffer.concat copies even one buffer: skip it when one chunk holds all that is pending.
      const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      let at = 0;
      while (all.byteLength - at >= CHUNK_BYTES || (final && at < all.byteLength)) {
        if (!started) {
          // Unfinished until the commit: the sweep reclaims it if this put never gets there.
          await this.#query(`INSERT INTO ${t.values} (id, reclaim_at) VALUES ($1, ${DB_NOW_MS} + $2)`, [id, UNFINISHED_MS]);
          started = true;
        }
        const row = all.subarray(at, at + CHUNK_BYTES);
        await this.#query(`INSERT INTO ${t.chunks} (value_id, seq, bytes) VALUES ($1, $2, $3)`, [id, seq++, row]);
        at += row.byteLength;
      }
      const rest = all.subarray(at);
      pending = rest.byteLength > 0 ? [rest] : [];
      pendingBytes = rest.byteLength;
    };
    try {
      for await (const chunk of value) {
        if (chunk.byteLength === 0) continue;
        if (size + chunk.byteLength > options.maxValueBytes) {
          throw new DcdnError('KV_VALUE_TOO_LARGE', `the value is larger than ${options.maxValueBytes} bytes`);
        }
        size += chunk.byteLength;
        pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        pendingBytes += chunk.byteLength;
        await flush(false);
      }
      // A value of at most one row is still whole in memory: it goes in with the commit, so a
      // small put is one round trip. A larger one has its rows in place: flush the last.
      const small = started ? null : pendingBytes > 0 ? Buffer.concat(pending, pendingBytes) : Buffer.alloc(0);
      if (!small) await flush(true);
      // One statement, so atomic: the new value live, the entry pointing at it, and the value it
      // replaced given readGraceMs. Serializable (the pool's default), so two puts racing on one
      // key cannot both read the same old value and leave the other's live forever: one fails
      // with 40001 and #query runs it again.
      const live = small
        ? `live AS (INSERT INTO ${t.values} (id, reclaim_at) VALUES ($3, NULL) RETURNING id),
           chunk AS (INSERT INTO ${t.chunks} (value_id, seq, bytes) SELECT $3, 0, $8::bytea WHERE length($8::bytea) > 0),`
        : `live AS (UPDATE ${t.values} SET reclaim_at = NULL WHERE id = $3 RETURNING id),`;
      const { rows } = await this.#query<{ n: number }>(
        `WITH old AS (SELECT value_id FROM ${t.entries} WHERE ns = $1 AND key = $2),
              ${live}
              put AS (INSERT INTO ${t.entries} (ns, key, value_id, size, expiration, metadata)
                      SELECT $1, $2, id, $4, $5, $6 FROM live
                      ON CONFLICT (ns, key) DO UPDATE SET value_id = excluded.value_id, size = excluded.size,
                        expiration = excluded.expiration, metadata = excluded.metadata
                      RETURNING 1),
              gone AS (UPDATE ${t.values} SET reclaim_at = ${DB_NOW_MS} + $7
                       WHERE id IN (SELECT value_id FROM old) AND id <> $3 AND EXISTS (SELECT 1 FROM put))
         SELECT count(*)::int AS n FROM put`,
        [namespace, Buffer.from(key, 'utf8'), id, size, options.expiration ?? null, options.metadata ?? null, this.#graceMs, ...(small ? [small] : [])],
      );
      if (rows[0]?.n !== 1) throw new DcdnError('KV_STORE_UNAVAILABLE', 'the value being stored was reclaimed before it was committed (the put took longer than an hour)');
    } catch (err) {
      // Best effort: if Postgres is gone, the sweep reclaims the unfinished value after an hour.
      if (started) this.#drop(id).catch((e: Error) => this.#log?.('warn', 'kv: could not remove the value of a failed put; the sweep will', { store: 'postgres', err: e.message }));
      throw err;
    }
  }

  async delete(namespace: string, key: string): Promise<void> {
    const t = this.#t;
    await this.#query(
      `WITH gone AS (DELETE FROM ${t.entries} WHERE ns = $1 AND key = $2 RETURNING value_id)
       UPDATE ${t.values} SET reclaim_at = ${DB_NOW_MS} + $3 WHERE id IN (SELECT value_id FROM gone)`,
      [namespace, Buffer.from(key, 'utf8'), this.#graceMs],
    );
  }

  async list(namespace: string, options: KvListOptions): Promise<KvListResult> {
    const prefix = Buffer.from(options.prefix, 'utf8');
    let from: Buffer = prefix;
    let inclusive = true;
    if (options.cursor !== undefined) {
      const after = decodeCursor(options.cursor);
      if (Buffer.compare(after, from) >= 0) {
        from = after;
        inclusive = false;
      }
    }
    const { rows } = await this.#query<{ key: Buffer; expiration: string | null; metadata: string | null }>(
      `SELECT key, expiration, metadata FROM ${this.#t.entries}
       WHERE ns = $1 AND key ${inclusive ? '>=' : '>'} $2 AND key < $3 AND (expiration IS NULL OR expiration > $4)
       ORDER BY key LIMIT $5`,
      [namespace, from, prefixEnd(prefix), this.#nowSeconds(), options.limit + 1],
    );
    const keys = rows.slice(0, options.limit).map((row) => ({
      name: row.key.toString('utf8'),
      ...(row.expiration !== null && { expiration: Number(row.expiration) }),
      ...(row.metadata !== null && { metadata: row.metadata }),
    }));
    const last = rows[options.limit - 1];
    if (rows.length > options.limit && last) return { keys, listComplete: false, cursor: encodeCursor(last.key) };
    return { keys, listComplete: true };
  }

  async count(namespace: string): Promise<number> {
    const { rows } = await this.#query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${this.#t.entries} WHERE ns = $1 AND (expiration IS NULL OR expiration > $2)`,
      [namespace, this.#nowSeconds()],
    );
    return rows[0]!.n;
  }

  async dropNamespace(namespace: string): Promise<void> {
    while ((await this.#dropEntries('ns = $1', [namespace])) === BATCH);
  }

  /**
   * Removes expired entries (by the store's clock), gives their values readGraceMs, and deletes
   * the chunks of values whose time has come (replaced, deleted, or abandoned puts). Runs on a
   * timer on every node (it is idempotent); callable directly.
   */
  async sweep(): Promise<void> {
    while ((await this.#dropEntries('expiration IS NOT NULL AND expiration <= $1', [this.#nowSeconds()])) === BATCH);
    const t = this.#t;
    for (;;) {
      const { rows } = await this.#query<{ id: string }>(`SELECT id FROM ${t.values} WHERE reclaim_at <= ${DB_NOW_MS} LIMIT 100`, []);
      for (const { id } of rows) await this.#drop(id);
      if (rows.length < 100) return;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#pool.end().catch(() => {});
  }

  /** Reads a value one row per query, so only one chunk is in memory at a time. */
  async *#chunks(valueId: string, size: number): AsyncGenerator<Uint8Array> {
    let at = 0;
    for (let seq = 0; at < size; seq++) {
      // base64 rather than node-pg's hex text for BYTEA: 1.33 bytes on the wire per byte, not 2,
      // and no intermediate substring, so a read makes less garbage per chunk.
      const { rows } = await this.#query<{ b: string }>(`SELECT encode(bytes, 'base64') AS b FROM ${this.#t.chunks} WHERE value_id = $1 AND seq = $2`, [valueId, seq]);
      const bytes = rows[0] && Buffer.from(rows[0].b, 'base64');
      if (!bytes) throw new DcdnError('KV_STORE_UNAVAILABLE', 'the value was reclaimed while being read: reading took longer than readGraceMs');
      at += bytes.byteLength;
      yield bytes;
    }
  }

  /** Deletes up to BATCH entries matching `where`, giving their values readGraceMs; returns how many. */
  async #dropEntries(where: string, params: unknown[]): Promise<number> {
    const t = this.#t;
    const n = params.length;
    const { rows } = await this.#query<{ n: number }>(
      `WITH gone AS (DELETE FROM ${t.entries} WHERE (ns, key) IN (SELECT ns, key FROM ${t.entries} WHERE ${where} LIMIT ${BATCH}) RETURNING value_id),
            marked AS (UPDATE ${t.values} SET reclaim_at = ${DB_NOW_MS} + $${n + 1} WHERE id IN (SELECT value_id FROM gone) AND reclaim_at IS NULL)
       SELECT count(*)::int AS n FROM gone`,
      [...params, this.#graceMs],
    );
    return rows[0]!.n;
  }

  /** Deletes a value and its chunks. */
  async #drop(id: string): Promise<void> {
    const t = this.#t;
    await this.#query(`WITH c AS (DELETE FROM ${t.chunks} WHERE value_id = $1) DELETE FROM ${t.values} WHERE id = $1`, [id]);
  }

  #nowSeconds(): number {
    return Math.floor(this.#now() / 1000);
  }

  async #query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#pool.query<R>(text, values);
        this.#back();
        return result;
      } catch (err) {
        // Every statement is its own serializable transaction, rolled back whole on a
        // serialization failure or deadlock: running it again is safe.
        const code = (err as { code?: unknown }).code;
        if ((code === '40001' || code === '40P01') && attempt < SERIALIZATION_RETRIES) continue;
        if (!isStatementError(err)) this.#lost(err);
        throw storeError(err);
      }
    }
  }

  #back(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#log?.('info', 'kv: Postgres connection back', { store: 'postgres' });
  }

  /** Reports the connection dropping once, not once per failed call. */
  #lost(err: unknown): void {
    if (this.#down) return;
    this.#down = true;
    this.#log?.('error', 'kv: lost the Postgres connection; KV calls fail with KV_STORE_UNAVAILABLE until it is back', { store: 'postgres', err: err instanceof Error ? err.message : String(err) });
  }
}

async function* single(bytes: Buffer): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** Milliseconds since the epoch by the database's clock, so every node reclaims on one clock. */
const DB_NOW_MS = `(extract(epoch from now()) * 1000)::bigint`;

function tables(prefix: string): { entries: string; values: string; chunks: string } {
  return { entries: `${prefix}entries`, values: `${prefix}values`, chunks: `${prefix}chunks` };
}

async function createSchema(pool: pg.Pool, t: ReturnType<typeof tables>): Promise<void> {
  const ddl = [
    `CREATE TABLE IF NOT EXISTS ${t.entries} (
       ns TEXT NOT NULL, key BYTEA NOT NULL, value_id TEXT NOT NULL, size BIGINT NOT NULL,
       expiration BIGINT, metadata TEXT, PRIMARY KEY (ns, key))`,
    `CREATE INDEX IF NOT EXISTS ${t.entries}_expiration ON ${t.entries} (expiration)`,
    `CREATE TABLE IF NOT EXISTS ${t.values} (id TEXT PRIMARY KEY, reclaim_at BIGINT)`,
    `CREATE INDEX IF NOT EXISTS ${t.values}_reclaim ON ${t.values} (reclaim_at)`,
    `CREATE TABLE IF NOT EXISTS ${t.chunks} (value_id TEXT NOT NULL, seq INT NOT NULL, bytes BYTEA NOT NULL, PRIMARY KEY (value_id, seq))`,
  ];
  for (const statement of ddl) {
    try {
      await pool.query(statement);
    } catch (err) {
      // Two nodes creating the same table at once: Postgres's IF NOT EXISTS is not atomic
      // against a concurrent CREATE (23505 on its catalog, 42P07 or 42710); the other one won.
      const code = (err as { code?: string }).code;
      if (code !== '23505' && code !== '42P07' && code !== '42710') throw err;
    }
  }
}

/** An error Postgres answered (bad SQL, constraint): the connection itself is fine. */
function isStatementError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08') && !code.startsWith('57');
}

function storeError(err: unknown): unknown {
  if (errorCodeOf(err)) return err;
  return new DcdnError('KV_STORE_UNAVAILABLE', `Postgres: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
