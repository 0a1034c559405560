/**
 * `env.DB` for a SQL binding: D1's API (prepare/bind/first/all/raw/run, batch, exec) over the
 * transport KV calls use: each call is one stream to the ingress (`POST /sql/BINDING`, the
 * statements as JSON), which runs it in one transaction and answers with the results.
 *
 * Runtime-neutral: it runs in the host page and in sandbox workers. One object serves one
 * handler request (the runtimes build `env` per request), so it counts that request's statements.
 */
// Leaf imports, not protocol/index.ts: this file is bundled into sandbox workers (see kv/namespace.ts).
import { fromWire, toWire, type SqlMeta, type SqlWireRequest, type SqlWireResponse, type SqlWireResult } from '../../protocol/sql-wire.ts';
import { readAnswerBody } from '../kv/answer-body.ts';
import type { KvAnswer, KvTransport } from '../kv/namespace.ts';

/** Statements one handler request may send (D1's limit per Worker invocation on its paid plan). */
export const SQL_STATEMENTS_PER_REQUEST = 1000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A failed SQL call: `message` starts `D1_ERROR: ` as D1's do; `code` is the SQL_* code of docs/errors.md. */
export class SqlError extends Error {
  readonly code: string;
  readonly status: number;
  /** Postgres' SQLSTATE when the database refused the statement (`42P01`: no such table). */
  readonly sqlState: string | undefined;
  constructor(code: string, status: number, message: string) {
    const text = message.startsWith('D1_') ? message : `D1_ERROR: ${message}`;
    super(text, { cause: new Error(text.replace(/^D1_[A-Z_]+: /, '')) });
    this.name = 'Error';
    this.code = code;
    this.status = status;
    this.sqlState = /\(SQLSTATE ([0-9A-Z]{5})\)$/.exec(message)?.[1];
  }
}

export interface D1Result<T = Record<string, unknown>> {
  success: true;
  meta: SqlMeta;
  results: T[];
}

export class SqlDatabase {
  readonly #binding: string;
  readonly #send: KvTransport;
  #statements = 0;

  constructor(binding: string, transport: KvTransport) {
    this.#binding = binding;
    this.#send = transport;
  }

  /** A statement to bind values to and run; `?`, `?NNN` and `$1` placeholders are accepted. */
  prepare(sql: string): SqlPreparedStatement {
    if (typeof sql !== 'string') throw new TypeError('prepare() takes the SQL text');
    return new SqlPreparedStatement(this, sql, []);
  }

  /** Runs the statements in one transaction: all of them take effect, or (one failing) none. */
  async batch<T = Record<string, unknown>>(statements: SqlPreparedStatement[]): Promise<Array<D1Result<T>>> {
    if (!Array.isArray(statements) || statements.some((s) => !(s instanceof SqlPreparedStatement))) throw new TypeError('batch() takes a list of prepared statements');
    if (statements.length === 0) return [];
    const results = await this.call({ mode: 'batch', statements: statements.map((s) => s.wire()) });
    return results.map((r) => toD1Result<T>(r));
  }

  /** Runs one or more `;`-separated statements without parameters (migrations, setup). */
  async exec(sql: string): Promise<{ count: number; duration: number }> {
    if (typeof sql !== 'string' || sql.trim() === '') throw new SqlError('SQL_BAD_REQUEST', 400, 'D1_ERROR: exec() takes SQL text');
    const results = await this.call({ mode: 'exec', statements: [{ sql, params: [] }] });
    return { count: results.length, duration: results.reduce((n, r) => n + r.meta.duration, 0) };
  }

  /** Not supported: export with `dcdn sql export` instead. */
  async dump(): Promise<ArrayBuffer> {
    throw new SqlError('SQL_BAD_REQUEST', 400, 'D1_ERROR: dump() is not supported; use `dcdn sql export`');
  }

  /** D1's sessions API: every store here is read-your-writes already, so a session is the database. */
  withSession(): SqlDatabase & { getBookmark(): string | null } {
    return Object.assign(Object.create(this) as SqlDatabase, { getBookmark: () => null });
  }

