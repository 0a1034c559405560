import Database from 'better-sqlite3';
import { preparePrivateDbFile } from './private-db-file.ts';
import { DcdnError, errorCodeOf } from '../../protocol/index.ts';
import type { KvEntry, KvListOptions, KvListResult, KvPutOptions, KvStore, KvStoreOptions } from './store.ts';
import { decodeCursor, encodeCursor, prefixEnd } from './key-range.ts';

/** Bytes per stored chunk row, so a value is never held whole in memory. */
const CHUNK_BYTES = 64 * 1024;
/** How long a put may stream before its unfinished value counts as abandoned (a crash). */
const UNFINISHED_MS = 60 * 60 * 1000;

export interface SqliteKvStoreOptions extends KvStoreOptions {
  /** How often expired entries and replaced values are reclaimed. Default 60 000 ms. */
  sweepIntervalMs?: number;
}

/**
 * KV in one SQLite file (WAL): durable, for a single ingress node. Processes on the same host
 * may share the file (`dcdn kv` next to a running ingress); other nodes may not.
 *
 * An entry points at a value id; the value's bytes are rows of 64 KiB in `kv_chunks`. A put
 * writes its chunks under a fresh id as they arrive and only then, in one short transaction,
 * swaps the entry's pointer, so readers see the old value or the new one. The replaced value is
 * marked garbage and reclaimed by the sweep after `readGraceMs`, so a reader that started on it
 * finishes. Ids come from AUTOINCREMENT and are never reused.
 *
 * @example
 * ```ts
 * const store = new SqliteKvStore('/var/lib/dcdn/kv.db');
 * async function* hello() { yield new TextEncoder().encode('hello'); }
 * await store.put('app:KV', 'greeting', hello(), { maxValueBytes: KV_LIMITS.valueBytes });
 * ```
 */
export class SqliteKvStore implements KvStore {
  readonly kind = 'sqlite';
  readonly #db: Database.Database;
  readonly #graceMs: number;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  readonly #q: ReturnType<typeof prepare>;