  /** @internal One call to the ingress. */
  async call(request: SqlWireRequest): Promise<SqlWireResult[]> {
    this.#statements += request.statements.length;
    if (this.#statements > SQL_STATEMENTS_PER_REQUEST) {
      throw new SqlError('SQL_TOO_MANY_STATEMENTS', 400, `D1_ERROR: more than ${SQL_STATEMENTS_PER_REQUEST} statements in one request`);
    }
    const answer = await this.#send({
      method: 'POST',
      path: `/sql/${this.#binding}`,
      headers: [['content-type', 'application/json']],
      body: encoder.encode(JSON.stringify(request)),
    });
    const text = decoder.decode(await readAnswerBody(answer.body));
    if (answer.status >= 400) {
      const code = answer.headers.find(([n]) => n === 'dcdn-error')?.[1] ?? 'SQL_BAD_REQUEST';
      let message = `SQL call failed with status ${answer.status}`;
      try {
        const body = JSON.parse(text) as { message?: unknown };
        if (typeof body.message === 'string') message = body.message;
      } catch {
        // keep the generic message
      }
      throw new SqlError(code, answer.status, message);
    }
    return (JSON.parse(text) as SqlWireResponse).results;
  }
}

export class SqlPreparedStatement {
  readonly #db: SqlDatabase;
  readonly #sql: string;
  readonly #params: unknown[];

  constructor(db: SqlDatabase, sql: string, params: unknown[]) {
    this.#db = db;
    this.#sql = sql;
    this.#params = params;
  }

  /** A copy of the statement with these values for its placeholders, in order. */
  bind(...values: unknown[]): SqlPreparedStatement {
    for (const v of values) if (v === undefined) throw new SqlError('SQL_BAD_REQUEST', 400, "D1_TYPE_ERROR: Type 'undefined' not supported for value 'undefined'");
    return new SqlPreparedStatement(this.#db, this.#sql, values);
  }

  /** The first row, or one column of it; null when there is no row. */
  async first<T = unknown>(column?: string): Promise<T | null> {
    const [r] = await this.#run();
    const row = r!.rows[0];
    if (!row) return null;
    if (column === undefined) return rowObject(r!.columns, row) as T;
    const at = r!.columns.indexOf(column);
    if (at === -1) throw new SqlError('SQL_BAD_REQUEST', 400, `D1_COLUMN_NOTFOUND: Column not found (${column})`);
    return fromWire(row[at]) as T;
  }

  /** Every row as an object, with D1's meta. */
  async all<T = Record<string, unknown>>(): Promise<D1Result<T>> {
    return toD1Result<T>((await this.#run())[0]!);
  }

  /** The same as all(), as in D1 (rows included). */
  async run<T = Record<string, unknown>>(): Promise<D1Result<T>> {
    return this.all<T>();
  }

  /** Rows as arrays; with `columnNames: true` the first array holds the column names. */
  async raw<T = unknown[]>(options: { columnNames?: boolean } = {}): Promise<T[]> {
    const [r] = await this.#run();
    const rows = r!.rows.map((row) => row.map(fromWire));
    return (options.columnNames ? [r!.columns, ...rows] : rows) as T[];
  }

  /** @internal */
  wire(): SqlWireRequest['statements'][number] {
    let params;
    try {
      params = this.#params.map(toWire);
    } catch (err) {
      throw new SqlError('SQL_BAD_REQUEST', 400, `D1_TYPE_ERROR: ${(err as Error).message}`);
    }
    return { sql: this.#sql, params };
  }

  #run(): Promise<SqlWireResult[]> {
    return this.#db.call({ mode: 'batch', statements: [this.wire()] });
  }
}

function rowObject(columns: string[], row: unknown[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  columns.forEach((c, i) => {
    // A column named __proto__ stays a plain own property.
    Object.defineProperty(o, c, { value: fromWire(row[i]), enumerable: true, writable: true, configurable: true });
  });
  return o;
}

function toD1Result<T>(r: SqlWireResult): D1Result<T> {
  return { success: true, meta: r.meta, results: r.rows.map((row) => rowObject(r.columns, row) as T) };
}