  constructor(path: string, options: SqliteKvStoreOptions = {}) {
    this.#graceMs = options.readGraceMs ?? 60_000;
    this.#now = options.now ?? Date.now;
    this.#db = run(() => {
      // Apps' data: owner-only, -wal and -shm included.
      preparePrivateDbFile(path);
      const db = new Database(path);
      db.pragma('journal_mode = WAL');
      // Chunk rows need not be durable on their own (see #durably), so commits default to NORMAL.
      db.pragma('synchronous = NORMAL');
      db.exec(SCHEMA);
      return db;
    });
    this.#q = run(() => prepare(this.#db));
    this.#timer = setInterval(() => {
      try {
        this.sweep();
      } catch {
        // The next sweep retries; failures reach callers through their own operations.
      }
    }, options.sweepIntervalMs ?? 60_000).unref();
  }

  async get(namespace: string, key: string): Promise<KvEntry | null> {
    const row = run(() => this.#q.get.get(namespace, utf8(key), this.#nowSeconds())) as EntryRow | undefined;
    if (!row) return null;
    return {
      size: row.size,
      ...(row.expiration !== null && { expiration: row.expiration }),
      ...(row.metadata !== null && { metadata: row.metadata }),
      chunks: () => this.#chunks(row.value_id, row.size),
    };
  }

  async put(namespace: string, key: string, value: AsyncIterable<Uint8Array>, options: KvPutOptions): Promise<void> {
    const id = Number(run(() => this.#q.newValue.run(this.#now())).lastInsertRowid);
    try {
      let seq = 0;
      let size = 0;
      for await (const chunk of rechunk(value, options.maxValueBytes)) {
        run(() => this.#q.putChunk.run(id, seq++, chunk));
        size += chunk.byteLength;
      }
      run(() =>
        this.#durably(() => {
          // A put slower than UNFINISHED_MS finds its value reclaimed as abandoned.
          if (this.#q.commitValue.run(id).changes !== 1) {
            throw new DcdnError('KV_STORE_UNAVAILABLE', 'the value was reclaimed before it was committed: the put took too long');
          }
          const old = this.#q.valueOf.get(namespace, utf8(key)) as { value_id: number } | undefined;
          this.#q.upsert.run(namespace, utf8(key), id, size, options.expiration ?? null, options.metadata ?? null);
          if (old) this.#q.markGarbage.run(this.#now(), old.value_id);
        }),
      );
    } catch (err) {
      try {
        this.#dropValue(id);
      } catch {
        // Closed or failing database: the sweep reclaims the unfinished value after UNFINISHED_MS.
      }
      throw err;
    }
  }

  async delete(namespace: string, key: string): Promise<void> {
    run(() =>
      this.#durably(() => {
        const old = this.#q.valueOf.get(namespace, utf8(key)) as { value_id: number } | undefined;
        if (!old) return;
        this.#q.deleteEntry.run(namespace, utf8(key));
        this.#q.markGarbage.run(this.#now(), old.value_id);
      }),
    );
  }

  async list(namespace: string, options: KvListOptions): Promise<KvListResult> {
    const prefix = utf8(options.prefix);
    let from = prefix;
    if (options.cursor !== undefined) {
      // The least key after the cursor's is the cursor's followed by a zero byte.
      const after = Buffer.concat([decodeCursor(options.cursor), ZERO]);
      if (Buffer.compare(after, from) > 0) from = after;
    }
    const rows = run(() =>
      this.#q.list.all(namespace, from, prefixEnd(prefix), this.#nowSeconds(), options.limit + 1),
    ) as ListRow[];
    const page = rows.slice(0, options.limit);
    const keys = page.map((r) => ({
      name: r.key.toString('utf8'),
      ...(r.expiration !== null && { expiration: r.expiration }),
      ...(r.metadata !== null && { metadata: r.metadata }),
    }));
    const last = page.at(-1);
    if (rows.length <= options.limit || !last) return { keys, listComplete: true };
    return { keys, listComplete: false, cursor: encodeCursor(last.key) };
  }

  async count(namespace: string): Promise<number> {
    return (run(() => this.#q.count.get(namespace, this.#nowSeconds())) as { n: number }).n;
  }

  async dropNamespace(namespace: string): Promise<void> {
    run(() =>
      this.#durably(() => {
        this.#q.markNamespaceGarbage.run(this.#now(), namespace);
        this.#q.dropNamespace.run(namespace);
      }),
    );
  }

  /**
   * Removes expired entries and reclaims values replaced more than `readGraceMs` ago, and values
   * a put left unfinished (a crash) for over an hour. Runs on a timer; callable directly (tests,
   * maintenance). Each value is freed in its own transaction so a large backlog never holds the
   * write lock long.
   */
  sweep(): void {
    const now = this.#now();
    run(() => {
      this.#db.transaction(() => {
        this.#q.markExpiredGarbage.run(now, now / 1000);
        this.#q.deleteExpired.run(now / 1000);
        this.#q.markAbandoned.run(now, now - UNFINISHED_MS);
      })();
      const due = this.#q.dueGarbage.all(now - this.#graceMs) as Array<{ id: number }>;
      for (const { id } of due) this.#dropValue(id);
    });
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    if (this.#db.open) this.#db.close();
  }

  /** Reads a value row by row, so only one chunk is in memory at a time. */
  async *#chunks(valueId: number, size: number): AsyncGenerator<Uint8Array> {
    for (let seq = 0, read = 0; read < size; seq++) {
      const row = run(() => this.#q.chunk.get(valueId, seq)) as { data: Buffer } | undefined;
      if (!row) throw new DcdnError('KV_STORE_UNAVAILABLE', 'the value was reclaimed while being read: reading took longer than readGraceMs');
      read += row.data.byteLength;
      yield row.data;
    }
  }

  /**
   * Runs `write` as a transaction committed with synchronous=FULL. In WAL mode that fsyncs the
   * log, which also holds the chunk rows committed before it with NORMAL: a pointer never
   * becomes durable before the bytes it points at.
   */
  #durably(write: () => void): void {
    this.#db.pragma('synchronous = FULL');
    try {
      this.#db.transaction(write)();
    } finally {
      this.#db.pragma('synchronous = NORMAL');
    }
  }

  #dropValue(id: number): void {
    this.#db.transaction(() => {
      this.#q.dropChunks.run(id);
      this.#q.dropValue.run(id);
    })();
  }

  #nowSeconds(): number {
    return this.#now() / 1000;
  }
}

interface EntryRow {
  value_id: number;
  size: number;
  expiration: number | null;
  metadata: string | null;
}
interface ListRow {
  key: Buffer;
  expiration: number | null;
  metadata: string | null;
}

// Keys are BLOBs of their UTF-8 bytes so that ORDER BY and range bounds compare bytes (memcmp),
// the order `list` promises. An entry is live while `expiration` (Unix s) is NULL or > now.
// A value is being written while `writing_since` is set (ms), and unreferenced, waiting out the
// read grace period, while `garbage_since` is.
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS kv_entries (
    ns TEXT NOT NULL,
    key BLOB NOT NULL,
    value_id INTEGER NOT NULL,
    size INTEGER NOT NULL,
    expiration INTEGER,
    metadata TEXT,
    PRIMARY KEY (ns, key)
  );
  CREATE INDEX IF NOT EXISTS kv_entries_expiration ON kv_entries (expiration) WHERE expiration IS NOT NULL;
  CREATE TABLE IF NOT EXISTS kv_values (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    writing_since INTEGER,
    garbage_since INTEGER
  );
  CREATE INDEX IF NOT EXISTS kv_values_writing ON kv_values (writing_since) WHERE writing_since IS NOT NULL;
  CREATE INDEX IF NOT EXISTS kv_values_garbage ON kv_values (garbage_since) WHERE garbage_since IS NOT NULL;
  CREATE TABLE IF NOT EXISTS kv_chunks (
    value_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (value_id, seq)
  );
`;

function prepare(db: Database.Database) {
  const live = '(expiration IS NULL OR expiration > ?)';
  return {
    get: db.prepare(`SELECT value_id, size, expiration, metadata FROM kv_entries WHERE ns = ? AND key = ? AND ${live}`),
    valueOf: db.prepare('SELECT value_id FROM kv_entries WHERE ns = ? AND key = ?'),
    chunk: db.prepare('SELECT data FROM kv_chunks WHERE value_id = ? AND seq = ?'),
    newValue: db.prepare('INSERT INTO kv_values (writing_since) VALUES (?)'),
    commitValue: db.prepare('UPDATE kv_values SET writing_since = NULL WHERE id = ? AND writing_since IS NOT NULL'),
    putChunk: db.prepare('INSERT INTO kv_chunks (value_id, seq, data) VALUES (?, ?, ?)'),
    upsert: db.prepare(
      'INSERT INTO kv_entries (ns, key, value_id, size, expiration, metadata) VALUES (?, ?, ?, ?, ?, ?) ' +
        'ON CONFLICT (ns, key) DO UPDATE SET value_id = excluded.value_id, size = excluded.size, expiration = excluded.expiration, metadata = excluded.metadata',
    ),
    deleteEntry: db.prepare('DELETE FROM kv_entries WHERE ns = ? AND key = ?'),
    markGarbage: db.prepare('UPDATE kv_values SET garbage_since = ? WHERE id = ?'),
    list: db.prepare(`SELECT key, expiration, metadata FROM kv_entries WHERE ns = ? AND key >= ? AND key < ? AND ${live} ORDER BY key LIMIT ?`),
    count: db.prepare(`SELECT COUNT(*) AS n FROM kv_entries WHERE ns = ? AND ${live}`),
    markNamespaceGarbage: db.prepare('UPDATE kv_values SET garbage_since = ? WHERE id IN (SELECT value_id FROM kv_entries WHERE ns = ?)'),
    dropNamespace: db.prepare('DELETE FROM kv_entries WHERE ns = ?'),
    markExpiredGarbage: db.prepare('UPDATE kv_values SET garbage_since = ? WHERE id IN (SELECT value_id FROM kv_entries WHERE expiration <= ?)'),
    deleteExpired: db.prepare('DELETE FROM kv_entries WHERE expiration <= ?'),
    markAbandoned: db.prepare('UPDATE kv_values SET garbage_since = ?, writing_since = NULL WHERE writing_since <= ?'),
    dueGarbage: db.prepare('SELECT id FROM kv_values WHERE garbage_since <= ?'),
    dropChunks: db.prepare('DELETE FROM kv_chunks WHERE value_id = ?'),
    dropValue: db.prepare('DELETE FROM kv_values WHERE id = ?'),
  };
}

const ZERO = Buffer.from([0]);

function utf8(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}




/**
 * Regroups a value's chunks into 64 KiB pieces (the last may be shorter), throwing
 * KV_VALUE_TOO_LARGE, and so no longer pulling from `source`, as soon as it passes `maxBytes`.
 * The piece yielded is reused: consume it before pulling the next.
 */
async function* rechunk(source: AsyncIterable<Uint8Array>, maxBytes: number): AsyncGenerator<Uint8Array> {
  const piece = Buffer.allocUnsafe(CHUNK_BYTES);
  let fill = 0;
  let total = 0;
  for await (const chunk of source) {
    total += chunk.byteLength;
    if (total > maxBytes) throw new DcdnError('KV_VALUE_TOO_LARGE', `the value is larger than ${maxBytes} bytes`);
    for (let at = 0; at < chunk.byteLength; ) {
      const n = Math.min(CHUNK_BYTES - fill, chunk.byteLength - at);
      piece.set(chunk.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill === CHUNK_BYTES) {
        yield piece;
        fill = 0;
      }
    }
  }
  if (fill > 0) yield piece.subarray(0, fill);
}

/** Runs a database call, turning SQLite's failures (busy, full, closed) into KV_STORE_UNAVAILABLE. */
function run<T>(op: () => T): T {
  try {
    return op();
  } catch (err) {
    if (errorCodeOf(err)) throw err;
    throw new DcdnError('KV_STORE_UNAVAILABLE', `SQLite: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
